"""Incidents: an uncaught error in a chat handler or a scheduler job gets an id, one log line, and operators hear.

``Incidents.report(where, exc)`` logs the error once (with its traceback folded into the line, see
``bot.ops.logs``) under a short id such as ``E7K2QF``, and sends the operators one short alert naming the id, so
the log line is one ``grep`` away. Alerts are rate limited per process: at most one per ``interval`` seconds;
the errors in between are counted and the next alert says how many there were. Sending is direct (not through
the outbox): an incident may well be the database failing, and the alert must not depend on it. An alert that
cannot be sent is only logged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Collection

from bot.render.incidents import operator_alert

log = logging.getLogger("loandesk.incident")
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read over the phone
SendText = Callable[[int, str], Awaitable[object]]


def new_id() -> str:
    return "E" + "".join(secrets.choice(ALPHABET) for _ in range(5))


class Incidents:
    def __init__(self, operators: Collection[int], send: SendText | None = None, interval: float = 60.0,
                 instance: str = "") -> None:
        self.operators = sorted(operators)
        self.send = send
        self.interval = interval
        self.instance = instance
        self.count = 0  # errors reported by this process (``loandesk_errors_total``)
        self.alerts = 0  # alerts sent
        self._last_alert: float | None = None
        self._held = 0  # errors since the last alert that were not alerted
        self._tasks: set[asyncio.Task[None]] = set()

    def report(self, where: str, exc: BaseException | None) -> str:
        """Log the error under a new id and alert the operators (rate limited); returns the id."""
        error_id = new_id()
        self.count += 1
        name = type(exc).__name__ if exc is not None else "error"
        log.error("%s failed: %s", where, name, exc_info=exc, extra={"error_id": error_id})
        now = time.monotonic()
        if self._last_alert is not None and now - self._last_alert < self.interval:
            self._held += 1
            return error_id
        text = operator_alert(error_id, where, name, self._held, self.instance)
        self._last_alert, self._held = now, 0
        self._alert(text)
        return error_id

    def _alert(self, text: str) -> None:
        if self.send is None or not self.operators:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # reported from a worker thread: nothing to send with
            return
        task = loop.create_task(self._send_all(text))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_all(self, text: str) -> None:
        assert self.send is not None
        for operator in self.operators:
            try:
                await self.send(operator, text)
                self.alerts += 1
            except Exception as exc:  # an alert that fails must not raise a new incident
                log.warning("could not alert operator %s: %s", operator, type(exc).__name__)
