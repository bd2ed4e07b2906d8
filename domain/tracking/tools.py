"""``/stress`` on a tracked position: the desk's stress test (``domain.analysis.stress``) at the lender's levels.

The same ``StressResult`` as a desk position, from ``domain.risk``'s maths on the tracked collateral. The
calibration (the lender's ``currentLTV`` over ours at the last sync) scales the debt the maths sees, so every
LTV here is the one the watch step uses; the repayment shown is in real units again. The safe target is the
lender's initial LTV when known (Binance), else 7 points below the margin call (the desk's 78% against 85%).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from domain.analysis.stress import StressResult, Trigger, level_of
from domain.errors import Rejected
from domain.markets import Thresholds
from domain.money import ONE, ZERO, pct, round_up
from domain.risk import Lot, collateral_to_reach, debt_to_reach, ltv, price_at_ltv
from domain.tracking.position import QUOTE, Tracked, debt_at

SAFE_BELOW = Decimal("0.07")


def thresholds(t: Tracked, warning: Decimal) -> Thresholds:
    initial = t.levels.initial if t.levels.initial is not None else t.levels.margin_call - SAFE_BELOW
    return Thresholds(initial, warning, t.levels.margin_call, t.levels.liquidation, ZERO)


def stress_tracked(t: Tracked, moves: Mapping[str, Decimal], prices: Mapping[str, Decimal], now: datetime,
                   warning: Decimal, display: Mapping[str, int]) -> StressResult:
    """``t`` at prices moved by ``moves`` (``-0.3`` = −30%); ``"*"`` moves every collateral asset."""
    if "*" in moves:
        moves = {a: moves["*"] for a in t.collateral}
    for asset, move in moves.items():
        if move <= -ONE:
            raise Rejected("bad_move", f"{asset} cannot fall by {pct(-move)}: a price stays above zero")
        if asset not in t.collateral and asset != t.loan_asset:
            raise Rejected("asset_not_in_position", f"#{t.id} has no {asset}; it holds "
                                                    f"{', '.join(t.collateral)} against {t.loan_asset}")
    now_prices: dict[str, Decimal] = {}
    for a in t.assets:
        p = prices.get(a, ONE if a == QUOTE else ZERO)
        if p <= 0:
            raise Rejected("no_price", f"no price for {a} right now")
        now_prices[a] = p
    after = {a: p * (ONE + moves.get(a, ZERO)) for a, p in now_prices.items()}
    debt = debt_at(t, now)
    seen = debt * t.calibration  # the debt the maths sees: our LTV × calibration, as the watch step judges
    th = thresholds(t, warning)
    lots_now = [Lot(a, x, now_prices[a]) for a, x in t.collateral.items()]
    lots = [Lot(a, x, after[a]) for a, x in t.collateral.items()]
    loan_price = after[t.loan_asset]
    ltv_after = ltv(seen, loan_price, lots)
    triggers = [Trigger(lot.asset, now_prices[lot.asset], lot.price,
                        price_at_ltv(seen, loan_price, lots, lot.asset, th.margin_call),
                        price_at_ltv(seen, loan_price, lots, lot.asset, th.liquidation)) for lot in lots]
    add = {lot.asset: round_up(collateral_to_reach(seen, loan_price, lots, lot, th.initial), display.get(lot.asset, 8))
           for lot in lots}
    repay = round_up(debt_to_reach(seen, loan_price, lots, th.initial) / t.calibration,
                     display.get(t.loan_asset, 8))
    return StressResult(t.id, t.loan_asset, dict(moves), debt, ltv(seen, now_prices[t.loan_asset], lots_now),
                        ltv_after, level_of(ltv_after, warning, th), th, warning, triggers,
                        {a: v for a, v in add.items() if v > 0}, repay)
