"""The notifier's view of the outbox: most urgent first, then oldest; delivered rows never come back; failed
rows wait for their retry time; event data reads back as JSON (datetimes as ISO text)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine

from domain.events import URGENCY, Event
from storage import UnitOfWork

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CLOCK = T0 + timedelta(minutes=5)


def emit_all(engine: Engine, *events: Event) -> None:
    with UnitOfWork(engine, clock=lambda: CLOCK) as uow:
        for e in events:
            uow.book.emit(e)
        uow.commit()


def test_pending_is_by_urgency_then_by_order_written(db_engine: Engine) -> None:
    emit_all(db_engine,
             Event(T0, "expiry_reminder", "a", 1), Event(T0, "warning", "b", 2), Event(T0, "liquidated", "c", 3),
             Event(T0, "margin_call", "d", 4), Event(T0, "liquidated", "e", 5), Event(T0, "borrowed", "f", 6))
    with UnitOfWork(db_engine) as uow:
        pending = uow.outbox.pending(10, now=CLOCK)
        assert [(m.event.type, m.event.account) for m in pending] == [
            ("liquidated", "c"), ("liquidated", "e"), ("margin_call", "d"), ("warning", "b"),
            ("expiry_reminder", "a"), ("borrowed", "f")]
        assert [m.urgency for m in pending] == [0, 0, 1, 3, 5, 9] == [URGENCY.get(m.event.type, 9) for m in pending]
        assert all(m.created_at == CLOCK and m.attempts == 0 and m.sent_at is None for m in pending)
        assert [m.event.type for m in uow.outbox.pending(2, now=CLOCK)] == ["liquidated", "liquidated"]
        assert uow.outbox.pending_count() == 6


def test_sent_rows_are_never_offered_again(db_engine: Engine) -> None:
    emit_all(db_engine, *(Event(T0, "warning", "a", i) for i in range(4)))
    with UnitOfWork(db_engine) as uow:
        first, second, *_ = uow.outbox.pending(10, now=CLOCK)
        uow.outbox.mark_sent([first.id, second.id], at=CLOCK + timedelta(seconds=1))
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        uow.outbox.mark_sent([first.id], at=CLOCK + timedelta(hours=1))  # a late duplicate keeps the first time
        uow.outbox.mark_sent([])
        assert [m.event.position for m in uow.outbox.pending(10, now=CLOCK)] == [2, 3]
        sent = uow.outbox.get(first.id)
        assert sent is not None and sent.sent_at == CLOCK + timedelta(seconds=1)
        uow.commit()


def test_a_failed_row_waits_for_its_retry_time(db_engine: Engine) -> None:
    emit_all(db_engine, Event(T0, "margin_call", "a", 1), Event(T0, "warning", "b", 2))
    retry = CLOCK + timedelta(seconds=30)
    with UnitOfWork(db_engine) as uow:
        call = uow.outbox.pending(10, now=CLOCK)[0]
        uow.outbox.mark_failed(call.id, retry)
        uow.outbox.mark_failed(call.id, retry)
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        assert [m.event.type for m in uow.outbox.pending(10, now=retry - timedelta(seconds=1))] == ["warning"]
        (due, _) = uow.outbox.pending(10, now=retry)
        assert due.id == call.id and due.attempts == 2 and due.next_attempt_at == retry


def test_marks_roll_back_with_their_unit_of_work(db_engine: Engine) -> None:
    emit_all(db_engine, Event(T0, "warning", "a", 1))
    with UnitOfWork(db_engine) as uow:
        (m,) = uow.outbox.pending(10, now=CLOCK)
        uow.outbox.mark_sent([m.id])
    with UnitOfWork(db_engine) as uow:
        assert [x.id for x in uow.outbox.pending(10, now=CLOCK)] == [m.id]


def test_event_data_reads_back_as_json(db_engine: Engine) -> None:
    data = {"asset": "USDT", "apr": "0.09", "effective_from": T0 + timedelta(hours=1), "nested": {"BTC": "0.5"},
            "count": 3, "flag": True, "none": None, "stray": Decimal("0.00000001"), "list": ["x", 1]}
    emit_all(db_engine, Event(T0, "rate_changed", None, None, data))
    with UnitOfWork(db_engine) as uow:
        (m,) = uow.outbox.pending(10, now=CLOCK)
        assert m.event == Event(T0, "rate_changed", None, None, {
            "asset": "USDT", "apr": "0.09", "effective_from": "2026-01-01T01:00:00+00:00", "nested": {"BTC": "0.5"},
            "count": 3, "flag": True, "none": None, "stray": "0.00000001", "list": ["x", 1]})
