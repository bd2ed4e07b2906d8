"""What a loan would cost (``/estimate``): Flexible against the nearest Fixed term that covers the horizon.

``estimate`` compares a Flexible loan (hourly compounding at the current APR, and at higher rates, because a
flexible rate moves) with the nearest Fixed term that covers the horizon (interest taken up front, no refund on
early repayment, a late fee per hour if repaid late) and names the cheaper one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from domain.errors import Rejected
from domain.markets import Catalog
from domain.money import ONE, fmt, pct, round_down, round_up
from domain.rates import DAYS_PER_YEAR, HOURS_PER_YEAR

RATE_RISES = (Decimal("0.02"), Decimal("0.05"))  # "what if the flexible APR rises by 2 / 5 points"
MAX_ESTIMATE_DAYS = 3650


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
    places: int  # the asset's display precision (``Catalog.display``): USDT 2, BTC 8


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
                    cheaper, catalog.display(asset))


def describe_estimate(e: Estimate) -> list[str]:
    """Plain-text lines for a person; costs rounded up at the asset's display precision (what would be owed)."""
    def money(x: Decimal, owed: bool = True) -> str:
        return f"{fmt(round_up(x, e.places) if owed else round_down(x, e.places))} {e.asset}"

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
                     f"(you receive {money(f.receive, owed=False)}; no refund if you repay early).")
        lines.append(f"  Repaid late: a fee of {money(f.late_fee_per_hour)} per hour, "
                     f"and liquidation after {f.grace_hours} h.")
    if e.fixed is None:
        lines.append("Only Flexible covers this horizon, so there is nothing to compare.")
    elif e.cheaper == "same":
        lines.append("Both cost the same.")
    else:
        lines.append(f"Cheaper: {e.cheaper} (if the flexible rate stays where it is).")
    return lines
