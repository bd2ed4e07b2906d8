"""VIP loans: term sheets, their rates, partial liquidation and the liquidation delay, with worked numbers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_UP, Decimal
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
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.loans.liquidation import plan_partial
from domain.loans.vip import issue_term_sheet
from domain.markets import load_catalog
from domain.money import exact
from domain.positions import Product, Status
from domain.termsheet import TermSheet
from domain.watch.sweep import sweep

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
Q8 = Decimal("0.00000001")
PRICES = {"USDT": Decimal(1), "BTC": Decimal(50000), "ETH": Decimal(3000)}


def run(name: str) -> dict[str, Any]:
    path = ROOT / "scenarios" / f"{name}.json"
    return simulate(json.loads(path.read_text()), load_catalog(), base_dir=path.parent)


def of_type(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["type"] == kind]


def sheet(**kw: Any) -> TermSheet:
    base: dict[str, Any] = {"owner": "alice", "loan_assets": ("USDT",), "rate": "fixed", "apr": Decimal("0.0876"),
                            "initial_ltv": Decimal("0.80"), "margin_call_ltv": Decimal("0.88"),
                            "liquidation_ltv": Decimal("0.93"), "collateral": {"BTC": Decimal(1),
                                                                               "ETH": Decimal("0.95")}}
    return TermSheet(**{**base, **kw})


def vip_desk(**kw: Any) -> Desk:
    catalog = load_catalog().with_overrides({"loan": {"USDT": {"flexible_apr": "0.05", "rate_model": "manual"}}})
    desk = Desk(catalog, MemoryBook())
    desk.deposit("alice", "BTC", Decimal(3), T0)
    desk.deposit("alice", "ETH", Decimal(20), T0)
    issue_term_sheet(desk, sheet(**kw), T0, by="op")
    return desk


def balanced(desk: Desk, now: datetime) -> list[str]:
    book = desk.book
    assert isinstance(book, MemoryBook)
    return ledger_problems(desk, book.balances, book.shares, book.positions.values(), now)


# --------------------------------------------------------------------------- worked examples (scenarios)


def test_partial_liquidation_sells_just_enough_to_return_to_the_initial_ltv() -> None:
    report = run("vip_partial_liquidation")
    # Debt 60000 USDT, 1.5 BTC; BTC falls to 43000: LTV = 60000 / 64500 = 0.9302 ≥ 93%.
    # Sell u BTC (+2% fee) so that (60000 − 43000u) = 0.80 × 43000 × (1.5 − 1.02u):
    #   u = (60000 − 0.8 × 64500) / (43000 × (1 − 0.8 × 1.02)) = 8400 / 7912
    u = (Decimal(60000) - Decimal("0.8") * 64500) / (43000 * (1 - Decimal("0.8") * Decimal("1.02")))
    sold = u.quantize(Q8, rounding=ROUND_UP)
    fee = (sold * Decimal("0.02")).quantize(Q8, rounding=ROUND_UP)
    repaid = (sold * 43000).quantize(Q8, rounding=ROUND_DOWN)
    assert (sold, fee, repaid) == (Decimal("1.06167847"), Decimal("0.02123357"), Decimal("45652.17421"))
    liq, = of_type(report, "liquidated")
    assert liq["mode"] == "partial" and liq["ltv"] == "0.9302"
    assert liq["collateral_sold"] == {"BTC": str(sold)} and liq["fee"] == {"BTC": str(fee)}
    assert Decimal(liq["debt_repaid"]) == repaid and Decimal(liq["debt"]) == 60000 - repaid
    left = Decimal("1.5") - sold - fee
    assert (60000 - repaid) / (left * 43000) <= Decimal("0.8")
    assert liq["ltv_after"] == "0.8"
    position = report["positions"]["V1"]
    assert position["status"] == "open" and Decimal(position["collateral"]["BTC"]) == left
    assert report["ledger_balanced"] is True


def test_liquidation_delay_is_cancelled_when_ltv_recovers_and_executed_when_it_does_not() -> None:
    report = run("vip_liquidation_delay")
    pending = of_type(report, "liquidation_pending")
    assert [(e["at"], e["liquidate_at"]) for e in pending] == [
        ("2026-01-01T10:00:00Z", "2026-01-01T10:30:00Z"), ("2026-01-01T11:00:00Z", "2026-01-01T11:30:00Z")]
    cancelled, = of_type(report, "liquidation_cancelled")
    assert (cancelled["at"], cancelled["ltv"]) == ("2026-01-01T10:15:00Z", "0.8")
    liq, = of_type(report, "liquidated")
    assert liq["at"] == "2026-01-01T11:30:00Z"  # 30 minutes after the second breach, still at 43000
    # Full liquidation: 60000 / 43000 = 1.395348837… → 1.39534884 sold; fee 2% of 60000.00012 → 0.02790698 BTC
    sold = (Decimal(60000) / 43000).quantize(Q8, rounding=ROUND_UP)
    fee = (Decimal("0.02") * sold * 43000 / 43000).quantize(Q8, rounding=ROUND_UP)
    assert liq["collateral_sold"] == {"BTC": str(sold)} and liq["fee"] == {"BTC": str(fee)}
    assert liq["returned"] == {"BTC": str(Decimal("1.5") - sold - fee)} == {"BTC": "0.07674418"}
    assert report["ledger_balanced"] is True


# --------------------------------------------------------------------------- term sheets and rates


def test_term_sheets_are_versioned_and_loans_keep_their_version() -> None:
    desk = vip_desk()
    p, _ = borrow(desk, BorrowRequest("alice", "USDT", Decimal(60000), {"BTC": Decimal("1.5")}, Product.VIP),
                  PRICES, T0)
    second = issue_term_sheet(desk, sheet(initial_ltv=Decimal("0.70"), margin_call_ltv=Decimal("0.75"),
                                          liquidation_ltv=Decimal("0.85")), T0 + timedelta(days=1))
    assert second.version == 2 and desk.book.term_sheet("alice") == second
    assert [s.version for s in desk.book.term_sheets("alice")] == [1, 2]
    assert p.vip_sheet == 1 and desk.thresholds(p).liquidation == Decimal("0.93")


def test_fixed_rate_vip_debt_compounds_hourly_at_the_sheet_rate() -> None:
    desk = vip_desk()
    p, _ = borrow(desk, BorrowRequest("alice", "USDT", Decimal(60000), {"BTC": Decimal("1.5")}, Product.VIP),
                  PRICES, T0)
    t = T0 + timedelta(hours=2)  # 01:00 and 02:00
    desk.accrue(t)
    assert desk.debt(p, t) == Decimal(60000) * (1 + Decimal("0.0876") / 8760) ** 2 == Decimal("60001.200006")
    assert desk.book.balance(ledger.INTEREST, "USDT") == Decimal("1.200006")
    assert balanced(desk, t) == []


def test_flexible_vip_rate_is_the_asset_rate_plus_the_spread() -> None:
    desk = vip_desk(rate="flexible", apr=Decimal("0.0376"))  # 0.05 + 0.0376 = 0.0876
    p, _ = borrow(desk, BorrowRequest("alice", "USDT", Decimal(60000), {"BTC": Decimal("1.5")}, Product.VIP),
                  PRICES, T0)
    t = T0 + timedelta(hours=1)
    desk.accrue(t)
    assert desk.debt(p, t) == Decimal("60000.6")
    desk.set_rate("USDT", Decimal("0.1124"), t)  # from 02:00: 0.1124 + 0.0376 = 0.15
    t2 = t + timedelta(hours=1)
    desk.accrue(t2)
    assert desk.debt(p, t2) == exact(Decimal("60000.6") * (1 + Decimal("0.15") / 8760))  # 60001.627407534…
    assert balanced(desk, t2) == []


def test_flexible_vip_rate_follows_a_rate_replaced_within_the_same_hour() -> None:
    desk = vip_desk(rate="flexible", apr=Decimal("0.0376"))
    p, _ = borrow(desk, BorrowRequest("alice", "USDT", Decimal(60000), {"BTC": Decimal("1.5")}, Product.VIP),
                  PRICES, T0)
    t = T0 + timedelta(hours=1)
    desk.accrue(t)
    desk.set_rate("USDT", Decimal("0.20"), t + timedelta(minutes=10))
    desk.accrue(t + timedelta(minutes=15))  # the spread copy picks up 0.20 …
    desk.set_rate("USDT", Decimal("0.1124"), t + timedelta(minutes=20))  # … which is replaced before 02:00
    t2 = t + timedelta(hours=1)
    desk.accrue(t2)
    assert desk.debt(p, t2) == exact(Decimal("60000.6") * (1 + Decimal("0.15") / 8760))


def test_vip_debt_counts_against_the_desks_lending_cap() -> None:
    desk = Desk(load_catalog().with_overrides({"loan": {"USDT": {"flexible_apr": "0.05", "rate_model": "manual",
                                                                 "lending_cap": "70000"}}}), MemoryBook())
    desk.deposit("alice", "BTC", Decimal(3), T0)
    desk.deposit("bob", "BTC", Decimal(1), T0)
    issue_term_sheet(desk, sheet(), T0, by="op")
    borrow(desk, BorrowRequest("alice", "USDT", Decimal(60000), {"BTC": Decimal("1.5")}, Product.VIP), PRICES, T0)
    later = T0 + timedelta(hours=1)  # the VIP loan has compounded one hour at 8.76%: 60000.6 owed
    assert desk.borrowed("USDT", later) == Decimal("60000.6")
    with pytest.raises(Rejected) as err:  # 60000.6 + 10000 > 70000
        borrow(desk, BorrowRequest("bob", "USDT", Decimal(10000), {"BTC": Decimal("0.5")}), PRICES, later)
    assert err.value.code == "lending_cap" and "at most 9999.4 more" in err.value.message
    borrow(desk, BorrowRequest("bob", "USDT", Decimal(9999), {"BTC": Decimal("0.5")}), PRICES, later)


def test_vip_uses_sheet_ratios_and_minimum_first_order() -> None:
    desk = vip_desk()
    with pytest.raises(Rejected) as exc:
        borrow(desk, BorrowRequest("alice", "USDT", Decimal(40000), {"BTC": Decimal(1)}, Product.VIP), PRICES, T0)
    assert exc.value.code == "below_minimum"
    borrow(desk, BorrowRequest("alice", "USDT", Decimal(60000), {"BTC": Decimal("1.5")}, Product.VIP), PRICES, T0)
    # a later order: 20 ETH × 3000 × 0.95 = 57000 weighted; 80% of it = 45600
    p, _ = borrow(desk, BorrowRequest("alice", "USDT", Decimal(45600), {"ETH": Decimal(20)}, Product.VIP),
                  PRICES, T0)
    assert desk.ltv(p, PRICES, T0) == Decimal("0.8")
    with pytest.raises(Rejected) as exc:
        borrow(desk, BorrowRequest("alice", "USDT", Decimal(1000), {"SOL": Decimal(1)}, Product.VIP), PRICES, T0)
    assert exc.value.code == "unknown_collateral_asset"


def test_no_term_sheet_no_vip_loan() -> None:
    desk = Desk(load_catalog(), MemoryBook())
    with pytest.raises(Rejected) as exc:
        borrow(desk, BorrowRequest("bob", "USDT", Decimal(60000), {"BTC": Decimal(2)}, Product.VIP), PRICES, T0)
    assert exc.value.code == "no_term_sheet"


def test_partial_plan_with_two_assets_sells_in_order_and_lands_on_target() -> None:
    # Debt value 70000; 1 BTC @ 50000 (ratio 1) + 10 ETH @ 3000 (ratio 0.95) → W = 78500, LTV 0.8917.
    lots = [("BTC", Decimal(1), Decimal(50000), Decimal(1)), ("ETH", Decimal(10), Decimal(3000), Decimal("0.95"))]
    plan = plan_partial(Decimal(70000), Decimal(1), 8, lots, Decimal("0.5"), Decimal("0.02"), {"BTC": 8, "ETH": 8})
    assert plan is not None
    sold, fee = plan.sold, plan.fee
    assert list(sold) == ["BTC", "ETH"]  # BTC runs out first, ETH completes
    assert sold["BTC"] + fee["BTC"] == 1
    assert plan.repaid == sold["BTC"] * 50000 + sold["ETH"] * 3000  # proceeds in USDT (price 1), 8 places
    owed = 70000 - plan.repaid
    weighted = sum((amt - sold.get(a, 0) - fee.get(a, 0)) * p * r for a, amt, p, r in lots)
    assert Decimal("0.4999") < owed / weighted <= Decimal("0.5")


# --------------------------------------------------------------------------- invariants


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(amount=st.integers(min_value=50000, max_value=120000),
       btc=st.decimals(min_value=Decimal("1"), max_value=Decimal("3"), places=3),
       eth=st.integers(min_value=0, max_value=20),
       moves=st.lists(st.integers(min_value=25000, max_value=70000), min_size=1, max_size=8),
       partial=st.booleans(), delay=st.sampled_from([0, 30]))
def test_vip_loans_keep_the_book_balanced(amount: int, btc: Decimal, eth: int, moves: list[int], partial: bool,
                                          delay: int) -> None:
    desk = vip_desk(liquidation="partial" if partial else "full", liquidation_delay_minutes=delay)
    coll = {"BTC": Decimal(btc)} | ({"ETH": Decimal(eth)} if eth else {})
    try:
        borrow(desk, BorrowRequest("alice", "USDT", Decimal(amount), coll, Product.VIP), PRICES, T0)
    except Rejected:
        return
    for i, btc_price in enumerate(moves, start=1):
        now = T0 + timedelta(minutes=20 * i)
        prices = {**PRICES, "BTC": Decimal(btc_price)}
        sweep(desk, prices, now)
        assert balanced(desk, now) == []
        for q in desk.book.active_positions():
            level = desk.ltv(q, prices, now)
            if q.risk.liquidation_pending_since is None:
                assert level < desk.thresholds(q).liquidation
            if q.status is Status.OPEN and partial and level < desk.thresholds(q).margin_call:
                pass
        book = desk.book
        assert isinstance(book, MemoryBook)
        assert all(v >= 0 for (acct, _), v in book.balances.items() if ledger.is_customer_account(acct))
