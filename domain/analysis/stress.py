"""A stress test of a position (``/stress``): its numbers at moved prices; nothing changes.

``stress`` moves prices (``{"BTC": Decimal("-0.30")}`` means BTC falls 30%, other prices unchanged) and reads
the position at the moved prices: LTV, the level it reaches, each collateral asset's margin-call and
liquidation prices, and what brings it back to the initial LTV. The maths is ``domain.risk``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from domain.desk import Desk
from domain.errors import Rejected
from domain.markets import Thresholds
from domain.money import ONE, ZERO, fmt, pct, round_up
from domain.positions import Position
from domain.prices import Prices, price
from domain.risk import collateral_to_reach, debt_to_reach, ltv, price_at_ltv

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
    add_collateral: Mapping[str, Decimal]  # any ONE of these (rounded up, display precision) gets back to initial
    repay: Decimal  # or repay this much (rounded up at the loan asset's display precision), at the moved prices

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
    # guidance for a person: rounded up at each asset's display precision (USDT 2, BTC 8), so it is enough
    add = {lot.asset: round_up(collateral_to_reach(debt, loan_price, lots, lot, th.initial),
                               cat.display(lot.asset)) for lot in lots}
    repay = round_up(debt_to_reach(debt, loan_price, lots, th.initial), cat.display(position.loan_asset))
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
