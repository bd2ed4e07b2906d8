"""``/healthz`` and ``/metrics`` on ``LOANDESK_HTTP_ADDRESS``: a small tornado server in the bot's event loop.

``/healthz`` is liveness and readiness in one JSON answer (HTTP 200, or 503 when the database cannot be reached —
the one thing without which this instance can do nothing, not even answer a chat)::

    {"status": "ok" | "degraded" | "down", "instance": "host:pid:nonce", "leader": true, "mode": "polling",
     "receiving": true, "database": {"up": true, "latency_ms": 1.2},
     "prices": {"fresh": true, "max_age_seconds": 60, "age_seconds": {"BTC": 0.4, "ETH": 0.4}},
     "outbox": {"backlog": 0, "held": 0, "oldest_pending_seconds": 0.0}, "uptime_seconds": 12.3}

``degraded``: the leader's prices are older than the guard's ``price_max_age_seconds`` (nothing liquidates), or the
oldest pending push waits longer than ``BACKLOG_SECONDS``. A standby reports ``prices`` as ``null`` (it does not
poll). Both endpoints read the database off the event loop (``bot.ops.probe``, cached for 2 s).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tornado.httpserver
import tornado.web

from bot.ops.metrics import Metrics
from bot.ops.probe import DbProbe

BACKLOG_SECONDS = 120.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Instance:
    """What the health answer needs to know about this process, as callables (read at request time)."""

    holder: str
    mode: str  # polling | webhook
    leading: Callable[[], bool]
    receiving: Callable[[], bool]  # polling Telegram (leader) or serving the webhook
    price_ages: Callable[[], dict[str, float]]
    max_price_age: float
    started: float


def report(instance: Instance, probe: DbProbe) -> tuple[int, dict[str, Any]]:
    """The health answer and its HTTP status (blocking: call it off the event loop)."""
    db = probe.read()
    leading = instance.leading()
    prices: dict[str, Any] | None = None
    problems = []
    if leading:
        ages = instance.price_ages()
        fresh = bool(ages) and max(ages.values()) <= instance.max_price_age
        prices = {"fresh": fresh, "max_age_seconds": instance.max_price_age,
                  "age_seconds": {a: round(s, 3) for a, s in sorted(ages.items())}}
        if not fresh:
            problems.append("prices")
    if db.up and db.oldest_pending_seconds > BACKLOG_SECONDS:
        problems.append("outbox")
    status = "down" if not db.up else "degraded" if problems else "ok"
    body = {
        "status": status, "instance": instance.holder, "leader": leading, "mode": instance.mode,
        "receiving": instance.receiving(),
        "database": {"up": db.up, "latency_ms": round(db.latency_seconds * 1000, 2), **({"error": db.error}
                                                                                        if db.error else {})},
        "prices": prices,
        "outbox": {"backlog": db.backlog, "held": db.held, "oldest_pending_seconds": round(db.oldest_pending_seconds,
                                                                                            3)},
        "problems": problems, "uptime_seconds": round(time.monotonic() - instance.started, 3),
    }
    return (200 if db.up else 503), body


class _Health(tornado.web.RequestHandler):
    def initialize(self, instance: Instance, probe: DbProbe) -> None:
        self.instance = instance
        self.probe = probe

    async def get(self) -> None:
        status, body = await asyncio.to_thread(report, self.instance, self.probe)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))


class _Metrics(tornado.web.RequestHandler):
    def initialize(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def get(self) -> None:
        body = await asyncio.to_thread(self.metrics.render)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(body)


class OpsServer:
    """``/healthz`` and ``/metrics`` on ``host:port``; ``start()`` and ``stop()`` in the running loop."""

    def __init__(self, host: str, port: int, instance: Instance, probe: DbProbe, metrics: Metrics) -> None:
        self.host = host
        self.port = port
        self.app = tornado.web.Application([
            (r"/healthz", _Health, {"instance": instance, "probe": probe}),
            (r"/metrics", _Metrics, {"metrics": metrics}),
        ], log_function=lambda _handler: None)
        self.server: tornado.httpserver.HTTPServer | None = None

    def start(self) -> None:
        self.server = self.app.listen(self.port, self.host, xheaders=False)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            await self.server.close_all_connections()
            self.server = None
