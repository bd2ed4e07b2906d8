"""What Binance answers, as small frozen dataclasses parsed from the documented JSON; every number a ``Decimal``.

Binance sends amounts, rates and LTVs as JSON **strings** ("10000", "0.57"); they become ``Decimal`` straight
from the string. The body is read with ``json.loads(text, parse_float=Decimal)`` so that even a bare JSON
number never passes through a float. Times are milliseconds since the epoch (as numbers, or as strings in the
VIP endpoints) and become timezone-aware UTC datetimes. Field names follow the docs' response examples; a
field that is missing or not a number raises ``BinanceApiError`` naming it, instead of a silent zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

from bot.binance.errors import BinanceApiError

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a ``{"rows": [...], "total": n}`` answer; ``total`` counts every row on every page."""

    rows: tuple[T, ...]
    total: int


@dataclass(frozen=True)
class ApiRestrictions:
    """``GET /sapi/v1/account/apiRestrictions``: every boolean permission flag, by Binance's field name."""

    flags: Mapping[str, bool] = field(hash=False)
    ip_restrict: bool
    create_time: dt.datetime | None

    def enabled(self, name: str) -> bool:
        return self.flags.get(name, False)


@dataclass(frozen=True)
class FlexibleLoan:
    """A Flexible Loan v2 ongoing order: one loan coin against one collateral coin."""

    loan_coin: str
    total_debt: Decimal
    collateral_coin: str
    collateral_amount: Decimal
    current_ltv: Decimal


@dataclass(frozen=True)
class CollateralThresholds:
    """A flexible-loan collateral coin's LTV levels (fractions: 0.75 is 75 %) and its limit in USD."""

    coin: str
    initial_ltv: Decimal
    margin_call_ltv: Decimal
    liquidation_ltv: Decimal
    max_limit: Decimal


@dataclass(frozen=True)
class LoanableAsset:
    """A flexible-loan coin's current rate and borrow limits (USD). The docs do not name the rate's period;
    its size (0.00000491 in their example, ≈ 4.3 % × 1/8760) is that of an hourly rate."""

    coin: str
    flexible_interest_rate: Decimal
    min_limit: Decimal
    max_limit: Decimal


@dataclass(frozen=True)
class InterestRate:
    """One entry of a flexible-loan coin's rate history: the annualised rate from ``time`` on."""

    coin: str
    annualized_rate: Decimal
    time: dt.datetime


@dataclass(frozen=True)
class VipLoan:
    """A VIP loan ongoing order; several collateral coins, valued after haircut. ``loan_rate`` is ``None``
    for a flexible rate; ``expiration_time`` is ``None`` for an open term (Binance sends 0)."""

    order_id: int
    loan_coin: str
    total_debt: Decimal
    loan_rate: Decimal | None
    residual_interest: Decimal
    collateral_account_ids: tuple[str, ...]
    collateral_coins: tuple[str, ...]
    collateral_value_after_haircut: Decimal
    locked_collateral_value: Decimal
    current_ltv: Decimal
    expiration_time: dt.datetime | None
    loan_date: dt.datetime | None
    loan_term: str


@dataclass(frozen=True)
class Liquidation:
    """A flexible-loan liquidation: the debt it covered, the collateral it took, the fee, what came back."""

    loan_coin: str
    liquidation_debt: Decimal
    collateral_coin: str
    liquidation_collateral_amount: Decimal
    return_collateral_amount: Decimal
    liquidation_fee: Decimal
    liquidation_starting_price: Decimal
    liquidation_starting_time: dt.datetime
    status: str  # "Liquidated" or "Liquidating"


@dataclass(frozen=True)
class FlexibleRepayment:
    """A flexible-loan repayment; ``status`` is ``REPAID``, ``REPAYING`` or ``FAILED``."""

    loan_coin: str
    repay_amount: Decimal
    collateral_coin: str
    collateral_return: Decimal
    status: str
    repay_time: dt.datetime


@dataclass(frozen=True)
class VipRepayment:
    """A VIP loan repayment; ``status`` is ``Repaid``, ``Repaying`` or ``Failed``."""

    order_id: int
    loan_coin: str
    repay_amount: Decimal
    collateral_coins: tuple[str, ...]
    status: str
    loan_date: dt.datetime | None
    repay_time: dt.datetime


class Row:
    """Typed reads from one JSON object; a bad field raises ``BinanceApiError`` naming the endpoint and field."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise BinanceApiError(path, f"expected a JSON object, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.path = path

    def _bad(self, key: str, why: str) -> BinanceApiError:
        return BinanceApiError(self.path, f"field {key!r} {why}")

    def _get(self, key: str) -> Any:
        if key not in self.data:
            raise self._bad(key, "is missing")
        return self.data[key]

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._bad(key, "is not a string")
        return value

    def decimal(self, key: str) -> Decimal:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            raise self._bad(key, "is not a decimal number")
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise self._bad(key, "is not a decimal number") from None
        if not number.is_finite():
            raise self._bad(key, "is not a finite number")
        return number

    def integer(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self._bad(key, "is not an integer")
        try:
            return int(value)
        except ValueError:
            raise self._bad(key, "is not an integer") from None

    def time(self, key: str) -> dt.datetime:
        """Milliseconds since the epoch (a number or a numeric string) as a UTC datetime."""
        return dt.datetime.fromtimestamp(self.integer(key) / 1000, tz=dt.UTC)

    def optional_time(self, key: str) -> dt.datetime | None:
        """Like :meth:`time`; missing or 0 (an open term) is ``None``."""
        if self.data.get(key) in (None, 0, "0", ""):
            return None
        return self.time(key)

    def coins(self, key: str) -> tuple[str, ...]:
        """A comma-separated list such as ``"BNB,BTC,ETH"``."""
        return tuple(part.strip() for part in self.text(key).split(",") if part.strip())

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._bad(key, "is not true/false")
        return value


def parse_page(doc: Any, path: str, parse_row: Callable[[Row], T]) -> Page[T]:
    """``{"rows": [...], "total": n}`` → a :class:`Page`. ``rows`` may be absent when there are none, ``total``
    never is: a body without it is not the documented answer, and reading it as "no loans" would be a lie."""
    top = Row(doc, path)
    total = top.integer("total")
    raw_rows = top.data.get("rows") or []
    if not isinstance(raw_rows, list):
        raise BinanceApiError(path, "field 'rows' is not a list")
    return Page(rows=tuple(parse_row(Row(item, path)) for item in raw_rows), total=total)
