"""The price feed: the exchange (and an optional second source) polled into the domain's one ``PriceGuard``.

The guard (``domain.prices``) is built from the markets file's ``[desk]`` settings, the same rules
``loandesk simulate`` uses. Each poll fetches the primary ticker and the second source *concurrently*; a failing
primary is retried once. The feed also tracks, for the operators: the whole feed going stale (no successful poll
for ``price_max_age_seconds``) and recovering, and per asset a price that cannot be used (missing, zero,
negative, or implausibly far from the last accepted one) — ``troubles``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal

from bot.monitor.prices import PriceSource, PricesUnavailable
from domain.prices import GuardRules, PriceGuard, Verdict

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

    async def poll(self) -> Verdict | None:
        """One poll: a verdict, or None when the exchange gave nothing usable."""
        primary, second = await asyncio.gather(self._primary(), self._second())
        if primary is None:
            return None
        now = self.clock()
        self.last_success = now
        return self.guard.observe_all(primary, now, second)

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
