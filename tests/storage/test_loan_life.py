"""Whole loan lives through the real domain, once on ``MemoryBook`` and once on the database with a new unit of
work per step (as the bot runs them), must end in the same books: balances, journal, Earn shares, positions,
market states, term sheets and events — and the database's ledger must sum to zero per asset.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select

from domain.book import MemoryBook
from domain.checks import ledger_problems
from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.loans.servicing import add_collateral, close, repay, repay_with_collateral, withdraw_collateral
from domain.markets import Catalog, load_catalog
from domain.money import ZERO
from domain.positions import Account, Position, Product, Source, Status
from domain.watch.sweep import sweep
from storage import SqlBook, UnitOfWork
from storage.mapping import dump_data, event_from, load_data
from storage.tables import outbox

T = datetime(2026, 1, 5, tzinfo=UTC)
H = timedelta(hours=1)
Prices = dict[str, Decimal]


def prices(btc: str, eth: str = "3000") -> Prices:
    return {"BTC": Decimal(btc), "ETH": Decimal(eth), "USDC": Decimal("1")}


@dataclass(frozen=True)
class Step:
    at: datetime
    what: str
    run: Callable[[Desk, datetime], Any]


def flexible_life() -> list[Step]:
    def deposits(d: Desk, t: datetime) -> None:
        d.deposit("alice", "BTC", Decimal("2"), t)
        d.deposit("alice", "BTC", Decimal("1"), t, to=Source.EARN)
        d.deposit("bob", "ETH", Decimal("10"), t)
        d.deposit("carol", "USDT", Decimal("1000.12345678"), t, to=Source.EARN)

    def alice_warning_level(d: Desk, t: datetime) -> None:
        d.book.save_account(Account("alice", Decimal("0.6")))

    return [
        Step(T + 10 * MIN, "deposits", deposits),
        Step(T + 20 * MIN, "alice borrows USDT", lambda d, t: borrow(
            d, BorrowRequest("alice", "USDT", Decimal("30000"), {"BTC": Decimal("1")}), prices("50000"), t)),
        Step(T + 25 * MIN, "bob borrows USDT", lambda d, t: borrow(
            d, BorrowRequest("bob", "USDT", Decimal("15000"), {"ETH": Decimal("8")}), prices("50000"), t)),
        Step(T + 100 * MIN, "alice adds collateral", lambda d, t: add_collateral(
            d, "alice", 1, "BTC", Decimal("0.5"), prices("50000"), t)),
        Step(T + 130 * MIN, "alice borrows USDC against Earn BTC", lambda d, t: borrow(
            d, BorrowRequest("alice", "USDC", Decimal("20000"), {"BTC": Decimal("1")}, source=Source.EARN),
            prices("50000"), t)),
        Step(T + 3 * H, "alice withdraws too much (rejected)", lambda d, t: withdraw_collateral(
            d, "alice", 1, "BTC", Decimal("1.4"), prices("50000"), t)),
        Step(T + 210 * MIN, "alice repays part", lambda d, t: repay(d, "alice", 1, Decimal("1000"), t)),
        Step(T + 245 * MIN, "operator sets the USDT rate", lambda d, t: d.set_rate("USDT", Decimal("0.09"), t)),
        Step(T + 5 * H, "alice's own warning level", alice_warning_level),
        Step(T + 6 * H, "BTC falls: personal warnings", lambda d, t: sweep(d, prices("31000"), t)),
        Step(T + 7 * H, "ETH falls: margin call", lambda d, t: sweep(d, prices("31000", "2200"), t)),
        Step(T + 8 * H, "still there: reminder", lambda d, t: sweep(d, prices("31000", "2200"), t)),
        Step(T + 510 * MIN, "ETH gaps: bob liquidated", lambda d, t: sweep(d, prices("31000", "2000"), t)),
        Step(T + 9 * H, "alice repays USDC with collateral", lambda d, t: repay_with_collateral(
            d, "alice", 3, Decimal("5000"), prices("31000"), t)),
        Step(T + 10 * H, "BTC recovers: alice withdraws", lambda d, t: withdraw_collateral(
            d, "alice", 1, "BTC", Decimal("0.1"), prices("40000"), t)),
        Step(T + 26 * H, "alice tops up USDT", lambda d, t: d.deposit("alice", "USDT", Decimal("500"), t)),
        Step(T + 26 * H + MIN, "alice closes the USDT loan", lambda d, t: close(d, "alice", 1, t)),
        Step(T + 48 * H, "a quiet sweep two days on", lambda d, t: sweep(d, prices("40000", "2500"), t)),
        Step(T + 49 * H, "alice closes the USDC loan", lambda d, t: close(d, "alice", 3, t)),
        Step(T + 50 * H, "bob has nothing left to close (rejected)", lambda d, t: close(d, "bob", 2, t)),
    ]


def fixed_and_vip_life() -> list[Step]:
    from domain.loans.expiry import process_fixed
    from domain.loans.fixed import borrow_fixed, set_fixed_expiry
    from domain.loans.vip import borrow_vip, issue_term_sheet
    from domain.termsheet import TermSheet

    sheet = TermSheet("vera", ("USDT",), "flexible", Decimal("0.01"), Decimal("0.70"), Decimal("0.80"),
                      Decimal("0.90"), {"BTC": Decimal("0.95")}, liquidation="partial",
                      liquidation_delay_minutes=30)

    def deposits(d: Desk, t: datetime) -> None:
        d.deposit("fred", "BTC", Decimal("3"), t)
        d.deposit("fred", "USDT", Decimal("100"), t)
        d.deposit("vera", "BTC", Decimal("5"), t)

    return [
        Step(T + 5 * MIN, "deposits", deposits),
        Step(T + 6 * MIN, "fred borrows for 7 days", lambda d, t: borrow_fixed(
            d, BorrowRequest("fred", "USDT", Decimal("40000"), {"BTC": Decimal("2")}, product=Product.FIXED,
                             term_days=7), prices("50000"), t)),
        Step(T + 7 * MIN, "fred: auto-repay off", lambda d, t: set_fixed_expiry(d, "fred", 1, t, auto_repay=False)),
        Step(T + 8 * MIN, "vera's term sheet", lambda d, t: issue_term_sheet(d, sheet, t, by="ops")),
        Step(T + 9 * MIN, "vera borrows VIP", lambda d, t: borrow_vip(
            d, BorrowRequest("vera", "USDT", Decimal("100000"), {"BTC": Decimal("4")}, product=Product.VIP),
            prices("50000"), t)),
        Step(T + 3 * H, "BTC drops: VIP liquidation pending", lambda d, t: sweep(d, prices("28500"), t)),
        Step(T + 3 * H + 40 * MIN, "the delay passes: partial liquidation", lambda d, t: sweep(d, prices("28500"), t)),
        Step(T + 5 * 24 * H, "reminders before expiry", lambda d, t: process_fixed(d, prices("50000"), t)),
        Step(T + 7 * 24 * H + 2 * H, "expired and overdue: late fees", lambda d, t: process_fixed(
            d, prices("50000"), t)),
        Step(T + 7 * 24 * H + 3 * H, "fred repays everything", lambda d, t: _repay_all(d, "fred", 1, t)),
    ]


def _repay_all(d: Desk, owner: str, pid: int, t: datetime) -> Event:
    d.deposit(owner, "USDT", Decimal("1000"), t)
    return repay(d, owner, pid, None, t)


MIN = timedelta(minutes=1)


# --------------------------------------------------------------------------- running a life twice


def comparable(result: Any) -> Any:
    """Step results as plain values; events as they read back from the outbox (datetimes → ISO text)."""
    if isinstance(result, Event):
        return ("event", result.at, result.type, result.account, result.position, load_data(dump_data(result.data)))
    if isinstance(result, tuple | list):
        return [comparable(r) for r in result]
    if isinstance(result, Position):
        return ("position", result.id, result.status, result.debt_shares)
    return result


def run_in_memory(catalog: Catalog, steps: list[Step]) -> tuple[MemoryBook, list[Any]]:
    book = MemoryBook()
    desk = Desk(catalog, book)
    results: list[Any] = []
    for step in steps:
        try:
            results.append(comparable(step.run(desk, step.at)))
        except Rejected as exc:
            results.append(("rejected", exc.code))
    return book, results


def run_on_database(engine: Engine, catalog: Catalog, steps: list[Step]) -> list[Any]:
    results: list[Any] = []
    for step in steps:
        try:
            with UnitOfWork(engine) as uow:
                result = comparable(step.run(Desk(catalog, uow.book), step.at))
                uow.commit()
            results.append(result)
        except Rejected as exc:
            results.append(("rejected", exc.code))
    return results


def stored_events(book: SqlBook) -> list[Any]:
    rows = book.session.execute(select(outbox).order_by(outbox.c.id)).mappings()
    return [comparable(event_from(r)) for r in rows]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.mark.parametrize("life", [flexible_life, fixed_and_vip_life])
def test_a_loan_life_ends_the_same_on_the_database_as_in_memory(
        db_engine: Engine, catalog: Catalog, life: Callable[[], list[Step]]) -> None:
    steps = life()
    memory, expected = run_in_memory(catalog, steps)
    got = run_on_database(db_engine, catalog, steps)
    for step, want, have in zip(steps, expected, got, strict=True):
        assert have == want, step.what
    end = steps[-1].at
    with UnitOfWork(db_engine) as uow:
        book = uow.book
        assert book.all_balances() == dict(memory.balances)
        assert book.journal() == memory.journal
        assert book.all_earn_shares() == memory.shares
        assert book.all_positions() == sorted(memory.positions.values(), key=lambda p: p.id)
        assert {k: book.market(k) for k in book.market_keys()} == memory.markets
        assert book.term_sheets() == memory.term_sheets()
        assert book.owners() == memory.owners()
        assert {o: book.account(o) for o in memory.accounts} == memory.accounts
        assert stored_events(book) == [comparable(e) for e in memory.events]
        desk = Desk(catalog, book)
        assert ledger_problems(desk, book.all_balances(), book.all_earn_shares(), book.all_positions(), end) == []
        per_asset: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for entry in book.journal():
            for posting in entry.postings:
                per_asset[posting.asset] += posting.amount
        assert per_asset and all(total == 0 for total in per_asset.values()), per_asset


def test_the_flexible_life_really_went_through_its_story(db_engine: Engine, catalog: Catalog) -> None:
    """Guards the comparison above against comparing two empty books."""
    run_on_database(db_engine, catalog, flexible_life())
    with UnitOfWork(db_engine) as uow:
        book = uow.book
        statuses = {p.id: p.status for p in book.all_positions()}
        assert statuses == {1: Status.CLOSED, 2: Status.LIQUIDATED, 3: Status.CLOSED}
        types = [m.event.type for m in uow.outbox.pending(500, now=T + 100 * H)]
        for kind in ("borrowed", "warning", "margin_call", "margin_call_reminder", "liquidated", "repaid", "closed",
                     "rate_changed", "collateral_added", "collateral_withdrawn"):
            assert kind in types
        assert uow.outbox.pending(1, now=T + 100 * H)[0].event.type == "liquidated"  # most urgent first
        state = book.market("USDT")
        assert state is not None and state.debt_index > 1 and state.debt_shares == 0
        btc = book.market("BTC")
        assert btc is not None and btc.earn_index > 1  # two midnights of Earn on BTC
        assert book.balance("desk:interest", "USDT") > 0
