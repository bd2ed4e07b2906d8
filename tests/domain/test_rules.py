"""Table-driven rules: amounts, the catalog, hourly interest timing, rate changes and catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from domain.analysis.scenario import ScenarioError
from domain.analysis.simulate import simulate
from domain.book import MemoryBook
from domain.desk import Desk
from domain.errors import Rejected
from domain.loans.borrow import borrow as book_borrow
from domain.loans.common import BorrowRequest
from domain.loans.flexible import collateral_for_ltv
from domain.loans.servicing import close, quote_repay_with_collateral, repay, repay_with_collateral, withdraw_collateral
from domain.markets import CatalogError, load_catalog, parse_catalog
from domain.money import AmountError, parse_amount, round_down, round_up

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BTC50K = {"BTC": Decimal(50000)}
MANUAL_10 = {"loan": {"USDT": {"flexible_apr": "0.10", "rate_model": "manual"}}}


@pytest.mark.parametrize(("text", "value"), [
    ("1000", "1000"), ("1,000.50", "1000.50"), ("0.01", "0.01"), ("12,345,678.9", "12345678.9"), (" 7 ", "7"),
    ("0.00000001", "0.00000001"),
])
def test_amounts_people_write(text: str, value: str) -> None:
    assert parse_amount(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "-5", "1.2.3", "1e5", "nan", "inf", "1,00", "1,0000", ",100", "abc", "+3",
                                  "0x10", "1 000"])
def test_amounts_nobody_means(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text)


def test_rounding_directions() -> None:
    assert round_up(Decimal("1.000000001"), 8) == Decimal("1.00000001")
    assert round_down(Decimal("1.000000019"), 8) == Decimal("1.00000001")
    # Working-precision noise does not cost the borrower a satoshi.
    assert round_up(Decimal("30000.0000000000000000000000001"), 8) == Decimal("30000")


def test_shipped_catalog_has_the_promised_markets() -> None:
    cat = load_catalog()
    assert len(cat.loans) >= 6 and len(cat.collateral) >= 8
    assert cat.thresholds("flexible", "BTC").initial == Decimal("0.78")
    assert cat.thresholds("flexible", "SOL").initial == Decimal("0.70")
    assert cat.thresholds("flexible", "DOGE").initial == Decimal("0.65")
    fixed = cat.thresholds("fixed")
    assert (fixed.initial, fixed.margin_call, fixed.liquidation) == (Decimal("0.72"), Decimal("0.77"),
                                                                       Decimal("0.91"))
    assert sorted(cat.collateral, key=cat.liquidation_rank)[:5] == ["FDUSD", "USDC", "USDT", "BTC", "ETH"]


@pytest.mark.parametrize(("change", "message"), [
    ({"collateral": {"BTC": {"initial_ltv": 0.78}}}, "is a float"),
    ({"collateral": {"BTC": {"initial_ltv": "0.95"}}}, "initial_ltv"),
    ({"collateral": {"BTC": {"margin_call_ltv": "0.95"}}}, "liquidation_ltv"),
    ({"loan": {"USDT": {"min_borrow": "10", "max_borrow": "5"}}}, "min_borrow"),
    ({"loan": {"USDT": {"rate_model": "magic"}}}, "rate_model"),
    ({"loan": {"USDT": {"fixed_apr": {"8": "0.1"}}}}, "not a term"),
    ({"loan": {"USDT": {"flexible_apr": "ten"}}}, "not a number"),
])
def test_bad_catalog_edits_are_refused_with_the_field_named(change: dict, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        load_catalog().with_overrides(change)


def test_a_catalog_file_must_be_complete(tmp_path: Path) -> None:
    bad = tmp_path / "markets.toml"
    bad.write_text("[desk]\n")
    with pytest.raises(CatalogError, match=r"\[products\]"):
        load_catalog(bad)
    with pytest.raises(CatalogError, match="not valid TOML"):
        bad.write_text("[desk\n")
        load_catalog(bad)
    with pytest.raises(CatalogError):
        parse_catalog({})


def desk_with(overrides: dict | None = None) -> Desk:
    desk = Desk(load_catalog().with_overrides(overrides or MANUAL_10), MemoryBook())
    desk.deposit("alice", "BTC", Decimal(2), T0)
    return desk


def borrow(desk: Desk, at: datetime, amount: str = "30000", owner: str = "alice") -> int:
    req = BorrowRequest(owner, "USDT", Decimal(amount), {"BTC": Decimal(1)})
    position, _ = book_borrow(desk, req, BTC50K, at)
    return position.id


def test_a_started_hour_is_charged_in_full_and_repaying_before_it_costs_nothing() -> None:
    desk = desk_with()
    pid = borrow(desk, T0 + timedelta(minutes=59))
    p = desk.book.get_position(pid)
    assert p is not None
    assert desk.debt(p, T0 + timedelta(minutes=59, seconds=59)) == Decimal(30000)
    one_hour = round_up(Decimal(30000) * (1 + Decimal("0.1") / 8760), 8)
    assert round_up(desk.debt(p, T0 + timedelta(hours=1)), 8) == one_hour
    # A second loan repaid inside its first hour owes exactly what it borrowed.
    desk.deposit("bob", "BTC", Decimal(1), T0)
    bob = borrow(desk, T0 + timedelta(hours=1, minutes=5), owner="bob")
    repay(desk, "bob", bob, None, T0 + timedelta(hours=1, minutes=55))
    assert desk.spot("bob", "USDT") == 0


def test_a_rate_change_applies_from_the_next_full_hour() -> None:
    desk = desk_with()
    pid = borrow(desk, T0)
    desk.set_rate("USDT", Decimal("0.20"), T0 + timedelta(minutes=30))
    p = desk.book.get_position(pid)
    assert p is not None
    h = 1 + Decimal("0.10") / 8760
    h2 = 1 + Decimal("0.20") / 8760
    # 01:00 is already at the new rate (set at 00:30, in force from 01:00).
    assert round_up(desk.debt(p, T0 + timedelta(hours=2)), 8) == round_up(Decimal(30000) * h2 * h2, 8)
    desk2 = desk_with()
    pid2 = borrow(desk2, T0)
    desk2.accrue(T0 + timedelta(hours=1))
    desk2.set_rate("USDT", Decimal("0.20"), T0 + timedelta(hours=1))  # set at 01:00 after accrual → from 02:00
    p2 = desk2.book.get_position(pid2)
    assert p2 is not None
    assert round_up(desk2.debt(p2, T0 + timedelta(hours=2)), 8) == round_up(Decimal(30000) * h * h2, 8)


def test_catch_up_after_downtime_equals_hour_by_hour() -> None:
    a, b = desk_with(), desk_with()
    pa, pb = borrow(a, T0), borrow(b, T0)
    for hour in range(1, 100):
        a.accrue(T0 + timedelta(hours=hour))
    b.accrue(T0 + timedelta(hours=99))  # 99 missed hours at once
    qa, qb = a.book.get_position(pa), b.book.get_position(pb)
    assert qa is not None and qb is not None
    assert a.debt(qa, T0 + timedelta(hours=99)) == b.debt(qb, T0 + timedelta(hours=99))


def test_accrual_touches_one_number_per_asset_however_many_positions() -> None:
    desk = desk_with()
    for i in range(50):
        desk.deposit(f"u{i}", "BTC", Decimal(1), T0)
        borrow(desk, T0, "1000", owner=f"u{i}")
    saved: list[str] = []
    book = desk.book
    original = book.save_position
    book.save_position = lambda p: (saved.append("p"), original(p))  # type: ignore[method-assign]
    desk.accrue(T0 + timedelta(hours=5))
    assert saved == []  # no position was read or written by the hourly accrual
    state = book.market("USDT")
    assert state is not None and state.debt_index == (1 + Decimal("0.10") / 8760) ** 5


def test_utilisation_model_moves_the_rate_and_announces_it() -> None:
    desk = desk_with({"loan": {"USDT": {"lending_cap": "40000", "max_borrow": "40000", "rate_model": "utilisation",
                                        "base": "0.05", "kink": "0.8", "slope1": "0.04", "slope2": "0.60",
                                        "flexible_apr": "0.05"}}})
    borrow(desk, T0, "36000")  # 90% utilisation, above the kink
    changed = [e for e in desk.accrue(T0 + timedelta(hours=1)) if e.type == "rate_changed"]
    # 0.05 + 0.04 + 0.60 × (0.9 − 0.8) / 0.2 = 0.39, from 02:00
    assert [(e.data["asset"], e.data["apr"]) for e in changed] == [("USDT", "0.39")]


def test_a_stranger_cannot_touch_a_position_and_learns_nothing() -> None:
    desk = desk_with()
    pid = borrow(desk, T0)
    desk.deposit("mallory", "USDT", Decimal(50000), T0)
    for act in (lambda: repay(desk, "mallory", pid, None, T0),
                lambda: close(desk, "mallory", pid, T0),
                lambda: withdraw_collateral(desk, "mallory", pid, "BTC", Decimal("0.1"), BTC50K, T0)):
        with pytest.raises(Rejected) as err:
            act()
        assert err.value.code == "position_not_found"
    assert desk.spot("mallory", "USDT") == Decimal(50000)


def test_quotes_expire_after_fifteen_seconds() -> None:
    desk = desk_with()
    pid = borrow(desk, T0)
    quote = quote_repay_with_collateral(desk, "alice", pid, Decimal(1000), BTC50K, T0)
    with pytest.raises(Rejected) as err:
        repay_with_collateral(desk, "alice", pid, None, BTC50K, T0 + timedelta(seconds=16), quote)
    assert err.value.code == "quote_expired"
    repay_with_collateral(desk, "alice", pid, None, BTC50K, T0 + timedelta(seconds=15), quote)


def test_collateral_sized_to_a_target_ltv() -> None:
    desk = desk_with()
    # 500 USDT at 50% LTV with BTC at 50,000 needs 500 / (50,000 × 0.5) = 0.02 BTC.
    assert collateral_for_ltv(desk, "alice", "USDT", Decimal(500), "BTC", Decimal("0.5"), BTC50K, T0) == Decimal("0.02")


@pytest.mark.parametrize(("scenario", "message"), [
    ({"start": "2026-01-01T00:00:00Z"}, "end"),
    ({"start": "yesterday", "end": "2026-01-01T00:00:00Z"}, "ISO-8601"),
    ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "before start"),
    ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "prices": {"BTC": 50000.5}}, "price"),
    ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "prices": {"BTC": {"csv": "nope.csv"}}},
     "not found"),
    ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z",
      "markets": {"collateral": {"BTC": {"initial_ltv": "2"}}}}, "markets"),
])
def test_malformed_scenarios_are_refused_with_a_clear_error(scenario: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        simulate(scenario, load_catalog())


def test_a_refused_ledger_entry_changes_no_balance() -> None:
    from domain.ledger import EntryBuilder

    book = MemoryBook()
    desk = Desk(load_catalog(), book)
    desk.deposit("ann", "BTC", Decimal(1), T0)
    before = dict(book.balances)
    entry = (EntryBuilder(T0, "test").move("BTC", Decimal("0.5"), "desk:cash", "spot:ann")
             .move("BTC", Decimal(2), "spot:ann", "desk:cash").build())
    with pytest.raises(AssertionError):
        book.post(entry)
    assert dict(book.balances) == before


def test_the_rate_in_force_is_the_latest_point_at_or_before_the_instant() -> None:
    from domain.rates import MarketState, RatePoint

    state = MarketState("USDT", rates=[RatePoint(T0, Decimal("0.1")), RatePoint(T0 + timedelta(hours=2),
                                                                                 Decimal("0.2"))])
    assert state.apr_at(T0 - timedelta(seconds=1)) == 0
    assert state.apr_at(T0) == Decimal("0.1")
    assert state.apr_at(T0 + timedelta(hours=1, minutes=59)) == Decimal("0.1")
    assert state.apr_at(T0 + timedelta(hours=2)) == Decimal("0.2")
