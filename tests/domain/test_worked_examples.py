"""Whole loan lives from scenarios/, checked against numbers computed by hand in each test.

The expected-output files pin every byte; these tests say *why* the key numbers are right.
"""

from __future__ import annotations

import csv
import json
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from pathlib import Path
from typing import Any

from domain.analysis.simulate import simulate
from domain.markets import load_catalog

ROOT = Path(__file__).resolve().parents[2]
SAT = Decimal("0.00000001")


def run(name: str) -> dict[str, Any]:
    path = ROOT / "scenarios" / f"{name}.json"
    return simulate(json.loads(path.read_text()), load_catalog(), base_dir=path.parent)


def events(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["type"] == kind]


def up(x: Decimal) -> Decimal:
    return x.quantize(SAT, rounding=ROUND_UP)


def test_thirty_days_of_hourly_compounding() -> None:
    r = run("flex_30_days_compounding")
    # Borrowed at 00:00 after that hour's accrual: charged at 01:00 … 2026-01-31 00:00 = 720 hours at 10%.
    expected = up(Decimal(10000) * (1 + Decimal("0.10") / 8760) ** 720)
    assert r["positions"]["A"]["debt"] == str(expected) == "10082.53000958"
    # Bob borrowed at 23:59 and is charged a full hour at 00:00 (any started hour counts).
    assert r["positions"]["B"]["debt"] == str(up(Decimal(10000) * (1 + Decimal("0.10") / 8760)))
    assert r["ledger_balanced"]


def test_margin_call_reminders_and_liquidation_with_fee() -> None:
    r = run("flex_margin_call_liquidation")
    # 30,000 USDT against 1 BTC: 37,000 → 81.08% (warning), 35,000 → 85.71% (margin call).
    assert [e["at"] for e in events(r, "warning")] == ["2026-01-01T20:00:00Z"]
    assert [(e["at"], e["ltv"]) for e in events(r, "margin_call")] == [("2026-01-02T00:00:00Z", "0.8571")]
    # Reminded every 60 minutes while it stays above 85%.
    assert [e["at"] for e in events(r, "margin_call_reminder")] == [
        "2026-01-02T01:00:00Z", "2026-01-02T02:00:00Z", "2026-01-02T03:00:00Z"]
    (liq,) = events(r, "liquidated")
    # At 32,000 the LTV is 93.75%: sell 30,000 / 32,000 = 0.9375 BTC, fee 2% of that = 0.01875 BTC,
    # return 1 − 0.9375 − 0.01875 = 0.04375 BTC.
    assert liq["at"] == "2026-01-02T03:30:00Z" and liq["ltv"] == "0.9375"
    assert liq["collateral_sold"] == {"BTC": "0.9375"}
    assert liq["fee"] == {"BTC": "0.01875"}
    assert liq["returned"] == {"BTC": "0.04375"}
    assert liq["debt_repaid"] == "30000"
    assert r["wallets"]["alice"]["spot"] == {"BTC": "0.04375", "USDT": "30000"}
    assert r["positions"]["P1"]["status"] == "liquidated"
    assert r["ledger_balanced"]


def test_margin_call_clears_two_points_below_and_rearms() -> None:
    r = run("flex_margin_call_rearm")
    kinds = [(e["at"], e["type"]) for e in r["events"] if e["type"] != "borrowed"]
    # 36,000 → 83.33%: inside the 83–85% band, neither cleared nor reminded.
    # 37,000 → 81.08% < 83%: cleared. 35,200 → 85.23%: a fresh margin call, then hourly reminders.
    assert kinds == [("2026-01-01T00:10:00Z", "margin_call"), ("2026-01-01T01:30:00Z", "margin_call_cleared"),
                     ("2026-01-01T02:00:00Z", "margin_call"), ("2026-01-01T03:00:00Z", "margin_call_reminder")]


def test_gap_down_leaves_shortfall_debt_that_keeps_accruing() -> None:
    r = run("flex_gap_shortfall")
    (liq,) = events(r, "liquidated")
    (short,) = events(r, "shortfall")
    # BTC gaps to 25,000 before any hour is charged: 1 BTC repays 25,000 of 30,000; no fee; 5,000 still owed.
    assert liq["debt_repaid"] == "25000" and liq["fee"] == {} and liq["returned"] == {}
    assert short["debt_outstanding"] == "5000"
    hourly = 1 + Decimal("0.10") / 8760
    at_noon = Decimal(5000) * hourly ** 12  # 01:00 … 12:00
    after_repay = at_noon - 1000
    (repaid,) = events(r, "repaid")
    assert repaid["debt"] == str(up(after_repay))
    assert r["positions"]["P1"]["debt"] == str(up(after_repay * hourly ** 12))  # 13:00 … 2026-01-02 00:00
    assert r["positions"]["P1"]["status"] == "liquidated_with_debt"
    assert r["ledger_balanced"]


def test_repay_with_collateral_at_the_spread() -> None:
    r = run("flex_repay_with_collateral")
    first, second = events(r, "repaid")
    rate = Decimal(50000) * (1 - Decimal("0.005"))  # 49,750 USDT per BTC
    sell1 = up(Decimal(10000) / rate)  # 0.20100503 (rounded up: the desk sells enough)
    sell2 = up(Decimal(20000) / rate)  # 0.40201006
    assert first["rate"] == "49750" and first["collateral_sold"] == {"BTC": str(sell1)}
    assert second["collateral_sold"] == {"BTC": str(sell2)} and second["status"] == "closed"
    assert r["wallets"]["alice"]["spot"]["BTC"] == str(1 - sell1 - sell2) == "0.39698491"
    assert r["ledger_balanced"]


def test_withdraw_limit_is_the_initial_ltv() -> None:
    r = run("flex_withdraw_limit")
    # Keep 30,000 / (0.78 × 50,000) = 0.76923076923… BTC; so 0.23076923 may leave, one satoshi more may not.
    keep = Decimal(30000) / (Decimal("0.78") * 50000)
    allowed = (1 - keep).quantize(SAT, rounding=ROUND_DOWN)
    assert str(allowed) == "0.23076923"
    rejected = events(r, "rejected")
    assert [e["step"] for e in rejected] == [1, 3]
    assert all(e["reason"] == "ltv_too_high" for e in rejected)
    assert "0.23076923" in rejected[0]["message"]
    assert events(r, "collateral_withdrawn")[0]["amount"] == str(allowed)
    assert r["positions"]["P1"]["collateral"] == {"BTC": str(1 - allowed)}


def test_earn_collateral_keeps_earning() -> None:
    r = run("flex_earn_collateral")
    daily = 1 + Decimal("0.0365") / 365  # 1.0001
    # Ten midnights (Jan 2 … Jan 11) pass while 1 BTC is pledged from Earn; the other 0.5 BTC earns too.
    (closed,) = events(r, "closed")
    assert closed["returned"] == {"BTC": str((daily ** 10).quantize(SAT, rounding=ROUND_DOWN))}
    assert r["wallets"]["alice"]["earn"] == {"BTC": str((Decimal("1.5") * daily ** 10).quantize(
        SAT, rounding=ROUND_DOWN))}
    assert r["ledger_balanced"]


def test_every_bad_step_is_rejected_with_a_reason_and_changes_nothing() -> None:
    r = run("flex_rejections")
    reasons = {e["step"]: e["reason"] for e in events(r, "rejected")}
    assert reasons == {
        1: "bad_step", 2: "non_positive_amount", 3: "too_precise", 4: "same_asset", 5: "unknown_loan_asset",
        6: "unknown_collateral_asset", 7: "below_minimum", 8: "above_maximum", 9: "ltv_too_high",
        10: "insufficient_funds", 11: "unknown_product", 12: "one_collateral_asset", 13: "position_not_found",
        14: "position_not_found", 15: "position_not_found", 16: "ltv_too_high", 17: "insufficient_collateral",
        18: "wrong_collateral_asset", 20: "bad_step", 21: "unknown_step", 22: "bad_step", 23: "bad_rate",
        24: "unknown_asset", 25: "bad_step", 26: "position_not_open", 27: "position_not_open"}
    assert all(e["message"] for e in events(r, "rejected"))
    # Only the borrow (step 0) and the full repayment (step 19) moved money: alice is back where she began.
    assert r["wallets"] == {"alice": {"spot": {"BTC": "1", "USDT": "10"}, "earn": {}},
                            "mallory": {"spot": {"BTC": "1"}, "earn": {}}}
    assert r["ledger_balanced"]


def test_march_2020_replay_liquidates_at_the_hour_a_hand_computation_gives() -> None:
    r = run("flex_march2020_btc")
    rows = list(csv.DictReader((ROOT.parent / "shared/data/prices/BTCUSDT_1h_2020-03-08_2020-03-20.csv").open()))
    hourly = 1 + Decimal("0.08") / 8760
    debt = Decimal(4000)
    first_mc = first_liq = None
    for row in rows[1:]:  # borrowed at the first bar; interest from the next hour on
        debt *= hourly
        ltv = debt / Decimal(row["close"])
        if first_mc is None and ltv >= Decimal("0.85"):
            first_mc = row["timestamp"]
        if ltv >= Decimal("0.91"):
            first_liq = (row["timestamp"], debt, Decimal(row["close"]))
            break
    assert first_liq is not None
    assert [e["at"] for e in events(r, "margin_call")] == [first_mc] == ["2020-03-13T00:00:00Z"]
    (liq,) = events(r, "liquidated")
    at, owed, close = first_liq
    assert liq["at"] == at == "2020-03-13T01:00:00Z"
    sold = up(up(owed) / close)
    assert liq["collateral_sold"] == {"BTC": str(sold)}
    assert liq["fee"] == {"BTC": str(up(sold * Decimal("0.02")))}
    assert r["ledger_balanced"]


def test_price_guard_a_one_poll_wick_never_liquidates_a_confirmed_move_does() -> None:
    r = run("flex_price_guard_wick")
    # 00:10 a single print at 32,000 (−36%): the newest price may warn (margin call at 93.75%) but a move of
    # more than 15% must be seen twice before it liquidates; at 00:10:10 the price is back.
    assert [(e["at"], e["type"]) for e in r["events"] if e["type"] != "borrowed"] == [
        ("2026-01-01T00:10:00Z", "margin_call"), ("2026-01-01T00:10:10Z", "margin_call_cleared"),
        ("2026-01-01T00:30:00Z", "liquidated")]
    # 00:20 at 40,000 (−20%) is a first sighting; 00:30 at 32,000 is the same move seen again: accepted.
    (liq,) = events(r, "liquidated")
    assert liq["collateral_sold"] == {"BTC": "0.9375"} and liq["fee"] == {"BTC": "0.01875"}


def test_price_guard_stale_prices_never_liquidate() -> None:
    from datetime import UTC, datetime, timedelta

    from domain.prices import GuardRules, PriceGuard

    rules = GuardRules(timedelta(seconds=60), Decimal("0.15"), timedelta(seconds=10), Decimal("0.02"), Decimal(10))
    guard = PriceGuard(rules)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    guard.seed({"BTC": (Decimal(50000), t)})  # the last price the desk accepted
    assert guard.confirmed(t + timedelta(seconds=60)) == {"USDT": 1, "BTC": Decimal(50000)}
    assert guard.confirmed(t + timedelta(seconds=61)) == {"USDT": 1}
    assert guard.observe("BTC", Decimal(40000), t + timedelta(seconds=70)) == "held"  # −20%: seen once
    assert guard.confirmed(t + timedelta(seconds=70)) == {"USDT": 1}  # the old price is stale, the new one held
    assert guard.observe("BTC", Decimal(60000), t + timedelta(seconds=80)) == "held"  # +20%: the other side
    assert guard.observe("BTC", Decimal(61000), t + timedelta(seconds=90)) == "accepted"  # 10 s on the same side
    # a second source that agrees confirms a jump at once
    guard.observe_second("BTC", Decimal(30010), t + timedelta(seconds=95))
    assert guard.observe("BTC", Decimal(30000), t + timedelta(seconds=95)) == "accepted"
