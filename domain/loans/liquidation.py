"""Liquidation, in one place: full (SPEC §5), partial and delayed (VIP term sheets, SPEC §6).

**Full**: collateral worth the debt at confirmed prices repays it, sold in the market's liquidation order
(stablecoins, BTC, ETH, then the rest); a fee of 2% of that value is taken from what remains; the rest returns
to Spot. Collateral worth less than the debt is all sold and the shortfall stays owed (and keeps accruing).

**Delayed** (a sheet's ``liquidation_delay_minutes`` > 0): when the LTV first reaches the liquidation level the
position is marked pending (``liquidation_pending``); if the LTV falls back below the level before the delay has
passed the mark is cleared (``liquidation_cancelled``); if it is still at or above it when the delay has passed,
it is liquidated.

**Partial** (a sheet's ``partial`` mode): sell, in the liquidation order, just enough collateral that after
repaying the debt with the proceeds and taking the fee (on the value sold) the LTV is back at the initial LTV,
at or just below it. Solving per asset ``a`` (price ``P``, ratio ``r``), with quote-valued debt ``D`` and
weighted collateral ``W``: ``(D − u·P) = L₀ · (W − u·(1+f)·P·r)`` ⇒ ``u = (D − L₀·W) / (P · (1 − L₀·(1+f)·r))``;
if an asset runs out, all of it goes and the next one continues. Units are rounded up to the asset's precision,
so the LTV lands at or a hair below the target. Only when selling everything cannot reach the target is the
liquidation full.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from domain import ledger
from domain.desk import Desk
from domain.events import Event
from domain.ledger import EntryBuilder
from domain.loans.moves import reduce_debt, take
from domain.money import ONE, ZERO, fmt, fmt_ratio, quantum, round_down, round_up
from domain.positions import Position, Status
from domain.prices import Prices, price
from domain.risk import plan_liquidation


def liquidate(desk: Desk, p: Position, prices: Prices, now: datetime, at_ltv: Decimal,
              reason: str | None = None) -> list[Event]:
    """Full liquidation: collateral worth the debt repays it, 2% of that value is the fee, the rest goes back
    to Spot. Collateral worth less than the debt is all sold and the shortfall stays owed."""
    cat = desk.catalog
    th = desk.thresholds(p)
    debt = desk.debt(p, now)
    due = round_up(debt, cat.precision(p.loan_asset))
    order = sorted(p.collateral_assets, key=cat.liquidation_rank)
    amounts = desk.collateral_amounts(p, now)
    lots = desk.lots(p, prices, now, {a: amounts[a] for a in order})
    plan = plan_liquidation(due, price(prices, p.loan_asset), lots, th.fee, cat.precision,
                            cat.precision(p.loan_asset))
    entry = EntryBuilder(now, "liquidation", position=p.id)
    for asset, units in plan.sold.items():
        take(desk, p, asset, units, ledger.LIQUIDATIONS, entry, now)
    for asset, units in plan.fee.items():
        take(desk, p, asset, units, ledger.FEES, entry, now)
    returned: dict[str, Decimal] = {}
    for asset in order:
        rest = desk.holding_amount(asset, p.collateral[asset], now)
        if rest > 0:
            paid = round_down(rest, cat.precision(asset))
            take(desk, p, asset, rest, ledger.ROUNDING, entry, now)
            entry.move(asset, paid, ledger.ROUNDING, ledger.spot(p.owner))
            returned[asset] = paid
    if plan.shortfall == 0:
        entry.move(p.loan_asset, debt, ledger.LIQUIDATIONS, ledger.LOANS)
        entry.move(p.loan_asset, due - debt, ledger.LIQUIDATIONS, ledger.ROUNDING)
        reduce_debt(desk, p, debt, debt, now, full=True)
        p.status = Status.LIQUIDATED
    else:
        entry.move(p.loan_asset, plan.debt_repaid, ledger.LIQUIDATIONS, ledger.LOANS)
        reduce_debt(desk, p, plan.debt_repaid, debt, now, full=False)
        p.status = Status.LIQUIDATED_WITH_DEBT
    p.risk.margin_call = False
    p.risk.margin_call_at = None
    p.closed_at = now
    p.updated_at = now
    desk.book.post(entry.build())
    desk.book.save_position(p)
    events = [Event(now, "liquidated", p.owner, p.id, {
        "ltv": fmt_ratio(at_ltv), "debt_repaid": fmt(plan.debt_repaid),
        "collateral_sold": {a: fmt(v) for a, v in plan.sold.items()},
        "fee": {a: fmt(v) for a, v in plan.fee.items()},
        "returned": {a: fmt(v) for a, v in returned.items()},
        "prices": {a: fmt(price(prices, a)) for a in [*order, p.loan_asset]}})]
    if reason is not None:  # e.g. "overdue": a Fixed loan not repaid within the grace period
        events[0].data["reason"] = reason
    if plan.shortfall > 0:
        events.append(Event(now, "shortfall", p.owner, p.id, {
            "debt_outstanding": fmt(round_up(desk.debt(p, now), cat.precision(p.loan_asset))),
            "asset": p.loan_asset}))
    for e in events:
        desk.emit(e)
    return events


def pending_deadline(desk: Desk, p: Position) -> datetime | None:
    """When a pending (delayed) liquidation of ``p`` is due, if one is pending."""
    sheet = desk.sheet_of(p)
    since = p.risk.liquidation_pending_since
    if sheet is None or since is None:
        return None
    return since + timedelta(minutes=sheet.liquidation_delay_minutes)


def liquidate_vip(desk: Desk, p: Position, prices: Prices, now: datetime,
                  at_ltv: Decimal) -> tuple[list[Event], bool]:
    """At or above the liquidation level: wait out the sheet's delay, then liquidate fully or partially.

    Returns the events and whether the position was liquidated (if not, the usual margin-call checks apply).
    """
    sheet = desk.sheet_of(p)
    delay = sheet.liquidation_delay_minutes if sheet else 0
    if delay > 0:
        since = p.risk.liquidation_pending_since
        if since is None:
            p.risk.liquidation_pending_since = now
            desk.book.save_position(p)
            return [desk.emit(Event(now, "liquidation_pending", p.owner, p.id, {
                "ltv": fmt_ratio(at_ltv), "liquidate_at": now + timedelta(minutes=delay)}))], False
        if now < since + timedelta(minutes=delay):
            return [], False
    p.risk.liquidation_pending_since = None
    if sheet is not None and sheet.liquidation == "partial":
        events = partial_liquidate(desk, p, prices, now, at_ltv)
        if events:
            return events, True
    return liquidate(desk, p, prices, now, at_ltv), True


def cancel_pending(desk: Desk, p: Position, now: datetime, current: Decimal) -> list[Event]:
    """The LTV recovered below the liquidation level during the delay: nothing is sold."""
    p.risk.liquidation_pending_since = None
    desk.book.save_position(p)
    return [desk.emit(Event(now, "liquidation_cancelled", p.owner, p.id, {"ltv": fmt_ratio(current)}))]


Lot = tuple[str, Decimal, Decimal, Decimal]  # asset, amount, price, ratio


@dataclass(frozen=True)
class PartialPlan:
    sold: dict[str, Decimal]
    fee: dict[str, Decimal]
    repaid: Decimal  # in the loan asset, rounded down to its precision (what the proceeds settle)


def plan_partial(debt: Decimal, loan_price: Decimal, loan_places: int, lots: Sequence[Lot], target: Decimal,
                 fee_rate: Decimal, places: Mapping[str, int]) -> PartialPlan | None:
    """Units sold and fee units per asset (``lots`` in liquidation order) that bring the LTV to ``target``, at
    or just below it, judged exactly as it will be booked (sold and fee units rounded up to each asset's
    precision, the proceeds rounded down to the loan asset's); None if selling everything would not, or would
    repay the whole debt (then the liquidation is full)."""
    sold: dict[str, Decimal] = {}
    fee: dict[str, Decimal] = {}

    def gap() -> tuple[Decimal, Decimal]:
        """What the proceeds repay, and how far the LTV after stays above ``target`` (in quote value)."""
        repaid = round_down(sum((sold[a] * px for a, _, px, _ in lots if a in sold), ZERO) / loan_price, loan_places)
        weighted = sum(((have - sold.get(a, ZERO) - fee.get(a, ZERO)) * px * r for a, have, px, r in lots), ZERO)
        return repaid, (debt - repaid) * loan_price - target * weighted

    for asset, have, px, ratio in lots:
        per_unit = px * (ONE - target * (ONE + fee_rate) * ratio)  # how much one unit sold closes the gap
        if per_unit <= 0:
            continue  # at this ratio selling this asset cannot lower the LTV
        q = quantum(places[asset])
        units = ZERO
        for _ in range(8):  # rounding leaves dust: top up by whole quanta until the LTV is at or below target
            _, missing = gap()
            if missing <= 0 or sold.get(asset, ZERO) + fee.get(asset, ZERO) >= have:
                break
            step = max(round_up(missing / per_unit, places[asset]), q)
            units = min(units + step, have)
            fee_units = min(round_up(units * fee_rate, places[asset]), have - units)
            if units * (ONE + fee_rate) > have:  # not enough left for the fee: sell what the fee leaves
                units = round_down(have / (ONE + fee_rate), places[asset])
                fee_units = have - units
            sold[asset], fee[asset] = units, fee_units
    repaid, missing = gap()
    if missing > 0 or repaid >= debt or not sold:
        return None
    return PartialPlan({a: u for a, u in sold.items() if u > 0}, {a: f for a, f in fee.items() if f > 0}, repaid)


def partial_liquidate(desk: Desk, p: Position, prices: Prices, now: datetime, at_ltv: Decimal) -> list[Event]:
    """Sell just enough (plus the fee) to bring the LTV back to the initial LTV; [] if that is not possible."""
    cat = desk.catalog
    th = desk.thresholds(p)
    debt = desk.debt(p, now)
    loan_price = price(prices, p.loan_asset)
    order = sorted(p.collateral_assets, key=cat.liquidation_rank)
    amounts = desk.collateral_amounts(p, now)
    lots = [(a, amounts[a], price(prices, a), desk.ratio(p, a)) for a in order]
    plan = plan_partial(debt, loan_price, cat.precision(p.loan_asset), lots, th.initial, th.fee,
                        {a: cat.precision(a) for a in order})
    if plan is None:
        return []
    sold, fee, repaid = plan.sold, plan.fee, plan.repaid
    entry = EntryBuilder(now, "liquidation", position=p.id)
    for asset, units in sold.items():
        take(desk, p, asset, units, ledger.LIQUIDATIONS, entry, now)
    for asset, units in fee.items():
        take(desk, p, asset, units, ledger.FEES, entry, now)
    entry.move(p.loan_asset, repaid, ledger.LIQUIDATIONS, ledger.LOANS)
    reduce_debt(desk, p, repaid, debt, now, full=False)
    p.risk.margin_call, p.risk.margin_call_at, p.risk.warned = False, None, False
    p.updated_at = now
    desk.book.post(entry.build())
    desk.book.save_position(p)
    after = desk.ltv(p, prices, now)
    return [desk.emit(Event(now, "liquidated", p.owner, p.id, {
        "ltv": fmt_ratio(at_ltv), "mode": "partial", "debt_repaid": fmt(repaid),
        "collateral_sold": {a: fmt(v) for a, v in sold.items()}, "fee": {a: fmt(v) for a, v in fee.items()},
        "returned": {}, "debt": fmt(round_up(desk.debt(p, now), cat.precision(p.loan_asset))),
        "ltv_after": fmt_ratio(after), "prices": {a: fmt(price(prices, a)) for a in [*order, p.loan_asset]}}))]
