"""The guided ``/borrow``'s questions that need more than a list of names: Flexible or a Fixed term, each with
its rate and LTV levels, so that Fixed loans can be discovered while borrowing."""

from __future__ import annotations

from decimal import Decimal

from bot.render import buttons
from bot.render.common import Reply, e
from domain.markets import Catalog
from domain.money import fmt, pct


def rate(apr: Decimal) -> str:
    return f"{fmt((apr * 100).quantize(Decimal('0.01')))}%"


def product_name(term_days: int | None) -> str:
    return f" (Fixed {term_days}d)" if term_days else " (Flexible)"


def product(loan: str, flexible_apr: Decimal, catalog: Catalog) -> Reply:
    """Flexible, or one of the loan asset's Fixed terms: buttons with the APR of each."""
    fixed = catalog.products["fixed"]
    terms = sorted(catalog.loans[loan].fixed_apr.items())
    flex_levels = sorted({(c.margin_call_ltv, c.liquidation_ltv) for c in catalog.collateral.values()})
    levels = (f"; margin call {e(pct(flex_levels[0][0]))}, liquidation {e(pct(flex_levels[0][1]))}"
              if len(flex_levels) == 1 else "")
    lines = [f"How do you want to borrow {e(loan)}?",
             f"<b>Flexible</b>: {e(rate(flexible_apr))} APR now, variable, charged every hour; no term, repay any "
             f"time{levels}."]
    if terms:
        lines.append(f"<b>Fixed</b>: one APR for the whole term, the interest taken up front (not refunded if you "
                     f"repay early); LTV up to {e(pct(fixed.initial_ltv or Decimal(0)))}, margin call "
                     f"{e(pct(fixed.margin_call_ltv))}, liquidation {e(pct(fixed.liquidation_ltv))}. Terms: "
                     + ", ".join(f"{days}d {e(rate(apr))}" for days, apr in terms) + ".")
    rows = [[(f"Flexible {rate(flexible_apr)}", buttons.guide(buttons.PRODUCT, buttons.FLEX))]]
    fixed_buttons = [(f"Fixed {days}d {rate(apr)}", buttons.guide(buttons.PRODUCT, str(days))) for days, apr in terms]
    rows += [fixed_buttons[i:i + 3] for i in range(0, len(fixed_buttons), 3)]
    return Reply("\n".join(lines), rows)
