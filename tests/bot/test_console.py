"""``loandesk console`` driven as a newcomer would: a script typing into the real subprocess, no network at all.

The console runs the same Application, scheduler, sweep and notifier as ``loandesk run``; these tests see the
warning, margin-call and liquidation pushes arrive after ``/price`` moves and during a replayed crash.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.entry.cli import main
from tests.bot.console_driver import Console, transcript


def test_a_newcomer_borrows_from_the_banner_then_drops_the_price_and_sees_every_push(tmp_path: Path) -> None:
    c = Console(tmp_path)
    try:
        banner = c.expect("Ctrl-D quits", timeout=120)
        assert "No token, no network" in banner and "Demo funds in your Spot wallet: 10000 USDT" in banner
        example = re.search(r"(/borrow 500 USDT with [0-9.]+ BTC)", banner)
        assert example is not None and example.group(1) == "/borrow 500 USDT with 0.01 BTC"
        moves = re.findall(r"/price BTC (\d+) → ([A-Za-z -]+)", banner)
        assert moves == [("62000", "an LTV warning "), ("58000", "a margin call "), ("54000", "liquidation")]
        assert "/price replay march2020" in banner and "--replay march2020 --speed 600" in banner
        assert "must hold 3 s" in banner

        preview = c.say(example.group(1), "[1] Confirm")
        assert "LTV after: 50.0%" in preview
        assert "#1 flexible · open" in c.say("1", "#1 flexible")
        c.type("/chart 1")  # right after opening: drawn from what the offline prices served before
        chart_path = Path(c.expect("Picture: ").splitlines()[-1].removeprefix("Picture: "))
        assert chart_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        c.type("/backtest 1 march2020")
        picture = c.expect("Picture: ")
        path = Path(picture.splitlines()[-1].removeprefix("Picture: "))
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "[a chart picture" not in c.transcript

        c.type("/price BTC 62000")
        c.expect("BTC is now 62000 USDT")
        warning = c.expect("LTV warning · position #1")
        assert "━━ push" in warning.splitlines()[-2]
        assert "LTV 80.6%" in c.expect("LTV 80.6%")
        c.expect("[1] Add collateral   [2] Repay   [3] View")

        c.type("/price BTC 58000")
        call = c.expect("Margin call · position #1")
        assert "━━ push" in call.splitlines()[-2]
        c.type("/price BTC 54000")
        gone = c.expect("Liquidated · position #1")
        assert "━━ push" in gone.splitlines()[-2]
        c.expect("Returned to your Spot wallet")

        c.type("1")  # the liquidation push's only button, View, tapped by its number
        assert "liquidated" in c.expect("#1 flexible")
        chart = c.say("/chart 1", "since it opened")  # the feed records the confirmed prices it liquidated on
        assert "0 BTC prices recorded" not in chart

        c.say("/price BTC 100000", "BTC is now 100000 USDT")
        c.say("/borrow 500 USDT with 0.01 BTC", "[1] Confirm")
        c.say("1", "#2 flexible · open")
        c.say("/alert ltv 60", "reaches 60.0%")  # a personal warning level: the live sweep uses it
        c.type("/price BTC 80000")  # 62.5%
        assert "━━ push" in c.expect("LTV warning · position #2").splitlines()[-2]
        c.expect("Your warning level 60.0% was reached")
        assert c.close() == 0
    finally:
        c.close()
    assert not [e for e in c.errors if "NETWORK ATTEMPT" in e or "Traceback" in e], c.errors


def test_a_replayed_crash_liquidates_a_loan_opened_just_before(tmp_path: Path) -> None:
    c = Console(tmp_path, "--replay", "march2020", "--from", "2020-03-12", "--speed", "20000")
    try:
        banner = c.expect("Ctrl-D quits", timeout=120)
        assert "march2020 will replay at 20000× from the moment you have an open loan" in banner
        c.say("/borrow 500 USDT with BTC at 70%", "[1] Confirm")
        c.say("1", "#1 flexible")
        c.expect("[prices] March 2020 (COVID crash) starts now, at 20000×")
        pushed = c.expect("Liquidated · position #1", timeout=90)
        assert "[prices] march2020 2020-03-1" in pushed  # the replay's notes on the way down
        assert "━━ push" in pushed
        assert c.close() == 0
    finally:
        c.close()
    assert not [e for e in c.errors if "NETWORK ATTEMPT" in e or "Traceback" in e], c.errors


def test_the_no_network_guard_does_refuse_other_addresses(tmp_path: Path) -> None:
    """The guard the console tests run under is real: a connection anywhere else is refused and reported."""
    from tests.bot.console_driver import NO_NETWORK

    (tmp_path / "sitecustomize.py").write_text(NO_NETWORK, encoding="utf-8")
    code = "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 443), timeout=1)\nexcept OSError as e:\n" \
           "    print('refused', e)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert "NETWORK ATTEMPT" in done.stderr and "refused" in done.stdout


def test_a_piped_script_reads_like_a_conversation(tmp_path: Path) -> None:
    out = transcript(tmp_path, "/borrow 30000 USDT with 1 BTC\n1\n/positions\n/repay 1 1.2.3\n/prce\n"
                     "/borrow 500 USDC with 0.5 ETH\n", "--prices", "BTC=50000,ETH=3000")
    # the banner's example fits the prices given: 500 USDT on 0.02 BTC at 50,000 is 50%, not 100%
    assert "1. Borrow:   /borrow 500 USDT with 0.02 BTC   then type 1 to tap [1] Confirm" in out
    assert "/price BTC 31000 → an LTV warning" in out  # 500 / (0.02 × 31,000) = 80.6%
    assert "> /borrow 30000 USDT with 1 BTC" in out  # typed lines are echoed when piped
    assert "LTV after: 60.0%" in out and "[1] Confirm" in out
    assert "#1 flexible · open" in out
    assert "'1.2.3' is not an amount" in out
    assert "Did you mean /price?" in out
    assert "Borrow 500 USDC against 0.5 ETH" in out and "No price" not in out  # every asset has a price


def test_console_flags_are_checked_before_anything_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*flags: str) -> str:
        assert main(["console", "--db", str(tmp_path / "x.db"), *flags]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        return err

    assert "--replay: 'march2021' is not a crash I know (choose: march2020" in run("--replay", "march2021")
    assert "--from 2021-01-01 is outside march2020 (2020-03-08 00:00 to 2020-03-20 23:00 UTC)" in run(
        "--replay", "march2020", "--from", "2021-01-01")
    assert "--from needs --replay" in run("--from", "2020-03-12")
    assert "--prices: XYZ is not an asset of this desk" in run("--prices", "XYZ=5")
    assert "'BTC=abc' is not ASSET=PRICE" in run("--prices", "BTC=abc")
    assert "--speed" in run("--replay", "march2020", "--speed", "0")
    assert not (tmp_path / "x.db").exists()  # nothing started


def test_run_without_a_token_names_the_variable(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bot.entry.cli", "run"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in done.stderr and "loandesk console" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
