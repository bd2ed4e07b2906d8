"""Every scenario in scenarios/ replays to its checked-in expected output, byte for byte, twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain.analysis.report import render
from domain.analysis.simulate import simulate
from domain.markets import load_catalog

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p for p in (ROOT / "scenarios").glob("*.json") if not p.name.endswith(".expected.json"))


def replay(path: Path) -> str:
    return render(simulate(json.loads(path.read_text()), load_catalog(), base_dir=path.parent))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_matches_expected_output(path: Path) -> None:
    expected = path.with_name(path.stem + ".expected.json")
    assert expected.exists(), f"{expected.name} is missing"
    first = replay(path)
    assert first == expected.read_text()
    assert replay(path) == first  # deterministic


def test_every_scenario_ledger_balances() -> None:
    assert SCENARIOS
    for path in SCENARIOS:
        report = json.loads(path.with_name(path.stem + ".expected.json").read_text())
        assert report["ledger_balanced"] is True, path.name
