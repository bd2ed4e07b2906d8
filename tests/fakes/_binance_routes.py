"""The fake Binance's signed endpoints: path, documented weight, accepted parameters, and the JSON answer.

One :class:`Route` per endpoint of the Binance docs (Crypto Loan → Flexible Rate, VIP Loan, Wallet → Account).
Parameters are checked as Binance checks them: an unknown one is -1104, a duplicate -1101, a missing mandatory
one -1102, a ``current`` outside 1..1000 or ``limit`` outside 1..100 -1130. Paged answers are
``{"rows": [...], "total": n}``; histories are newest first, default to the last 90 days, and refuse a span
longer than the docs allow (-1127).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes._binance_book import FakeAccount

DAY_MS = 86_400_000
SIGNING_PARAMS = frozenset({"timestamp", "recvWindow", "signature"})
PAGING = frozenset({"current", "limit"})


class RouteError(Exception):
    """A Binance error answer (HTTP 400) with its code and message."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


Body = Callable[[FakeAccount, dict[str, str], int], Any]


@dataclass(frozen=True)
class Route:
    path: str
    weight: int
    params: frozenset[str]
    body: Body
    mandatory: tuple[str, ...] = ()
    needs_reading: bool = True

    def answer(self, account: FakeAccount, query: list[tuple[str, str]], now_ms: int) -> Any:
        names = [name for name, _ in query]
        if len(set(names)) != len(names):
            raise RouteError(-1101, "Duplicate values for a parameter detected.")
        unknown = [n for n in names if n not in self.params | SIGNING_PARAMS]
        if unknown:
            read = len(names) - len(unknown)
            raise RouteError(-1104, f"Not all sent parameters were read; read '{read}' parameter(s) but was sent "
                                    f"'{len(names)}'.")
        params = dict(query)
        for name in self.mandatory:
            if not params.get(name):
                raise RouteError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return self.body(account, params, now_ms)


def _integer(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise RouteError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    value = int(raw)
    if not low <= value <= high:
        raise RouteError(-1130, f"Data sent for parameter '{name}' is not valid.")
    return value


def _page(rows: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
    current = _integer(params, "current", 1, 1, 1000)
    limit = _integer(params, "limit", 10, 1, 100)
    return {"rows": rows[(current - 1) * limit: current * limit], "total": len(rows)}


def _matching(rows: list[dict[str, Any]], params: dict[str, str], *names: str) -> list[dict[str, Any]]:
    """Rows whose fields equal every filter the request sent (``loanCoin=USDT`` …)."""
    return [r for r in rows if all(name not in params or str(r[name]) == params[name] for name in names)]


def _window(rows: list[dict[str, Any]], params: dict[str, str], time_field: str, now_ms: int,
            max_days: int) -> list[dict[str, Any]]:
    """Rows in [startTime, endTime] (default: the last 90 days), newest first."""
    start = int(params["startTime"]) if "startTime" in params else None
    end = int(params["endTime"]) if "endTime" in params else None
    if start is not None and end is not None and end - start > max_days * DAY_MS:
        raise RouteError(-1127, f"More than {max_days * 24} hours between startTime and endTime.")
    if start is None:
        start = (end if end is not None else now_ms) - 90 * DAY_MS
    if end is None:
        end = now_ms
    chosen = [r for r in rows if start <= int(r[time_field]) <= end]
    return sorted(chosen, key=lambda r: int(r[time_field]), reverse=True)


def _api_restrictions(account: FakeAccount, params: dict[str, str], now_ms: int) -> Any:
    return dict(account.permissions)


def _flexible_orders(account: FakeAccount, params: dict[str, str], now_ms: int) -> Any:
    return _page(_matching(account.flexible_loans, params, "loanCoin", "collateralCoin"), params)


def _collateral_data(account: FakeAccount, params: dict[str, str], now_ms: int) -> Any:
    rows = _matching(account.collateral_data, params, "collateralCoin")
    return {"rows": rows, "total": len(rows)}


def _loanable_data(account: FakeAccount, params: dict[str, str], now_ms: int) -> Any:
    rows = _matching(account.loanable_data, params, "loanCoin")
    return {"rows": rows, "total": len(rows)}


def _rate_history(account: FakeAccount, params: dict[str, str], now_ms: int) -> Any:
    rows = _window(_matching(account.rate_history, params, "coin"), params, "time", now_ms, max_days=90)
    return _page(rows, params)


def _liquidations(account: FakeAccount, params: dict[str, str], now_ms: int) -> Any:
    rows = _matching(account.liquidation_history, params, "loanCoin", "collateralCoin")
    return _page(_window(rows, params, "liquidationStartingTime", now_ms, max_days=180), params)


def _repayments(account: FakeAccount, params: dict[str, str], now_ms: int) -> Any:
    rows = _matching(account.repay_history, params, "loanCoin", "collateralCoin")
    return _page(_window(rows, params, "repayTime", now_ms, max_days=180), params)


def _vip_orders(account: FakeAccount, params: dict[str, str], now_ms: int) -> Any:
    rows = _matching(account.vip_loans, params, "orderId", "loanCoin")
    if "collateralCoin" in params:  # a VIP order's collateralCoin is a list: "BNB,BTC,ETH"
        rows = [r for r in rows if params["collateralCoin"] in r["collateralCoin"].split(",")]
    return _page(rows, params)


def _vip_repayments(account: FakeAccount, params: dict[str, str], now_ms: int) -> Any:
    rows = _matching(account.vip_repay_history, params, "orderId", "loanCoin")
    return _page(_window(rows, params, "repayTime", now_ms, max_days=180), params)


_HISTORY = frozenset({"startTime", "endTime"}) | PAGING
ROUTES: dict[str, Route] = {
    route.path: route
    for route in (
        Route("/sapi/v1/account/apiRestrictions", 1, frozenset(), _api_restrictions, needs_reading=False),
        Route("/sapi/v2/loan/flexible/ongoing/orders", 300, frozenset({"loanCoin", "collateralCoin"}) | PAGING,
              _flexible_orders),
        Route("/sapi/v2/loan/flexible/collateral/data", 400, frozenset({"collateralCoin"}), _collateral_data),
        Route("/sapi/v2/loan/flexible/loanable/data", 400, frozenset({"loanCoin"}), _loanable_data),
        Route("/sapi/v2/loan/interestRateHistory", 400, frozenset({"coin"}) | _HISTORY, _rate_history,
              mandatory=("coin", "recvWindow")),  # the docs mark recvWindow mandatory here, and only here
        Route("/sapi/v2/loan/flexible/liquidation/history", 400, frozenset({"loanCoin", "collateralCoin"}) | _HISTORY,
              _liquidations),
        Route("/sapi/v2/loan/flexible/repay/history", 400, frozenset({"loanCoin", "collateralCoin"}) | _HISTORY,
              _repayments),
        Route("/sapi/v1/loan/vip/ongoing/orders", 400,
              frozenset({"orderId", "collateralAccountId", "loanCoin", "collateralCoin"}) | PAGING, _vip_orders),
        Route("/sapi/v1/loan/vip/repay/history", 400, frozenset({"orderId", "loanCoin"}) | _HISTORY, _vip_repayments),
    )
}
