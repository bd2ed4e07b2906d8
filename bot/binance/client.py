"""``BinanceAccount``: one linked Binance account's loan endpoints, each a signed GET parsed into dataclasses.

Each method names its endpoint and documented weight; the sending, signing, clock, weight accounting and
errors are :class:`~bot.binance.transport.SignedTransport`'s. Paged endpoints return one :class:`Page`; the
``all_*`` methods read page after page until ``total``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.binance import endpoints as ep
from bot.binance import responses
from bot.binance.endpoints import MAX_PAGE, MAX_PAGE_SIZE, Endpoint
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
from bot.binance.signing import Params
from bot.binance.transport import SignedTransport

T = TypeVar("T")
When = dt.datetime | int | None  # a datetime, or epoch milliseconds


def _ms(value: When) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, dt.datetime) else value


def _page_params(current: int, limit: int) -> list[tuple[str, int]]:
    if not 1 <= current <= MAX_PAGE or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"current must be 1..{MAX_PAGE} and limit 1..{MAX_PAGE_SIZE}")
    return [("current", current), ("limit", limit)]


class BinanceAccount(SignedTransport):
    """Read-only access to one Binance account: ``BinanceAccount(url, api_key, signer)``, then the methods below.

    Open it with ``async with`` (or call :meth:`aclose`); see :class:`SignedTransport` for the options.
    """

    async def api_restrictions(self) -> ApiRestrictions:
        """``GET /sapi/v1/account/apiRestrictions`` (weight 1): what this key may do."""
        return responses.api_restrictions(await self.get(ep.API_RESTRICTIONS), ep.API_RESTRICTIONS.path)

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

    # ------------------------------------------------------------------ paging

    async def _page(self, endpoint: Endpoint, params: Params, parse_row: Callable[[Row], T]) -> Page[T]:
        return parse_page(await self.get(endpoint, params), endpoint.path, parse_row)

    @staticmethod
    async def _all_pages(fetch: Callable[[int], Awaitable[Page[T]]]) -> list[T]:
        rows: list[T] = []
        for current in range(1, MAX_PAGE + 1):
            page = await fetch(current)
            rows.extend(page.rows)
            if not page.rows or len(rows) >= page.total:
                break
        return rows

