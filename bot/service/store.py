"""The bot's persistence: the storage unit of work plus the bot's own tables, in one transaction.

``StateStore.unit_of_work()`` opens ``storage.uow.UnitOfWork`` (the domain's ``SqlBook`` and the outbox) and
adds ``BotTables`` on the same session: previews with their one-time tokens, guided-borrow drafts and faucet days.

Processed update keys (``StateStore.mark_seen``, ``bot_seen``) are recorded outside the units of work, so that
recognising a redelivered update never waits for the writer (a crash tick): on PostgreSQL in a plain transaction
without the writer lock (the unique key decides between racing instances); on SQLite in a file of their own beside
the database (``<database>-updates``), whose write lock is not the book's. Either way it is ``INSERT … ON CONFLICT
DO NOTHING``: of two instances that got the same update, exactly one inserts the key.

A confirmation consumes its token in the same commit as the action it confirms, so the two happen together or not
at all. Leaving without ``commit()`` rolls everything back.

The bot tables are defined in ``storage.tables`` and created by the storage migrations; they are the bot's own.

Units of work are synchronous (the domain is) and never run on the event loop: ``await store.run(fn, *args)`` runs
``fn`` on the store's writers' thread pool, ``await store.read(fn, *args)`` (read-only units, update keys) on the
readers' pool, so a unit of work waiting for the database (a crash tick holding the write lock) holds up only its
own update, never the loop, and waiting writers never hold up a read. ``unit_of_work()`` called on the loop's
thread is logged (``on_loop = "raise"``: refused, as the loop tests ask). ``unit_of_work(read_only=True)`` is a read
(no write lock, cannot commit).

The process's writers take turns in the order they came (``WriteGate``): the database's own lock is not fair (SQLite's
busy handler polls, so a writer that commits and begins again — a crash tick done in parts — would keep it while a
chat's write sleeps between polls); the gate hands the turn to the longest waiting writer, so between two parts of a
crash tick every write that was waiting goes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from bot.service.usecases import Action, decode, encode
from domain.book import Book
from domain.events import Event
from storage.engine import make_engine
from storage.engine import migrate as upgrade
from storage.mapping import event_from
from storage.tables import bot_drafts as drafts
from storage.tables import bot_faucet as faucet
from storage.tables import bot_previews as previews
from storage.tables import bot_seen as seen
from storage.tables import outbox
from storage.uow import UnitOfWork as StorageUnitOfWork

log = logging.getLogger("loandesk.store")
P = ParamSpec("P")
T = TypeVar("T")
DB_THREADS = 8  # units of work at once per pool, writers and readers (SQLite writes one at a time)
PREVIEW_KEEP = timedelta(days=1)  # how long a used or expired preview is remembered
WRITE_WAIT_SECONDS = 5.0  # the longest a writer waits for its turn (SQLite's busy timeout is as long)
SEEN_LIMIT = 20_000  # processed update keys kept (Telegram redelivers within hours, not weeks)


@dataclass
class Preview:
    """A shown, not yet confirmed action (``bot.service.usecases``) with its one-time token."""

    token: str
    owner: str
    action: Action
    created: datetime
    expires: datetime
    state: str = "pending"  # pending | done | cancelled


@dataclass
class Draft:
    """A guided ``/borrow`` in progress: what the borrower has chosen so far."""

    loan: str | None = None
    collateral: str | None = None
    amount: str | None = None
    product: str | None = None  # "flexible" or "fixed:<days>"; None: not chosen yet

    @property
    def term_days(self) -> int | None:
        return int(self.product.split(":")[1]) if self.product and self.product.startswith("fixed:") else None


class BotTables:
    """The bot's rows, read and written on the unit of work's session."""

    def __init__(self, uow: StorageUnitOfWork) -> None:
        self._uow = uow

    def _db(self) -> Any:
        return self._uow.session.connection()

    def preview(self, token: str) -> Preview | None:
        r = self._db().execute(select(previews).where(previews.c.token == token)).mappings().first()
        if r is None:
            return None
        try:
            action = decode(r["kind"], r["params"])
        except (ValueError, TypeError, KeyError):
            return None  # written by an older version: its button has expired
        return Preview(r["token"], r["owner"], action, datetime.fromisoformat(r["created"]),
                       datetime.fromisoformat(r["expires"]), r["state"])

    def add_preview(self, p: Preview) -> None:
        """Store ``p``; previews that expired more than ``PREVIEW_KEEP`` ago go (their taps answer "expired")."""
        cutoff = (p.created - PREVIEW_KEEP).isoformat()  # ISO text of UTC times sorts like the times
        self._db().execute(delete(previews).where(previews.c.expires < cutoff))
        self._db().execute(insert(previews).values(
            token=p.token, owner=p.owner, kind=p.action.kind, params=encode(p.action), created=p.created.isoformat(),
            expires=p.expires.isoformat(), state=p.state))

    def set_preview_state(self, token: str, state: str) -> None:
        self._db().execute(update(previews).where(previews.c.token == token).values(state=state))

    def draft(self, owner: str) -> Draft | None:
        r = self._db().execute(select(drafts).where(drafts.c.owner == owner)).mappings().first()
        return None if r is None else Draft(r["loan"], r["collateral"], r["amount"], r["product"])

    def save_draft(self, owner: str, d: Draft | None) -> None:
        self._db().execute(delete(drafts).where(drafts.c.owner == owner))
        if d is not None:
            self._db().execute(insert(drafts).values(owner=owner, **asdict(d)))

    def mark_seen(self, key: str) -> bool:
        """Remember ``key`` in this unit of work's transaction (see ``insert_seen``)."""
        return insert_seen(self._db(), key)

    def faucet_day(self, owner: str) -> str | None:
        day = self._db().execute(select(faucet.c.day).where(faucet.c.owner == owner)).scalar_one_or_none()
        return None if day is None else str(day)

    def set_faucet_day(self, owner: str, day: str) -> None:
        self._db().execute(delete(faucet).where(faucet.c.owner == owner))
        self._db().execute(insert(faucet).values(owner=owner, day=day))

    def events(self, owner: str, pid: int | None, limit: int = 30) -> list[Event]:
        q = select(outbox).where(outbox.c.account == owner)
        if pid is not None:
            q = q.where(outbox.c.position == pid)
        rows = self._db().execute(q.order_by(outbox.c.id.desc()).limit(limit)).mappings().all()
        return [event_from(r) for r in reversed(rows)]


def insert_seen(db: Connection, key: str) -> bool:
    """Remember ``key``; False when it was seen before (a redelivered update or callback).

    ``INSERT … ON CONFLICT DO NOTHING`` on the unique key: of two instances that got the same update (a
    webhook redelivered to another instance), exactly one inserts the row, whatever the interleaving."""
    dialect = postgresql if db.dialect.name == "postgresql" else sqlite
    added = db.execute(dialect.insert(seen).values(key=key).on_conflict_do_nothing(index_elements=["key"])
                       .returning(seen.c.id)).scalar_one_or_none()  # (rowcount is -1 here on psycopg)
    if added is None:
        return False
    newest = db.execute(select(func.max(seen.c.id))).scalar_one()
    db.execute(delete(seen).where(seen.c.id <= newest - SEEN_LIMIT))
    return True


class Busy(OperationalError):
    """A writer waited longer than ``WRITE_WAIT_SECONDS`` for its turn: like the database's own lock timeout, nothing
    was changed (``bot.telegram.handlers.busy_database`` answers it the same way)."""

    def __init__(self, waited: float) -> None:
        super().__init__("waiting for the writers' turn", None,
                         TimeoutError(f"database is locked: no turn to write within {waited:g} s"))


class WriteGate:
    """One writer at a time in this process, in the order they asked (re-entrant for the thread that holds it)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._queue: deque[tuple[int, threading.Event]] = deque()

    def acquire(self, timeout: float | None = None) -> bool:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me or (self._owner is None and not self._queue):
                self._owner, self._depth = me, self._depth + 1
                return True
            turn = threading.Event()
            self._queue.append((me, turn))
        if turn.wait(timeout):
            return True  # handed over by release()
        with self._mutex:
            if turn.is_set():  # handed over just as the wait ran out
                return True
            self._queue.remove((me, turn))
            return False

    def release(self) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth:
                return
            if self._queue:
                self._owner, turn = self._queue.popleft()
                self._depth = 1
                turn.set()
            else:
                self._owner = None

    @contextlib.contextmanager
    def turn(self, timeout: float = WRITE_WAIT_SECONDS) -> Iterator[None]:
        """Hold the writers' turn for the block (``Busy`` when it does not come within ``timeout``)."""
        if not self.acquire(timeout):
            raise Busy(timeout)
        try:
            yield
        finally:
            self.release()


class UnitOfWork(StorageUnitOfWork):
    """The storage unit of work with the bot's tables alongside (``uow.bot``); a writing one holds the process's
    writers' turn (``gate``, the store's ``WriteGate``) from start to end."""

    bot: BotTables

    def __init__(self, engine: Engine, gate: WriteGate | None = None, *, read_only: bool = False) -> None:
        super().__init__(engine, read_only=read_only)
        self._turn = None if read_only or gate is None else gate.turn()

    def __enter__(self) -> UnitOfWork:
        if self._turn is not None:
            self._turn.__enter__()
        try:
            super().__enter__()
        except BaseException:
            if self._turn is not None:
                self._turn.__exit__(None, None, None)
            raise
        self.bot = BotTables(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            super().__exit__(exc_type, exc, tb)
        finally:
            if self._turn is not None:
                self._turn.__exit__(None, None, None)

    @property
    def domain_book(self) -> Book:
        """The storage book as the domain's ``Book`` port."""
        return self.book


class StateStore:
    """The database: migrated storage tables plus the bot's tables. ``schema`` (PostgreSQL) is the
    ``search_path``; ``migrate=False`` when migrations are a separate step (``loandesk db upgrade``)."""

    on_loop = "log"  # a unit of work opened on the event loop's thread: "log" it, "raise" (tests), or "allow"

    def __init__(self, url: str, *, schema: str | None = None, migrate: bool = True) -> None:
        self.engine: Engine = make_engine(url, schema=schema)
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._warned: set[str] = set()
        self.gate = WriteGate()
        if migrate:
            upgrade(self.engine)
        self.updates = self._updates_engine()

    def _updates_engine(self) -> Engine:
        """Where update keys are recorded: the database itself, or on SQLite a file of their own."""
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return self.engine
        engine = make_engine(url.set(database=f"{url.database}-updates"))
        seen.create(engine, checkfirst=True)
        return engine

    def mark_seen(self, key: str) -> bool:
        """Record an update key (False: seen before) without waiting for the book's writer."""
        if self.on_loop != "allow" and _on_event_loop():
            self._on_loop()
        with self.updates.begin() as conn:  # no writer lock: the unique key is the arbiter
            return insert_seen(conn, key)

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork:
        if self.on_loop != "allow" and _on_event_loop():
            self._on_loop()
        return UnitOfWork(self.engine, self.gate, read_only=read_only)

    def _on_loop(self) -> None:
        where = "".join(traceback.format_stack(limit=4)[:-2])
        if self.on_loop == "raise":
            raise RuntimeError(f"a unit of work on the event loop's thread:\n{where}")
        if where not in self._warned:
            self._warned.add(where)
            log.warning("a unit of work on the event loop's thread (it stalls every chat):\n%s", where)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` — a unit of work that may write — on the writers' thread pool (off the event
        loop), with the caller's context."""
        return await self._submit("write", fn, *args, **kwargs)

    async def read(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` — read-only units of work (and update keys), which never wait for the writer —
        on a thread pool of their own: writers queued behind a long crash tick never hold up a read."""
        return await self._submit("read", fn, *args, **kwargs)

    async def _submit(self, pool: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        executor = self._executors.get(pool)
        if executor is None:
            executor = self._executors[pool] = ThreadPoolExecutor(DB_THREADS, thread_name_prefix=f"loandesk-{pool}")
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    def close(self) -> None:
        for executor in self._executors.values():
            executor.shutdown(wait=True, cancel_futures=True)
        self._executors.clear()
        if self.updates is not self.engine:
            self.updates.dispose()
        self.engine.dispose()


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
