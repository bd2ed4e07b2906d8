"""A fake Binance: the public REST prices and candles on 127.0.0.1, the combined WebSocket stream, and failures.

``FakeExchange`` owns the prices (strings, never floats: ``set_price("BTC", "50000")`` is BTCUSDT), their history
(every ``set_price`` is a point at the fake's clock) and the ways the feed goes wrong in production: an HTTP
error status, a slow answer (to test client timeouts), a body that is not JSON, a dropped or refused stream,
a garbled stream frame. It answers exactly like Binance's public endpoints::

    GET /api/v3/ticker/price                        -> [{"symbol": "BTCUSDT", "price": "50000.00000000"}, ...]
    GET ...?symbol=BTCUSDT                          -> {"symbol": "BTCUSDT", "price": "50000.00000000"}
    GET ...?symbols=["BTCUSDT","ETHUSDT"] (encoded) -> [{...}, {...}]
    unknown symbol                                  -> 400 {"code": -1121, "msg": "Invalid symbol."}
    GET /api/v3/klines?symbol=BTCUSDT&interval=1h[&startTime=ms][&endTime=ms][&limit=500]
                                                    -> [[open ms, "o", "h", "l", "c", "vol", close ms, ...], ...]
    any other method                                -> 405 (counted in ``refused``)

and serves the combined stream on :attr:`FakeExchange.stream_url` (a ``websockets`` server on its own thread
and event loop, started on first use)::

    ws://127.0.0.1:<port>/stream?streams=btcusdt@miniTicker/ethusdt@miniTicker
    <- {"stream": "btcusdt@miniTicker", "data": {"e": "24hrMiniTicker", "E": ms, "s": "BTCUSDT", "c": "50000.00000000",
        "o": ..., "h": ..., "l": ..., "v": ..., "q": ...}}   (one per set_price of a subscribed symbol)
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse

from tests.fakes._http import FakeHTTPServer, Request, Response

PRICE_PATH = "/api/v3/ticker/price"
KLINES_PATH = "/api/v3/klines"
QUOTE = "USDT"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INTERVAL_MS = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}
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


class _StreamServer:
    """Binance's combined stream on 127.0.0.1: a ``websockets`` server on its own thread and event loop.

    Each connection gets an ordered queue drained by its own writer task, so a push from any thread
    (``push``) never blocks the caller and a slow reader never reorders or loses messages. ``close`` closes
    the connections (code 1001, as a server going away), stops the loop and joins the thread.
    """

    def __init__(self, name: str) -> None:
        self._lock = threading.Condition()
        self._subscribers: dict[ServerConnection, tuple[frozenset[str], asyncio.Queue[str]]] = {}
        self._refuse = False
        self.accepted = 0
        self.refused = 0
        self._subscriptions: list[list[str]] = []
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            self.close()
            raise RuntimeError("the fake stream server did not start") from self._failure

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._subscribers)

    @property
    def subscriptions(self) -> list[list[str]]:
        with self._lock:
            return [list(s) for s in self._subscriptions]

    def push(self, symbol: str | None, text: str) -> None:
        """Queue ``text`` for every connection subscribed to ``symbol`` (every connection for None)."""
        if not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to tell
                self._loop.call_soon_threadsafe(self._fan_out, symbol, text)

    def refuse(self, refuse: bool) -> None:
        with self._lock:
            self._refuse = refuse

    def drop(self, graceful: bool) -> int:
        """End every connection — aborted (no close frame) or, when ``graceful``, closed with code 1001 —
        and wait until their handlers are gone."""
        return asyncio.run_coroutine_threadsafe(self._drop(graceful), self._loop).result(10)

    def wait_connections(self, count: int, timeout: float) -> None:
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._subscribers) == count, timeout):
                raise TimeoutError(f"{len(self._subscribers)} stream connections open, not {count}")

    def close(self) -> None:
        if self._thread.is_alive() and self._stopping is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(15)

    # ------------------------------------------------------------------ the loop's side

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to the starting thread
            self._failure = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, process_request=self._check, close_timeout=1) as server:
            self.port = int(server.sockets[0].getsockname()[1])
            self._ready.set()
            await self._stopping.wait()

    def _check(self, connection: ServerConnection, request: WsRequest) -> WsResponse | None:
        """Refuse the handshake while ``refuse_streams`` is on, or for anything but ``/stream?streams=``."""
        if urlsplit(request.path).path != "/stream" or not _subscribed(request.path):
            status = HTTPStatus.BAD_REQUEST
        else:
            with self._lock:
                status = HTTPStatus.SERVICE_UNAVAILABLE if self._refuse else HTTPStatus.SWITCHING_PROTOCOLS
        if status is HTTPStatus.SWITCHING_PROTOCOLS:
            return None
        with self._lock:
            self.refused += 1
        return connection.respond(status, "stream refused by the fake exchange\n")

    async def _handler(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        symbols = _subscribed(connection.request.path)
        queue: asyncio.Queue[str] = asyncio.Queue()
        with self._lock:
            self._subscribers[connection] = (symbols, queue)
            self.accepted += 1
            self._subscriptions.append(sorted(symbols))
            self._lock.notify_all()
        writer = asyncio.create_task(self._write(connection, queue))
        try:
            async for _ in connection:  # a client may send (e.g. SUBSCRIBE); reading also keeps pings flowing
                pass
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            with self._lock:
                self._subscribers.pop(connection, None)
                self._lock.notify_all()

    @staticmethod
    async def _write(connection: ServerConnection, queue: asyncio.Queue[str]) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await connection.send(await queue.get())

    def _fan_out(self, symbol: str | None, text: str) -> None:
        with self._lock:
            queues = [q for symbols, q in self._subscribers.values() if symbol is None or symbol in symbols]
        for queue in queues:
            queue.put_nowait(text)

    async def _drop(self, graceful: bool) -> int:
        with self._lock:
            connections = list(self._subscribers)
        if graceful:
            await asyncio.gather(*(c.close(CloseCode.GOING_AWAY, "closed by the fake") for c in connections))
        for connection in connections:
            connection.transport.abort()
        for _ in range(400):  # the handlers notice at once; bounded all the same
            with self._lock:
                if not any(c in self._subscribers for c in connections):
                    break
            await asyncio.sleep(0.005)
        return len(connections)


def _subscribed(path: str) -> frozenset[str]:
    """``/stream?streams=btcusdt@miniTicker/ethusdt@miniTicker`` → ``{"BTCUSDT", "ETHUSDT"}``."""
    streams = dict(parse_qsl(urlsplit(path).query)).get("streams", "")
    return frozenset(name.split("@")[0].upper() for name in streams.split("/") if name.endswith("@miniTicker"))


class FakeExchange(FakeHTTPServer):
    """Binance's public ticker on 127.0.0.1; point the price client at :attr:`url`."""

    def __init__(self, prices: Mapping[str, str | Decimal | int] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        """``prices``: asset → price in USDT, e.g. ``{"BTC": "50000", "ETH": "3000"}``. ``clock``: the time
        each ``set_price`` is recorded at for the candles and the stream's event time (default: now, UTC)."""
        super().__init__()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._prices: dict[str, str] = {}
        self._history: dict[str, list[tuple[int, Decimal]]] = {}  # symbol → (ms, price), by time
        self._failures: list[_Failure] = []
        self._garbage = 0
        self._hang_seconds = 0.0
        self._hang_times: int | None = None
        self._requests: list[str] = []
        self._times: list[float] = []
        self._asked: list[list[str] | None] = []
        self._refused: Counter[str] = Counter()
        self._stream: _StreamServer | None = None
        for asset, price in (prices or {}).items():
            self.set_price(asset, price)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stream_url(self) -> str:
        """``ws://127.0.0.1:<port>``: the base URL of the combined stream (started on first use)."""
        return self._streams().url

    # ------------------------------------------------------------------ configuration

    def set_price(self, asset: str, price: str | Decimal | int, at: datetime | None = None) -> None:
        """Quote ``asset`` at ``price`` USDT (symbol ``<ASSET>USDT``); floats are refused. The price is recorded
        in the history at ``at`` (default: the fake's clock) and pushed to every stream subscribed to it."""
        formatted = _format_price(price)
        symbol = asset.upper() + QUOTE
        when = at or self._clock()
        ms = _ms(when)
        with self._lock:
            self._prices[symbol] = formatted
            history = self._history.setdefault(symbol, [])
            bisect.insort(history, (ms, Decimal(formatted)), key=lambda point: point[0])
            message = self._mini_ticker(symbol, formatted, ms) if self._stream is not None else None
        if message is not None and self._stream is not None:
            self._stream.push(symbol, message)

    def push_prices(self) -> None:
        """Push every current price to its subscribers again (Binance repeats its miniTickers every second)."""
        with self._lock:
            now = _ms(self._clock())
            messages = [(s, self._mini_ticker(s, p, now)) for s, p in self._prices.items()]
        if self._stream is not None:
            for symbol, message in messages:
                self._stream.push(symbol, message)

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
        """Forget scripted failures and the request logs (prices, their history and streams stay)."""
        with self._lock:
            self._failures.clear()
            self._garbage = 0
            self._hang_seconds, self._hang_times = 0.0, None
            self._requests.clear()
            self._times.clear()
            self._asked.clear()
            self._refused.clear()

    # ------------------------------------------------------------------ stream controls

    def drop_streams(self, graceful: bool = False) -> int:
        """Cut every open stream connection abruptly (no close frame, like a network failure) or, when
        ``graceful``, close it with code 1001 as Binance does after 24 hours; returns how many."""
        return self._streams().drop(graceful)

    def refuse_streams(self, refuse: bool = True) -> None:
        """While on, new stream connections are refused with HTTP 503 (open ones stay)."""
        self._streams().refuse(refuse)

    def send_raw(self, text: str) -> None:
        """Send ``text`` as is, as one frame, to every open stream connection (to inject garbage)."""
        self._streams().push(None, text)

    def wait_streams(self, count: int, timeout: float = 5.0) -> None:
        """Block until exactly ``count`` stream connections are open (raises ``TimeoutError``)."""
        self._streams().wait_connections(count, timeout)

    @property
    def stream_connections(self) -> int:
        """Open stream connections now."""
        return self._stream.connections if self._stream is not None else 0

    @property
    def stream_connects(self) -> int:
        """Stream connections accepted since start (reconnects included)."""
        return self._stream.accepted if self._stream is not None else 0

    @property
    def stream_refusals(self) -> int:
        """Stream handshakes refused (``refuse_streams``) or malformed since start."""
        return self._stream.refused if self._stream is not None else 0

    @property
    def stream_subscriptions(self) -> list[list[str]]:
        """The symbols each accepted stream connection subscribed to, in order of arrival."""
        return self._stream.subscriptions if self._stream is not None else []

    # ------------------------------------------------------------------ REST counters

    @property
    def hits(self) -> int:
        """How many requests arrived (failed ones included)."""
        with self._lock:
            return len(self._requests)

    @property
    def requests(self) -> list[str]:
        """Every request as ``path?query`` (the query decoded)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_times(self) -> list[float]:
        """``time.monotonic()`` of every request, in order."""
        with self._lock:
            return list(self._times)

    @property
    def asked_symbols(self) -> list[list[str] | None]:
        """For every request that reached the ticker (not a scripted failure): the symbols it asked for, or None
        for the whole exchange."""
        with self._lock:
            return [None if a is None else list(a) for a in self._asked]

    @property
    def refused(self) -> dict[str, int]:
        """Requests refused for their method (anything but GET): method → count."""
        with self._lock:
            return dict(self._refused)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop the stream server (closing its connections) and the HTTP server; join their threads."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        super().close()

    def _streams(self) -> _StreamServer:
        with self._lock:
            if self._stream is None:
                if self._server is None:
                    raise RuntimeError("FakeExchange is not started")
                self._stream = _StreamServer(name=f"FakeExchange-stream:{self.port}")
            return self._stream

    def _mini_ticker(self, symbol: str, price: str, ms: int) -> str:
        """Binance's combined-stream miniTicker for ``symbol``; the 24-h open/high/low come from the recorded
        history (its last 1,000 points at most, so a load test pushing many prices stays linear)."""
        history = self._history.get(symbol, [])
        first = bisect.bisect_right(history, ms - 86_400_000, key=lambda point: point[0])
        last = bisect.bisect_right(history, ms, key=lambda point: point[0])
        day = [p for _, p in history[max(first, last - 1000):last]] or [Decimal(price)]
        data = {"e": "24hrMiniTicker", "E": ms, "s": symbol, "c": price, "o": _fmt(day[0]),
                "h": _fmt(max(day)), "l": _fmt(min(day)), "v": "0.00000000", "q": "0.00000000"}
        return json.dumps({"stream": f"{symbol.lower()}@miniTicker", "data": data}, separators=(",", ":"))

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
            if request.method != "GET":
                self._refused[request.method] += 1
                return Response(405, b"", "text/html", headers={"Allow": "GET"})
            if request.path == KLINES_PATH:
                return self._klines(dict(request.query))
            return self._ticker(request)

    def _ticker(self, request: Request) -> Response:
        if request.path != PRICE_PATH:
            return Response(404, b"", "text/html")
        params = dict(request.query)
        if "symbols" in params:
            try:
                asked = json.loads(params["symbols"])
            except ValueError:
                asked = [params["symbols"]]
            self._asked.append([str(a) for a in asked] if isinstance(asked, list) else [params["symbols"]])
        else:
            self._asked.append([params["symbol"]] if "symbol" in params else None)
        return self._ticker_answer(params)

    def _ticker_answer(self, params: dict[str, str]) -> Response:
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

    def _klines(self, params: dict[str, str]) -> Response:
        """Candles bucketed from the recorded history; an empty bucket repeats the previous close, like a
        market with no trades in that interval."""
        symbol = params.get("symbol", "")
        if not symbol:
            return self._error(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        step = _INTERVAL_MS.get(params.get("interval", ""))
        if step is None:
            return self._error(-1120, "Invalid interval.")
        history = self._history.get(symbol)
        if not history:
            return self._error(-1121, "Invalid symbol.")
        try:
            limit = int(params.get("limit", "500"))
            start = int(params["startTime"]) if "startTime" in params else None
            end = int(params["endTime"]) if "endTime" in params else _ms(self._clock())
        except ValueError:
            return self._error(-1100, "Illegal characters found in a parameter.")
        if not 1 <= limit <= 1000:
            return self._error(-1130, "Invalid data sent for a parameter.")
        first, last = history[0][0] // step * step, end // step * step
        if start is not None:
            opens = range(max(first, -(-start // step) * step), last + 1, step)[:limit]
        else:
            opens = range(first, last + 1, step)[-limit:]
        times = [t for t, _ in history]
        rows: list[list[Any]] = []
        for opened in opens:
            lo, hi = bisect.bisect_left(times, opened), bisect.bisect_left(times, opened + step)
            before = history[lo - 1][1] if lo > 0 else None
            inside = [p for _, p in history[lo:hi]]
            if not inside and before is None:
                continue
            o = inside[0] if inside else before
            c = inside[-1] if inside else before
            assert o is not None and c is not None
            points = inside or [c]
            rows.append([opened, _fmt(o), _fmt(max(points)), _fmt(min(points)), _fmt(c), "0.00000000",
                         opened + step - 1, "0.00000000", len(inside), "0.00000000", "0.00000000", "0"])
        return Response.json(200, rows)

    @staticmethod
    def _error(code: int, msg: str) -> Response:
        return Response.json(400, {"code": code, "msg": msg})


def _ms(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("the fake exchange's times must be timezone-aware")
    return (at - _EPOCH) // timedelta(milliseconds=1)


def _fmt(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.00000001')):f}"
