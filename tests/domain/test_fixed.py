"""Fixed Rate Loans: worked examples with hand-computed numbers, expiry rules, catch-up and invariants."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import ledger
from domain.analysis.simulate import simulate
from domain.book import MemoryBook
from domain.checks import ledger_problems
from domain.desk import Desk
from domain.errors import Rejected
from domain.loans.borrow import borrow, preview_borrow
from domain.loans.common import BorrowRequest
from domain.loans.expiry import process_fixed
from domain.loans.fixed import NO_REFUND, set_fixed_expiry
from domain.loans.servicing import repay
from domain.markets import load_catalog, parse_catalog
from domain.positions import Product, Status
from domain.watch.sweep import sweep

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
Q8 = Decimal("0.00000001")
PRICES = {"USDT": Decimal(1), "BTC": Decimal(50000), "ETH": Decimal(3000), "SOL": Decimal(100),
          "USDC": Decimal(1)}
OVERRIDES = {"loan": {"USDT": {"flexible_apr": "0.0876", "rate_model": "manual", "fixed_apr": {"7": "0.073"}}}}


def up8(x: Decimal) -> Decimal:
    return x.quantize(Q8, rounding=ROUND_UP)


def run(name: str) -> dict[str, Any]:
    path = ROOT / "scenarios" / f"{name}.json"
    return simulate(json.loads(path.read_text()), load_catalog(), base_dir=path.parent)


def of_type(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["type"] == kind]


def new_desk(spot: dict[str, str]) -> Desk:
    desk = Desk(load_catalog().with_overrides(OVERRIDES), MemoryBook())
    for asset, amount in spot.items():
        desk.deposit("alice", asset, Decimal(amount), T0)
    return desk


def open_fixed(desk: Desk, amount: str = "10000", collateral: dict[str, str] | None = None) -> int:
    coll = {a: Decimal(v) for a, v in (collateral or {"BTC": "0.5"}).items()}
    p, _ = borrow(desk, BorrowRequest("alice", "USDT", Decimal(amount), coll, Product.FIXED, term_days=7),
                  PRICES, T0)
    return p.id


def balanced(desk: Desk, now: datetime) -> list[str]:
    book = desk.book
    assert isinstance(book, MemoryBook)
    return ledger_problems(desk, book.balances, book.shares, book.positions.values(), now)


# --------------------------------------------------------------------------- worked examples (scenarios)


def test_interest_is_taken_up_front_and_not_refunded_on_early_repayment() -> None:
    # I = 10000 × 0.073 × 30 / 365 = 60: the borrower receives 9940 and owes 10000.
    assert Decimal(10000) * Decimal("0.073") * 30 / 365 == Decimal(60)
    report = run("fixed_repaid_early")
    borrowed, = of_type(report, "borrowed")
    assert (borrowed["interest"], borrowed["received"], borrowed["expires_at"]) == ("60", "9940",
                                                                                   "2026-01-31T09:00:00Z")
    repaid, = of_type(report, "repaid")
    assert repaid["amount"] == "10000"  # ten days in: still the whole principal, nothing refunded
    assert report["wallets"]["alice"]["spot"] == {"BTC": "0.5"}  # 9940 received + 60 deposited − 10000 repaid
    assert report["positions"]["F1"]["status"] == "closed"
    assert report["ledger_balanced"] is True


def test_auto_repay_at_expiry_takes_the_debt_from_spot() -> None:
    # I = 10000 × 0.073 × 7 / 365 = 14; Spot holds 9986 received + 14 deposited = 10000 at T.
    assert Decimal(10000) * Decimal("0.073") * 7 / 365 == Decimal(14)
    report = run("fixed_auto_repaid")
    assert [e["hours"] for e in of_type(report, "expiry_reminder")] == [-72, -24, -1]
    assert [e["at"] for e in of_type(report, "expiry_reminder")] == [
        "2026-01-05T10:30:00Z", "2026-01-07T10:30:00Z", "2026-01-08T09:30:00Z"]
    expired, = of_type(report, "expired")
    assert expired["at"] == "2026-01-08T10:30:00Z"  # T is not on an hour and is still visited
    auto, = of_type(report, "auto_repaid")
    assert (auto["amount"], auto["debt"], auto["status"]) == ("10000", "0", "closed")
    assert not of_type(report, "overdue")
    assert report["wallets"]["alice"]["spot"] == {"BTC": "0.5"}
    assert report["ledger_balanced"] is True


def test_auto_renew_pays_the_new_interest_from_spot_then_auto_repays_at_the_second_expiry() -> None:
    report = run("fixed_renewed")
    renewed, = of_type(report, "renewed")
    assert renewed == {**renewed, "interest": "14", "interest_paid_from": "spot", "debt": "10000",
                       "expires_at": "2026-01-15T10:30:00Z", "apr": "0.073"}
    # Spot: 9986 − 14 (renewal) + 28 (deposit) = 10000, all repaid at the second expiry.
    auto, = of_type(report, "auto_repaid")
    assert (auto["at"], auto["amount"]) == ("2026-01-15T10:30:00Z", "10000")
    assert report["wallets"]["alice"]["spot"] == {"BTC": "0.5"}
    assert report["ledger_balanced"] is True


def test_convert_to_flexible_at_expiry_keeps_the_id_and_compounds_from_the_next_hour() -> None:
    report = run("fixed_converted")
    converted, = of_type(report, "converted")
    assert (converted["at"], converted["apr"], converted["debt"]) == ("2026-01-08T10:30:00Z", "0.0876", "10000")
    # 11:00 and 12:00: 10000 × (1 + 0.0876/8760)² = 10000 × 1.00001² = 10000.200001
    assert Decimal(10000) * (1 + Decimal("0.0876") / 8760) ** 2 == Decimal("10000.200001")
    position = report["positions"]["F1"]
    assert (position["product"], position["status"], position["debt"]) == ("flexible", "open", "10000.200001")
    assert not of_type(report, "auto_repaid")
    assert report["ledger_balanced"] is True


def test_converting_joins_an_open_flexible_loan_of_the_same_pair() -> None:
    # One open flexible position per (loan, collateral) pair: the converted loan joins it, as a borrow would.
    desk = new_desk({"BTC": "2"})
    flex, _ = borrow(desk, BorrowRequest("alice", "USDT", Decimal(5000), {"BTC": Decimal("0.3")}), PRICES, T0)
    pid = open_fixed(desk)
    set_fixed_expiry(desk, "alice", pid, T0, convert_to_flexible=True)
    expiry = T0 + timedelta(days=7)
    flex_debt = desk.debt(flex, expiry)
    events = process_fixed(desk, PRICES, expiry)
    converted, = [e for e in events if e.type == "converted"]
    assert converted.data["into"] == flex.id
    fixed_pos = desk.book.get_position(pid)
    assert fixed_pos is not None and fixed_pos.status is Status.CLOSED and desk.debt(fixed_pos, expiry) == 0
    open_flex = [p for p in desk.book.positions_of("alice") if p.active]
    assert [p.id for p in open_flex] == [flex.id]
    assert desk.debt(flex, expiry) == flex_debt + 10000
    assert desk.collateral_amounts(flex, expiry) == {"BTC": Decimal("0.8")}
    book = desk.book
    assert isinstance(book, MemoryBook)
    assert ledger_problems(desk, book.balances, book.shares, book.positions.values(), expiry) == []


def test_overdue_loan_pays_24_late_fees_then_is_liquidated_in_liquidation_order() -> None:
    report = run("fixed_overdue_liquidated")
    # Hourly late fee = debt × 3 × 0.073 / 8760 = debt × 0.000025, rounded up to 8 decimals, on the growing debt.
    debt = Decimal(10000)
    fees = []
    for _ in range(24):
        fee = up8(debt * 3 * Decimal("0.073") / 8760)
        fees.append(fee)
        debt += fee
    assert fees[0] == Decimal("0.25") and fees[1] == Decimal("0.25000625")
    assert debt == Decimal("10006.00172544")
    late = of_type(report, "late_fee")
    assert [e["hour"] for e in late] == list(range(1, 25))
    assert [Decimal(e["fee"]) for e in late] == fees
    assert late[0]["at"] == "2026-01-08T11:30:00Z" and late[-1]["at"] == "2026-01-09T10:30:00Z"
    assert [e["hours"] for e in of_type(report, "expiry_reminder")] == [-72, -24, -1, 12, 23]
    overdue, = of_type(report, "overdue")
    assert overdue["liquidation_at"] == "2026-01-09T10:30:00Z"
    # Liquidation order: stablecoins (USDC 2000), BTC (0.1 = 5000), ETH, then the rest (SOL untouched).
    # ETH sold = (10006.00172544 − 2000 − 5000) / 3000 = 1.00200057514… → 1.00200058 (rounded up)
    eth_sold = up8((debt - 2000 - 5000) / 3000)
    assert eth_sold == Decimal("1.00200058")
    sold_value = 2000 + 5000 + eth_sold * 3000
    eth_fee = up8(Decimal("0.02") * sold_value / 3000)  # 2% of what was sold, from what remains (ETH)
    assert eth_fee == Decimal("0.06670668")
    liq, = of_type(report, "liquidated")
    assert liq["at"] == "2026-01-09T10:30:00Z" and liq["reason"] == "overdue"
    assert list(liq["collateral_sold"]) == ["USDC", "BTC", "ETH"]
    assert liq["collateral_sold"] == {"USDC": "2000", "BTC": "0.1", "ETH": str(eth_sold)}
    assert liq["fee"] == {"ETH": str(eth_fee)}
    assert liq["returned"] == {"ETH": str(2 - eth_sold - eth_fee), "SOL": "10"}
    assert liq["debt_repaid"] == str(debt)
    assert report["positions"]["F1"]["fixed"]["late_fees"] == str(sum(fees))
    assert report["wallets"]["alice"]["spot"] == {"ETH": "0.93129274", "SOL": "10", "USDT": "9986"}
    assert report["ledger_balanced"] is True


# --------------------------------------------------------------------------- rules in the domain


def test_preview_shows_fixed_interest_expiry_and_that_it_is_not_refunded() -> None:
    desk = new_desk({"BTC": "1"})
    req = BorrowRequest("alice", "USDT", Decimal(10000), {"BTC": Decimal("0.5")}, Product.FIXED, term_days=7)
    pv = preview_borrow(desk, req, PRICES, T0)
    assert (pv.fixed_interest, pv.receive, pv.apr, pv.ltv) == (Decimal(14), Decimal(9986), Decimal("0.073"),
                                                               Decimal("0.4"))
    assert pv.expires_at == T0 + timedelta(days=7)
    assert NO_REFUND in pv.notes
    assert pv.thresholds.initial == Decimal("0.72") and pv.thresholds.margin_call == Decimal("0.77")


def test_fixed_collateral_is_valued_with_its_ratio() -> None:
    desk = new_desk({"SOL": "100"})
    # 100 SOL × 100 × 0.95 = 9500 weighted; 72% of it is 6840.
    ok = BorrowRequest("alice", "USDT", Decimal(6840), {"SOL": Decimal(100)}, Product.FIXED, term_days=7)
    assert preview_borrow(desk, ok, PRICES, T0).ltv == Decimal("0.72")
    too_much = BorrowRequest("alice", "USDT", Decimal("6840.01"), {"SOL": Decimal(100)}, Product.FIXED,
                             term_days=7)
    with pytest.raises(Rejected) as exc:
        preview_borrow(desk, too_much, PRICES, T0)
    assert exc.value.code == "ltv_too_high"


@pytest.mark.parametrize(("term", "code"), [(None, "term_required"), (5, "unknown_term"), (30, "no_fixed_rate")])
def test_a_fixed_borrow_needs_an_offered_term(term: int | None, code: str) -> None:
    raw = copy.deepcopy(dict(load_catalog().raw))
    raw["loan"]["USDT"]["fixed_apr"] = {"7": "0.073"}  # 30 days is a term, but USDT is not offered for it
    desk = Desk(parse_catalog(raw), MemoryBook())
    desk.deposit("alice", "BTC", Decimal(1), T0)
    req = BorrowRequest("alice", "USDT", Decimal(1000), {"BTC": Decimal("0.1")}, Product.FIXED, term_days=term)
    with pytest.raises(Rejected) as exc:
        preview_borrow(desk, req, PRICES, T0)
    assert exc.value.code == code


def test_auto_repay_with_too_little_spot_repays_part_and_the_rest_goes_overdue() -> None:
    desk = new_desk({"BTC": "1"})
    pid = open_fixed(desk)  # Spot now holds 9986 USDT
    t = T0 + timedelta(days=7)
    process_fixed(desk, PRICES, t)
    p = desk.book.get_position(pid)
    assert p is not None and p.status is Status.OVERDUE
    assert desk.debt(p, t) == Decimal(14)
    assert desk.spot("alice", "USDT") == 0
    process_fixed(desk, PRICES, t + timedelta(hours=1))
    assert desk.debt(p, t) == Decimal(14) + up8(Decimal(14) * Decimal("0.000025"))  # 14.00035
    assert desk.debt(p, t) == Decimal("14.00035")
    assert balanced(desk, t) == []


def test_renewal_interest_is_added_to_the_debt_when_spot_cannot_pay_it() -> None:
    desk = new_desk({"BTC": "1"})
    pid = open_fixed(desk)
    set_fixed_expiry(desk, "alice", pid, T0, auto_renew=True)
    repay(desk, "alice", pid, Decimal(9986), T0 + timedelta(days=1))  # Spot now empty, 14 still owed
    t = T0 + timedelta(days=7)
    events = process_fixed(desk, PRICES, t)
    renewed = next(e for e in events if e.type == "renewed")
    # I' = 14 × 0.073 × 7 / 365 = 0.0196, added to the debt
    assert renewed.data["interest"] == "0.0196" and renewed.data["interest_paid_from"] == "debt"
    p = desk.book.get_position(pid)
    assert p is not None and p.status is Status.OPEN and desk.debt(p, t) == Decimal("14.0196")
    assert p.fixed is not None and p.fixed.expires_at == t + timedelta(days=7)
    assert desk.book.balance(ledger.INTEREST, "USDT") == Decimal("14.0196")
    assert balanced(desk, t) == []


def test_conversion_needs_a_single_collateral_asset_and_excludes_renewal() -> None:
    desk = new_desk({"BTC": "1", "ETH": "2"})
    pid = open_fixed(desk, collateral={"BTC": "0.5", "ETH": "1"})
    with pytest.raises(Rejected) as exc:
        set_fixed_expiry(desk, "alice", pid, T0, convert_to_flexible=True)
    assert exc.value.code == "one_collateral_asset"
    single = open_fixed(desk, "1000", {"BTC": "0.1"})
    with pytest.raises(Rejected) as exc:
        set_fixed_expiry(desk, "alice", single, T0, auto_renew=True, convert_to_flexible=True)
    assert exc.value.code == "conflicting_options"


def test_processing_after_downtime_equals_processing_every_hour() -> None:
    hourly, late = new_desk({"BTC": "1"}), new_desk({"BTC": "1"})
    for desk in (hourly, late):
        set_fixed_expiry(desk, "alice", open_fixed(desk), T0, auto_repay=False)
    end = T0 + timedelta(days=7, hours=30)
    t = T0
    while t < end:
        t += timedelta(minutes=30)
        process_fixed(hourly, PRICES, t)
    events = process_fixed(late, PRICES, end)
    hourly_book = hourly.book
    assert isinstance(hourly_book, MemoryBook)
    assert process_fixed(late, PRICES, end) == []  # idempotent
    assert [e.data.get("fee") for e in events if e.type == "late_fee"] == [
        e.data.get("fee") for e in hourly_book.events if e.type == "late_fee"]
    for desk in (hourly, late):
        p = desk.book.get_position(1)
        assert p is not None and p.status is Status.LIQUIDATED
        assert p.fixed is not None and p.fixed.late_fee_hours == 24
    assert hourly.spot("alice", "BTC") == late.spot("alice", "BTC")
    # Stale reminders are recorded, not sent: only the ones still ahead of the next milestone went out.
    assert [e.data["hours"] for e in events if e.type == "expiry_reminder"] == []


# --------------------------------------------------------------------------- invariants


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(amount=st.integers(min_value=100, max_value=30000),
       btc=st.decimals(min_value=Decimal("0.2"), max_value=Decimal("2"), places=4),
       usdc=st.integers(min_value=0, max_value=5000),
       drops=st.lists(st.integers(min_value=20000, max_value=80000), min_size=1, max_size=6),
       deposit=st.integers(min_value=0, max_value=40000),
       auto_repay=st.booleans(), renew=st.booleans())
def test_fixed_loans_keep_the_book_balanced(amount: int, btc: Decimal, usdc: int, drops: list[int], deposit: int,
                                            auto_repay: bool, renew: bool) -> None:
    desk = new_desk({"BTC": "2", "USDC": "5000"})
    coll = {"BTC": Decimal(btc)} | ({"USDC": Decimal(usdc)} if usdc else {})
    req = BorrowRequest("alice", "USDT", Decimal(amount), coll, Product.FIXED, term_days=7)
    try:
        p, _ = borrow(desk, req, PRICES, T0)
    except Rejected:
        return
    set_fixed_expiry(desk, "alice", p.id, T0, auto_repay=auto_repay, auto_renew=renew)
    if deposit:
        desk.deposit("alice", "USDT", Decimal(deposit), T0)
    step = timedelta(days=9) / len(drops)
    for i, btc_price in enumerate(drops, start=1):
        now = T0 + step * i
        prices = {**PRICES, "BTC": Decimal(btc_price)}
        process_fixed(desk, prices, now)
        sweep(desk, prices, now)
        assert balanced(desk, now) == []
        for q in desk.book.active_positions():
            assert desk.ltv(q, prices, now) < desk.thresholds(q).liquidation
        book = desk.book
        assert isinstance(book, MemoryBook)
        assert all(v >= 0 for (acct, _), v in book.balances.items() if ledger.is_customer_account(acct))
