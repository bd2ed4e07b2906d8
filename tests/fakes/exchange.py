"""A fake Binance price feed: ``GET /api/v3/ticker/price`` on 127.0.0.1, with scriptable failures.

``FakeExchange`` owns the prices (strings, never floats: ``set_price("BTC", "50000")`` is BTCUSDT) and the
ways the feed goes wrong in production: an HTTP error status, a slow answer (to test client timeouts), a body
that is not JSON. It answers exactly like Binance's public endpoint::

    GET /api/v3/ticker/price                        -> [{"symbol": "BTCUSDT", "price": "50000.00000000"}, ...]
    GET ...?symbol=BTCUSDT                          -> {"symbol": "BTCUSDT", "price": "50000.00000000"}
    GET ...?symbols=["BTCUSDT","ETHUSDT"] (encoded) -> [{...}, {...}]
    unknown symbol                                  -> 400 {"code": -1121, "msg": "Invalid symbol."}
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.fakes._http import FakeHTTPServer, Request, Response

PRICE_PATH = "/api/v3/ticker/price"
QUOTE = "USDT"
_SYMBOLS_PARAM = re.compile(r'\[("[A-Z0-9\-_.]{1,20}"(,"[A-Z0-9\-_.]{1,20}")*)?\]')
_ERROR_BODIES = {
    429: {
        "code": -1003,
        "msg": "Too many requests; current limit of IP is 6000 request weight per 1 MINUTE.",
    },
    418: {"code": -1003, "msg": "Way too many requests; IP banned."},
}
_INTERNAL = {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}


@dataclass
class _Failure:
    status: int
    times: int
    body: Any
    headers: dict[str, str]


def _format_price(price: str | Decimal | int) -> str:
    """Binance's form: 8 decimal places, as a string."""
    if isinstance(price, float):
        raise TypeError("prices are strings or Decimals, never floats")
    try:
        value = Decimal(str(price))
    except InvalidOperation:
        raise ValueError(f"not a price: {price!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"not a price: {price!r}")
    return f"{value.quantize(Decimal('0.00000001')):f}"


class FakeExchange(FakeHTTPServer):
    """Binance's public ticker on 127.0.0.1; point the price client at :attr:`url`."""

    def __init__(self, prices: Mapping[str, str | Decimal | int] | None = None) -> None:
        """``prices``: asset → price in USDT, e.g. ``{"BTC": "50000", "ETH": "3000"}``."""
        super().__init__()
        self._lock = threading.Lock()
        self._prices: dict[str, str] = {}
        self._failures: list[_Failure] = []
        self._garbage = 0
        self._hang_seconds = 0.0
        self._hang_times: int | None = None
        self._requests: list[str] = []
        self._times: list[float] = []
        for asset, price in (prices or {}).items():
            self.set_price(asset, price)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ configuration

    def set_price(self, asset: str, price: str | Decimal | int) -> None:
        """Quote ``asset`` at ``price`` USDT (symbol ``<ASSET>USDT``); floats are refused."""
        formatted = _format_price(price)
        with self._lock:
            self._prices[asset.upper() + QUOTE] = formatted

    def remove_price(self, asset: str) -> None:
        """Delist ``asset``: its symbol becomes "Invalid symbol."."""
        with self._lock:
            self._prices.pop(asset.upper() + QUOTE, None)

    def prices(self) -> dict[str, str]:
        """Symbol → price string, as served."""
        with self._lock:
            return dict(self._prices)

    def fail(
        self, status: int = 500, times: int = 1, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        """The next ``times`` requests answer ``status`` (with Binance's error body for it unless given;
        429/418 also carry ``Retry-After``)."""
        if body is None:
            body = _ERROR_BODIES.get(status, _INTERNAL)
        if headers is None:
            headers = {"Retry-After": "60"} if status in _ERROR_BODIES else {}
        with self._lock:
            self._failures.append(_Failure(status, times, body, headers))

    def hang(self, seconds: float, times: int | None = None) -> None:
        """Delay answers by ``seconds`` (the next ``times`` requests, or all until ``hang(0)``)."""
        with self._lock:
            self._hang_seconds, self._hang_times = seconds, times

    def garbage(self, times: int = 1) -> None:
        """The next ``times`` requests answer 200 with a body that is not JSON."""
        with self._lock:
            self._garbage += times

    def reset(self) -> None:
        """Forget scripted failures and the request log (prices stay)."""
        with self._lock:
            self._failures.clear()
            self._garbage = 0
            self._hang_seconds, self._hang_times = 0.0, None
            self._requests.clear()
            self._times.clear()

    @property
    def hits(self) -> int:
        """How many requests arrived (failed ones included)."""
        with self._lock:
            return len(self._requests)

    @property
    def requests(self) -> list[str]:
        """Every request as ``path?query``."""
        with self._lock:
            return list(self._requests)

    @property
    def request_times(self) -> list[float]:
        """``time.monotonic()`` of every request, in order."""
        with self._lock:
            return list(self._times)

    # ------------------------------------------------------------------ serving

    def handle(self, request: Request) -> Response:
        with self._lock:
            query = "&".join(f"{k}={v}" for k, v in request.query)
            self._requests.append(request.path + (f"?{query}" if query else ""))
            self._times.append(time.monotonic())
            delay = self._hang_seconds
            if self._hang_times is not None:
                self._hang_times -= 1
                if self._hang_times <= 0:
                    self._hang_seconds, self._hang_times = 0.0, None
        if delay > 0:
            self.closing.wait(delay)  # close() ends the wait
        with self._lock:
            if self._failures:
                failure = self._failures[0]
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.pop(0)
                return Response.json(failure.status, failure.body, failure.headers)
            if self._garbage:
                self._garbage -= 1
                return Response(200, b'{"symbol": "BTCUSDT", "price": ')  # cut off mid-body
            return self._ticker(request)

    def _ticker(self, request: Request) -> Response:
        if request.method != "GET" or request.path != PRICE_PATH:
            return Response(404, b"", "text/html")
        params = dict(request.query)
        if "symbol" in params and "symbols" in params:
            return self._error(-1128, "Combination of optional parameters invalid.")
        if "symbol" in params:
            symbol = params["symbol"]
            if symbol not in self._prices:
                return self._error(-1121, "Invalid symbol.")
            return Response.json(200, {"symbol": symbol, "price": self._prices[symbol]})
        if "symbols" in params:
            raw = params["symbols"].replace(" ", "")
            if not _SYMBOLS_PARAM.fullmatch(raw):
                return self._error(
                    -1100,
                    "Illegal characters found in parameter 'symbols'; legal range is "
                    '\'^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$\'.',
                )
            symbols = json.loads(raw)
            if not symbols:
                return self._error(
                    -1102, "Mandatory parameter 'symbols' was not sent, was empty/null, or malformed."
                )
            if any(symbol not in self._prices for symbol in symbols):
                return self._error(-1121, "Invalid symbol.")
            return Response.json(
                200, [{"symbol": s, "price": self._prices[s]} for s in dict.fromkeys(symbols)]
            )
        return Response.json(200, [{"symbol": s, "price": p} for s, p in self._prices.items()])

    @staticmethod
    def _error(code: int, msg: str) -> Response:
        return Response.json(400, {"code": code, "msg": msg})
