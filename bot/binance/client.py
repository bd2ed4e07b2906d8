"""``BinanceAccount``: one linked Binance account, read over httpx with signed GET requests and nothing else.

The client owns the transport rules (SPEC §9, Binance's "Request Security" and "LIMITS"):

* **GET only.** The one place that sends is :meth:`BinanceAccount._send`, and it calls ``httpx.AsyncClient.get``.
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
import json
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import httpx

from bot.binance import endpoints as ep
from bot.binance import responses
from bot.binance.budget import WeightBudget
from bot.binance.endpoints import MAX_PAGE, MAX_PAGE_SIZE, Endpoint
from bot.binance.errors import (
    KEY_REASONS,
    Banned,
    BinanceApiError,
    ClockOutOfSync,
    KeyRejected,
    RateLimited,
    Unavailable,
)
from bot.binance.models import (
    ApiRestrictions,
    CollateralThresholds,
    FlexibleLoan,
    FlexibleRepayment,
    InterestRate,
    Liquidation,
    LoanableAsset,
    Page,
    Row,
    VipLoan,
    VipRepayment,
    parse_page,
)
from bot.binance.signing import DEFAULT_RECV_WINDOW_MS, Params, Signer, encode_payload, signed_query

log = logging.getLogger(__name__)
T = TypeVar("T")
When = dt.datetime | int | None  # a datetime, or epoch milliseconds


class _TimestampRejected(Exception):
    """-1021 from Binance; handled inside the client (resync and retry once)."""


def _ms(value: When) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, dt.datetime) else value


def _page_params(current: int, limit: int) -> list[tuple[str, int]]:
    if not 1 <= current <= MAX_PAGE or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"current must be 1..{MAX_PAGE} and limit 1..{MAX_PAGE_SIZE}")
    return [("current", current), ("limit", limit)]


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return default


class BinanceAccount:
    """Read-only access to one Binance account through an API key and its signer (HMAC or Ed25519)."""

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
        self._http = http or httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    def __repr__(self) -> str:
        return f"BinanceAccount({self.base_url!r}, api_key={self.api_key[:6]!r}…, signer={self._signer.kind})"

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> BinanceAccount:
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
        doc = await self._get(ep.SERVER_TIME)
        after = self._clock()
        server_ms = Row(doc, ep.SERVER_TIME.path).integer("serverTime")
        self.clock_offset_ms = server_ms - round((before + after) / 2 * 1000)
        log.debug("Binance clock offset %+d ms", self.clock_offset_ms)
        return dt.datetime.fromtimestamp(server_ms / 1000, tz=dt.UTC)

    async def sync_clock(self) -> int:
        """Measure the offset to Binance's clock again; returns it in milliseconds."""
        await self.server_time()
        return self.clock_offset_ms

    # ------------------------------------------------------------------ endpoints

    async def api_restrictions(self) -> ApiRestrictions:
        """``GET /sapi/v1/account/apiRestrictions`` (weight 1): what this key may do."""
        return responses.api_restrictions(await self._get(ep.API_RESTRICTIONS), ep.API_RESTRICTIONS.path)

    async def flexible_ongoing_orders(self, loan_coin: str | None = None, collateral_coin: str | None = None, *,
                                      current: int = 1, limit: int = MAX_PAGE_SIZE) -> Page[FlexibleLoan]:
        """One page of ``GET /sapi/v2/loan/flexible/ongoing/orders`` (weight 300)."""
        params = [("loanCoin", loan_coin), ("collateralCoin", collateral_coin), *_page_params(current, limit)]
        return await self._page(ep.FLEXIBLE_ONGOING_ORDERS, params, responses.flexible_loan)

    async def all_flexible_ongoing_orders(self, page_size: int = MAX_PAGE_SIZE) -> list[FlexibleLoan]:
        """Every flexible loan, page after page (weight 300 a page)."""
        return await self._all_pages(lambda n: self.flexible_ongoing_orders(current=n, limit=page_size))

    async def flexible_collateral_data(self, collateral_coin: str | None = None) -> list[CollateralThresholds]:
        """``GET /sapi/v2/loan/flexible/collateral/data`` (weight 400): LTV thresholds per collateral coin."""
        page = await self._page(ep.FLEXIBLE_COLLATERAL_DATA, [("collateralCoin", collateral_coin)],
                                responses.collateral_thresholds)
        return list(page.rows)

    async def flexible_loanable_data(self, loan_coin: str | None = None) -> list[LoanableAsset]:
        """``GET /sapi/v2/loan/flexible/loanable/data`` (weight 400): current rate and limits per loan coin."""
        page = await self._page(ep.FLEXIBLE_LOANABLE_DATA, [("loanCoin", loan_coin)], responses.loanable_asset)
        return list(page.rows)

    async def interest_rate_history(self, coin: str, start_time: When = None, end_time: When = None, *,
                                    current: int = 1, limit: int = 10) -> Page[InterestRate]:
        """``GET /sapi/v2/loan/interestRateHistory`` (weight 400); without times, the last 90 days."""
        params = [("coin", coin), ("startTime", _ms(start_time)), ("endTime", _ms(end_time)),
                  *_page_params(current, limit)]
        return await self._page(ep.INTEREST_RATE_HISTORY, params, responses.interest_rate)

    async def vip_ongoing_orders(self, order_id: int | None = None, loan_coin: str | None = None,
                                 collateral_coin: str | None = None, *, current: int = 1,
                                 limit: int = MAX_PAGE_SIZE) -> Page[VipLoan]:
        """One page of ``GET /sapi/v1/loan/vip/ongoing/orders`` (weight 400)."""
        params = [("orderId", order_id), ("loanCoin", loan_coin), ("collateralCoin", collateral_coin),
                  *_page_params(current, limit)]
        return await self._page(ep.VIP_ONGOING_ORDERS, params, responses.vip_loan)

    async def all_vip_ongoing_orders(self, page_size: int = MAX_PAGE_SIZE) -> list[VipLoan]:
        """Every VIP loan, page after page (weight 400 a page)."""
        return await self._all_pages(lambda n: self.vip_ongoing_orders(current=n, limit=page_size))

    async def flexible_liquidation_history(self, loan_coin: str | None = None, collateral_coin: str | None = None,
                                           start_time: When = None, end_time: When = None, *, current: int = 1,
                                           limit: int = 10) -> Page[Liquidation]:
        """``GET /sapi/v2/loan/flexible/liquidation/history`` (weight 400); without times, the last 90 days."""
        params = [("loanCoin", loan_coin), ("collateralCoin", collateral_coin), ("startTime", _ms(start_time)),
                  ("endTime", _ms(end_time)), *_page_params(current, limit)]
        return await self._page(ep.FLEXIBLE_LIQUIDATION_HISTORY, params, responses.liquidation)

    async def flexible_repay_history(self, loan_coin: str | None = None, collateral_coin: str | None = None,
                                     start_time: When = None, end_time: When = None, *, current: int = 1,
                                     limit: int = 10) -> Page[FlexibleRepayment]:
        """``GET /sapi/v2/loan/flexible/repay/history`` (weight 400); without times, the last 90 days."""
        params = [("loanCoin", loan_coin), ("collateralCoin", collateral_coin), ("startTime", _ms(start_time)),
                  ("endTime", _ms(end_time)), *_page_params(current, limit)]
        return await self._page(ep.FLEXIBLE_REPAY_HISTORY, params, responses.flexible_repayment)

    async def vip_repay_history(self, order_id: int | None = None, loan_coin: str | None = None,
                                start_time: When = None, end_time: When = None, *, current: int = 1,
                                limit: int = 10) -> Page[VipRepayment]:
        """``GET /sapi/v1/loan/vip/repay/history`` (weight 400); without times, the last 90 days."""
        params = [("orderId", order_id), ("loanCoin", loan_coin), ("startTime", _ms(start_time)),
                  ("endTime", _ms(end_time)), *_page_params(current, limit)]
        return await self._page(ep.VIP_REPAY_HISTORY, params, responses.vip_repayment)

    # ------------------------------------------------------------------ plumbing

    async def _page(self, endpoint: Endpoint, params: Params, parse_row: Callable[[Row], T]) -> Page[T]:
        return parse_page(await self._get(endpoint, params), endpoint.path, parse_row)

    @staticmethod
    async def _all_pages(fetch: Callable[[int], Awaitable[Page[T]]]) -> list[T]:
        rows: list[T] = []
        for current in range(1, MAX_PAGE + 1):
            page = await fetch(current)
            rows.extend(page.rows)
            if not page.rows or len(rows) >= page.total:
                break
        return rows

    async def _get(self, endpoint: Endpoint, params: Params = ()) -> Any:
        """Send, read, and on -1021 resync the clock and send once more."""
        params = list(params)
        for resynced in (False, True):
            response = await self._send(endpoint, params)
            try:
                return self._read(endpoint, response)
            except _TimestampRejected as rejected:
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
        code = doc.get("code") if isinstance(doc, dict) else None
        message = str(doc.get("msg", ""))[:200] if isinstance(doc, dict) else ""
        if code == -1021:
            raise _TimestampRejected(message)
        if code in KEY_REASONS:
            raise KeyRejected(path, code)
        raise BinanceApiError(path, message or "no message", code=code if isinstance(code, int) else None,
                              status=status)
