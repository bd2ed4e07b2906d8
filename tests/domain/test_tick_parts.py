"""A tick done in parts (``domain.watch.tick.Tick`` with ``enough``: what the live bot commits part by part) emits
the same events, in the same order, and leaves the same book as the tick done at once; a change between two parts
is seen by the later one; the circuit breaker decides once for the whole wave."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.book import MemoryBook
from domain.checks import ledger_problems
from domain.desk import Desk
from domain.events import Event
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.loans.flexible import collateral_for_ltv
from domain.loans.servicing import repay
from domain.markets import Catalog, load_catalog
from domain.watch.tick import Tick, tick

T0 = datetime(2026, 3, 1, tzinfo=UTC)
D = Decimal
PRICES = {"USDT": D(1), "BTC": D(50000), "ETH": D(2500)}
CATALOG = load_catalog()


def book_at(ltvs: list[tuple[str, Decimal]], catalog: Catalog = CATALOG) -> Desk:
    """One 1,000 USDT Flexible loan per (collateral, LTV), each its own borrower."""
    desk = Desk(catalog, MemoryBook())
    for i, (asset, ltv) in enumerate(ltvs):
        owner = f"b{i}"
        qty = collateral_for_ltv(desk, owner, "USDT", D(1000), asset, ltv, PRICES, T0)
        desk.deposit(owner, asset, qty, T0)
        borrow(desk, BorrowRequest(owner, "USDT", D(1000), {asset: qty}), PRICES, T0)
    return desk


def in_parts(desk: Desk, prices: dict[str, Decimal], now: datetime, per_part: int,
             between: list[Callable[[Desk], object]] | None = None) -> tuple[list[Event], int]:
    """The tick in parts of ``per_part`` positions; ``between``: what happens after each part but the last."""
    job = Tick(prices, prices, now, ("BTC", "ETH"), enough=lambda acted: acted >= per_part)
    events: list[Event] = []
    while not job.done:
        events += job.part(desk)
        if between and not job.done:
            between.pop(0)(desk)
    return events, job.parts


ltvs = st.lists(st.tuples(st.sampled_from(["BTC", "ETH"]),
                          st.decimals(min_value=D("0.40"), max_value=D("0.77"), places=3)), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ltvs, st.decimals(min_value=D("0.70"), max_value=D("1.0"), places=2), st.integers(1, 6))
def test_a_tick_in_parts_is_the_tick_at_once(book: list[tuple[str, Decimal]], fall: Decimal, per_part: int) -> None:
    now = T0 + timedelta(hours=1)
    prices = {**PRICES, "BTC": PRICES["BTC"] * fall, "ETH": PRICES["ETH"] * fall}
    whole, parted = book_at(book), book_at(book)
    at_once = tick(whole, prices, prices, now, corroborated=("BTC", "ETH"))
    events, parts = in_parts(parted, prices, now, per_part)
    assert events == at_once
    mine, theirs = parted.book, whole.book
    assert isinstance(mine, MemoryBook) and isinstance(theirs, MemoryBook)
    assert mine.balances == theirs.balances
    assert ledger_problems(parted, mine.balances, mine.shares, mine.positions.values(), now) == []
    touched = len({e.position for e in at_once if e.position is not None})
    assert parts >= max(1, -(-touched // per_part))  # at most per_part positions acted on in a part


def test_a_repayment_between_two_parts_is_seen_by_the_later_one() -> None:
    # three loans at 75% LTV; BTC falls 20%: 93.75% each, over the 91% liquidation LTV
    desk = book_at([("BTC", D("0.75"))] * 3)
    now = T0 + timedelta(hours=1)
    fallen = {**PRICES, "BTC": D(40000)}

    def b1_repays_in_full(d: Desk) -> None:
        d.deposit("b1", "USDT", D(2000), now)
        repay(d, "b1", 2, None, now)

    events, parts = in_parts(desk, fallen, now, 1, [b1_repays_in_full])
    assert parts == 2  # b0 in the first part; b2 in the second, where b1's closed loan is read and passed over
    assert [(e.type, e.position) for e in events] == [("liquidated", 1), ("liquidated", 3)]
    repaid = desk.book.get_position(2)
    assert repaid is not None and repaid.status == "closed"


def test_the_breaker_decides_once_for_the_whole_wave() -> None:
    # 60 BTC positions at 75%, all liquidated by a 20% fall on one uncorroborated source: more than half the book
    desk = book_at([("BTC", D("0.75"))] * 60)
    now = T0 + timedelta(hours=1)
    fallen = {**PRICES, "BTC": D(40000)}
    job = Tick(fallen, fallen, now, (), enough=lambda acted: acted >= 7)
    events: list[Event] = []
    while not job.done:
        events += job.part(desk)
    assert job.parts == 9  # 60 positions, 7 a part
    assert [e.type for e in events].count("liquidations_paused") == 1
    assert [e.type for e in events].count("margin_call") == 60
    assert "liquidated" not in {e.type for e in events}
