"""Interest and Earn indices with their rate history, accrued hour by hour from timestamps.

Flexible debt compounds at every full UTC hour: ``index ← index × (1 + APR/8760)`` with the APR in force at
that hour. Earn grows at 00:00 UTC: ``index ← index × (1 + APR/365)``. A rate change applies from the next
HH:00. Catch-up after downtime replays the missed hours in order from the stored ``accrued_until`` marker —
never from counting scheduler runs.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from domain.money import ONE, ZERO

HOURS_PER_YEAR = Decimal(8760)
DAYS_PER_YEAR = Decimal(365)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def next_hour(t: datetime) -> datetime:
    """The first HH:00 strictly after ``t``."""
    return floor_hour(t) + HOUR


def hours_between(after: datetime, until: datetime) -> Iterator[datetime]:
    """Every HH:00 in (after, until]."""
    h = next_hour(after)
    while h <= until:
        yield h
        h += HOUR


@dataclass(frozen=True)
class RatePoint:
    effective_from: datetime
    apr: Decimal


@dataclass
class MarketState:
    """Per-asset running state: the flexible debt index and the Earn index with their totals."""

    asset: str
    debt_index: Decimal = ONE
    debt_shares: Decimal = ZERO  # sum of every flexible position's debt shares
    fixed_debt: Decimal = ZERO  # sum of non-compounding (fixed) debt, for utilisation
    rates: list[RatePoint] = field(default_factory=list)
    accrued_until: datetime | None = None  # last HH:00 applied to the debt index
    earn_index: Decimal = ONE
    earn_shares: Decimal = ZERO  # sum of every Earn holding's shares (wallets and collateral)
    earn_accrued_until: datetime | None = None  # last 00:00 applied to the Earn index

    def apr_at(self, t: datetime) -> Decimal:
        """The flexible APR in force at instant ``t`` (the latest point effective at or before it)."""
        i = bisect.bisect_right(self.rates, t, key=lambda point: point.effective_from)
        return self.rates[i - 1].apr if i else ZERO

    @property
    def current_apr(self) -> Decimal:
        return self.rates[-1].apr if self.rates else ZERO

    def set_rate(self, apr: Decimal, now: datetime) -> RatePoint:
        """Record a new APR, effective from the next HH:00. A later change at the same hour replaces it."""
        point = RatePoint(next_hour(now), apr)
        while self.rates and self.rates[-1].effective_from >= point.effective_from:
            self.rates.pop()
        self.rates.append(point)
        return point

    def flexible_debt(self) -> Decimal:
        return self.debt_shares * self.debt_index

    def borrowed(self) -> Decimal:
        return self.flexible_debt() + self.fixed_debt
