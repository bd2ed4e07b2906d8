"""Live prices from Binance's combined WebSocket stream (``<symbol>@miniTicker``), with reconnects.

This module owns one long-lived connection to ``{url}/stream?streams=btcusdt@miniTicker/ethusdt@miniTicker/…``
and nothing else: it turns each message into ``on_price(asset, price, at)`` and tells whether the stream is up.
What to do with a price (the guard, the sweep) and what to do while the stream is down (poll REST) belong to
the caller; this module imports nothing from the bot but the quote asset.

Prices are parsed from Binance's JSON strings straight into ``Decimal`` (never a float). A message that is not a
miniTicker of one of our symbols, or whose price is not a positive finite number, is dropped and counted in
:class:`StreamStats`, so a garbled frame can never become a price.

The connection drops for many ordinary reasons (Binance closes every connection after 24 h, networks fail,
the server restarts); every drop is followed by a reconnect after an exponential back-off with jitter, capped,
and reset once a connection has been healthy, so a flapping server is not hammered and a routine 24-h
close costs a fraction of a second. The ``websockets`` library answers the server's pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from bot.monitor.prices import QUOTE

log = logging.getLogger(__name__)

DEFAULT_STREAM_URL = "wss://data-stream.binance.vision"
OFF = "off"
STREAM_KIND = "miniTicker"

OnPrice = Callable[[str, Decimal, datetime], Awaitable[None] | None]
OnStatus = Callable[[bool], Awaitable[None] | None]


def stream_base_url(setting: str | None) -> str | None:
    """``LOANDESK_BINANCE_STREAM_URL`` → the base URL to connect to, or ``None`` when streaming is ``off``.

    Unset or blank means Binance's public market-data endpoint; ``off`` (any case) disables streaming.
    Anything that is not a ``ws://`` or ``wss://`` URL is refused with a ``ValueError`` so a typo is
    caught at start, not by a silent fallback to polling.
    """
    value = (setting or "").strip()
    if not value:
        return DEFAULT_STREAM_URL
    if value.lower() == OFF:
        return None
    if not value.lower().startswith(("ws://", "wss://")):
        raise ValueError(f"the stream URL must start with ws:// or wss:// (or be 'off'), not {value!r}")
    return value.rstrip("/")


def stream_symbols(assets: Iterable[str]) -> dict[str, str]:
    """Binance symbol → asset for every asset but the quote itself (``{"BTCUSDT": "BTC", ...}``), sorted."""
    names = sorted({a.strip().upper() for a in assets if a.strip()} - {QUOTE})
    return {name + QUOTE: name for name in names}


def subscription_url(url: str, assets: Iterable[str]) -> str:
    """``{url}/stream?streams=btcusdt@miniTicker/ethusdt@miniTicker`` for ``assets`` (the quote asset left out)."""
    streams = "/".join(f"{symbol.lower()}@{STREAM_KIND}" for symbol in stream_symbols(assets))
    return f"{url.rstrip('/')}/stream?streams={streams}"


@dataclass
class StreamStats:
    """What the stream has seen since it was made; the counters only grow."""

    connects: int = 0  # successful handshakes
    failures: int = 0  # attempts that failed or connections that ended for any reason but close()
    messages: int = 0  # frames received
    prices: int = 0  # prices passed to on_price
    malformed: int = 0  # not JSON, not a combined-stream miniTicker, or a price that is not a number
    rejected: int = 0  # a number, but zero, negative, NaN or infinite
    unknown: int = 0  # a symbol we did not subscribe to
    callback_errors: int = 0  # on_price or on_status raised (logged; the stream goes on)


class Backoff:
    """Exponential back-off with jitter: ``initial × factor**n``, capped at ``maximum``, then jittered.

    Jitter spreads the reconnects of many processes after a shared outage; each delay is drawn from
    ``[base × (1 − jitter), base]`` so it never collapses to zero and never exceeds the cap.
    """

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0, jitter: float = 0.5,
                 rand: Callable[[], float] = random.random) -> None:
        if not (0 < initial <= maximum and factor >= 1 and 0 <= jitter <= 1):
            raise ValueError("need 0 < initial <= maximum, factor >= 1 and 0 <= jitter <= 1")
        self.initial, self.maximum, self.factor, self.jitter = initial, maximum, factor, jitter
        self._rand = rand
        self.attempt = 0  # failures in a row since the last reset

    def next(self) -> float:
        """The delay before the next attempt (seconds); each call counts one more failure."""
        base = min(self.maximum, self.initial * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        return base * (1 - self.jitter * self._rand())

    def reset(self) -> None:
        self.attempt = 0


def parse_message(raw: str | bytes, symbols: dict[str, str]) -> tuple[str, Decimal] | str:
    """One combined-stream frame → ``(asset, price)``, or the :class:`StreamStats` counter it belongs to
    (``"malformed"``, ``"rejected"`` or ``"unknown"``)."""
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        # parse_constant: a bare NaN/Infinity becomes a (non-finite) Decimal, never a float.
        message = json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)
    except (UnicodeDecodeError, ValueError):
        return "malformed"
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, dict):
        return "malformed"
    symbol, raw_price = data.get("s"), data.get("c")
    if not isinstance(symbol, str) or not isinstance(raw_price, str | Decimal):
        return "malformed"
    if symbol.upper() not in symbols:
        return "unknown"
    try:
        price = Decimal(raw_price)
    except InvalidOperation:
        return "malformed"
    if not price.is_finite() or price <= 0:
        return "rejected"
    return symbols[symbol.upper()], price


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PriceStream:
    """A self-healing subscription to ``<symbol>@miniTicker`` for ``assets``.

    Run :meth:`run` as a task; it returns only after :meth:`close`. ``on_price(asset, price, at)`` is called
    (and awaited when it returns an awaitable) for every valid message, in order, with ``at`` the time this
    process received it by ``clock`` — the guard judges age against that same clock, so a skewed exchange
    clock cannot make a price look fresh. Keep ``on_price`` quick (store the price, signal a sweep): the next
    frame is read only after it returns.

    The stream starts down. ``on_status(True)`` is called when a connection opens and ``on_status(False)``
    when it is lost (once per loss, not once per failed reconnect), so a scheduler can poll REST while the
    stream is down; :attr:`connected` tells the same at any time, :attr:`last_message_at` when the last frame
    arrived, :attr:`stats` what was received and dropped.
    A connection that says nothing for ``idle_timeout`` seconds is treated as dead (a half-open TCP
    connection can look alive for minutes), and a connection counts as healthy — the back-off starts again
    from ``initial`` — once it has delivered a price and stayed open ``healthy_seconds``.
    """

    def __init__(self, url: str, assets: Iterable[str], on_price: OnPrice, *, on_status: OnStatus | None = None,
                 clock: Callable[[], datetime] = _utcnow, backoff: Backoff | None = None,
                 idle_timeout: float | None = 60.0, healthy_seconds: float = 10.0, open_timeout: float = 10.0,
                 close_timeout: float = 2.0) -> None:
        self.symbols = stream_symbols(assets)
        if not self.symbols:
            raise ValueError("a price stream needs at least one asset besides the quote asset")
        self.url = subscription_url(url, self.symbols.values())
        self.stats = StreamStats()
        self.backoff = backoff or Backoff()
        self.idle_timeout = idle_timeout
        self.healthy_seconds = healthy_seconds
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.last_message_at: datetime | None = None
        self._on_price = on_price
        self._on_status = on_status
        self._clock = clock
        self._connected = False
        self._closing = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running: asyncio.Task[None] | None = None
        self._session_prices = 0

    @property
    def connected(self) -> bool:
        """True while a connection is open (the stream is "up")."""
        return self._connected

    async def run(self) -> None:
        """Connect, read and reconnect until :meth:`close`; never raises for network trouble.

        ``close`` is final: a later ``run`` returns at once. Cancelling the task running ``run`` also stops it.
        """
        if self._running is not None:
            raise RuntimeError("PriceStream.run() is already running")
        self._running = asyncio.current_task()
        self._stopped.clear()
        loop = asyncio.get_running_loop()
        try:
            while not self._closing.is_set():
                started = loop.time()
                session = asyncio.create_task(self._session(), name="price-stream-session")
                closing = asyncio.create_task(self._closing.wait(), name="price-stream-closing")
                try:
                    await asyncio.wait({session, closing}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    closing.cancel()
                    if not session.done():
                        session.cancel()  # close(): leave the handshake or the read at once
                    with contextlib.suppress(asyncio.CancelledError):
                        await session
                healthy = self._session_prices > 0 and loop.time() - started >= self.healthy_seconds
                if self._closing.is_set():
                    break
                self.stats.failures += 1
                if healthy:
                    self.backoff.reset()
                delay = self.backoff.next()
                log.info("price stream: reconnecting in %.2f s", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
        finally:
            self._running = None
            self._stopped.set()

    async def close(self) -> None:
        """Stop: close the connection, end :meth:`run` and wait for it (unless called from inside it)."""
        self._closing.set()
        if self._running is not None and self._running is not asyncio.current_task():
            await self._stopped.wait()

    async def _session(self) -> None:
        """One connection, from the handshake until it is lost (counting its prices in ``_session_prices``)."""
        self._session_prices = 0
        try:
            async with connect(self.url, open_timeout=self.open_timeout, close_timeout=self.close_timeout,
                               max_size=2**20) as ws:
                self.stats.connects += 1
                log.info("price stream connected (%s symbols)", len(self.symbols))
                await self._set_status(True)
                await self._read(ws)
        except (OSError, TimeoutError, WebSocketException) as exc:
            # A normal close (Binance's 24-h limit), a reset, a refused handshake, an idle timeout: reconnect.
            log.warning("price stream lost: %s: %s", type(exc).__name__, exc)
        except Exception:
            # Not a network failure, so a bug; a stream that stopped for good would be worse: log and go on.
            log.exception("price stream failed unexpectedly; reconnecting")
        finally:
            if self._connected:
                await self._set_status(False)

    async def _read(self, ws: ClientConnection) -> None:
        """Read frames until the connection ends, which ``recv`` (or the idle timeout) raises."""
        while True:
            async with asyncio.timeout(self.idle_timeout):
                raw = await ws.recv()
            now = self._clock()
            self.stats.messages += 1
            self.last_message_at = now
            parsed = parse_message(raw, self.symbols)
            if isinstance(parsed, str):
                setattr(self.stats, parsed, getattr(self.stats, parsed) + 1)
                if parsed != "unknown":
                    log.debug("price stream: dropped a %s frame: %.200r", parsed, raw)
                continue
            asset, price = parsed
            self.stats.prices += 1
            self._session_prices += 1
            await self._call(self._on_price, asset, price, now)

    async def _set_status(self, up: bool) -> None:
        self._connected = up
        if self._on_status is not None:
            await self._call(self._on_status, up)

    async def _call(self, callback: Callable[..., Awaitable[None] | None], *args: object) -> None:
        """Call a consumer's callback; a bug there is logged and counted but never stops the stream."""
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.callback_errors += 1
            log.exception("price stream: callback %s failed", getattr(callback, "__name__", callback))
