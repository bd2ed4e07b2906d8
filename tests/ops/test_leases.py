"""The leader lease on both databases, and the fence: a unit of work of a process that does not lead cannot commit.

PostgreSQL: a session advisory lock on a connection of its own — the server drops it when that session ends (a
``kill -9``'d leader's socket closes; here: ``pg_terminate_backend``). SQLite: the lock row names host and pid, so
a dead pid on this host, or an earlier life of this very pid, holds nothing; a live holder keeps it until the
lease runs out on the wall clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select, text

from bot.monitor.scheduler import build_monitor
from bot.render.common import Reply
from bot.service.store import StateStore
from bot.service.store import UnitOfWork as BotUnitOfWork
from bot.settings import Settings
from domain.markets import load_catalog
from storage.engine import make_engine, migrate
from storage.leases import HOST, AdvisoryLease, LostLease, RowLease, gone, lease_for
from storage.tables import price_ticks, scheduler_lock
from tests.conftest import Postgres


def dead_pid() -> int:
    """The pid of a process that has just exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def put_holder(engine: Engine, holder: str, expires: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(insert(scheduler_lock).values(name="scheduler", holder=holder, expires_at=expires))


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'lease.db'}")
    migrate(engine)
    return engine


def test_a_dead_pid_on_this_host_holds_nothing_so_a_restart_takes_over_at_once(sqlite_engine: Engine) -> None:
    put_holder(sqlite_engine, f"{HOST}:{dead_pid()}:0ld", datetime.now(UTC) + timedelta(hours=1))
    assert RowLease(sqlite_engine).acquire()


def test_an_earlier_life_of_this_pid_holds_nothing(sqlite_engine: Engine) -> None:
    """A restarted container is pid 1 again: a row with our pid but another nonce is a previous life."""
    put_holder(sqlite_engine, f"{HOST}:{os.getpid()}:0ld", datetime.now(UTC) + timedelta(hours=1))
    assert RowLease(sqlite_engine).acquire()


def test_a_live_holder_keeps_the_lease_until_it_runs_out(sqlite_engine: Engine) -> None:
    alive = os.getppid()
    put_holder(sqlite_engine, f"{HOST}:{alive}:live", datetime.now(UTC) + timedelta(seconds=10))
    standby = RowLease(sqlite_engine, ttl=10)
    assert not standby.acquire()
    standby.clock = lambda: datetime.now(UTC) + timedelta(seconds=11)
    assert standby.acquire()


def test_a_holder_on_another_host_is_judged_by_its_expiry_only(sqlite_engine: Engine) -> None:
    put_holder(sqlite_engine, "elsewhere:1:abc", datetime.now(UTC) + timedelta(seconds=10))
    assert not gone("elsewhere:1:abc", "x") and not RowLease(sqlite_engine).acquire()


def test_two_leases_in_one_process_do_not_take_from_each_other(sqlite_engine: Engine) -> None:
    a, b = RowLease(sqlite_engine), RowLease(sqlite_engine)
    assert a.acquire() and not b.acquire()
    with sqlite_engine.begin() as conn:
        assert a.still_held(conn) and not b.still_held(conn)
    a.release()
    assert b.acquire()


def test_on_postgresql_one_session_holds_the_lock_and_its_end_frees_it(postgres: Postgres) -> None:
    schema = postgres.new_schema()
    engine = make_engine(postgres.url, schema=schema)
    try:
        migrate(engine)
        a, b = lease_for(engine), lease_for(engine)
        assert isinstance(a, AdvisoryLease) and isinstance(b, AdvisoryLease)
        assert a.acquire() and not b.acquire() and a.acquire()
        with engine.begin() as conn:
            assert a.still_held(conn) and not b.still_held(conn)
        with postgres.admin.begin() as conn:  # the leader's session ends, as when its process is killed
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": a._pid})
        deadline = time.monotonic() + 10
        while True:  # pg_terminate_backend only signals the backend: it lets go when it has exited
            with engine.begin() as conn:
                if not a.still_held(conn):
                    break
            assert time.monotonic() < deadline, "the terminated session still holds the lock"
            time.sleep(0.02)
        assert b.acquire()
        assert not a.acquire()  # its connection is gone; the lock is b's now
        with engine.begin() as conn:
            assert b.still_held(conn) and not a.still_held(conn)
        b.release()
        assert a.acquire()
        a.release()
    finally:
        engine.dispose()
        postgres.drop_schema(schema)


async def _nothing(chat_id: int, reply: Reply) -> int:
    return 1


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_tick_of_a_process_that_does_not_lead_rolls_back(database: str, tmp_path: Path,
                                                          request: pytest.FixtureRequest) -> None:
    schema = None
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'fence.db'}"
    else:
        postgres: Postgres = request.getfixturevalue("postgres")
        url, schema = postgres.url, postgres.new_schema()
    store = StateStore(url, schema=schema)
    try:
        settings = Settings(TELEGRAM_BOT_TOKEN="1:x", LOANDESK_DATABASE_URL=url)
        catalog = load_catalog(None)
        leader = build_monitor(settings, catalog, store, _nothing, lambda: datetime.now(UTC))
        other = build_monitor(settings, catalog, store, _nothing, lambda: datetime.now(UTC))
        assert leader.leader() and not other.leader()
        prices = {"USDT": Decimal(1), "BTC": Decimal(50000)}
        now = datetime.now(UTC)
        with pytest.raises(LostLease):
            other.tick(prices, prices, now, record=True)
        with store.unit_of_work() as uow:
            assert uow.session.execute(select(func.count()).select_from(price_ticks)).scalar_one() == 0
        leader.tick(prices, prices, now, record=True)
        with store.unit_of_work() as uow:
            assert uow.session.execute(select(func.count()).select_from(price_ticks)).scalar_one() == 1
        leader.lease.release()
        other.lease.release()
    finally:
        store.close()
        if schema is not None:
            request.getfixturevalue("postgres").drop_schema(schema)


def test_an_update_seen_by_two_instances_at_once_is_processed_once(db_engine: Engine) -> None:
    """``bot_seen`` is insert-or-conflict: of many racing units of work exactly one wins each key."""
    keys = [f"m:7:{i}" for i in range(30)]
    won: list[str] = []
    lock = threading.Lock()

    def instance() -> None:
        for key in keys:
            with BotUnitOfWork(db_engine) as uow:
                if uow.bot.mark_seen(key):
                    uow.commit()
                    with lock:
                        won.append(key)

    threads = [threading.Thread(target=instance) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(won) == sorted(keys)


def test_a_long_tick_holding_sqlites_write_lock_does_not_make_the_leader_step_down(sqlite_engine: Engine) -> None:
    """Renewing needs SQLite's one write lock; while a 1,000-position tick holds it past the busy timeout the
    renewal fails — and the lease stays ours, since nobody may take it before it expires."""
    lease = RowLease(sqlite_engine, ttl=60)
    assert lease.acquire()
    assert lease._renewed is not None
    lease._renewed -= 30  # half the ttl ago: this acquire goes to the database
    with sqlite_engine.connect() as busy:
        busy.execute(text("UPDATE scheduler_lock SET holder = holder"))  # BEGIN IMMEDIATE: the write lock, held
        assert lease.acquire()
        lease._renewed -= 30  # and once it would have expired, a failed renewal is no lease
        assert not lease.acquire()
        busy.rollback()
