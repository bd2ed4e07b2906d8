"""Stress tests and cost estimates, checked against numbers worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from domain.analysis.estimate import describe_estimate, estimate
from domain.analysis.stress import describe_stress, stress
from domain.book import MemoryBook
from domain.desk import Desk
from domain.errors import Rejected
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import load_catalog
from domain.money import pct
from domain.positions import Position

NOW = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
PRICES = {"BTC": D(60000), "USDT": D(1)}


def open_position(loan: str = "30000") -> tuple[Desk, Position]:
    """30,000 USDT on 1 BTC at 60,000: LTV exactly 50%, no interest yet (same hour)."""
    desk = Desk(load_catalog(), MemoryBook())
    desk.deposit("alice", "BTC", D(1), NOW)
    position, _ = borrow(desk, BorrowRequest("alice", "USDT", D(loan), {"BTC": D(1)}), PRICES, NOW)
    return desk, position


@pytest.mark.parametrize(("move", "ltv_text", "level"), [
    ("-0.30", "71.4%", "safe"),          # 30000 / 42000
    ("-0.40", "83.3%", "warning"),       # 30000 / 36000
    ("-0.45", "90.9%", "margin call"),   # 30000 / 33000
    ("-0.50", "100.0%", "liquidation"),  # 30000 / 30000
    ("0.10", "45.5%", "safe"),           # 30000 / 66000
])
def test_a_price_move_reads_the_ltv_and_level_at_the_moved_price(move: str, ltv_text: str, level: str) -> None:
    desk, p = open_position()
    r = stress(desk, p, {"BTC": D(move)}, PRICES, NOW)
    assert pct(r.ltv_now) == "50.0%"
    assert pct(r.ltv_after) == ltv_text
    assert r.level == level


def test_trigger_prices_are_debt_over_collateral_times_level() -> None:
    desk, p = open_position()
    r = stress(desk, p, {"BTC": D("-0.30")}, PRICES, NOW)
    (t,) = r.triggers
    assert t.price_now == 60000 and t.price_after == 42000
    assert t.margin_call_price is not None and t.liquidation_price is not None
    assert t.margin_call_price.quantize(D("0.01")) == D("35294.12")  # 30000 / 0.85
    assert t.liquidation_price.quantize(D("0.01")) == D("32967.03")  # 30000 / 0.91
    assert r.add_collateral == {} and r.repay == 0  # 71.4% is still below the initial 78%


def test_back_to_the_initial_ltv_by_adding_collateral_or_repaying() -> None:
    desk, p = open_position()
    r = stress(desk, p, {"BTC": D("-0.40")}, PRICES, NOW)
    # BTC at 36,000: 30000 / 0.78 = 38,461.538… of collateral value needed → 0.0683760683… BTC more, rounded up
    assert r.add_collateral == {"BTC": D("0.06837607")}
    # or repay down to 0.78 × 36,000 = 28,080
    assert r.repay == D("1920")
    text = "\n".join(describe_stress(r))
    assert "83.3%" in text and "0.06837607 BTC" in text and "1920 USDT" in text


def test_stress_changes_nothing() -> None:
    desk, p = open_position()
    book = desk.book
    assert isinstance(book, MemoryBook)
    before = (desk.debt(p, NOW), desk.collateral_amounts(p, NOW), len(book.journal), len(book.events))
    stress(desk, p, {"BTC": D("-0.5")}, PRICES, NOW)
    assert (desk.debt(p, NOW), desk.collateral_amounts(p, NOW), len(book.journal), len(book.events)) == before


@pytest.mark.parametrize(("moves", "code"), [({"ETH": D("-0.3")}, "asset_not_in_position"),
                                              ({"BTC": D("-1")}, "bad_move")])
def test_impossible_moves_are_refused(moves: dict[str, D], code: str) -> None:
    desk, p = open_position()
    with pytest.raises(Rejected) as exc:
        stress(desk, p, moves, PRICES, NOW)
    assert exc.value.code == code


# --------------------------------------------------------------------------- estimate


def test_thirty_days_flexible_against_the_thirty_day_fixed_term() -> None:
    e = estimate(load_catalog(), D(1000), "USDT", 30, D("0.05"), NOW)
    # 1000 × ((1 + 0.05/8760)^720 − 1) = 4.1180332051…
    assert e.flexible.interest.quantize(D("1e-8")) == D("4.11803321")
    # +2 and +5 points: 7% → 5.7699842724…, 10% → 8.2530009578…
    assert [c.apr for c in e.if_rates_rise] == [D("0.07"), D("0.10")]
    assert [c.interest.quantize(D("1e-8")) for c in e.if_rates_rise] == [D("5.76998427"), D("8.25300096")]
    assert e.fixed is not None
    # fixed 30d at 6.5%: 1000 × 0.065 × 30 / 365 = 5.342465753…, up front
    assert e.fixed.term_days == 30 and e.fixed.apr == D("0.065")
    assert e.fixed.interest == D("5.34246576")  # rounded up, as the engine takes it
    assert e.fixed.receive == D("994.65753424")
    # late fee 1000 × 3 × 0.065 / 8760 = 0.0222602739… per hour
    assert e.fixed.late_fee_per_hour.quantize(D("1e-8")) == D("0.02226027")
    assert e.cheaper == "flexible"
    text = "\n".join(describe_estimate(e))
    # shown at USDT's display precision (2 decimals), rounded up: what would be owed
    assert "4.12 USDT" in text and "5.35 USDT" in text and "Cheaper: flexible" in text
    assert "you receive 994.65 USDT" in text  # what is paid out rounds down


def test_a_horizon_no_fixed_term_covers_names_no_cheaper_option() -> None:
    e = estimate(load_catalog(), D(1000), "USDT", 400, None, NOW)
    text = "\n".join(describe_estimate(e))
    assert e.fixed is None and "no term covers 400 days (longest: 180 days)" in text
    assert "Cheaper" not in text and "Only Flexible covers this horizon" in text


def test_the_nearest_fixed_term_at_or_above_the_horizon_is_used() -> None:
    e = estimate(load_catalog(), D(1000), "USDT", 31, None, NOW)
    assert e.flexible.apr == D("0.05")  # the catalog's APR when none is given
    assert e.fixed is not None and e.fixed.term_days == 60
    assert e.fixed.interest == D("11.17808220")  # 1000 × 0.068 × 60 / 365 = 11.178082191…, rounded up


def test_fixed_is_named_when_it_is_cheaper() -> None:
    e = estimate(load_catalog(), D(1000), "USDT", 7, D("0.10"), NOW)
    # flexible 1000 × ((1 + 0.1/8760)^168 − 1) = 1.9196374… ; fixed 7d 1000 × 0.062 × 7 / 365 = 1.1890411…
    assert e.flexible.interest.quantize(D("1e-6")) == D("1.919637")
    assert e.fixed is not None and e.fixed.interest.quantize(D("1e-6")) == D("1.189041")
    assert e.cheaper == "fixed"


def test_a_horizon_longer_than_every_fixed_term_says_so() -> None:
    e = estimate(load_catalog(), D(1000), "USDT", 200, D("0.05"), NOW)
    assert e.fixed is None and e.longest_term == 180 and e.cheaper == "flexible"
    assert any("no term covers 200 days (longest: 180 days)" in line for line in describe_estimate(e))


@pytest.mark.parametrize(("amount", "asset", "days", "code"), [
    ("1000", "XYZ", 30, "unknown_loan_asset"), ("0", "USDT", 30, "non_positive_amount"),
    ("1000", "USDT", 0, "bad_days")])
def test_bad_estimates_are_refused(amount: str, asset: str, days: int, code: str) -> None:
    with pytest.raises(Rejected) as exc:
        estimate(load_catalog(), D(amount), asset, days, None, NOW)
    assert exc.value.code == code
