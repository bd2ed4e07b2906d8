"""Backtests through the engine on the shipped March 2020 BTC hourly file, checked against a hand computation
made here from the CSV rows: the first hour where debt × 1 / (1 BTC × close) reaches 80%, 85% and 91%."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal as D
from itertools import pairwise
from pathlib import Path

import pytest

from bot.history.events import EVENTS, HERE, backtest_event, event_prices
from domain.analysis.backtest import BacktestError, backtest, scale_to, to_json
from domain.markets import load_catalog
from domain.money import round_up
from domain.prices import read_price_csv

MARCH = HERE / "BTCUSDT_1h_2020-03-08_2020-03-20.csv"


def rows() -> list[tuple[datetime, D]]:
    with MARCH.open() as f:
        return [(datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")), D(r["close"]))
                for r in csv.DictReader(f)]


def first_hour_at(level: str, loan: D, apr: D) -> tuple[datetime, D, D]:
    """By hand: debt after k full hours is loan × (1 + APR/8760)^k (the file has no gaps: k = row index)."""
    for k, (t, close) in enumerate(rows()):
        debt = loan * (1 + apr / 8760) ** k
        ltv = debt / close
        if ltv >= D(level):
            return t, close, ltv
    raise AssertionError("never reached")


def test_the_hand_computation_has_what_it_needs() -> None:
    r = rows()
    assert len(r) == 312 and all((b[0] - a[0]).total_seconds() == 3600 for a, b in pairwise(r))


@pytest.mark.parametrize("apr", [D("0"), D("0.05")])
def test_march_2020_warning_margin_call_and_liquidation_hours_match_the_hand_computation(apr: D) -> None:
    r = backtest(load_catalog(), D(4000), "USDT", D(1), "BTC", {"BTC": read_price_csv(MARCH, "close")}, apr)
    for mark, level in ((r.first_warning, "0.80"), (r.first_margin_call, "0.85"), (r.liquidation, "0.91")):
        t, close, ltv = first_hour_at(level, D(4000), apr)
        assert mark is not None
        assert (mark.time, mark.price) == (t, close)
        assert abs(mark.ltv - ltv) < D("1e-12")
    # Whatever the rate: warning 2020-03-12T23:00Z at 4800, margin call 03-13T00:00Z at 4654.72,
    # liquidation 03-13T01:00Z at 4130.64 (4000 / 4130.64 = 96.8%).
    assert r.first_warning is not None and r.first_warning.time == datetime(2020, 3, 12, 23, tzinfo=UTC)
    assert r.first_margin_call is not None and r.first_margin_call.price == D("4654.72")
    assert r.liquidation is not None and r.liquidation.time == datetime(2020, 3, 13, 1, tzinfo=UTC)
    assert r.max_ltv == r.liquidation
    assert r.outcome == "liquidated" and r.shortfall == 0 and r.ledger_balanced


def test_march_2020_with_interest_the_liquidation_settles_debt_fee_and_returns_the_rest() -> None:
    apr = D("0.05")
    r = backtest(load_catalog(), D(4000), "USDT", D(1), "BTC", {"BTC": read_price_csv(MARCH, "close")}, apr)
    hours = 5 * 24 + 1  # 03-08T00 → 03-13T01
    due = round_up(D(4000) * (1 + apr / 8760) ** hours, 8)
    assert r.interest == due - 4000
    assert r.interest == D("2.76350338")
    price = D("4130.64")
    sold = round_up(due / price, 8)
    fee = round_up(D("0.02") * sold * price / price, 8)
    assert r.returned == {"BTC": 1 - sold - fee}
    assert r.margin_call_alerts == 1


def test_zero_rate_costs_nothing_and_a_calm_window_survives_and_repays() -> None:
    r = backtest(load_catalog(), D(4000), "USDT", D(1), "BTC", {"BTC": read_price_csv(MARCH, "close")}, D(0),
                 end=datetime(2020, 3, 11, tzinfo=UTC))
    assert r.outcome == "survived" and r.interest == 0 and r.returned == {"BTC": D(1)}
    assert r.first_warning is None and r.first_margin_call is None and r.liquidation is None
    assert r.ledger_balanced


def test_a_list_of_points_works_like_a_series_and_a_shortfall_stays_owed() -> None:
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC)
    r = backtest(load_catalog(), D(7000), "USDT", D(1), "BTC", {"BTC": [(t1, D(5000)), (t0, D(10000))]}, D(0))
    assert r.liquidation is not None and r.liquidation.time == t1 and r.liquidation.ltv == D("1.4")
    assert r.outcome == "liquidated_with_shortfall" and r.shortfall == D(2000) and r.returned == {}


def test_bad_windows_and_refused_loans_are_errors() -> None:
    series = {"BTC": read_price_csv(MARCH, "close")}
    cat = load_catalog()
    with pytest.raises(BacktestError, match="no prices between"):
        backtest(cat, D(4000), "USDT", D(1), "BTC", series, start=datetime(2021, 1, 1, tzinfo=UTC))
    with pytest.raises(BacktestError, match="before the start"):
        backtest(cat, D(4000), "USDT", D(1), "BTC", series, start=datetime(2020, 3, 10, tzinfo=UTC),
                 end=datetime(2020, 3, 9, tzinfo=UTC))
    with pytest.raises(BacktestError, match="refuses"):
        backtest(cat, D(9000), "USDT", D(1), "BTC", series)
    with pytest.raises(BacktestError, match="XYZ"):
        backtest(cat, D(4000), "USDT", D(1), "XYZ", series)


def test_json_has_decimals_as_strings_and_iso_times() -> None:
    r = backtest(load_catalog(), D(4000), "USDT", D(1), "BTC", {"BTC": read_price_csv(MARCH, "close")}, D(0))
    j = to_json(r)
    assert j["first_margin_call"] == {"time": "2020-03-13T00:00:00Z", "price": "4654.72", "ltv": "0.8593",
                                      "ltv_pct": "85.9%"}
    assert j["liquidation"]["time"] == "2020-03-13T01:00:00Z" and j["interest"] == "0"
    assert j["outcome"] == "liquidated" and j["shortfall"] == "0" and j["apr"] == "0"
    assert len(j["series"]) == 312 and j["series"][0] == {"time": "2020-03-08T00:00:00Z", "price": "8785.43",
                                                           "ltv": "0.4553"}


# --------------------------------------------------------------------------- shipped events


def test_every_event_names_shipped_files_that_parse() -> None:
    assert set(EVENTS) >= {"march2020", "may2021", "dec2021", "aug2024"}
    for name, ev in EVENTS.items():
        for asset in ev.files:
            s = event_prices(name, asset)
            assert len(s.times) >= 100, (name, asset)


def test_an_event_is_its_relative_path_applied_to_todays_price() -> None:
    s = scale_to(read_price_csv(MARCH, "close"), D(100000))
    assert s.values[0] == 100000
    assert s.values[121] == (D(100000) * D("4130.64") / D("8785.43")).quantize(D("1e-8"), rounding="ROUND_DOWN")


def test_a_position_of_the_same_ltv_meets_march_2020_at_the_same_hours() -> None:
    # 4000 USDT on 1 BTC at 8785.43 is 45.53% LTV; the same LTV at BTC 100,000 meets the same hours.
    loan = (D(4000) * D(100000) / D("8785.43")).quantize(D("0.01"))
    r = backtest_event(load_catalog(), loan, "USDT", D(1), "BTC", "March 2020", {"BTC": D(100000)}, D(0))
    assert r.first_margin_call is not None and r.first_margin_call.time == datetime(2020, 3, 13, tzinfo=UTC)
    assert r.liquidation is not None and r.liquidation.time == datetime(2020, 3, 13, 1, tzinfo=UTC)


def test_other_collateral_can_follow_btcs_path_and_unknown_events_are_named() -> None:
    r = backtest_event(load_catalog(), D(500), "USDT", D(10), "SOL", "dec2021", {"SOL": D(150)}, asset="BTC")
    assert r.start.price == 150 and r.watched == "SOL"
    with pytest.raises(BacktestError, match="has no SOL prices"):
        backtest_event(load_catalog(), D(500), "USDT", D(10), "SOL", "dec2021", {"SOL": D(150)})
    with pytest.raises(BacktestError, match="march2020, may2021, dec2021, aug2024"):
        backtest_event(load_catalog(), D(500), "USDT", D(1), "BTC", "luna", {"BTC": D(150)})


def test_shipped_files_are_byte_copies_of_the_shared_data() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "data" / "prices"
    if not shared.exists():
        pytest.skip("shared data folder not present")
    for ev in EVENTS.values():
        for file in ev.files.values():
            assert (HERE / file).read_bytes() == (shared / file).read_bytes()
