"""A unit of work is all or nothing: committed actions and their outbox rows are durable together, anything
that raises or is not committed leaves no trace, and concurrent units of work never lose an update."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import Catalog, load_catalog
from domain.rates import MarketState
from storage import UnitOfWork
from storage.tables import journal_entries, outbox, positions

NOW = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
BTC_50K = {"BTC": Decimal("50000")}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_a_committed_action_and_its_events_are_stored_together(db_engine: Engine, catalog: Catalog) -> None:
    with UnitOfWork(db_engine) as uow:
        desk = Desk(catalog, uow.book)
        desk.deposit("alice", "BTC", Decimal("2"), NOW)
        position, event = borrow(desk, BorrowRequest("alice", "USDT", Decimal("30000"), {"BTC": Decimal("1")}),
                                 BTC_50K, NOW)
        events = uow.commit()
    assert events == [event] and event.type == "borrowed"
    with UnitOfWork(db_engine) as uow:
        desk = Desk(catalog, uow.book)
        assert desk.spot("alice", "USDT") == Decimal("30000")
        assert desk.spot("alice", "BTC") == Decimal("1")
        assert uow.book.get_position(position.id) == position
        (pending,) = uow.outbox.pending(10, now=NOW)
        assert pending.event.type == "borrowed" and pending.event.position == position.id


def test_leaving_without_commit_changes_nothing(db_engine: Engine, catalog: Catalog) -> None:
    with UnitOfWork(db_engine) as uow:
        desk = Desk(catalog, uow.book)
        desk.deposit("alice", "BTC", Decimal("2"), NOW)
        borrow(desk, BorrowRequest("alice", "USDT", Decimal("30000"), {"BTC": Decimal("1")}), BTC_50K, NOW)
    for table in (journal_entries, positions, outbox):
        assert count(db_engine, table) == 0


def test_a_rejected_action_changes_nothing_even_after_earlier_writes(db_engine: Engine, catalog: Catalog) -> None:
    with UnitOfWork(db_engine) as uow:
        Desk(catalog, uow.book).deposit("alice", "BTC", Decimal("1"), NOW)
        uow.commit()
    with pytest.raises(Rejected) as caught, UnitOfWork(db_engine) as uow:
        desk = Desk(catalog, uow.book)
        desk.deposit("alice", "BTC", Decimal("1"), NOW)  # written in this transaction ...
        borrow(desk, BorrowRequest("alice", "USDT", Decimal("90000"), {"BTC": Decimal("2")}), BTC_50K, NOW)
        uow.commit()
    assert caught.value.code == "ltv_too_high"
    with UnitOfWork(db_engine) as uow:  # ... and gone with the rejection
        assert Desk(catalog, uow.book).spot("alice", "BTC") == Decimal("1")
        assert uow.book.positions_of("alice") == []
        assert uow.outbox.pending(10, now=NOW) == []
    assert count(db_engine, journal_entries) == 1


def test_an_explicit_rollback_forgets_the_objects_handed_out(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow:
        state = MarketState("USDT")
        uow.book.save_market(state)
        uow.book.emit(Event(NOW, "rate_changed", data={"asset": "USDT"}))
        uow.rollback()
        assert uow.book.market("USDT") is None and uow.book.emitted == []
        uow.book.save_market(MarketState("BTC"))
        assert uow.commit() == []
    with UnitOfWork(db_engine) as uow:
        assert uow.book.market("USDT") is None and uow.book.market("BTC") == MarketState("BTC")


def test_concurrent_units_of_work_lose_no_update(db_engine: Engine, catalog: Catalog) -> None:
    threads, rounds = 6, 8
    ids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            for _ in range(rounds):
                with UnitOfWork(db_engine) as uow:
                    # read-modify-write of a market row and a balance, as every domain action does
                    desk = Desk(catalog, uow.book)
                    state = desk.market("USDT", NOW)
                    state.debt_shares += 1
                    uow.book.save_market(state)
                    desk.deposit("alice", "USDT", Decimal("0.00000001"), NOW)
                    pid = uow.book.new_position_id()
                    uow.commit()
                with lock:
                    ids.append(pid)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert errors == []
    total = threads * rounds
    assert sorted(ids) == list(range(1, total + 1))
    with UnitOfWork(db_engine) as uow:
        state = uow.book.market("USDT")
        assert state is not None and state.debt_shares == total
        assert uow.book.balance("spot:alice", "USDT") == Decimal("0.00000001") * total
