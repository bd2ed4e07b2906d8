"""A tracked position: a loan at another lender, valued with the desk's prices but governed by the lender's levels.

Debt. ``debt`` is what was owed at ``debt_at`` (an edit, or a sync). It compounds at every full UTC hour after
that at ``apr`` — ``D ← D × (1 + APR/8760)``, as on the desk (SPEC §3) — so the debt at ``now`` is
``debt × (1 + APR/8760)^h`` with ``h`` the HH:00s in ``(debt_at, now]``. An edit or a sync sets a new
``debt``/``debt_at``; nothing accrues in storage between them.

LTV. ``debt × P_loan / Σ amount × P`` from live prices, times ``calibration``: at a sync the lender's own
``currentLTV`` is divided by the LTV we compute at that moment, so between syncs a price move shows at once
and each sync pulls our figure back onto the lender's (its haircuts, its price index). Manual positions keep a
calibration of 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from domain.errors import Rejected
from domain.money import ONE, ZERO
from domain.rates import HOURS_PER_YEAR, hours_between

QUOTE = "USDT"


class Lender(StrEnum):
    MANUAL = "manual"
    BINANCE = "binance"


class Kind(StrEnum):
    MANUAL = "manual"  # any lender, by hand
    FLEXIBLE = "flexible"  # Binance Flexible Loan v2
    VIP = "vip"  # Binance VIP loan


@dataclass(frozen=True)
class Levels:
    """The lender's LTV levels (fractions). ``initial`` is unknown for manual positions."""

    margin_call: Decimal
    liquidation: Decimal
    initial: Decimal | None = None

    def check(self) -> None:
        if not ZERO < self.margin_call < self.liquidation <= ONE:
            raise Rejected("bad_levels", "the margin-call level must be above 0% and below the liquidation "
                                         "level, and the liquidation level at most 100%")


@dataclass
class Alarm:
    """Which pushes are armed (the desk's hysteresis: fire on crossing, re-arm 2 points below)."""

    warned: bool = False
    margin_call: bool = False
    margin_call_at: datetime | None = None
    near: bool = False


@dataclass
class Tracked:
    id: int
    owner: str
    lender: Lender
    kind: Kind
    loan_asset: str
    debt: Decimal
    debt_at: datetime
    apr: Decimal
    collateral: dict[str, Decimal]
    levels: Levels
    opened_at: datetime
    ref: str = ""  # Binance: "flexible:<loan>:<collateral>" or "vip:<orderId>"; manual: ""
    calibration: Decimal = ONE
    synced_at: datetime | None = None
    synced_ltv: Decimal | None = None
    expires_at: datetime | None = None  # VIP loans with an expirationTime
    reminders_sent: list[str] = field(default_factory=list)
    alarm: Alarm = field(default_factory=Alarm)

    @property
    def where(self) -> str:
        return "Binance" if self.lender is Lender.BINANCE else "manual"

    @property
    def assets(self) -> list[str]:
        return [*self.collateral, self.loan_asset]


def debt_at(t: Tracked, now: datetime) -> Decimal:
    """The debt at ``now``: the recorded debt compounded at every HH:00 since it was recorded."""
    hours = sum(1 for _ in hours_between(t.debt_at, now)) if now > t.debt_at else 0
    if hours == 0 or t.apr == 0:
        return t.debt
    return t.debt * (ONE + t.apr / HOURS_PER_YEAR) ** hours


def collateral_value(t: Tracked, prices: Mapping[str, Decimal]) -> Decimal:
    return sum((amount * _price(prices, a) for a, amount in t.collateral.items()), ZERO)


def raw_ltv(t: Tracked, prices: Mapping[str, Decimal], now: datetime) -> Decimal:
    value = collateral_value(t, prices)
    debt = debt_at(t, now) * _price(prices, t.loan_asset)
    if value <= 0:
        return Decimal("Infinity") if debt > 0 else ZERO
    return debt / value


def ltv(t: Tracked, prices: Mapping[str, Decimal], now: datetime) -> Decimal:
    """The LTV at ``now`` from live prices, recalibrated on the lender's figure at the last sync."""
    return raw_ltv(t, prices, now) * t.calibration


def price_at_level(t: Tracked, prices: Mapping[str, Decimal], now: datetime, level: Decimal) -> Decimal | None:
    """For a single-collateral position: the collateral price at which the LTV reaches ``level``."""
    if len(t.collateral) != 1:
        return None
    amount = next(iter(t.collateral.values()))
    if amount <= 0:
        return None
    debt_value = debt_at(t, now) * _price(prices, t.loan_asset) * t.calibration
    return debt_value / (amount * level)


def _price(prices: Mapping[str, Decimal], asset: str) -> Decimal:
    if asset == QUOTE:
        return prices.get(asset, ONE)
    p = prices.get(asset)
    if p is None or p <= 0:
        raise Rejected("no_price", f"no price for {asset} right now")
    return p
