"""Prices for previews, views and the polling fallback: the exchange's REST API over httpx, with a short cache.

One request (``GET {url}/api/v3/ticker/price?symbols=["BTCUSDT",…]``) asks for the desk's symbols only, not the
~3,300 of the whole exchange. Binance refuses the whole list (``-1121 Invalid symbol``) when one of them is not
listed, without saying which; then the full ticker is fetched once to learn which are listed, the others are
reported in ``ExchangePrices.missing`` and left out of later requests (re-tried every ``recheck_seconds``, in
case they get listed). Prices are parsed from Binance's JSON strings straight into ``Decimal`` (never a
float). Any failure — unreachable, slow, an error status, a body that is not the ticker — becomes
``PricesUnavailable``, which the chat answers without changing anything.

Also here: :func:`fetch_all`, which asks several sources at once so a slow one never delays the other, and
``ExchangePrices.klines``, the exchange's candles for charts of the time before the bot recorded prices
(:func:`chart_candles` asks for every asset of a chart at once, at an interval that suits its span).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Protocol

import httpx

log = logging.getLogger(__name__)

QUOTE = "USDT"
PATH = "/api/v3/ticker/price"
KLINES_PATH = "/api/v3/klines"
INVALID_SYMBOL = -1121
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KLINES_LIMIT = 1000  # Binance's maximum candles per request
KLINES_MAX_PAGES = 20  # 20,000 candles: 2 years of hours; a longer chart should ask for a coarser interval
# Binance's kline intervals and their length; "1M" (a calendar month) is left out because it has no fixed length.
INTERVALS = {
    "1s": timedelta(seconds=1), "1m": timedelta(minutes=1), "3m": timedelta(minutes=3),
    "5m": timedelta(minutes=5), "15m": timedelta(minutes=15), "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1), "2h": timedelta(hours=2), "4h": timedelta(hours=4), "6h": timedelta(hours=6),
    "8h": timedelta(hours=8), "12h": timedelta(hours=12), "1d": timedelta(days=1), "3d": timedelta(days=3),
    "1w": timedelta(weeks=1),
}


class PricesUnavailable(Exception):
    """No usable prices right now."""


class PriceSource(Protocol):
    async def prices(self) -> dict[str, Decimal]: ...


class CandleSource(Protocol):
    async def klines(self, asset: str, interval: str, start: datetime,
                     end: datetime) -> list[tuple[datetime, Decimal]]: ...


CHART_CANDLES = 500  # a chart asks for at most about this many candles per asset


def chart_interval(span: timedelta) -> str:
    """The finest kline interval that covers ``span`` in at most ``CHART_CANDLES`` candles."""
    for name in ("1m", "5m", "15m", "1h", "4h", "1d"):
        if span <= INTERVALS[name] * CHART_CANDLES:
            return name
    return "1w"


async def chart_candles(source: object, assets: Iterable[str], start: datetime,
                        end: datetime) -> dict[str, list[tuple[datetime, Decimal]]]:
    """Close prices of ``assets`` in ``[start, end]`` from ``source``'s candles (``klines``), fetched at once;
    an asset the source cannot give (or a source without candles) is left out: the chart uses what it has."""
    klines = getattr(source, "klines", None)
    if klines is None:
        return {}
    names = list(dict.fromkeys(assets))
    interval = chart_interval(end - start)
    answers = await asyncio.gather(*(klines(a, interval, start, end) for a in names), return_exceptions=True)
    out: dict[str, list[tuple[datetime, Decimal]]] = {}
    for asset, answer in zip(names, answers, strict=True):
        if isinstance(answer, PricesUnavailable):
            log.info("no candles of %s for a chart: %s", asset, answer)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            out[asset] = answer
    return out


class StaticPrices:
    """Fixed prices (the console's ``--prices BTC=50000``); the quote asset is always 1."""

    def __init__(self, prices: Mapping[str, Decimal]) -> None:
        self._prices = {QUOTE: Decimal(1), **{k.upper(): v for k, v in prices.items()}}

    async def prices(self) -> dict[str, Decimal]:
        return dict(self._prices)


def parse_price_list(text: str) -> dict[str, Decimal]:
    """``BTC=50000,ETH=3000`` → prices; raises ``ValueError`` with a readable message."""
    out: dict[str, Decimal] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        asset, sep, value = part.partition("=")
        try:
            price = Decimal(value.strip())
        except InvalidOperation:
            price = Decimal(-1)
        if not sep or not asset.strip().isalnum() or not price.is_finite() or price <= 0:
            raise ValueError(f"'{part}' is not ASSET=PRICE (e.g. BTC=50000)")
        out[asset.strip().upper()] = price
    return out


class ExchangePrices:
    """Binance-style REST client. Open it with ``start()`` (post_init) and close it with ``close()``.

    :attr:`missing` holds the desk's assets the last answer had no price for (not listed on this exchange,
    or delisted); they are logged when that set changes.
    """

    def __init__(self, url: str, assets: Iterable[str], cache_seconds: float = 3.0, timeout: float = 3.0,
                 clock: Callable[[], float] = time.monotonic, recheck_seconds: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self.assets = sorted({a.upper() for a in assets if a.upper() != QUOTE})
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self.recheck_seconds = recheck_seconds
        self.missing: frozenset[str] = frozenset()
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        self._cached: tuple[float, dict[str, Decimal]] | None = None
        self._unlisted: frozenset[str] = frozenset()  # left out of requests until _unlisted_at + recheck
        self._unlisted_at = 0.0

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def prices(self) -> dict[str, Decimal]:
        """The desk's assets priced in the quote asset (which is always 1); cached for ``cache_seconds``."""
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < self.cache_seconds:
            return dict(self._cached[1])
        recheck = bool(self._unlisted) and now - self._unlisted_at >= self.recheck_seconds
        wanted = [a for a in self.assets if recheck or a not in self._unlisted]
        quoted: dict[str, Decimal] = {}
        if wanted:
            response = await self._get(PATH, {"symbols": _symbols_param(wanted)})
            if _binance_code(response) == INVALID_SYMBOL:
                # One of ours is not listed and Binance does not say which: learn it from the full ticker, once.
                response = await self._get(PATH, {})
                quoted = _from_ticker(_json(response, self.url))
                self._unlisted, self._unlisted_at = frozenset(a for a in wanted if a not in quoted), now
            else:
                quoted = _from_ticker(_json(response, self.url))
                if recheck:
                    self._unlisted = frozenset()
        prices = {QUOTE: Decimal(1), **{a: p for a, p in quoted.items() if a in self.assets}}
        self._report_missing(frozenset(a for a in self.assets if a not in prices))
        if self.assets and len(prices) == 1:
            raise PricesUnavailable("the ticker listed none of the desk's assets")
        self._cached = (now, prices)
        return dict(prices)

    async def klines(self, asset: str, interval: str, start: datetime, end: datetime) -> list[tuple[datetime, Decimal]]:
        """``asset``'s close prices from the exchange's candles whose open time is in ``[start, end]``, oldest first.

        Each point is ``(close time, close)``: the instant the close price was last true, i.e. the candle's
        open time + ``interval``, but at most ``end`` (with ``end`` = now, the candle still open is pinned at now
        and its close is the latest trade).
        Asks ``GET /api/v3/klines`` page by page (1,000 candles each, at most ``KLINES_MAX_PAGES``).
        Raises ``ValueError`` for an unknown interval or naive/inverted times, ``PricesUnavailable`` otherwise.
        """
        step = INTERVALS.get(interval)
        if step is None:
            raise ValueError(f"unknown kline interval {interval!r}; use one of {', '.join(INTERVALS)}")
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("klines need timezone-aware times")
        if end < start:
            raise ValueError("klines: end is before start")
        symbol = asset.upper() + QUOTE
        end_ms = _ms(end)
        since_ms = _ms(start)
        points: list[tuple[datetime, Decimal]] = []
        for _ in range(KLINES_MAX_PAGES):
            params = {"symbol": symbol, "interval": interval, "startTime": str(since_ms), "endTime": str(end_ms),
                      "limit": str(KLINES_LIMIT)}
            response = await self._get(KLINES_PATH, params)
            if _binance_code(response) == INVALID_SYMBOL:
                raise PricesUnavailable(f"{symbol} is not listed at {self.url}")
            page = _from_klines(_json(response, self.url))
            points.extend((min(opened + step, end), close) for opened, close in page)
            if len(page) < KLINES_LIMIT:
                return points
            since_ms = _ms(page[-1][0]) + 1  # the next page starts after the last candle's open time
        log.warning("klines for %s %s stopped after %s pages", symbol, interval, KLINES_MAX_PAGES)
        return points

    async def _get(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        """One GET; a network failure becomes ``PricesUnavailable``; the status is left to the caller."""
        await self.start()
        assert self._client is not None
        try:
            return await self._client.get(self.url + path, params=params)
        except httpx.HTTPError as exc:
            raise PricesUnavailable(f"{path} at {self.url} failed: {exc}") from exc

    def _report_missing(self, missing: frozenset[str]) -> None:
        if missing != self.missing and missing:
            log.warning("no price at %s for %s", self.url, ", ".join(sorted(missing)))
        elif missing != self.missing:
            log.info("prices at %s again for every asset", self.url)
        self.missing = missing


async def fetch_all(*sources: PriceSource) -> list[dict[str, Decimal] | PricesUnavailable]:
    """Ask every source at once; each answer is its prices or its ``PricesUnavailable``, in the order given.

    The sources are fetched concurrently (``asyncio.gather``), so the whole takes as long as the slowest one,
    not their sum, and one failing never hides the other's answer. Any other exception is a bug and is raised
    (after every source has finished).
    """
    answers = await asyncio.gather(*(source.prices() for source in sources), return_exceptions=True)
    out: list[dict[str, Decimal] | PricesUnavailable] = []
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, PricesUnavailable):
            raise answer
        out.append(answer)
    return out


def _symbols_param(assets: Iterable[str]) -> str:
    """``["BTCUSDT","ETHUSDT"]``: compact JSON, as Binance wants it (httpx percent-encodes it)."""
    return json.dumps([a + QUOTE for a in assets], separators=(",", ":"))


def _binance_code(response: httpx.Response) -> int | None:
    """Binance's error code from a 4xx answer (``{"code": -1121, "msg": ...}``), if it has one."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def _json(response: httpx.Response, url: str) -> object:
    """A successful answer's JSON, numbers as Decimal; anything else is ``PricesUnavailable``."""
    try:
        response.raise_for_status()
        return json.loads(response.text, parse_float=Decimal, parse_int=Decimal)
    except (httpx.HTTPError, ValueError) as exc:
        raise PricesUnavailable(f"{response.request.url.path} at {url} failed: {exc}") from exc


def _ms(at: datetime) -> int:
    """Milliseconds since the epoch (Binance's time unit)."""
    return (at - _EPOCH) // timedelta(milliseconds=1)


def _from_klines(rows: object) -> list[tuple[datetime, Decimal]]:
    """``[[open time, "open", "high", "low", "close", ...], ...]`` → ``[(open time, Decimal(close)), ...]``."""
    if not isinstance(rows, list):
        raise PricesUnavailable("the klines answer is not a list")
    out: list[tuple[datetime, Decimal]] = []
    for row in rows:
        if not isinstance(row, list) or len(row) < 5 or not isinstance(row[0], Decimal):
            raise PricesUnavailable(f"not a kline: {row!r:.100}")
        try:
            close = Decimal(row[4])
            opened = _EPOCH + timedelta(milliseconds=int(row[0]))
        except (InvalidOperation, TypeError, ValueError, OverflowError):
            raise PricesUnavailable(f"not a kline: {row!r:.100}") from None
        if not close.is_finite() or close <= 0:
            raise PricesUnavailable(f"not a kline price: {row[4]!r}")
        out.append((opened, close))
    return out


def _from_ticker(rows: object) -> dict[str, Decimal]:
    """``[{"symbol": "BTCUSDT", "price": "50000.00"}, ...]`` → ``{"BTC": Decimal("50000.00")}``."""
    if not isinstance(rows, list):
        raise PricesUnavailable("the ticker answer is not a list")
    out: dict[str, Decimal] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        symbol, raw = row.get("symbol"), row.get("price")
        if not isinstance(symbol, str) or not symbol.endswith(QUOTE) or not isinstance(raw, (str, Decimal)):
            continue
        try:
            price = Decimal(raw)
        except InvalidOperation:
            continue
        if price.is_finite() and price > 0:
            out[symbol.removesuffix(QUOTE)] = price
    return out
