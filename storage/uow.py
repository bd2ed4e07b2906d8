"""``UnitOfWork``: one transaction around one domain action, with the book and the outbox inside it.

    with UnitOfWork(engine) as uow:
        desk = Desk(catalog, uow.book)
        borrow(desk, request, prices, now)
        events = uow.commit()      # state change and its outbox rows, together

Leaving the block without ``commit()``, or with an exception (a ``Rejected`` action, a failed check), rolls
everything back: an action that raises changes nothing. ``commit()`` returns the events written to the
outbox, to be dispatched (e.g. waking the notifier) only after they are durable. Writing units of work run
one at a time per database (see ``storage.engine``): do not open a second one inside the first.

``UnitOfWork(engine, read_only=True)`` is a read: a plain read transaction that takes no write lock (a snapshot
on SQLite's WAL; no writer lock on PostgreSQL), so it is never held up by a long writer such as a crash tick.
It cannot commit (``commit()`` raises): whatever it changed is rolled back.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, SessionTransaction

from domain.events import Event
from storage.book import Clock, SqlBook, utc_now
from storage.engine import READ_ONLY, writer_lock
from storage.outbox import Outbox


class UnitOfWork:
    book: SqlBook
    outbox: Outbox
    session: Session

    def __init__(self, engine: Engine, *, clock: Clock = utc_now, read_only: bool = False) -> None:
        self.engine = engine
        self.clock = clock
        self.read_only = read_only

    def __enter__(self) -> UnitOfWork:
        bind = self.engine.execution_options(**{READ_ONLY: True}) if self.read_only else self.engine
        self.session = Session(bind, autoflush=False, expire_on_commit=False)
        if not self.read_only:
            event.listen(self.session, "after_begin", _take_writer_lock)
        self.book = SqlBook(self.session, self.clock)
        self.outbox = Outbox(self.session, self.clock)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.rollback()
        finally:
            self.session.close()

    def commit(self) -> list[Event]:
        """Write what changed and commit; returns the events this transaction put in the outbox."""
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        self.book.flush()
        self.session.commit()
        events = self.book.emitted
        self.book.forget()
        return events

    def rollback(self) -> None:
        self.session.rollback()
        self.book.forget()


def _take_writer_lock(_session: Session, _transaction: SessionTransaction, connection: Connection,
                      *_: Any) -> None:
    writer_lock(connection)
