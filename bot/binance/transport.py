"""The one way loandesk talks to Binance: signed GET requests, with the clock, the weight and the errors handled.

``SignedTransport`` owns the transport rules (SPEC §9, Binance's "Request Security" and "LIMITS"):

* **GET only.** The one place that sends is :meth:`SignedTransport._send`, and it calls ``httpx.AsyncClient.get``.
* **Signing**: ``timestamp`` = local clock + :attr:`clock_offset_ms`, learnt from ``GET /api/v3/time``; on
  ``-1021`` (timestamp outside ``recvWindow``) the clock is resynced and the request retried **once**.
* **Weight**: every request is counted in a :class:`~bot.binance.budget.WeightBudget` (per endpoint, per
  calendar minute) and the response header (``X-SAPI-USED-IP-WEIGHT-1M`` / ``X-MBX-USED-WEIGHT-1M``) then gives
  the IP's true total. A call that would pass the budget's cap, or go during a ``Retry-After`` wait, is
  refused **before sending** (``RateLimited(local=True)`` / ``Banned(local=True)``): after a 429 nothing more
  reaches Binance, which is what keeps an IP from being banned (418).
* **Failures**: timeouts, connection errors and 5xx are retried with exponential back-off, then
  ``Unavailable``; Binance's key errors become ``KeyRejected``; see :mod:`bot.binance.errors`.

A scheduler shares one budget between all accounts on the same IP and reads :attr:`used_weight`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Self

import httpx

from bot.binance import endpoints as ep
from bot.binance.budget import WeightBudget
from bot.binance.endpoints import Endpoint
from bot.binance.errors import (
    Banned,
    BinanceApiError,
    ClockOutOfSync,
    RateLimited,
    TimestampRejected,
    Unavailable,
    error_for,
)
from bot.binance.models import Row
from bot.binance.signing import DEFAULT_RECV_WINDOW_MS, Params, Signer, encode_payload, signed_query

log = logging.getLogger("bot.binance")


@functools.cache
def _tls() -> ssl.SSLContext:
    """One verifying TLS context for every account: building one loads the CA bundle (~0.1 s of CPU each)."""
    return httpx.create_ssl_context()


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return default


class SignedTransport:
    """Signed GET requests for one API key and its signer (HMAC or Ed25519); see the module."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        signer: Signer,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        recv_window_ms: int = DEFAULT_RECV_WINDOW_MS,
        retries: int = 2,
        backoff: float = 0.5,
        budget: WeightBudget | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``http``: a shared client (not closed here); ``budget``: shared by every account on this IP."""
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.recv_window_ms = recv_window_ms
        self.retries = retries
        self.backoff = backoff
        self.budget = budget or WeightBudget()
        self.clock_offset_ms = 0
        self._signer = signer
        self._clock = clock
        self._sleep = sleep
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(base_url=self.base_url, timeout=timeout, verify=_tls())

    def __repr__(self) -> str:
        # The key is shown shortened and the signer by kind only: a repr can end up in a log.
        return (f"{type(self).__name__}({self.base_url!r}, api_key={self.api_key[:6]!r}…, "
                f"signer={self._signer.kind})")

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ clock and weight

    def now_ms(self) -> int:
        """Binance's time as we estimate it: the local clock plus the last measured offset."""
        return int(self._clock() * 1000) + self.clock_offset_ms

    @property
    def used_weight(self) -> dict[str, int]:
        """Weight used this minute per pool (SAPI endpoint path, or ``/api/*``), as far as we know."""
        return self.budget.snapshot(self.now_ms() / 1000)

    async def server_time(self) -> dt.datetime:
        """``GET /api/v3/time``; also sets :attr:`clock_offset_ms` (server minus the request's local midpoint)."""
        before = self._clock()
        doc = await self.get(ep.SERVER_TIME)
        after = self._clock()
        server_ms = Row(doc, ep.SERVER_TIME.path).integer("serverTime")
        self.clock_offset_ms = server_ms - round((before + after) / 2 * 1000)
        log.debug("Binance clock offset %+d ms", self.clock_offset_ms)
        return dt.datetime.fromtimestamp(server_ms / 1000, tz=dt.UTC)

    async def sync_clock(self) -> int:
        """Measure the offset to Binance's clock again; returns it in milliseconds."""
        await self.server_time()
        return self.clock_offset_ms

    # ------------------------------------------------------------------ sending

    async def get(self, endpoint: Endpoint, params: Params = ()) -> Any:
        """GET ``endpoint`` with ``params`` and return its JSON (numbers as ``Decimal``); on -1021 resync the
        clock and send once more."""
        params = list(params)
        for resynced in (False, True):
            response = await self._send(endpoint, params)
            try:
                return self._read(endpoint, response)
            except TimestampRejected as rejected:
                if resynced or not endpoint.signed:
                    raise ClockOutOfSync(endpoint.path, str(rejected)) from None
                log.warning("Binance rejected the timestamp on %s; resyncing the clock", endpoint.path)
                await self.sync_clock()
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_budget(self, endpoint: Endpoint, now: float) -> None:
        wait = self.budget.wait_seconds(endpoint.pool, endpoint.weight, now)
        if wait <= 0:
            return
        banned_until = self.budget.banned_until(now)
        if banned_until is not None:
            until = dt.datetime.fromtimestamp(banned_until, tz=dt.UTC)
            raise Banned(endpoint.path, round(wait, 3), until, local=True)
        raise RateLimited(endpoint.path, round(wait, 3), local=True)

    async def _send(self, endpoint: Endpoint, params: list[tuple[str, Any]]) -> httpx.Response:
        """One GET, with retries on timeouts, connection errors and 5xx. The only method that sends."""
        headers = {"X-MBX-APIKEY": self.api_key} if endpoint.signed else {}
        attempts = self.retries + 1
        what = ""
        for attempt in range(1, attempts + 1):
            now = self.now_ms() / 1000
            self._check_budget(endpoint, now)
            if endpoint.signed:  # a fresh timestamp for every attempt
                query = signed_query(params, self._signer, timestamp_ms=self.now_ms(),
                                     recv_window_ms=self.recv_window_ms)
            else:
                query = encode_payload(params)
            self.budget.spend(endpoint.pool, endpoint.weight, now)
            try:
                response = await self._http.get(f"{endpoint.path}?{query}" if query else endpoint.path,
                                                headers=headers)
            except httpx.TimeoutException:
                what = "timed out"
            except httpx.TransportError as exc:
                what = f"connection failed ({type(exc).__name__})"
            else:
                self._observe(endpoint, response, now)
                if response.status_code < 500:
                    return response
                what = f"HTTP {response.status_code}"
            if attempt < attempts:
                delay = self.backoff * 2 ** (attempt - 1)
                log.warning("Binance GET %s: %s; retry %d in %.2f s", endpoint.path, what, attempt, delay)
                await self._sleep(delay)
        raise Unavailable(endpoint.path, attempts, what)

    def _observe(self, endpoint: Endpoint, response: httpx.Response, now: float) -> None:
        header = response.headers.get(endpoint.weight_header)
        if header is not None and header.strip().isdigit():
            self.budget.observe(endpoint.pool, int(header), now)
        log.debug("Binance GET %s -> %d, weight %d/%d this minute", endpoint.path, response.status_code,
                  self.budget.used(endpoint.pool, now), endpoint.limit)

    def _read(self, endpoint: Endpoint, response: httpx.Response) -> Any:
        """The JSON body of a 2xx answer, or the exception for everything else."""
        path, status, now = endpoint.path, response.status_code, self.now_ms() / 1000
        if status == 429:
            wait = _retry_after(response, default=60 - now % 60)
            self.budget.block(endpoint.pool, wait, now)
            raise RateLimited(path, wait)
        if status == 418:
            wait = _retry_after(response, default=120.0)
            self.budget.block(None, wait, now)
            raise Banned(path, wait, dt.datetime.fromtimestamp(now + wait, tz=dt.UTC))
        try:
            doc = json.loads(response.text, parse_float=Decimal)
        except ValueError:
            raise BinanceApiError(path, "the answer is not JSON", status=status) from None
        if 200 <= status < 300:
            return doc
        raise error_for(path, status, doc)
