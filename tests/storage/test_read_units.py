"""Reads never wait for the writer (issue 12 item 1), on SQLite and PostgreSQL: while one unit of work holds the
write lock (as a crash tick does), a read-only unit of work reads the last committed state, and a second writer
waits for the first; a read-only unit of work cannot commit; PostgreSQL sessions have a lock timeout."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from domain.desk import Desk
from domain.markets import load_catalog
from storage import UnitOfWork
from storage.engine import LOCK_TIMEOUT_MS, make_engine

NOW = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)


def deposit(engine: Engine, owner: str, amount: str) -> None:
    with UnitOfWork(engine) as uow:
        Desk(load_catalog(), uow.book).deposit(owner, "BTC", Decimal(amount), NOW)
        uow.commit()


def spot(uow: UnitOfWork, owner: str) -> Decimal:
    return Desk(load_catalog(), uow.book).spot(owner, "BTC")


def test_a_read_goes_on_while_a_writer_holds_the_lock_and_a_second_writer_waits(db_engine: Engine) -> None:
    deposit(db_engine, "ann", "1")
    holding, release = threading.Event(), threading.Event()
    second_done = threading.Event()

    def long_writer() -> None:  # a crash tick: takes the lock, changes things, holds on
        with UnitOfWork(db_engine) as uow:
            Desk(load_catalog(), uow.book).deposit("ann", "BTC", Decimal("2"), NOW)
            uow.book.flush()
            holding.set()
            release.wait(20)
            uow.commit()

    def second_writer() -> None:
        deposit(db_engine, "bob", "1")
        second_done.set()

    first = threading.Thread(target=long_writer)
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=second_writer)
    second.start()
    try:
        with UnitOfWork(db_engine, read_only=True) as uow:  # not held up: the last committed state
            assert spot(uow, "ann") == Decimal("1")
        assert not second_done.wait(0.5)  # the writers are still one at a time
    finally:
        release.set()
        first.join(20)
        second.join(20)
    assert second_done.is_set()
    with UnitOfWork(db_engine, read_only=True) as uow:
        assert spot(uow, "ann") == Decimal("3") and spot(uow, "bob") == Decimal("1")


def test_a_read_only_unit_of_work_cannot_commit(db_engine: Engine) -> None:
    with UnitOfWork(db_engine, read_only=True) as uow:
        Desk(load_catalog(), uow.book).deposit("ann", "BTC", Decimal("1"), NOW)
        with pytest.raises(RuntimeError):
            uow.commit()
    with UnitOfWork(db_engine, read_only=True) as uow:
        assert spot(uow, "ann") == 0


def test_postgresql_sessions_give_up_waiting_for_a_lock(db_engine: Engine) -> None:
    if db_engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's lock_timeout")
    with db_engine.connect() as conn:
        assert conn.execute(text("SHOW lock_timeout")).scalar_one() == f"{LOCK_TIMEOUT_MS // 1000}s"
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    impatient = make_engine(db_engine.url, schema=schema, lock_timeout_ms=200)
    try:
        with UnitOfWork(db_engine) as holder:
            holder.session.connection()  # the writer lock is taken
            with pytest.raises(OperationalError, match="lock timeout"), UnitOfWork(impatient) as uow:
                uow.session.connection()
            with UnitOfWork(impatient, read_only=True) as reader:  # a read takes no lock: it goes on
                assert spot(reader, "ann") == 0
    finally:
        impatient.dispose()
