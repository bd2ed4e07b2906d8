"""The outbox as the notifier sees it: what is waiting (most urgent first), and marking rows sent or failed.

Rows are written by ``SqlBook.emit`` in the same transaction as the state change they report; a row is
pending until ``sent_at`` is set, and a failed row waits until its ``next_attempt_at``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, or_, select, update
from sqlalchemy.orm import Session

from domain.events import Event
from storage.book import Clock, utc_now
from storage.mapping import RowLike, event_from
from storage.tables import outbox


@dataclass(frozen=True)
class OutboxMessage:
    """One stored event with its delivery bookkeeping."""

    id: int
    event: Event
    urgency: int
    created_at: datetime
    attempts: int
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None


class Outbox:
    def __init__(self, session: Session, clock: Clock = utc_now) -> None:
        self.session = session
        self.clock = clock

    @property
    def db(self) -> Connection:
        return self.session.connection()

    def pending(self, limit: int = 100, now: datetime | None = None) -> list[OutboxMessage]:
        """Unsent rows due at ``now`` (default: the clock), by urgency, then in the order they were written."""
        now = self.clock() if now is None else now
        query = (select(outbox).where(outbox.c.sent_at.is_(None),
                                      or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now))
                 .order_by(outbox.c.urgency, outbox.c.id).limit(limit))
        return [_message(r) for r in self.db.execute(query).mappings()]

    def pending_count(self) -> int:
        return int(self.db.execute(select(func.count()).select_from(outbox)
                                   .where(outbox.c.sent_at.is_(None))).scalar_one())

    def mark_sent(self, ids: Iterable[int], at: datetime | None = None) -> None:
        """Delivered: never offered again. Rows already marked keep their first ``sent_at``."""
        ids = sorted(set(ids))
        if ids:
            self.db.execute(update(outbox).where(outbox.c.id.in_(ids), outbox.c.sent_at.is_(None))
                            .values(sent_at=self.clock() if at is None else at))

    def mark_failed(self, id: int, retry_at: datetime) -> None:
        """One more failed attempt; the row is offered again from ``retry_at``."""
        self.db.execute(update(outbox).where(outbox.c.id == id)
                        .values(attempts=outbox.c.attempts + 1, next_attempt_at=retry_at))

    def get(self, id: int) -> OutboxMessage | None:
        r = self.db.execute(select(outbox).where(outbox.c.id == id)).mappings().one_or_none()
        return None if r is None else _message(r)


def _message(r: RowLike) -> OutboxMessage:
    return OutboxMessage(r["id"], event_from(r), r["urgency"], r["created_at"], r["attempts"], r["sent_at"],
                         r["next_attempt_at"])
