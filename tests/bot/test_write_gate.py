"""The writers' turn (``bot.service.store.WriteGate``) and the crash tick in parts: a chat's write waiting while a
crash tick liquidates goes through between two of its parts, not after the whole wave."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.orm import Session

from bot.monitor.scheduler import Monitor, build_monitor
from bot.render.common import Reply
from bot.service.store import Busy, StateStore, WriteGate
from bot.settings import Settings
from bot.telegram.handlers import busy_database
from domain.desk import Desk
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import load_catalog
from storage.tables import outbox, positions

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def writes(gate: WriteGate, done: list[object], what: object) -> None:
    with gate.turn():
        done.append(what)


def queued(gate: WriteGate, n: int) -> bool:
    return len(gate._queue) == n


def test_writers_take_turns_in_the_order_they_asked() -> None:
    gate = WriteGate()
    order: list[object] = []
    assert gate.acquire()
    threads = []
    for n in range(5):
        t = threading.Thread(target=writes, args=(gate, order, n))
        t.start()
        wait_until(functools.partial(queued, gate, n + 1))  # n+1 waiting, in this order
        threads.append(t)
    assert order == []  # nobody writes while the turn is held
    gate.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]
    assert gate.acquire(0) and gate.acquire(0)  # free again, and re-entrant for its holder
    gate.release()
    gate.release()


def test_a_writer_that_waits_too_long_is_told_busy_and_the_next_one_still_gets_its_turn() -> None:
    gate = WriteGate()
    gate.acquire()
    told: list[BaseException] = []
    got: list[object] = []

    def impatient() -> None:
        try:
            with gate.turn(timeout=0.05):
                got.append("impatient")
        except Busy as exc:
            told.append(exc)

    first = threading.Thread(target=impatient)
    first.start()
    first.join(5)
    second = threading.Thread(target=writes, args=(gate, got, "patient"))
    second.start()
    wait_until(lambda: len(gate._queue) == 1)
    gate.release()
    second.join(5)
    assert got == ["patient"]
    assert len(told) == 1 and busy_database(told[0])  # the chat answers "the desk is busy … nothing was changed"


async def _nothing_sent(chat_id: int, reply: Reply) -> int:
    return 1


def crash_desk(tmp_path: Path, n: int, part_seconds: float) -> tuple[StateStore, Monitor]:
    """``n`` loans at 75% LTV (a 20% fall to BTC 40,000 takes each to 93.75%: liquidated, breaker off) and a leading
    monitor whose tick acts for ``part_seconds`` a part."""
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    catalog = load_catalog().with_overrides({"desk": {"breaker_share": "1", "breaker_asset_share": "1"}})
    store = StateStore(url)
    prices = {"USDT": D(1), "BTC": D(50000)}
    with store.unit_of_work() as uow:
        desk = Desk(catalog, uow.domain_book)
        for i in range(n):
            desk.deposit(f"b{i}", "BTC", D("0.8"), T0)
            borrow(desk, BorrowRequest(f"b{i}", "USDT", D(30000), {"BTC": D("0.8")}), prices, T0)
        uow.commit()
    monitor = build_monitor(Settings(TELEGRAM_BOT_TOKEN="1:x", LOANDESK_DATABASE_URL=url), catalog, store,
                            _nothing_sent, lambda: T0 + timedelta(hours=1))
    monitor.part_seconds = part_seconds
    assert monitor.leader()
    return store, monitor


FALLEN = {"USDT": D(1), "BTC": D(40000)}


def count(db: Session, where: ColumnElement[bool], table: Table = positions) -> int:
    return int(db.execute(select(func.count()).select_from(table).where(where)).scalar_one())


def test_a_write_during_a_crash_tick_goes_in_between_two_parts(tmp_path: Path) -> None:
    n = 120
    store, monitor = crash_desk(tmp_path, n, 0.02)  # a few positions a part
    now = T0 + timedelta(hours=1)

    def liquidated() -> int:
        with store.unit_of_work(read_only=True) as uow:
            return count(uow.session, positions.c.status == "liquidated")

    crash = threading.Thread(target=monitor.tick, args=(FALLEN, FALLEN, now, ("BTC",)))
    crash.start()
    wait_until(lambda: liquidated() > 0)
    seen: dict[str, int] = {}
    with store.unit_of_work() as uow:  # a borrower's write, asked for while the crash tick runs
        seen["liquidated"] = count(uow.session, positions.c.status == "liquidated")
        seen["told"] = count(uow.session, outbox.c.type == "liquidated", outbox)
        Desk(monitor.catalog, uow.domain_book).deposit("late", "BTC", D(1), now)
        uow.commit()
    crash.join(60)
    try:
        assert 0 < seen["liquidated"] < n  # it went in while the wave was being liquidated …
        assert seen["told"] == seen["liquidated"]  # … and every part had its liquidations told in the same commit
        assert liquidated() == n  # the wave finished after it
    finally:
        store.close()


def test_a_tick_in_parts_commits_every_part(tmp_path: Path) -> None:
    """The scheduler's tick reports every part's events, as one tick at once would."""
    store, monitor = crash_desk(tmp_path, 5, 1e-9)  # one position a part
    try:
        events = monitor.tick(FALLEN, FALLEN, T0 + timedelta(hours=1), ("BTC",))
        assert [(e.type, e.position) for e in events] == [("liquidated", i) for i in range(1, 6)]
        with store.unit_of_work(read_only=True) as uow:
            rows = uow.session.execute(select(outbox.c.type, outbox.c.position).where(
                outbox.c.type == "liquidated").order_by(outbox.c.id)).all()
        assert [tuple(r) for r in rows] == [("liquidated", i) for i in range(1, 6)]
    finally:
        store.close()
