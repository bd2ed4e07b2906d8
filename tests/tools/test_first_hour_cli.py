"""Issue 11 on the command line: percentages read one way (``--apr 5`` is 5%), a price file that cannot be the
one meant is refused, a closed pipe and an unreachable or refusing Telegram end with one clean line, and a
backtest over hourly candles says when several levels were crossed in one step."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from bot.entry.cli import main
from bot.history.events import HERE
from domain.analysis.backtest import backtest, describe
from domain.markets import load_catalog
from tests.fakes.telegram import FakeTelegram

MARCH_BTC = str(HERE / "BTCUSDT_1h_2020-03-08_2020-03-20.csv")
MARCH_ETH = str(HERE / "ETHUSDT_1h_2020-03-08_2020-03-20.csv")
BASE = ["backtest", "--loan", "4000", "USDT", "--collateral", "1", "BTC"]


def test_apr_is_a_percentage_like_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    for apr in ("5", "5%"):
        assert main([*BASE, "--prices", MARCH_BTC, "--apr", apr, "--json", "--no-series"]) == 0
        assert json.loads(capsys.readouterr().out)["apr"] == "0.05"
    assert main([*BASE, "--prices", MARCH_BTC, "--apr", "0.05"]) == 2
    err = capsys.readouterr().err
    assert "--apr 0.05 is ambiguous" in err and "--apr 5 for 5%" in err and "--apr 0.05% for 0.05%" in err
    assert main([*BASE, "--prices", MARCH_BTC, "--apr", "600", "--json", "--no-series"]) == 0
    captured = capsys.readouterr()
    assert "note: --apr 600% is far above any market rate" in captured.err
    assert json.loads(captured.out)["apr"] == "6"


@pytest.mark.parametrize(("args", "message"), [
    (["--loan", "1", "ETH", "--collateral", "1", "BTC", "--prices", MARCH_BTC],
     "--loan ETH is not a stablecoin, so its prices are needed too: add --loan-prices FILE"),
    (["--loan", "4000", "USDT", "--collateral", "1", "BTC", "--prices", MARCH_ETH],
     "--prices: ETHUSDT_1h_2020-03-08_2020-03-20.csv looks like ETH prices, but they are used for BTC"),
    (["--loan", "1", "ETH", "--collateral", "1", "BTC", "--prices", MARCH_BTC, "--loan-prices", MARCH_BTC],
     "--loan-prices: BTCUSDT_1h_2020-03-08_2020-03-20.csv looks like BTC prices, but they are used for ETH"),
])
def test_a_price_file_that_cannot_be_the_one_meant_is_refused(args: list[str], message: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and len(captured.err.strip().splitlines()) == 1


def test_an_eth_loan_on_btc_collateral_runs_with_both_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--loan", "1", "ETH", "--collateral", "1", "BTC", "--prices", MARCH_BTC,
                 "--loan-prices", MARCH_ETH, "--apr", "2"]) == 0
    assert "Backtest: 1 ETH against 1 BTC" in capsys.readouterr().out


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    cmd = (f"{sys.executable} -m bot.entry.cli backtest --loan 4000 USDT --collateral 1 BTC --event march2020 "
           "--json | head -1")
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.stdout == "{\n"
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def _run(tmp_path: Path, token: str, base_url: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TELEGRAM_BOT_TOKEN": token,
           "LOANDESK_TELEGRAM_BASE_URL": base_url, "LOANDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
           "LOANDESK_BINANCE_URL": "http://127.0.0.1:9", "LOANDESK_BOOTSTRAP_RETRIES": "1"}
    return subprocess.run([sys.executable, "-m", "bot.entry.cli", "run"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)


def test_run_without_network_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = _run(tmp_path, "123:abc", f"http://127.0.0.1:{port}/bot")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"loandesk run: cannot reach Telegram at http://127.0.0.1:{port}/bot (")
    assert last.endswith("check the network and try again")


def test_run_with_a_rejected_token_says_so_in_one_line(tmp_path: Path) -> None:
    with FakeTelegram(token="123:right") as tg:
        done = _run(tmp_path, "123:wrong", tg.base_url)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("loandesk run: Telegram refused the token in "
                                                           "TELEGRAM_BOT_TOKEN")


def test_levels_crossed_in_one_hourly_step_read_sensibly() -> None:
    """70% LTV at BTC 100; the next candle closes at 75 (LTV 93.3%): warning, margin call and liquidation in the
    same hour, and no margin-call alert could be sent before the liquidation."""
    t0 = datetime(2020, 3, 12, tzinfo=UTC)
    path = [(t0, D(100)), (t0 + timedelta(hours=1), D(75)), (t0 + timedelta(hours=2), D(74))]
    r = backtest(load_catalog(), D(70), "USDT", D(1), "BTC", {"BTC": path}, D("0.05"))
    text = "\n".join(describe(r))
    assert "First warning:     2020-03-12 01:00 UTC at BTC 75 (LTV 93.3%)  (≥ 80.0%)  — the same step as the " \
           "margin call" in text
    assert "First margin call: 2020-03-12 01:00 UTC at BTC 75 (LTV 93.3%)  (≥ 85.0%)  — the same step as the " \
           "liquidation" in text
    assert "Margin-call alerts sent: 0 (the LTV went past the margin call straight to liquidation" in text
