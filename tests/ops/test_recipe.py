"""The README's deployment recipe is the one ``tests/ops/test_cluster.py`` runs: the variables it exports are
exactly those ``tests.ops.cluster.recipe_env`` gives an instance (less the test's own fakes and speed-ups), and
its commands are the ones the cluster test calls."""

from __future__ import annotations

import re
from pathlib import Path

from tests.ops.cluster import recipe_env

README = Path(__file__).resolve().parents[2] / "README.md"
TEST_ONLY = {"LOANDESK_TELEGRAM_BASE_URL", "LOANDESK_BINANCE_URL", "LOANDESK_MARKETS_FILE",
             "LOANDESK_PRICE_POLL_SECONDS", "LOANDESK_DATABASE_SCHEMA"}  # the fakes, a fast clock, a fresh schema


def recipe() -> str:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- recipe -->\n```sh\n(.*?)```", text, re.S)
    assert block is not None, "README has no recipe block"
    return block.group(1)


def test_the_readme_recipe_sets_what_the_cluster_test_sets() -> None:
    exported = set(re.findall(r"^export (\w+)=", recipe(), re.M))
    env = recipe_env(token="1:x", telegram="t", exchange="e", database="d", schema="s", operators="1", http="h",
                     markets="m", webhook_listen="w")
    ours = {k for k in env if k.startswith(("LOANDESK_", "TELEGRAM_"))} - TEST_ONLY
    assert exported == ours


def test_the_readme_recipe_runs_the_commands_the_cluster_test_runs() -> None:
    commands = [line.split("#")[0].strip() for line in recipe().splitlines()
                if line.startswith("loandesk ")]
    assert commands == ["loandesk db upgrade", "loandesk run"]
    cluster = (Path(__file__).parent / "cluster.py").read_text(encoding="utf-8")
    assert '[*loandesk(), "db", "upgrade"]' in cluster and '[*loandesk(), "run"]' in cluster
