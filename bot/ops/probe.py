"""What the database says about the desk right now, for ``/healthz`` and ``/metrics`` — cheap, cached, off the loop.

One ``DbProbe.read()`` runs a few indexed queries on a connection of its own (no unit of work: on PostgreSQL
it never waits for the writer lock of a tick): active positions per LTV band from the sweep index
(``domain.sweepindex.State``: below the warning level, warned, margin-called, judged directly), the outbox
backlog (events not yet expanded into deliveries, plus deliveries pending; held ones, waiting for a blocked chat,
are counted apart) and the age of the oldest pending delivery. A failure is an answer too: ``up=False``. Results
are reused for ``CACHE_SECONDS`` so that scrapes and health checks cannot pile up on the database.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from domain.sweepindex import State
from storage.tables import deliveries, outbox, sweep_index

log = logging.getLogger("loandesk.probe")
CACHE_SECONDS = 2.0
BANDS = {State.QUIET: "below_warning", State.WARNED: "warning", State.CALLED: "margin_call", State.DIRECT: "direct"}


@dataclass(frozen=True)
class DbState:
    up: bool
    latency_seconds: float = 0.0
    bands: dict[str, int] = field(default_factory=dict)
    undispatched: int = 0  # outbox events not yet expanded into deliveries
    pending: int = 0  # deliveries waiting to be sent
    held: int = 0  # critical deliveries waiting for a chat that refuses the bot to come back (not a backlog)
    oldest_pending_seconds: float = 0.0
    error: str = ""

    @property
    def backlog(self) -> int:
        return self.undispatched + self.pending


class DbProbe:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cached: tuple[float, DbState] | None = None
        self._mutex = threading.Lock()

    def read(self) -> DbState:
        with self._mutex:
            if self._cached is not None and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            state = self._query()
            self._cached = (time.monotonic(), state)
            return state

    def _query(self) -> DbState:
        started = time.perf_counter()
        try:
            with self.engine.connect() as conn:
                bands = {name: 0 for name in BANDS.values()}
                for state, n in conn.execute(select(sweep_index.c.state, func.count()).group_by(sweep_index.c.state)):
                    bands[BANDS.get(State(state), str(state))] = int(n)
                undispatched = conn.execute(select(func.count()).select_from(outbox)
                                            .where(outbox.c.sent_at.is_(None))).scalar_one()
                pending, oldest = conn.execute(
                    select(func.count(), func.min(outbox.c.created_at))
                    .select_from(deliveries.join(outbox, outbox.c.id == deliveries.c.outbox_id))
                    .where(deliveries.c.status == "pending")).one()
                held = conn.execute(select(func.count()).select_from(deliveries)
                                    .where(deliveries.c.status == "held")).scalar_one()
                conn.rollback()
        except SQLAlchemyError as exc:
            log.warning("database probe failed: %s", type(exc).__name__)
            return DbState(up=False, latency_seconds=time.perf_counter() - started, error=type(exc).__name__)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        return DbState(True, time.perf_counter() - started, bands, int(undispatched), int(pending), int(held),
                       max(0.0, age))
