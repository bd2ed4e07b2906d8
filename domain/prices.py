"""Prices: the ``Prices`` mapping and ``price()``, price series from history files, and the one ``PriceGuard``.

``PriceGuard`` decides which observed prices may liquidate (SPEC §5 and the hardening rules). The live bot (every
stream message and REST poll) and ``loandesk simulate`` (every price point) feed the same class, built from the
markets file's ``[desk]`` settings (``GuardRules.of``):

* **Plausible or rejected.** A price that is not a positive finite number, or is more than ``price_band`` times
  away from the last accepted price (below 1/10 or above 10× by default), is rejected: it is not a newest price
  for warnings and can never be accepted, however often it repeats. (A second source that agrees lets it pass:
  two independent feeds reporting the same crash are believed.)
* **A jump must persist.** A move of more than ``price_jump`` (15%) against the last accepted price is *held*; it
  is accepted once every observation since the first one has stayed on the same side and beyond the jump for
  ``price_confirm_seconds`` (10 s), or at once when the second source agrees within ``price_agree`` (2%). The rule
  works on time, not on the number of observations, so a stream of ticks confirms nothing faster than polling.
* **A cold start is a jump.** With no accepted price at all (a new deployment, a restored database, a new asset)
  the first price is held like a jump and accepted once prices have stayed within the jump of it for the same
  time (or the second source agrees). After a restart the stored last prices are the reference (``seed``).
* **Two sources must agree to liquidate.** With a second source configured, an accepted price only liquidates
  while the second source's fresh price agrees with it; while the second source has nothing fresh for that
  asset, the single-source rules above apply.
* **Fresh or nothing.** An accepted price older than ``price_max_age_seconds`` (60 s) never liquidates.

Warnings and margin calls may use the newest plausible price (``newest``); only ``confirmed`` prices liquidate.
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from domain.errors import InputError, Rejected
from domain.inputs import decimal_of, parse_time
from domain.markets import QUOTE, DeskRules
from domain.money import ONE

Prices = Mapping[str, Decimal]


def price(prices: Prices, asset: str) -> Decimal:
    """The price of ``asset`` in the quote asset (USDT is 1); ``Rejected`` when there is none right now."""
    if asset == QUOTE:
        return ONE
    p = prices.get(asset)
    if p is None or p <= 0:
        raise Rejected("price_unavailable", f"no price for {asset} right now; try again in a moment")
    return p


def moved(a: Decimal, b: Decimal) -> Decimal:
    """The relative move from ``b`` to ``a``."""
    return abs(a - b) / b


# --------------------------------------------------------------------------- history


@dataclass
class PriceSeries:
    """A price that holds from each point until the next one."""

    times: list[datetime] = field(default_factory=list)
    values: list[Decimal] = field(default_factory=list)
    constant: bool = False

    def at(self, t: datetime) -> Decimal | None:
        i = bisect.bisect_right(self.times, t)
        return self.values[i - 1] if i else None

    def next_after(self, t: datetime) -> datetime | None:
        i = bisect.bisect_right(self.times, t)
        return self.times[i] if i < len(self.times) else None


def read_price_csv(path: Path, column: str, where: str = "prices") -> PriceSeries:
    """A price file of ``../shared/data/prices`` (``timestamp`` ISO-8601 UTC plus price columns)."""
    s = PriceSeries()
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "timestamp" not in reader.fieldnames or column not in reader.fieldnames:
                raise InputError(f"{where}: {path.name} needs the columns timestamp and {column}")
            for n, row in enumerate(reader, start=2):
                if not row[column]:
                    continue
                s.times.append(parse_time(row["timestamp"], f"{path.name} line {n}"))
                s.values.append(decimal_of(row[column], f"{path.name} line {n}"))
    except OSError as exc:
        raise InputError(f"{where}: cannot read {path}: {exc.strerror}") from exc
    if not s.times:
        raise InputError(f"{where}: {path.name} has no prices in column {column}")
    if any(b <= a for a, b in zip(s.times, s.times[1:], strict=False)):
        raise InputError(f"{where}: {path.name} is not sorted by time")
    if any(v <= 0 for v in s.values):
        raise InputError(f"{where}: {path.name} has a price that is not above zero")
    return s


# --------------------------------------------------------------------------- the guard


@dataclass(frozen=True)
class GuardRules:
    max_age: timedelta
    jump: Decimal
    confirm: timedelta
    agree: Decimal
    band: Decimal

    @classmethod
    def of(cls, desk: DeskRules) -> GuardRules:
        """The rules of the markets file's ``[desk]`` table."""
        return cls(timedelta(seconds=desk.price_max_age_seconds), desk.price_jump,
                   timedelta(seconds=desk.price_confirm_seconds), desk.price_agree, desk.price_band)


@dataclass
class Seen:
    price: Decimal
    at: datetime


@dataclass
class Held:
    """A big move (or a cold start's first price) waiting to persist: first seen at ``since``."""

    first: Decimal
    since: datetime
    last: Decimal


@dataclass
class Rejection:
    """Observations of one asset rejected in a row: the newest value, since when, and why."""

    value: Decimal
    since: datetime
    at: datetime
    why: str  # "not_positive" | "implausible"


@dataclass(frozen=True)
class Verdict:
    """One round of observations judged (for logs and notices)."""

    at: datetime
    accepted: dict[str, Decimal]
    held: dict[str, Decimal]
    rejected: dict[str, str]  # asset → why: "not_positive" | "implausible"


ACCEPTED, HELD, REJECTED = "accepted", "held", "rejected"


class PriceGuard:
    """Which prices may liquidate; see the module docstring. Time always comes in as an argument."""

    def __init__(self, rules: GuardRules, second_source: bool = False) -> None:
        self.rules = rules
        self.second_source = second_source
        # Polls are not to the millisecond: at 10-s polling "persisted 10 s" means "seen again on the next poll",
        # which a poll answered a few milliseconds faster than the last must not miss.
        self._slack = min(timedelta(seconds=1), rules.confirm / 10)
        self.accepted: dict[str, Seen] = {}
        self.held: dict[str, Held] = {}
        self.newest_seen: dict[str, Seen] = {}  # the newest plausible primary observation
        self.second: dict[str, Seen] = {}  # the second source's newest observation
        self.rejected: dict[str, Rejection] = {}  # assets whose newest observations are rejected, since when

    def seed(self, ticks: Mapping[str, tuple[Decimal, datetime]]) -> None:
        """Start from stored accepted prices: after a restart a jump is still measured against the last one."""
        for asset, (value, at) in ticks.items():
            if value > 0:
                self.accepted.setdefault(asset, Seen(value, at))

    # ------------------------------------------------------------------ observing

    def observe(self, asset: str, value: Decimal, at: datetime) -> str:
        """One observation of the primary source; returns ``accepted``, ``held`` or ``rejected``."""
        if asset == QUOTE:
            return ACCEPTED
        if not value.is_finite() or value <= 0:
            return self._reject(asset, value, at, "not_positive")
        agrees = self._agrees(asset, value, at)
        last = self.accepted.get(asset)
        band = self.rules.band
        if last is not None and not agrees and not last.price / band <= value <= last.price * band:
            return self._reject(asset, value, at, "implausible")
        self.rejected.pop(asset, None)
        self.newest_seen[asset] = Seen(value, at)
        if agrees or (last is not None and moved(value, last.price) <= self.rules.jump):
            return self._accept(asset, value, at)
        pending = self.held.get(asset)
        if pending is None or not self._continues(pending, value, last):
            pending = self.held[asset] = Held(value, at, value)
        pending.last = value
        if at - pending.since >= self.rules.confirm - self._slack:
            return self._accept(asset, value, at)
        return HELD

    def observe_second(self, asset: str, value: Decimal, at: datetime) -> None:
        """One observation of the second source; it may confirm a held move at once."""
        if asset == QUOTE or not value.is_finite() or value <= 0:
            return
        self.second[asset] = Seen(value, at)
        pending = self.held.get(asset)
        if pending is not None and moved(pending.last, value) <= self.rules.agree:
            self._accept(asset, pending.last, at)

    def observe_all(self, quotes: Mapping[str, Decimal], at: datetime,
                    second: Mapping[str, Decimal] | None = None) -> Verdict:
        """One poll: the second source's prices first (so they can confirm), then the primary's."""
        for asset, value in (second or {}).items():
            self.observe_second(asset, value, at)
        accepted: dict[str, Decimal] = {}
        held: dict[str, Decimal] = {}
        rejected: dict[str, str] = {}
        for asset, value in quotes.items():
            outcome = self.observe(asset, value, at)
            if outcome == ACCEPTED:
                accepted[asset] = value
            elif outcome == HELD:
                held[asset] = value
            elif asset in self.rejected:
                rejected[asset] = self.rejected[asset].why
        return Verdict(at, accepted, held, rejected)

    # ------------------------------------------------------------------ reading

    def newest(self, now: datetime, max_age: timedelta | None = None) -> dict[str, Decimal]:
        """The newest plausible price of every asset (no older than ``max_age``): for warnings and margin calls."""
        return {QUOTE: ONE, **{a: s.price for a, s in self.newest_seen.items()
                               if max_age is None or now - s.at <= max_age}}

    def confirmed(self, now: datetime) -> dict[str, Decimal]:
        """Accepted, fresh prices that the second source (when it has a fresh price) agrees with: the only ones
        that may liquidate."""
        out = {QUOTE: ONE}
        for asset, acc in self.accepted.items():
            if now - acc.at > self.rules.max_age:
                continue
            other = self._fresh_second(asset, now)
            if self.second_source and other is not None and moved(acc.price, other) > self.rules.agree:
                continue
            out[asset] = acc.price
        return out

    def corroborated(self, now: datetime) -> set[str]:
        """Assets whose confirmed price the second source agrees with right now (both sources say so)."""
        out = {QUOTE}
        for asset, value in self.confirmed(now).items():
            other = self._fresh_second(asset, now)
            if other is not None and moved(value, other) <= self.rules.agree:
                out.add(asset)
        return out

    def troubles(self, now: datetime, assets: Iterable[str], since: datetime) -> dict[str, str]:
        """Assets whose price cannot be used, and why, for the operators: no plausible price for longer than
        ``max_age`` (counting from ``since`` for an asset never seen), or prices rejected for ``confirm``."""
        out: dict[str, str] = {}
        for asset in assets:
            if asset == QUOTE:
                continue
            seen = self.newest_seen.get(asset)
            last = seen.at if seen is not None else since
            bad = self.rejected.get(asset)
            if bad is not None and now - bad.since >= self.rules.confirm:
                reference = self.accepted.get(asset)
                if bad.why == "implausible" and reference is not None:
                    out[asset] = (f"the exchange reports {asset} at {bad.value}, more than {self.rules.band}× away "
                                  f"from the last accepted {reference.price}: rejected")
                else:
                    out[asset] = f"the exchange reports {asset} at {bad.value}: not a price, rejected"
            elif now - last > self.rules.max_age:
                out[asset] = f"no {asset} price since {last.isoformat(timespec='seconds')}"
        return out

    # ------------------------------------------------------------------ inside

    def _reject(self, asset: str, value: Decimal, at: datetime, why: str) -> str:
        before = self.rejected.get(asset)
        self.rejected[asset] = Rejection(value, before.since if before is not None else at, at, why)
        return REJECTED

    def _accept(self, asset: str, value: Decimal, at: datetime) -> str:
        self.accepted[asset] = Seen(value, at)
        self.held.pop(asset, None)
        return ACCEPTED

    def _continues(self, pending: Held, value: Decimal, last: Seen | None) -> bool:
        """Whether ``value`` keeps a held move alive: on the same side and still beyond the jump (a cold start:
        still within the jump of the first price)."""
        if last is None:
            return moved(value, pending.first) <= self.rules.jump
        return ((value > last.price) == (pending.first > last.price)
                and moved(value, last.price) > self.rules.jump)

    def _fresh_second(self, asset: str, now: datetime) -> Decimal | None:
        seen = self.second.get(asset)
        return seen.price if seen is not None and now - seen.at <= self.rules.max_age else None

    def _agrees(self, asset: str, value: Decimal, at: datetime) -> bool:
        other = self._fresh_second(asset, at)
        return other is not None and moved(value, other) <= self.rules.agree
