"""Tools borrowers ask for before they act: a stress test of a position and a cost estimate of a loan.

``stress`` moves prices (``{"BTC": Decimal("-0.30")}`` means BTC falls 30%, other prices unchanged) and reads
the position at the moved prices: LTV, the level it reaches, each collateral asset's margin-call and
liquidation prices, and what brings it back to the initial LTV. The maths is ``domain.risk``'s; nothing changes.

``estimate`` compares a Flexible loan (hourly compounding at the current APR, and at higher rates, because a
flexible rate moves) with the nearest Fixed term that covers the horizon (interest taken up front, no refund on
early repayment, a late fee per hour if repaid late) and names the cheaper one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from domain.actions import pct
from domain.desk import Desk, Prices, price
from domain.errors import Rejected
from domain.markets import Catalog, Thresholds
from domain.money import ONE, ZERO, fmt, round_up
from domain.positions import Position
from domain.rates import HOURS_PER_YEAR
from domain.risk import collateral_to_reach, debt_to_reach, ltv, price_at_ltv

DAYS_PER_YEAR = Decimal(365)
RATE_RISES = (Decimal("0.02"), Decimal("0.05"))  # "what if the flexible APR rises by 2 / 5 points"
MAX_ESTIMATE_DAYS = 3650

SAFE, WARNING, MARGIN_CALL, LIQUIDATION = "safe", "warning", "margin call", "liquidation"


def level_of(value: Decimal, warning: Decimal, th: Thresholds) -> str:
    """Which risk level an LTV reaches (each level includes the ones below it)."""
    if value >= th.liquidation:
        return LIQUIDATION
    if value >= th.margin_call:
        return MARGIN_CALL
    if value >= warning:
        return WARNING
    return SAFE


# --------------------------------------------------------------------------- stress


@dataclass(frozen=True)
class Trigger:
    """One collateral asset's prices now, after the move, and where the position's levels are hit."""

    asset: str
    price_now: Decimal
    price_after: Decimal
    margin_call_price: Decimal | None  # None: this asset alone cannot trigger the level
    liquidation_price: Decimal | None


@dataclass(frozen=True)
class StressResult:
    position: int
    loan_asset: str
    moves: Mapping[str, Decimal]
    debt: Decimal  # exact, loan asset
    ltv_now: Decimal
    ltv_after: Decimal
    level: str
    thresholds: Thresholds
    warning_ltv: Decimal
    triggers: Sequence[Trigger]
    add_collateral: Mapping[str, Decimal]  # any ONE of these (rounded up) brings the LTV back to initial
    repay: Decimal  # or repay this much (rounded up), at the moved prices

    @property
    def safe_target(self) -> Decimal:
        return self.thresholds.initial


def stress(desk: Desk, position: Position, moves: Mapping[str, Decimal], prices: Prices,
           now: datetime) -> StressResult:
    """Read ``position`` at prices moved by ``moves`` (relative: ``-0.3`` = −30%); changes nothing."""
    for asset, move in moves.items():
        if move <= -ONE:
            raise Rejected("bad_move", f"{asset} cannot fall by {pct(-move)}: a price stays above zero")
        if asset not in position.collateral_assets and asset != position.loan_asset:
            raise Rejected("asset_not_in_position", f"#{position.id} has no {asset}; it holds "
                                                    f"{', '.join(position.collateral_assets)} against "
                                                    f"{position.loan_asset}")
    involved = [*position.collateral_assets, position.loan_asset]
    now_prices = {a: price(prices, a) for a in involved}
    after = {a: p * (ONE + moves.get(a, ZERO)) for a, p in now_prices.items()}
    debt = desk.debt(position, now)
    th = desk.thresholds(position)
    lots_now = desk.lots(position, now_prices, now)
    lots = desk.lots(position, after, now)
    loan_price = after[position.loan_asset]
    ltv_after = ltv(debt, loan_price, lots)
    cat = desk.catalog
    triggers = [Trigger(lot.asset, now_prices[lot.asset], lot.price,
                        price_at_ltv(debt, loan_price, lots, lot.asset, th.margin_call),
                        price_at_ltv(debt, loan_price, lots, lot.asset, th.liquidation)) for lot in lots]
    add = {lot.asset: round_up(collateral_to_reach(debt, loan_price, lots, lot, th.initial),
                               cat.precision(lot.asset)) for lot in lots}
    repay = round_up(debt_to_reach(debt, loan_price, lots, th.initial), cat.precision(position.loan_asset))
    warning = desk.warning_level(position)
    return StressResult(position.id, position.loan_asset, dict(moves), debt,
                        ltv(debt, now_prices[position.loan_asset], lots_now), ltv_after,
                        level_of(ltv_after, warning, th), th, warning, triggers,
                        {a: v for a, v in add.items() if v > 0}, repay)


def describe_stress(r: StressResult) -> list[str]:
    """Plain-text lines for a person (the chat renders them as it likes)."""
    moves = ", ".join(f"{a} {'+' if m > 0 else ''}{pct(m)}" for a, m in r.moves.items()) or "no move"
    lines = [f"#{r.position} if {moves}: LTV {pct(r.ltv_now)} → {pct(r.ltv_after)} ({r.level})"]
    if r.level == LIQUIDATION:
        lines.append(f"At or above {pct(r.thresholds.liquidation)} the position is liquidated.")
    elif r.level == MARGIN_CALL:
        lines.append(f"At or above {pct(r.thresholds.margin_call)} that is a margin call: add collateral or repay.")
    for t in r.triggers:
        mc = fmt(t.margin_call_price.quantize(Decimal("0.01"))) if t.margin_call_price else "never"
        lq = fmt(t.liquidation_price.quantize(Decimal("0.01"))) if t.liquidation_price else "never"
        lines.append(f"{t.asset}: now {fmt(t.price_now)}, after {fmt(t.price_after)}; "
                     f"margin call at {mc}, liquidation at {lq}")
    if r.add_collateral or r.repay > 0:
        adds = " or ".join(f"{fmt(v)} {a}" for a, v in r.add_collateral.items())
        lines.append(f"Back to {pct(r.safe_target)}: add {adds}, or repay {fmt(r.repay)} {r.loan_asset}.")
    else:
        lines.append(f"Still at or below the initial {pct(r.safe_target)}: nothing to do.")
    return lines


# --------------------------------------------------------------------------- estimate


@dataclass(frozen=True)
class FlexibleCost:
    apr: Decimal
    interest: Decimal  # exact; amount × ((1 + APR/8760)^(24 × days) − 1)


@dataclass(frozen=True)
class FixedCost:
    term_days: int
    apr: Decimal
    interest: Decimal  # principal × APR × term / 365, taken up front
    receive: Decimal  # what the borrower gets: principal − interest
    expires_at: datetime
    late_fee_per_hour: Decimal  # on the principal: principal × 3 × APR / 8760
    grace_hours: int  # overdue this long, the collateral is liquidated


@dataclass(frozen=True)
class Estimate:
    amount: Decimal
    asset: str
    days: int
    flexible: FlexibleCost
    if_rates_rise: Sequence[FlexibleCost]
    fixed: FixedCost | None
    longest_term: int | None  # set when no Fixed term covers ``days``
    cheaper: str  # "flexible" | "fixed" | "same"
    places: int  # the asset's precision, for display


def flexible_interest(amount: Decimal, apr: Decimal, days: int) -> Decimal:
    """Interest of ``days`` of hourly compounding at a constant APR."""
    return amount * ((ONE + apr / HOURS_PER_YEAR) ** (24 * days) - ONE)


def fixed_interest(amount: Decimal, apr: Decimal, days: int) -> Decimal:
    return amount * apr * days / DAYS_PER_YEAR


def estimate(catalog: Catalog, amount: Decimal, asset: str, days: int, flexible_apr: Decimal | None,
             now: datetime, rises: Sequence[Decimal] = RATE_RISES) -> Estimate:
    """What borrowing ``amount`` of ``asset`` for ``days`` costs as Flexible against the nearest Fixed term.

    ``flexible_apr`` is the APR in force now (the market state's); ``None`` takes the catalog's.
    """
    loan = catalog.loans.get(asset)
    if loan is None:
        raise Rejected("unknown_loan_asset",
                       f"{asset} cannot be borrowed here (borrowable: {', '.join(catalog.loans)})")
    if amount <= 0:
        raise Rejected("non_positive_amount", "the amount must be greater than zero")
    if not 1 <= days <= MAX_ESTIMATE_DAYS:
        raise Rejected("bad_days", f"the horizon must be between 1 and {MAX_ESTIMATE_DAYS} days")
    apr = loan.flexible_apr if flexible_apr is None else flexible_apr
    flex = FlexibleCost(apr, flexible_interest(amount, apr, days))
    higher = [FlexibleCost(apr + r, flexible_interest(amount, apr + r, days)) for r in rises]
    terms = sorted(t for t in loan.fixed_apr if t in catalog.desk.fixed_terms)
    covering = [t for t in terms if t >= days]
    fixed: FixedCost | None = None
    if covering:
        term = covering[0]
        fapr = loan.fixed_apr[term]
        # rounded up as the engine takes it (domain.fixed.upfront_interest), so "you receive" is exact
        interest = round_up(fixed_interest(amount, fapr, term), catalog.precision(asset))
        fixed = FixedCost(term, fapr, interest, amount - interest, now + timedelta(days=term),
                          amount * catalog.desk.late_fee_multiplier * fapr / HOURS_PER_YEAR,
                          catalog.desk.grace_hours)
    places = catalog.precision(asset)
    if fixed is None:
        cheaper = "flexible"
    else:
        f, x = round_up(flex.interest, places), round_up(fixed.interest, places)
        cheaper = "flexible" if f < x else "fixed" if x < f else "same"
    return Estimate(amount, asset, days, flex, higher, fixed, None if covering else (terms[-1] if terms else None),
                    cheaper, places)


def describe_estimate(e: Estimate) -> list[str]:
    """Plain-text lines for a person; costs rounded up to the asset's precision (what would be owed)."""
    def money(x: Decimal) -> str:
        return f"{fmt(round_up(x, e.places))} {e.asset}"

    lines = [f"Borrowing {fmt(e.amount)} {e.asset} for {e.days} days:",
             f"Flexible at {pct(e.flexible.apr)} APR (compounding hourly): {money(e.flexible.interest)}"]
    for c in e.if_rates_rise:
        lines.append(f"  if the rate rises to {pct(c.apr)}: {money(c.interest)}")
    if e.fixed is None:
        longest = f"{e.longest_term} days" if e.longest_term else "none offered"
        lines.append(f"Fixed: no term covers {e.days} days (longest: {longest}).")
    else:
        f = e.fixed
        lines.append(f"Fixed {f.term_days}d at {pct(f.apr)} APR: {money(f.interest)} taken up front "
                     f"(you receive {money(f.receive)}; no refund if you repay early).")
        lines.append(f"  Repaid late: a fee of {money(f.late_fee_per_hour)} per hour, "
                     f"and liquidation after {f.grace_hours} h.")
    if e.cheaper == "same":
        lines.append("Both cost the same.")
    else:
        lines.append(f"Cheaper: {e.cheaper}.")
    return lines
