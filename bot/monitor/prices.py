"""Prices for previews and views: the exchange ticker over httpx, with a short cache.

One request (``GET {url}/api/v3/ticker/price``) fetches every symbol; prices are parsed from Binance's JSON
strings straight into ``Decimal`` (never a float). Any failure — unreachable, slow, an error status, a body
that is not the ticker — becomes ``PricesUnavailable``, which the chat answers without changing anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Protocol

import httpx

QUOTE = "USDT"
PATH = "/api/v3/ticker/price"


class PricesUnavailable(Exception):
    """No usable prices right now."""


class PriceSource(Protocol):
    async def prices(self) -> dict[str, Decimal]: ...


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
    """Binance-style ticker client. Open it with ``start()`` (post_init) and close it with ``close()``."""

    def __init__(self, url: str, assets: Iterable[str], cache_seconds: float = 3.0, timeout: float = 3.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url.rstrip("/")
        self.assets = sorted({a for a in assets if a != QUOTE})
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        self._cached: tuple[float, dict[str, Decimal]] | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def prices(self) -> dict[str, Decimal]:
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < self.cache_seconds:
            return dict(self._cached[1])
        await self.start()
        assert self._client is not None
        try:
            response = await self._client.get(self.url + PATH)
            response.raise_for_status()
            rows = json.loads(response.text, parse_float=Decimal, parse_int=Decimal)
        except (httpx.HTTPError, ValueError) as exc:
            raise PricesUnavailable(f"ticker at {self.url} failed: {exc}") from exc
        prices = {QUOTE: Decimal(1), **_from_ticker(rows)}
        if not any(a in prices for a in self.assets):
            raise PricesUnavailable("the ticker listed none of the desk's assets")
        self._cached = (now, prices)
        return dict(prices)


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
