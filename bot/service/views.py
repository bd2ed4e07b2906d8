"""Read models: a position and the whole book as the chat shows them, computed from the domain.

A ``PositionView`` carries the numbers every preview and position answer needs: debt (rounded up as it would
be settled), collateral, LTV, the margin-call and liquidation prices of a single-collateral position, and
the interest per hour and per day at the APR in force from the next HH:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from domain.desk import Desk
from domain.errors import Rejected
from domain.markets import Thresholds
from domain.money import ONE, ZERO, round_up
from domain.positions import Position
from domain.prices import Prices
from domain.rates import HOURS_PER_YEAR, next_hour
from domain.risk import price_at_ltv


@dataclass(frozen=True)
class PositionView:
    id: int
    owner: str
    product: str
    status: str
    loan_asset: str
    debt: Decimal
    collateral: dict[str, Decimal]
    ltv: Decimal | None  # None: no price right now
    thresholds: Thresholds
    margin_call_price: Decimal | None
    liquidation_price: Decimal | None
    apr: Decimal
    hourly_interest: Decimal
    daily_interest: Decimal
    expires_at: datetime | None = None
    fixed_interest: Decimal | None = None

    @property
    def single_collateral(self) -> str | None:
        return next(iter(self.collateral)) if len(self.collateral) == 1 else None


@dataclass(frozen=True)
class BookView:
    positions: list[PositionView]
    debt: dict[str, Decimal]
    collateral: dict[str, Decimal]


def position_view(desk: Desk, p: Position, prices: Prices, now: datetime) -> PositionView:
    debt_exact = desk.debt(p, now)
    debt = round_up(debt_exact, desk.catalog.precision(p.loan_asset))
    amounts = {a: v for a, v in desk.collateral_amounts(p, now).items() if v > 0}
    th = desk.thresholds(p) if amounts or p.collateral else desk.catalog.thresholds("fixed")
    ltv: Decimal | None
    mc = liq = None
    try:
        ltv = desk.ltv(p, prices, now)
        lots = desk.lots(p, prices, now, amounts)
        single = next(iter(amounts)) if len(amounts) == 1 else None
        if single is not None and debt_exact > 0:
            loan_price = prices.get(p.loan_asset, ONE)
            mc = price_at_ltv(debt_exact, loan_price, lots, single, th.margin_call)
            liq = price_at_ltv(debt_exact, loan_price, lots, single, th.liquidation)
    except Rejected:
        ltv = None
    apr = ZERO
    if p.rate_key:
        apr = desk.market(p.rate_key, now).apr_at(next_hour(now))
    elif p.fixed is not None:
        apr = p.fixed.apr
    compounding = p.rate_key is not None
    hourly = debt_exact * apr / HOURS_PER_YEAR if compounding else ZERO
    daily = debt_exact * ((ONE + apr / HOURS_PER_YEAR) ** 24 - ONE) if compounding else ZERO
    return PositionView(p.id, p.owner, p.product.value, p.status.value, p.loan_asset, debt, amounts, ltv, th, mc,
                        liq, apr, hourly, daily, p.fixed.expires_at if p.fixed else None,
                        p.fixed.interest if p.fixed else None)
