"""Leadership of one database: exactly one process holds the lease, and a unit of work can check it is still held.

Two mechanisms behind one interface (``Lease``), picked by ``lease_for(engine)``:

- **PostgreSQL** (``AdvisoryLease``): a session advisory lock, ``pg_try_advisory_lock(LEADER_CLASS,
  hashtext(current_schema()))``, taken on a dedicated connection that the leader keeps open. The server drops the
  lock the moment that session ends, so a leader killed with ``kill -9`` (its socket closed by the kernel) is no
  holder from that instant; a host that vanishes is found by TCP keepalives set on the session (about 11 s). There
  is no expiry and no clock. ``still_held`` asks ``pg_locks`` from inside the caller's transaction whether the
  leader's backend still holds the lock.
- **SQLite** (``RowLease``): the ``scheduler_lock`` row named ``scheduler``, whose ``holder`` is ``host:pid:nonce``
  and whose ``expires_at`` (wall clock, never the desk's business clock) is renewed every second. The row is no
  holder when it expired, or when it names this host and a pid that is dead here — or this very pid (a restarted
  container is pid 1 again): a restarted instance takes over at once instead of waiting for its old lease to run
  out, and a standby on the same host takes over from a killed leader at its next check. ``still_held`` reads the
  row in the caller's transaction: SQLite's write lock (``BEGIN IMMEDIATE``) means nobody can take it between
  that read and the commit.

The fence is what makes a tick safe: the writer lock of ``storage.engine`` serialises units of work, so a tick
that checks ``still_held`` inside its own transaction either commits while it still leads, or rolls back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from storage.tables import scheduler_lock

log = logging.getLogger("loandesk.leader")
LEADER_CLASS = 0x4C444C  # "LDL": key1 of the leader lock (the writer lock of storage.engine uses "LDK")
LEASE_NAME = "scheduler"
HOST = socket.gethostname()
# TCP keepalives of the leader's session, so the server notices a leader whose host vanished (no FIN): idle 5 s,
# then 3 probes 2 s apart.
KEEPALIVE = ("SET tcp_keepalives_idle = 5", "SET tcp_keepalives_interval = 2", "SET tcp_keepalives_count = 3")


class LostLease(RuntimeError):
    """This process no longer leads: the unit of work that found out must not commit."""


_LIVE: set[str] = set()  # holders of leases alive in this process (tests run several instances in one process)


def holder_id() -> str:
    """``host:pid:nonce`` — who holds a lease row, readable by an operator and by a restarted instance."""
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def gone(holder: str, me: str) -> bool:
    """The row's holder is a dead process on this host, or an earlier life of this process id."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return holder != me and holder not in _LIVE
    return not pid_alive(pid)


class Lease(Protocol):
    holder: str

    def acquire(self) -> bool:
        """Take the lease, or confirm it is still ours; False while another process holds it."""
        ...

    def still_held(self, conn: Connection) -> bool:
        """Inside the caller's transaction: does this process hold the lease right now?"""
        ...

    def release(self) -> None:
        """Let go (a standby takes over at its next try)."""
        ...


class AdvisoryLease:
    """PostgreSQL: a session advisory lock on a connection of its own."""

    def __init__(self, engine: Engine, holder: str | None = None) -> None:
        self.engine = engine
        self.holder = holder or holder_id()
        self._conn: Connection | None = None
        self._pid: int | None = None  # the backend holding our lock
        self._mutex = threading.Lock()

    def acquire(self) -> bool:
        with self._mutex:
            try:
                if self._pid is not None and self._conn is not None:
                    self._conn.execute(text("SELECT 1"))  # the session (and so the lock) is alive
                    return True
                conn = self._connect()
                taken = conn.execute(text("SELECT pg_try_advisory_lock(:cls, hashtext(current_schema()))"),
                                     {"cls": LEADER_CLASS}).scalar_one()
                if taken:
                    self._pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
                return bool(taken)
            except SQLAlchemyError as exc:
                log.warning("leader lock: database unreachable (%s); not leading", type(exc).__name__)
                self._drop()
                return False

    def _connect(self) -> Connection:
        if self._conn is None:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            for statement in KEEPALIVE:
                conn.execute(text(statement))
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        conn, self._conn, self._pid = self._conn, None, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except SQLAlchemyError:
                pass

    def still_held(self, conn: Connection) -> bool:
        pid = self._pid
        if pid is None:
            return False
        q = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :cls "
                 "AND objid = (hashtext(current_schema()))::oid AND objsubid = 2 AND pid = :pid AND granted")
        return bool(conn.execute(q, {"cls": LEADER_CLASS, "pid": pid}).scalar_one())

    def release(self) -> None:
        with self._mutex:
            if self._conn is not None and self._pid is not None:
                with contextlib.suppress(SQLAlchemyError):
                    self._conn.execute(text("SELECT pg_advisory_unlock(:cls, hashtext(current_schema()))"),
                                       {"cls": LEADER_CLASS})
            if self._conn is not None:
                with contextlib.suppress(SQLAlchemyError):
                    self._conn.close()
            self._conn, self._pid = None, None


class RowLease:
    """SQLite (or any database): the lock row with a wall-clock expiry and a holder that names host and pid."""

    def __init__(self, engine: Engine, ttl: float = 10.0, holder: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.ttl = timedelta(seconds=ttl)
        self.holder = holder or holder_id()
        self.clock = clock
        self._renewed: float | None = None  # time.monotonic() of the last successful take
        _LIVE.add(self.holder)

    def acquire(self) -> bool:
        # Nobody may take a lease before it expires (this process is alive), so within a third of the ttl of the
        # last renewal it is still ours: SQLite's one write lock is not asked for every second.
        if self._renewed is not None and time.monotonic() - self._renewed < self.ttl.total_seconds() / 3:
            return True
        try:
            with self.engine.begin() as conn:
                held = self.take(conn)
        except SQLAlchemyError as exc:  # the write lock busy beyond the timeout (a long tick), or the file gone
            valid = self.standing()
            log.warning("leader lock: cannot renew (%s)%s", type(exc).__name__,
                        "; still ours until it expires" if valid else "")
            return valid
        self._renewed = time.monotonic() if held else None
        return held

    def standing(self) -> bool:
        """Whether what this process wrote last still stands (with a margin before it expires): a long tick that
        keeps the lease from being renewed must not make the leader step down."""
        return self._renewed is not None and time.monotonic() - self._renewed < self.ttl.total_seconds() * 0.9

    def take(self, conn: Connection) -> bool:
        now = self.clock()
        row = conn.execute(select(scheduler_lock).where(scheduler_lock.c.name == LEASE_NAME)).mappings().first()
        if row is None:
            conn.execute(insert(scheduler_lock).values(name=LEASE_NAME, holder=self.holder,
                                                       expires_at=now + self.ttl))
            return True
        if row["holder"] != self.holder and row["expires_at"] > now and not gone(row["holder"], self.holder):
            return False
        if row["holder"] != self.holder:
            log.info("leader lock taken over from %s", row["holder"])
        conn.execute(update(scheduler_lock).where(scheduler_lock.c.name == LEASE_NAME)
                     .values(holder=self.holder, expires_at=now + self.ttl))
        return True

    def still_held(self, conn: Connection) -> bool:
        holder = conn.execute(select(scheduler_lock.c.holder)
                              .where(scheduler_lock.c.name == LEASE_NAME)).scalar_one_or_none()
        return holder == self.holder

    def release(self) -> None:
        _LIVE.discard(self.holder)
        self._renewed = None
        try:
            with self.engine.begin() as conn:
                conn.execute(update(scheduler_lock).where(scheduler_lock.c.name == LEASE_NAME,
                                                          scheduler_lock.c.holder == self.holder)
                             .values(expires_at=self.clock()))
        except SQLAlchemyError:
            pass


def lease_for(engine: Engine, ttl: float = 10.0) -> Lease:
    """The database's own mechanism: an advisory lock on PostgreSQL, the lock row elsewhere."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLease(engine)
    return RowLease(engine, ttl)
