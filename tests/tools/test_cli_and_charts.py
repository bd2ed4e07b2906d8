"""``loandesk backtest`` end to end (text, JSON, bad input) and the charts it draws."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from bot.entry.cli import main
from bot.history.events import HERE
from bot.render.charts import Marker, render_backtest_chart, render_position_chart
from domain.analysis.backtest import backtest
from domain.markets import load_catalog
from domain.prices import read_price_csv

MARCH = str(HERE / "BTCUSDT_1h_2020-03-08_2020-03-20.csv")
BASE = ["backtest", "--loan", "4000", "USDT", "--collateral", "1", "BTC"]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def test_text_report_names_the_margin_call_and_liquidation_hours(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--prices", MARCH, "--apr", "0"]) == 0
    out = capsys.readouterr().out
    assert "First margin call: 2020-03-13 00:00 UTC at BTC 4654.72 (LTV 85.9%)" in out
    assert "Liquidation:       2020-03-13 01:00 UTC at BTC 4130.64 (LTV 96.8%)" in out


def test_json_output_shape(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    chart = tmp_path / "out.png"
    assert main([*BASE, "--prices", MARCH, "--apr", "5%", "--from", "2020-03-10T00:00:00Z",
                 "--to", "2020-03-14T00:00:00Z", "--json", "--chart", str(chart)]) == 0
    j = json.loads(capsys.readouterr().out)
    assert set(j) >= {"loan", "collateral", "apr", "from", "to", "thresholds", "start", "first_warning",
                      "first_margin_call", "liquidation", "max_ltv", "interest", "returned", "returned_value",
                      "shortfall", "outcome", "events", "series", "chart"}
    assert j["apr"] == "0.05" and j["from"] == "2020-03-10T00:00:00Z" and j["to"] == "2020-03-14T00:00:00Z"
    for key in ("first_warning", "first_margin_call", "liquidation", "max_ltv"):
        assert set(j[key]) == {"time", "price", "ltv", "ltv_pct"}
        assert j[key]["time"].endswith("Z") and isinstance(j[key]["price"], str)
    assert j["liquidation"]["time"] == "2020-03-13T01:00:00Z"
    assert isinstance(j["interest"], str) and D(j["interest"]) > 0
    assert j["series"][0]["time"] == "2020-03-10T00:00:00Z"
    assert png_size(chart.read_bytes()) == (1080, 1350)


def test_a_shipped_event_can_stand_in_for_the_price_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--event", "dec2021", "--json", "--no-series"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["outcome"] == "survived" and j["liquidation"] is None and "series" not in j


@pytest.mark.parametrize(("args", "message"), [
    (["--prices", "/no/such/file.csv"], "cannot read"),
    (["--prices", MARCH, "--from", "2020-03-15", "--to", "2020-03-10"], "before"),
    (["--prices", MARCH, "--from", "2021-01-01T00:00:00Z"], "no prices between"),
    (["--prices", MARCH, "--from", "yesterday"], "not an ISO-8601 time"),
    (["--prices", MARCH, "--apr", "-1"], "--apr"),
    ([], "either --prices FILE or --event NAME"),
    (["--event", "luna2022"], "no historical event"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(args: list[str], message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loandesk backtest: ") and message in lines[0]


@pytest.mark.parametrize(("loan", "message"), [
    (["4,0x0", "USDT"], "is not an amount"), (["4000", "XYZ"], "not a loan asset"),
    (["0", "USDT"], "greater than zero")])
def test_bad_amounts_and_assets(loan: list[str], message: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--loan", *loan, "--collateral", "1", "BTC", "--prices", MARCH]) == 2
    assert message in capsys.readouterr().err
    assert main(["backtest", "--loan", "4000", "USDT", "--collateral", "1", "NOPE", "--prices", MARCH]) == 2
    assert "not accepted as collateral" in capsys.readouterr().err


def test_a_loan_the_desk_would_refuse_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--loan", "9000", "USDT", "--collateral", "1", "BTC", "--prices", MARCH]) == 2
    assert "the limit is 78.0%" in capsys.readouterr().err


def test_charts_are_phone_sized_pngs() -> None:
    r = backtest(load_catalog(), D(4000), "USDT", D(1), "BTC", {"BTC": read_price_csv(Path(MARCH), "close")}, D(0))
    data = render_backtest_chart(r)
    assert png_size(data) == (1080, 1350) and 20_000 < len(data) < 1_000_000
    t = [datetime(2026, 1, 1, h, tzinfo=UTC) for h in range(5)]
    position = render_position_chart("#12 · 30000 USDT on 1 BTC", "BTC", t, [D(60000 - 1000 * h) for h in range(5)],
                                     [D(30000) / D(60000 - 1000 * h) for h in range(5)],
                                     {"margin call": D("0.85"), "liquidation": D("0.91")},
                                     margin_call_price=D("35294.12"), liquidation_price=D("32967.03"),
                                     markers=[Marker(t[2], "warning", D(58000), D(30000) / D(58000))])
    assert png_size(position) == (1080, 1350)
    with pytest.raises(ValueError):
        render_position_chart("empty", "BTC", [], [], [], {})
