"""The price feed: the exchange's stream (or, while it is down, its REST ticker) and an optional second source,
all into the domain's one ``PriceGuard``.

The guard (``domain.prices``) is built from the markets file's ``[desk]`` settings, the same rules
``loandesk simulate`` uses. With a :class:`~bot.monitor.stream.PriceStream` attached (``attach``), every stream
message is one observation (``observe_stream``) and the REST ticker is the fallback: a poll asks the exchange's
REST ticker only while the stream is down (or for an asset the stream has said nothing about for half of
``price_max_age_seconds``), and asks the second source always. Each poll fetches the primary ticker and the
second source *concurrently*; a failing primary is retried once. The feed also tracks, for the operators: the
whole feed going stale (no price, streamed or polled, for ``price_max_age_seconds``) and recovering, and per
asset a price that cannot be used (missing, zero, negative, or implausibly far from the last accepted one) —
``troubles``.

:class:`Coalescer` runs the sweep for every new price without queueing one sweep per price: a request made while
a sweep runs is served by one more sweep when it ends, which reads the newest prices then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from decimal import Decimal

from bot.monitor.prices import QUOTE, PriceSource, PricesUnavailable
from bot.monitor.stream import PriceStream
from domain.prices import ACCEPTED, HELD, GuardRules, PriceGuard, Verdict

log = logging.getLogger("loandesk.feed")


class PriceFeed:
    """Polls the exchange (and the optional second source) into a ``PriceGuard``; tracks staleness."""

    def __init__(self, primary: PriceSource, clock: Callable[[], datetime], rules: GuardRules,
                 second: PriceSource | None = None, assets: Iterable[str] = (), retries: int = 1) -> None:
        self.primary = primary
        self.second = second
        self.clock = clock
        self.retries = retries
        self.assets = sorted(set(assets))
        self.guard = PriceGuard(rules, second_source=second is not None)
        self.last_success: datetime | None = None
        self.started = clock()
        self.stale_since: datetime | None = None
        self.stream: PriceStream | None = None

    def attach(self, stream: PriceStream) -> None:
        """Take prices from ``stream`` too; the REST ticker is then polled only while the stream is down."""
        self.stream = stream

    @property
    def streaming(self) -> bool:
        """True while the attached stream is connected (the REST ticker is then only a fallback)."""
        return self.stream is not None and self.stream.connected

    def observe_stream(self, asset: str, price: Decimal, at: datetime) -> bool:
        """One stream message into the guard; True when it is worth a sweep: a new price, or a move accepted
        (a held move persisting for ``price_confirm_seconds``)."""
        if asset == QUOTE:
            return False
        before = self.guard.newest_seen.get(asset)
        was_held = asset in self.guard.held
        outcome = self.guard.observe(asset, price, at)
        if outcome not in (ACCEPTED, HELD):
            return False
        self.last_success = at
        return before is None or before.price != price or (was_held and outcome == ACCEPTED)

    async def poll(self) -> Verdict | None:
        """One poll: a verdict, or None when no price (streamed or polled) is fresh.

        While the stream is up, the REST ticker is asked only for the assets the stream has been silent about
        for half of ``max_age`` (a quiet market sends no miniTicker); the second source is always asked.
        """
        quiet = self._quiet_assets() if self.streaming else None
        ask_primary = quiet is None or bool(quiet)
        primary, second = await asyncio.gather(self._primary() if ask_primary else _nothing(), self._second())
        now = self.clock()
        if quiet is not None:
            quotes = {a: p for a, p in (primary or {}).items() if a in quiet}
            verdict = self.guard.observe_all(quotes, now, second)
            if primary is not None:
                self.last_success = now
            if self.last_success is None or now - self.last_success > self.guard.rules.max_age:
                return None
            return verdict
        if primary is None:
            return None
        self.last_success = now
        return self.guard.observe_all(primary, now, second)

    def _quiet_assets(self) -> set[str]:
        now = self.clock()
        limit = self.guard.rules.max_age / 2
        seen = self.guard.newest_seen
        unlisted: frozenset[str] = getattr(self.primary, "missing", frozenset())  # the exchange has no price
        return {a for a in self.assets if a not in unlisted and (a not in seen or now - seen[a].at > limit)}

    async def _primary(self) -> dict[str, Decimal] | None:
        for attempt in range(1 + self.retries):
            try:
                return await self.primary.prices()
            except PricesUnavailable as exc:
                log.warning("price poll failed (attempt %s): %s", attempt + 1, exc)
        return None

    async def _second(self) -> dict[str, Decimal] | None:
        if self.second is None:
            return None
        try:
            return await self.second.prices()
        except PricesUnavailable as exc:
            log.info("second price source failed: %s", exc)
            return None

    def went_stale(self, now: datetime) -> bool:
        """True once, when no poll has succeeded for longer than the guard's ``max_age``."""
        since = self.last_success or self.started
        if self.stale_since is None and now - since > self.guard.rules.max_age:
            self.stale_since = now
            return True
        return False

    def recovered(self) -> bool:
        """True once, on the first success after the feed went stale."""
        if self.stale_since is not None and self.last_success is not None and self.last_success > self.stale_since:
            self.stale_since = None
            return True
        return False

    def troubles(self, now: datetime) -> dict[str, str]:
        """Assets whose price cannot be used right now, and why (see ``PriceGuard.troubles``)."""
        return self.guard.troubles(now, self.assets, self.started)


async def _nothing() -> None:
    return None


class Coalescer:
    """Runs ``work`` for every request, coalesced: requests made while it runs are served together by one more
    run that starts when the current one ends (and so reads whatever is newest then).

    ``request()`` starts a run unless one is going and returns a future that resolves when a run that started
    after the request has ended (with that run's exception, if it failed); ``request(wait=False)`` returns
    nothing and a failure of such a run goes to ``on_error``. ``runs`` and ``requests`` count both.
    """

    def __init__(self, work: Callable[[], Awaitable[None]],
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self._work = work
        self._on_error = on_error
        self._waiting: list[asyncio.Future[None]] = []
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        self.requests = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def request(self, wait: bool = True) -> asyncio.Future[None] | None:
        self.requests += 1
        self._dirty = True
        future: asyncio.Future[None] | None = None
        if wait:
            future = asyncio.get_running_loop().create_future()
            self._waiting.append(future)
        if not self.running:
            self._task = asyncio.create_task(self._run(), name="coalesced-sweep")
        return future

    async def close(self) -> None:
        """Cancel a run in progress and fail the waiting requests."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for future in self._waiting:
            future.cancel()
        self._waiting.clear()

    async def _run(self) -> None:
        while self._dirty:
            self._dirty = False
            served, self._waiting = self._waiting, []
            self.runs += 1
            try:
                await self._work()
            except asyncio.CancelledError:
                for future in served:
                    future.cancel()
                raise
            except Exception as exc:
                for future in served:
                    if not future.done():
                        future.set_exception(exc)
                if not served and self._on_error is not None:
                    self._on_error(exc)
                elif not served:
                    log.error("a coalesced run failed", exc_info=exc)
                continue
            for future in served:
                if not future.done():
                    future.set_result(None)
