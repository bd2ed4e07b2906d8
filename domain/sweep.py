"""The risk sweep: personal warnings, margin calls (with hourly reminders and a 2-point re-arm) and
liquidation at confirmed prices, with the 2% fee and shortfall debt (SPEC §5).

Warnings and margin calls may use the newest prices; liquidation only uses ``confirmed`` prices (fresh and,
after a big jump, seen twice). A position whose price is missing is left alone and reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from domain import ledger, sweepindex
from domain.desk import Desk, Prices, price
from domain.errors import Rejected
from domain.events import Event
from domain.ledger import EntryBuilder
from domain.money import fmt, fmt_ratio, round_down, round_up
from domain.moves import reduce_debt, take
from domain.positions import Position, Product, Status
from domain.risk import plan_liquidation


def sweep(desk: Desk, prices: Prices, now: datetime, confirmed: Prices | None = None,
          positions: Iterable[Position] | None = None) -> list[Event]:
    """Check every active position that this tick can affect (or the given ones) against its levels; act and
    return the events. The candidates come from the book's sweep index (``domain.sweepindex``): a range query
    per (pair, level), not a scan; each is then judged exactly."""
    desk.accrue(now)
    confirmed = prices if confirmed is None else confirmed
    events: list[Event] = []
    if positions is None:
        positions = desk.book.sweep_candidates(sweepindex.plan(desk, prices, now))
    for p in list(positions):
        if not p.active or not p.collateral_assets:
            continue
        try:
            events += check(desk, p, prices, confirmed, now)
        except Rejected:
            continue  # no price for one of its assets: nothing can be judged now
    return events


def check(desk: Desk, p: Position, prices: Prices, confirmed: Prices, now: datetime) -> list[Event]:
    th = desk.thresholds(p)
    current = desk.ltv(p, prices, now)
    try:
        sure = desk.ltv(p, confirmed, now)
    except Rejected:
        sure = None
    early: list[Event] = []  # VIP: a delayed liquidation started or cancelled (already emitted)
    if sure is not None and sure >= th.liquidation and current >= th.liquidation:
        if p.product is not Product.VIP:
            return liquidate(desk, p, confirmed, now, sure)
        from domain.vip import liquidate_vip  # the VIP module builds on this one
        early, done = liquidate_vip(desk, p, confirmed, now, sure)
        if done:
            return early
    elif p.risk.liquidation_pending_since is not None and current < th.liquidation:
        from domain.vip import cancel_pending
        early = cancel_pending(desk, p, now, current)
    events: list[Event] = []
    risk = p.risk
    before = (risk.warned, risk.margin_call, risk.margin_call_at)
    gap = desk.catalog.desk.rearm_gap
    repeat = timedelta(minutes=desk.catalog.desk.margin_call_repeat_minutes)
    data = _numbers(desk, p, prices, now, current)
    if current >= th.margin_call:
        if not risk.margin_call:
            risk.margin_call, risk.margin_call_at, risk.warned = True, now, True
            events.append(Event(now, "margin_call", p.owner, p.id, data))
        elif risk.margin_call_at is not None and now - risk.margin_call_at >= repeat:
            risk.margin_call_at = now
            events.append(Event(now, "margin_call_reminder", p.owner, p.id, data))
    elif risk.margin_call and current < th.margin_call - gap:
        risk.margin_call, risk.margin_call_at = False, None
        events.append(Event(now, "margin_call_cleared", p.owner, p.id, data))
    if not risk.margin_call:
        level = desk.warning_level(p)
        if current >= level and not risk.warned:
            risk.warned = True
            events.append(Event(now, "warning", p.owner, p.id, {**data, "level": fmt_ratio(level)}))
        elif risk.warned and current < level - gap:
            risk.warned = False
    if (risk.warned, risk.margin_call, risk.margin_call_at) != before:
        desk.book.save_position(p)
    for e in events:
        desk.emit(e)
    return [*early, *events]


def _numbers(desk: Desk, p: Position, prices: Prices, now: datetime, ltv: Decimal) -> dict[str, object]:
    th = desk.thresholds(p)
    return {"ltv": fmt_ratio(ltv), "debt": fmt(round_up(desk.debt(p, now), desk.catalog.precision(p.loan_asset))),
            "collateral": {a: fmt(round_down(v, desk.catalog.precision(a)))
                           for a, v in desk.collateral_amounts(p, now).items()},
            "prices": {a: fmt(price(prices, a)) for a in [*p.collateral_assets, p.loan_asset]},
            "margin_call_ltv": fmt_ratio(th.margin_call), "liquidation_ltv": fmt_ratio(th.liquidation)}


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

