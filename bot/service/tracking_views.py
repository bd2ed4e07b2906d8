"""Read models of tracked positions (SPEC §9): as the chat shows them, and as the desk's tools read a position.

``TrackedView`` is what ``/positions``, ``/position`` and the link's answer show (marked with where the loan
lives and how old its sync is); ``as_position_view`` gives the desk's ``PositionView`` at the lender's levels, so
``/backtest``, ``/chart`` and the group board take a tracked position like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from bot.service.views import PositionView
from domain.errors import Rejected
from domain.money import ONE, round_down, round_up
from domain.prices import Prices
from domain.rates import HOURS_PER_YEAR
from domain.tracking import tools
from domain.tracking.position import Levels, Tracked, debt_at, ltv, price_at_level


@dataclass(frozen=True)
class TrackedView:
    """A tracked position as the chat shows it (debt rounded up as the lender would settle it)."""

    id: int
    where: str  # "Binance" | "manual"
    kind: str
    loan_asset: str
    debt: Decimal
    collateral: dict[str, Decimal]
    ltv: Decimal | None
    levels: Levels
    apr: Decimal
    hourly_interest: Decimal
    margin_call_price: Decimal | None
    liquidation_price: Decimal | None
    synced_at: datetime | None
    sync_age: timedelta | None
    expires_at: datetime | None

    @property
    def single_collateral(self) -> str | None:
        return next(iter(self.collateral)) if len(self.collateral) == 1 else None


def tracked_view(t: Tracked, prices: Prices, now: datetime, precision: Callable[[str], int]) -> TrackedView:
    debt = debt_at(t, now)
    quotes: Prices = {"USDT": ONE, **prices}
    try:
        current: Decimal | None = ltv(t, quotes, now)
        mc = price_at_level(t, quotes, now, t.levels.margin_call)
        liq = price_at_level(t, quotes, now, t.levels.liquidation)
    except Rejected:
        current = mc = liq = None
    return TrackedView(t.id, t.where, t.kind.value, t.loan_asset, round_up(debt, precision(t.loan_asset)),
                       {a: round_down(v, precision(a)) for a, v in t.collateral.items()}, current, t.levels, t.apr,
                       debt * t.apr / HOURS_PER_YEAR, mc, liq, t.synced_at,
                       now - t.synced_at if t.synced_at else None, t.expires_at)


def as_position_view(t: Tracked, prices: Prices, now: datetime, precision: Callable[[str], int],
                     warning: Decimal) -> PositionView:
    """A tracked position as the desk's tools and the group board read a position, at the lender's levels."""
    v = tracked_view(t, prices, now, precision)
    daily = debt_at(t, now) * ((ONE + t.apr / HOURS_PER_YEAR) ** 24 - ONE)
    label = f"{t.kind.value} ({t.where})" if t.kind.value != t.where else f"{t.where} (held elsewhere)"
    return PositionView(t.id, t.owner, label, "open", t.loan_asset, v.debt, v.collateral,
                        v.ltv, tools.thresholds(t, warning), v.margin_call_price, v.liquidation_price, t.apr,
                        v.hourly_interest, daily, t.expires_at)
