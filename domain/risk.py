"""Risk maths on plain numbers: LTV, trigger prices, what it takes to get safe, and liquidation plans.

``LTV = D × P_loan / Σ C_i × P_i × ratio_i``. Functions here take amounts and prices and return numbers; the
desk applies them to positions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from domain.money import ONE, ZERO, round_down, round_up

INFINITY = Decimal("Infinity")


@dataclass(frozen=True)
class Distance:
    """The collateral asset of a position (desk or tracked) nearest the price that brings it to its margin call."""

    asset: str
    price: Decimal
    margin_call_price: Decimal
    distance: Decimal  # 1 − P_mc / P


@dataclass(frozen=True)
class Lot:
    """Collateral of one asset as the risk maths sees it."""

    asset: str
    amount: Decimal
    price: Decimal
    ratio: Decimal = ONE

    @property
    def value(self) -> Decimal:
        return self.amount * self.price

    @property
    def weighted(self) -> Decimal:
        return self.amount * self.price * self.ratio


def ltv(debt: Decimal, loan_price: Decimal, lots: Sequence[Lot]) -> Decimal:
    """Loan-to-value; infinite when debt remains and the collateral is worth nothing."""
    weighted = sum((lot.weighted for lot in lots), ZERO)
    owed = debt * loan_price
    if weighted == 0:
        return ZERO if owed == 0 else INFINITY
    return owed / weighted


def price_at_ltv(debt: Decimal, loan_price: Decimal, lots: Sequence[Lot], asset: str,
                 level: Decimal) -> Decimal | None:
    """The price of ``asset`` at which the LTV reaches ``level``, other prices unchanged (None: never)."""
    other = sum((lot.weighted for lot in lots if lot.asset != asset), ZERO)
    mine = [lot for lot in lots if lot.asset == asset]
    amount_weight = sum((lot.amount * lot.ratio for lot in mine), ZERO)
    if amount_weight == 0:
        return None
    price = (debt * loan_price / level - other) / amount_weight
    return price if price > 0 else None


def collateral_to_reach(debt: Decimal, loan_price: Decimal, lots: Sequence[Lot], lot: Lot,
                        target: Decimal) -> Decimal:
    """How much more of ``lot.asset`` (at its price and ratio) brings the LTV down to ``target``."""
    needed_weight = debt * loan_price / target - sum((x.weighted for x in lots), ZERO)
    if needed_weight <= 0:
        return ZERO
    return needed_weight / (lot.price * lot.ratio)


def debt_to_reach(debt: Decimal, loan_price: Decimal, lots: Sequence[Lot], target: Decimal) -> Decimal:
    """How much of the debt to repay to bring the LTV down to ``target``."""
    allowed = target * sum((x.weighted for x in lots), ZERO) / loan_price
    return max(debt - allowed, ZERO)


@dataclass
class LiquidationPlan:
    """What a liquidation sells, charges and returns, per collateral asset."""

    debt_repaid: Decimal = ZERO
    shortfall: Decimal = ZERO
    sold: dict[str, Decimal] = field(default_factory=dict)
    fee: dict[str, Decimal] = field(default_factory=dict)
    returned: dict[str, Decimal] = field(default_factory=dict)


def plan_liquidation(due: Decimal, loan_price: Decimal, lots: Sequence[Lot], fee_rate: Decimal,
                     precision: Callable[[str], int], loan_precision: int,
                     keep: Mapping[str, bool] | None = None) -> LiquidationPlan:
    """Sell ``lots`` (already in liquidation order) at market until ``due`` is covered, then take the fee.

    Sold amounts round up (the desk sells enough), the fee rounds up, what is returned is what remains. If the
    collateral is worth less than ``due``, everything is sold, no fee is taken and the rest is ``shortfall``.
    """
    plan = LiquidationPlan()
    remaining = {lot.asset: lot.amount for lot in lots}
    total_value = sum((lot.value for lot in lots), ZERO)
    if total_value < due * loan_price:
        proceeds = round_down(total_value / loan_price, loan_precision)
        plan.debt_repaid = min(proceeds, due)
        plan.shortfall = due - plan.debt_repaid
        plan.sold = {lot.asset: lot.amount for lot in lots}
        return plan
    left = due * loan_price  # quote value still to raise
    sold_value = ZERO
    for lot in lots:
        if left <= 0:
            break
        units = min(round_up(left / lot.price, precision(lot.asset)), lot.amount)
        plan.sold[lot.asset] = units
        remaining[lot.asset] -= units
        left -= units * lot.price
        sold_value += units * lot.price
    plan.debt_repaid = due
    fee_left = fee_rate * sold_value
    for lot in lots:
        if fee_left <= 0:
            break
        have = remaining[lot.asset]
        if have <= 0:
            continue
        units = min(round_up(fee_left / lot.price, precision(lot.asset)), have)
        plan.fee[lot.asset] = units
        remaining[lot.asset] -= units
        fee_left -= units * lot.price
    plan.returned = {a: r for a, r in remaining.items() if r > 0}
    return plan
