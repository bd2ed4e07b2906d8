"""Prices the scheduler may act on: the guard of SPEC §5 and the feed that polls the exchange.

``PriceGuard`` is pure logic (no HTTP, time passed in). Every poll's prices are the *newest* prices: warnings
and margin calls may use them. A price becomes *confirmed* — usable for liquidation — only when it is
fresh (at most ``MAX_AGE`` old) and either within ``JUMP`` (15%) of the last confirmed price, or seen again:
on the next poll (still within ``JUMP`` of the suspicious price) or by the second source at the same time
(within ``AGREE``). A one-poll wick is therefore newest-but-unconfirmed and can never liquidate.

``PriceFeed`` fetches the primary ticker (and the optional second source, same Binance JSON), feeds the
guard and keeps track of staleness: ``stale_since`` is set once no poll has succeeded for ``MAX_AGE``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from bot.prices import QUOTE, PriceSource, PricesUnavailable

log = logging.getLogger("loandesk.feed")
MAX_AGE = timedelta(seconds=60)
JUMP = Decimal("0.15")
AGREE = Decimal("0.02")
ONE = Decimal(1)


@dataclass
class Accepted:
    price: Decimal
    at: datetime


@dataclass(frozen=True)
class Verdict:
    """One poll judged: ``newest`` for warnings and margin calls, ``confirmed`` for liquidation."""

    at: datetime
    newest: dict[str, Decimal]
    confirmed: dict[str, Decimal]
    held: dict[str, Decimal] = field(default_factory=dict)  # big moves waiting to be seen again


def moved(a: Decimal, b: Decimal) -> Decimal:
    """The relative move from ``b`` to ``a``."""
    return abs(a - b) / b


class PriceGuard:
    def __init__(self, max_age: timedelta = MAX_AGE, jump: Decimal = JUMP, agree: Decimal = AGREE) -> None:
        self.max_age = max_age
        self.jump = jump
        self.agree = agree
        self.accepted: dict[str, Accepted] = {}  # the last confirmed price of every asset
        self.suspect: dict[str, Decimal] = {}  # a big move seen once
        self.newest: dict[str, Accepted] = {}

    def seed(self, ticks: Mapping[str, tuple[Decimal, datetime]]) -> None:
        """Start from stored prices (after a restart a jump is still measured against the last one)."""
        for asset, (price, at) in ticks.items():
            self.accepted.setdefault(asset, Accepted(price, at))

    def observe(self, quotes: Mapping[str, Decimal], at: datetime,
                second: Mapping[str, Decimal] | None = None) -> Verdict:
        """Judge the prices of one poll taken at ``at``."""
        held: dict[str, Decimal] = {}
        for asset, price in quotes.items():
            if asset == QUOTE or price <= 0:
                continue
            self.newest[asset] = Accepted(price, at)
            last = self.accepted.get(asset)
            other = (second or {}).get(asset)
            suspect = self.suspect.pop(asset, None)
            if (last is None or moved(price, last.price) <= self.jump
                    or (suspect is not None and moved(price, suspect) <= self.jump)
                    or (other is not None and other > 0 and moved(price, other) <= self.agree)):
                self.accepted[asset] = Accepted(price, at)
            else:
                self.suspect[asset] = price
                held[asset] = price
        return Verdict(at, self.latest(at), self.confirmed(at), held)

    def latest(self, now: datetime, max_age: timedelta | None = None) -> dict[str, Decimal]:
        """The newest polled price of every asset (not older than ``max_age``): for warnings and margin calls."""
        return {QUOTE: ONE, **{a: q.price for a, q in self.newest.items()
                               if max_age is None or now - q.at <= max_age}}

    def confirmed(self, now: datetime) -> dict[str, Decimal]:
        """Confirmed prices not older than ``max_age`` at ``now``: the only ones that may liquidate."""
        fresh = {a: q.price for a, q in self.accepted.items() if now - q.at <= self.max_age}
        return {QUOTE: ONE, **fresh}


class PriceFeed:
    """Polls the exchange (and the optional second source) into a ``PriceGuard``; tracks staleness."""

    def __init__(self, primary: PriceSource, clock: Callable[[], datetime], second: PriceSource | None = None,
                 guard: PriceGuard | None = None, retries: int = 1) -> None:
        self.primary = primary
        self.retries = retries
        self.second = second
        self.clock = clock
        self.guard = guard or PriceGuard()
        self.last_success: datetime | None = None
        self.started = clock()
        self.stale_since: datetime | None = None

    async def poll(self) -> Verdict | None:
        """One poll: a verdict, or None when the exchange gave nothing usable."""
        quotes: dict[str, Decimal] | None = None
        for attempt in range(1 + self.retries):
            try:
                quotes = await self.primary.prices()
                break
            except PricesUnavailable as exc:
                log.warning("price poll failed (attempt %s): %s", attempt + 1, exc)
        if quotes is None:
            return None
        second = None
        if self.second is not None:
            try:
                second = await self.second.prices()
            except PricesUnavailable as exc:
                log.info("second price source failed: %s", exc)
        now = self.clock()
        self.last_success = now
        return self.guard.observe(quotes, now, second)

    def went_stale(self, now: datetime) -> bool:
        """True once, when no poll has succeeded for longer than ``MAX_AGE``."""
        since = self.last_success or self.started
        if self.stale_since is None and now - since > self.guard.max_age:
            self.stale_since = now
            return True
        return False

    def recovered(self) -> bool:
        """True once, on the first success after the feed went stale."""
        if self.stale_since is not None and self.last_success is not None and self.last_success > self.stale_since:
            self.stale_since = None
            return True
        return False
