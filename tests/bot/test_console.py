"""``loandesk console`` fed through piped stdin: faucet, borrow, confirm by number."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_console_borrows_through_piped_stdin(tmp_path: Path) -> None:
    lines = "/faucet\n/borrow 30000 USDT with 1 BTC\n1\n/positions\n/repay 1 1.2.3\n"
    done = subprocess.run([sys.executable, "-m", "bot.entry.cli", "console", "--db", str(tmp_path / "c.db"),
                           "--prices", "BTC=50000,ETH=3000"], input=lines, capture_output=True, text=True,
                          timeout=60, check=True)
    out = done.stdout
    assert "Demo funds credited" in out
    assert "LTV after: 60.0%" in out and "[1] Confirm" in out
    assert "#1 flexible · open" in out
    assert "'1.2.3' is not an amount" in out


def test_run_without_a_token_names_the_variable(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bot.entry.cli", "run"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in done.stderr and "loandesk console" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
