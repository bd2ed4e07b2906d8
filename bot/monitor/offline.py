"""Prices with no network at all, for ``loandesk console``: fixed prices for every catalog asset, set by hand
(``/price BTC 40000``), or a real crash replayed at a chosen speed.

``OfflinePrices`` is a ``PriceSource`` like the exchange client, so the console's chat previews and its price
feed (the scheduler's poll → ``PriceGuard`` → tick) read it exactly as the live bot reads Binance. A replay
follows the shipped history's *path* (``bot.history.events``), not its 2020 prices: each asset moves as
``price at start × close_k / close_0`` at ``speed`` × real time, so a loan opened at today's price meets the
crash at the same LTV a loan at the same LTV met it then. BTC and ETH follow their own files; other coins
follow BTC's path; stablecoins stay at 1. When the history ends, prices stay at its last value.

There is no exchange offline, so ``klines`` (the candles ``/chart`` draws before the bot recorded prices) come
from what this source itself served: the prices set by hand and every running replay's path, at the wall-clock
time each was in force; before the console started, the first price it had.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.monitor.prices import INTERVALS, KLINES_LIMIT, QUOTE
from domain.prices import PriceSeries

# Round numbers near the market in 2025: ``/borrow 500 USDT with 0.01 BTC`` is then a 50% LTV loan.
DEFAULTS: dict[str, Decimal] = {
    "BTC": Decimal(100000), "ETH": Decimal(3500), "BNB": Decimal(650), "SOL": Decimal(150), "XRP": Decimal("2.5"),
    "ADA": Decimal("0.8"), "DOGE": Decimal("0.25"), "LTC": Decimal(100),
}
NOTE_MOVE = Decimal("0.05")  # a replay note when the leading asset moved this much since the last note
Note = Callable[[str], None]


@dataclass
class Replay:
    """A running replay: the history of each asset (already scaled to the prices it started from)."""

    name: str
    title: str
    speed: float
    paths: dict[str, PriceSeries]
    started: float  # monotonic
    lead: str  # the asset the notes follow
    noted_day: str = ""
    noted_price: Decimal | None = None
    finished: bool = False

    @property
    def first(self) -> datetime:
        return self.paths[self.lead].times[0]

    @property
    def last(self) -> datetime:
        return self.paths[self.lead].times[-1]

    def at(self, now: float) -> datetime:
        """The history's time reached ``now`` (monotonic seconds), at most its last row."""
        return min(self.first + timedelta(seconds=(now - self.started) * self.speed), self.last)

    def seconds_to(self, moment: datetime) -> float:
        return (moment - self.first).total_seconds() / self.speed


def value_at(series: PriceSeries, moment: datetime) -> Decimal:
    """The last price at or before ``moment`` (the first one before the series starts)."""
    lo, hi = 0, len(series.times)
    while lo < hi:
        mid = (lo + hi) // 2
        if series.times[mid] <= moment:
            lo = mid + 1
        else:
            hi = mid
    return series.values[max(lo - 1, 0)]


def scaled(series: PriceSeries, start: Decimal, since: datetime | None = None) -> PriceSeries:
    """The same path from ``since`` (the row in force then; default the first) starting at ``start``:
    ``start × v_k / v_0``, cut to 8 decimals."""
    first = 0
    if since is not None:
        first = max(0, sum(1 for t in series.times if t <= since) - 1)
    out = PriceSeries()
    base = series.values[first]
    out.times = list(series.times[first:])
    out.values = [(start * v / base).quantize(Decimal("0.00000001")) for v in series.values[first:]]
    return out


class OfflinePrices:
    """Every catalog asset has a price: ``DEFAULTS``, 1 for stablecoins, 1 for an asset nobody priced."""

    def __init__(self, assets: Iterable[str], stable: Iterable[str] = (), start: Mapping[str, Decimal] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.stable = {QUOTE, *stable}
        self._prices = {a: Decimal(1) if a in self.stable else DEFAULTS.get(a, Decimal(1)) for a in assets}
        self._prices[QUOTE] = Decimal(1)
        self._prices.update({k.upper(): v for k, v in (start or {}).items()})
        self.clock = clock
        self.wall = wall
        self.replay: Replay | None = None
        self.note: Note = lambda _text: None
        # asset → what set its price and since when (wall clock): a price by hand, or a replay's path
        begun = wall()
        self._log: dict[str, list[tuple[datetime, Decimal | Replay]]] = {
            a: [(begun, p)] for a, p in self._prices.items()}

    async def prices(self) -> dict[str, Decimal]:
        return self.now()

    def now(self) -> dict[str, Decimal]:
        """Current prices (advancing a running replay)."""
        r = self.replay
        if r is not None and not r.finished:
            t = self.clock()
            moment = r.at(t)
            for asset, series in r.paths.items():
                self._prices[asset] = value_at(series, moment)
            self._notes(r, moment)
        return dict(self._prices)

    def set(self, asset: str, price: Decimal) -> tuple[Decimal | None, bool]:
        """Set one price by hand; returns the old one and whether a running replay was stopped for it."""
        self.now()
        stopped = self.replay is not None and not self.replay.finished
        if stopped and self.replay is not None:
            self.replay.finished = True
        old = self._prices.get(asset)
        self._prices[asset] = price
        at = self.wall()
        if stopped and self.replay is not None:  # the others stay where the replay left them
            for other in self.replay.paths:
                self._log.setdefault(other, []).append((at, self._prices[other]))
        self._log.setdefault(asset, []).append((at, price))
        return old, stopped

    def start_replay(self, name: str, title: str, history: Mapping[str, PriceSeries], speed: float,
                     since: datetime | None = None, follow: str = "BTC") -> Replay:
        """Replay ``history`` (asset → the event's closes; from ``since`` if given) from the current prices:
        assets with a file follow it, the other non-stable ones follow ``follow``'s path."""
        now = self.now()
        paths: dict[str, PriceSeries] = {}
        for asset, price in now.items():
            if asset in self.stable:
                continue
            series = history.get(asset) or history.get(follow)
            if series is not None:
                paths[asset] = scaled(series, price, since)
        lead = follow if follow in paths else next(iter(paths))
        self.replay = Replay(name, title, speed, paths, self.clock(), lead)
        at = self.wall()
        for asset in paths:
            self._log.setdefault(asset, []).append((at, self.replay))
        return self.replay

    async def klines(self, asset: str, interval: str, start: datetime,
                     end: datetime) -> list[tuple[datetime, Decimal]]:
        """The prices this source served for ``asset``, one point per ``interval`` from ``start`` to ``end``
        (at most ``KLINES_LIMIT``, the newest), in the exchange client's form: ``(close time, close)``."""
        step = INTERVALS.get(interval)
        if step is None:
            raise ValueError(f"unknown kline interval {interval!r}")
        self.now()  # a running replay catches up first
        log = self._log.get(asset.upper())
        if not log or end < start:
            return []
        count = min(KLINES_LIMIT, int((end - start) / step) + 1)
        times = [end - step * i for i in range(count)][::-1]
        return [(t, self._served(asset.upper(), log, t)) for t in times]

    @staticmethod
    def _served(asset: str, log: list[tuple[datetime, Decimal | Replay]], at: datetime) -> Decimal:
        """``asset``'s price in force at ``at`` by ``log`` (its first entry's before it began)."""
        since, what = log[0]
        for moment, entry in log:
            if moment > at:
                break
            since, what = moment, entry
        if isinstance(what, Decimal):
            return what
        moment = what.first + max(at - since, timedelta(0)) * what.speed
        return value_at(what.paths[asset], min(moment, what.last))

    def replay_event(self, name: str, speed: float, since: datetime | None = None) -> Replay:
        """Replay a shipped crash (``march2020``, …; ``bot.history.events``); raises ``BacktestError`` for an
        unknown name."""
        from bot.history.events import event, event_prices

        ev = event(name)
        return self.start_replay(ev.name, ev.title, {a: event_prices(ev.name, a) for a in ev.files}, speed, since)

    def _notes(self, r: Replay, moment: datetime) -> None:
        """One line per history day, and one per 5% move of the leading asset; one when it ends."""
        price = r.paths[r.lead]
        now = value_at(price, moment)
        day = moment.strftime("%Y-%m-%d")
        moved = r.noted_price is not None and abs(now / r.noted_price - 1) >= NOTE_MOVE
        if day != r.noted_day or moved:
            start = price.values[0]
            change = (now / start - 1) * 100
            r.noted_day, r.noted_price = day, now
            self.note(f"{r.name} {moment.strftime('%Y-%m-%d %H:%M')} UTC: {r.lead} {now.quantize(Decimal('0.01'))} "
                      f"({change.quantize(Decimal('0.1')):+}% since the start)")
        if moment >= r.last:
            r.finished = True
            self.note(f"{r.name} is over; prices stay where it ended. /price shows them, /price BTC 100000 "
                      "sets one.")
