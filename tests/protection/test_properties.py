"""Property-based invariants of auto-protection: it never makes a wallet negative, never pushes an LTV up,
never takes more actions a day than its limit, and keeps the ledger balanced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.book import MemoryBook
from domain.checks import ledger_problems
from domain.desk import Desk
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import load_catalog
from domain.positions import Source
from domain.watch.protection import run_protection, set_protection

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CATALOG = load_catalog().with_overrides({"collateral": {"BTC": {"earn_apr": "0.20"}}})

wallet = st.decimals(min_value=Decimal(0), max_value=Decimal("2"), places=8)
prices = st.lists(st.decimals(min_value=Decimal(20000), max_value=Decimal(60000), places=2), min_size=1,
                  max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spot=wallet, earn=wallet, usdt=st.decimals(min_value=Decimal(0), max_value=Decimal(40000), places=2),
       trigger=st.decimals(min_value=Decimal("0.62"), max_value=Decimal("0.90"), places=2),
       gap=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("0.5"), places=2),
       mode=st.sampled_from(["topup", "repay"]), limit=st.integers(1, 4), path=prices,
       hours=st.integers(1, 9))
def test_protection_invariants(spot: Decimal, earn: Decimal, usdt: Decimal, trigger: Decimal, gap: Decimal,
                               mode: str, limit: int, path: list[Decimal], hours: int) -> None:
    book = MemoryBook()
    desk = Desk(CATALOG, book)
    desk.deposit("ann", "BTC", Decimal(1), T0)
    for amount, source in ((spot, Source.SPOT), (earn, Source.EARN)):
        if amount > 0:
            desk.deposit("ann", "BTC", amount, T0, source)
    if usdt > 0:
        desk.deposit("ann", "USDT", usdt, T0)
    p, _ = borrow(desk, BorrowRequest("ann", "USDT", Decimal(30000), {"BTC": Decimal(1)}),
                          {"BTC": Decimal(50000)}, T0)
    target = max(trigger - gap, Decimal("0.05"))
    set_protection(desk, "ann", p.id, trigger, target, mode, T0, limit)
    acted: dict[str, int] = {}
    for i, price in enumerate(path):
        now = T0 + timedelta(hours=hours * (i + 1))
        quotes = {"BTC": price}
        before = desk.ltv(p, quotes, now)
        for e in run_protection(desk, quotes, now):
            acted[now.date().isoformat()] = acted.get(now.date().isoformat(), 0) + 1
            assert Decimal(e.data["ltv"]) <= Decimal(e.data["ltv_before"])
            if e.data["covered"]:
                assert desk.ltv(p, quotes, now) <= target
        assert desk.ltv(p, quotes, now) <= before
        assert all(v >= 0 for (account, _), v in book.balances.items() if account.startswith("spot:"))
        assert all(v >= 0 for v in book.shares.values())
        assert ledger_problems(desk, book.balances, book.shares, book.positions.values(), now) == []
    assert all(n <= limit for n in acted.values())
