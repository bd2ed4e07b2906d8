"""VIP Loans (SPEC §6): term sheets issued by an operator, borrowing under them, and their liquidation rules.

A VIP loan is governed by the borrower's term sheet (``domain.termsheet``) in force when it was opened: its
levels, accepted collateral with ratios, caps and minimum first order, and its rate — a fixed APR or the
asset's flexible APR plus a spread — compounding hourly in the sheet's own debt index.

Liquidation follows the sheet:
  * ``liquidation_delay_minutes`` > 0: when the LTV first reaches the liquidation level the position is marked
    pending (``liquidation_pending``); if the LTV falls back below the level before the delay has passed the
    mark is cleared (``liquidation_cancelled``); if it is still at or above it when the delay has passed, it is
    liquidated.
  * ``partial``: sell, in the market's liquidation order, just enough collateral that after repaying the debt
    with the proceeds and taking the 2% fee (on the value sold) the LTV is back at the initial LTV. Solving per
    asset ``a`` (price ``P``, ratio ``r``), with quote-valued debt ``D`` and weighted collateral ``W``:
    ``(D − u·P) = L₀ · (W − u·(1+f)·P·r)`` ⇒ ``u = (D − L₀·W) / (P · (1 − L₀·(1+f)·r))``; if an asset runs out,
    all of it goes and the next one continues. If the whole collateral cannot do it, the liquidation is full.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from domain import ledger
from domain.actions import BorrowPreview, BorrowRequest, open_loan, pledged
from domain.desk import Desk, Prices, price
from domain.errors import Rejected
from domain.events import Event
from domain.fixed import check_term_borrow, trigger_prices
from domain.ledger import EntryBuilder
from domain.markets import QUOTE
from domain.money import ONE, ZERO, exact, fmt, fmt_ratio, round_down, round_up
from domain.moves import reduce_debt, take
from domain.positions import Position, Product
from domain.rates import HOURS_PER_YEAR, RatePoint, floor_hour, next_hour
from domain.sweep import liquidate
from domain.termsheet import LIQUIDATION_MODES, RATES, TermSheet

# --------------------------------------------------------------------------- term sheets


def issue_term_sheet(desk: Desk, sheet: TermSheet, now: datetime, by: str | None = None) -> TermSheet:
    """Validate and store ``sheet`` as the borrower's next version; open loans keep their own version."""
    cat = desk.catalog
    if not sheet.loan_assets:
        raise Rejected("bad_term_sheet", "a term sheet needs at least one loan asset")
    for asset in sheet.loan_assets:
        if asset not in cat.loans:
            raise Rejected("unknown_loan_asset", f"{asset} is not a loan asset of this desk")
    if not sheet.collateral:
        raise Rejected("bad_term_sheet", "a term sheet needs at least one collateral asset")
    for asset, ratio in sheet.collateral.items():
        if asset not in cat.collateral:
            raise Rejected("unknown_collateral_asset", f"{asset} is not a collateral asset of this desk")
        if not ZERO < ratio <= ONE:
            raise Rejected("bad_term_sheet", f"the collateral ratio of {asset} must be in (0, 1]")
    if sheet.rate not in RATES:
        raise Rejected("bad_term_sheet", f"the rate must be fixed or flexible (got {sheet.rate!r})")
    if not ZERO <= sheet.apr <= Decimal(10):
        raise Rejected("bad_rate", "the APR (or spread) must be between 0% and 1000%")
    if not ZERO < sheet.initial_ltv < sheet.margin_call_ltv < sheet.liquidation_ltv < ONE:
        raise Rejected("bad_term_sheet", "need 0 < initial LTV < margin-call LTV < liquidation LTV < 100%")
    if sheet.warning_ltv is not None and not sheet.warning_ltv < sheet.margin_call_ltv:
        raise Rejected("bad_term_sheet", "the warning LTV must be below the margin-call LTV")
    if sheet.liquidation not in LIQUIDATION_MODES:
        raise Rejected("bad_term_sheet", f"liquidation must be full or partial (got {sheet.liquidation!r})")
    if sheet.liquidation_delay_minutes < 0:
        raise Rejected("bad_term_sheet", "the liquidation delay cannot be negative")
    if sheet.min_order < 0 or (sheet.max_borrow is not None and sheet.max_borrow <= 0):
        raise Rejected("bad_term_sheet", "the minimum order and caps must be positive")
    latest = desk.book.term_sheet(sheet.owner)
    stored = replace(sheet, version=(latest.version if latest else 0) + 1, issued_at=now, issued_by=by)
    desk.book.save_term_sheet(stored)
    desk.emit(Event(now, "term_sheet_issued", stored.owner, None, {
        "version": stored.version, "loan": list(stored.loan_assets), "rate": stored.rate, "apr": fmt(stored.apr),
        "initial_ltv": fmt_ratio(stored.initial_ltv), "margin_call_ltv": fmt_ratio(stored.margin_call_ltv),
        "liquidation_ltv": fmt_ratio(stored.liquidation_ltv), "liquidation": stored.liquidation,
        "liquidation_delay_minutes": stored.liquidation_delay_minutes}))
    return stored


def vip_apr(desk: Desk, sheet: TermSheet, asset: str, at: datetime) -> Decimal:
    """The APR of ``asset`` loans under ``sheet`` at ``at``: fixed, or flexible plus the spread."""
    if sheet.rate == "fixed":
        return sheet.apr
    return desk.market(asset, at).apr_at(at) + sheet.apr


# --------------------------------------------------------------------------- borrowing


def preview_vip(desk: Desk, req: BorrowRequest, prices: Prices, now: datetime) -> BorrowPreview:
    sheet = desk.book.term_sheet(req.owner)
    if sheet is None:
        raise Rejected("no_term_sheet", "VIP loans need a term sheet from the desk; ask an operator")
    if req.loan_asset not in sheet.loan_assets:
        raise Rejected("not_in_term_sheet", f"your term sheet covers {', '.join(sheet.loan_assets)}, "
                                            f"not {req.loan_asset}")
    rules = desk.catalog.products["vip"]
    th = sheet.thresholds(rules.warning_ltv, rules.liquidation_fee)
    lots, after = check_term_borrow(desk, req, prices, now, th, lambda a: sheet.collateral[a], sheet.collateral)
    value = req.amount * price(prices, req.loan_asset)
    earlier = [p for p in desk.book.positions_of(req.owner) if p.product is Product.VIP]
    if not earlier and value < sheet.min_order:
        raise Rejected("below_minimum", f"the first VIP order must be worth at least {fmt(sheet.min_order)} {QUOTE}")
    if sheet.max_borrow is not None:
        owed = sum((desk.debt(p, now) * price(prices, p.loan_asset) for p in earlier if p.active), ZERO)
        if owed + value > sheet.max_borrow:
            raise Rejected("vip_cap", f"your term sheet caps VIP borrowing at {fmt(sheet.max_borrow)} {QUOTE}")
    for asset, amount in req.collateral.items():
        cap = sheet.max_collateral.get(asset)
        if cap is not None and pledged(desk, req.owner, asset, now, Product.VIP) + amount > cap:
            raise Rejected("collateral_cap", f"your term sheet allows at most {fmt(cap)} {asset} as collateral")
    apr = vip_apr(desk, sheet, req.loan_asset, next_hour(now))
    mc, liq = trigger_prices(req, lots, price(prices, req.loan_asset), th)
    hourly = req.amount * apr / HOURS_PER_YEAR
    daily = req.amount * ((ONE + apr / HOURS_PER_YEAR) ** 24 - ONE)
    notes = (f"VIP term sheet v{sheet.version}: liquidation {sheet.liquidation}"
             + (f" after {sheet.liquidation_delay_minutes} min" if sheet.liquidation_delay_minutes else ""),)
    return BorrowPreview(req, after, th, mc, liq, apr, exact(hourly), exact(daily), req.amount, next_hour(now),
                         None, req.amount, {lot.asset: lot.amount for lot in lots}, notes=notes,
                         variable_rate=sheet.rate == "flexible")


def borrow_vip(desk: Desk, req: BorrowRequest, prices: Prices, now: datetime) -> tuple[Position, Event]:
    """Open a VIP loan under the borrower's latest term sheet; its debt compounds in the sheet's index."""
    pv = preview_vip(desk, req, prices, now)
    sheet = desk.book.term_sheet(req.owner)
    assert sheet is not None
    key = sheet.rate_key(req.loan_asset)
    state = desk.market(key, now)
    if not state.rates:
        start = floor_hour(now)
        base = desk.market(req.loan_asset, now).rates if sheet.rate == "flexible" else []
        state.rates = ([RatePoint(r.effective_from, r.apr + sheet.apr) for r in base] if base
                       else [RatePoint(start, vip_apr(desk, sheet, req.loan_asset, start))])
        desk.book.save_market(state)
    position = Position(desk.book.new_position_id(), req.owner, Product.VIP, req.loan_asset, now,
                        rate_key=key, vip_sheet=sheet.version)
    event = open_loan(desk, position, req, pv, now, product="vip", term_sheet=sheet.version, apr=fmt(pv.apr))
    return position, event


# --------------------------------------------------------------------------- liquidation


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


def plan_partial(debt_value: Decimal, lots: list[tuple[str, Decimal, Decimal, Decimal]], target: Decimal,
                 fee_rate: Decimal, places: Mapping[str, int]) -> tuple[dict[str, Decimal], dict[str, Decimal]] | None:
    """Units sold and fee units per asset (``lots``: asset, amount, price, ratio in liquidation order) that bring
    the LTV to ``target``; None if selling everything would not."""
    owed = debt_value
    weighted = sum((a * p * r for _, a, p, r in lots), ZERO)
    sold: dict[str, Decimal] = {}
    fee: dict[str, Decimal] = {}
    for asset, have, px, ratio in lots:
        gap = owed - target * weighted
        if gap <= 0:
            break
        units = gap / (px * (ONE - target * (ONE + fee_rate) * ratio))
        units = min(round_up(units, places[asset]), have)
        fee_units = min(round_up(units * fee_rate, places[asset]), have - units)
        if units + fee_units >= have and units * (ONE + fee_rate) > have:
            units = round_down(have / (ONE + fee_rate), places[asset])
            fee_units = have - units
        sold[asset], fee[asset] = units, fee_units
        owed -= units * px
        weighted -= (units + fee_units) * px * ratio
    if owed - target * weighted > 0 or owed <= 0:
        return None
    return sold, {a: f for a, f in fee.items() if f > 0}


def partial_liquidate(desk: Desk, p: Position, prices: Prices, now: datetime, at_ltv: Decimal) -> list[Event]:
    """Sell just enough (plus the fee) to bring the LTV back to the initial LTV; [] if that is not possible."""
    cat = desk.catalog
    th = desk.thresholds(p)
    debt = desk.debt(p, now)
    loan_price = price(prices, p.loan_asset)
    order = sorted(p.collateral_assets, key=cat.liquidation_rank)
    amounts = desk.collateral_amounts(p, now)
    lots = [(a, amounts[a], price(prices, a), desk.ratio(p, a)) for a in order]
    plan = plan_partial(debt * loan_price, lots, th.initial, th.fee, {a: cat.precision(a) for a in order})
    if plan is None:
        return []
    sold, fee = plan
    repaid = round_down(sum((u * price(prices, a) for a, u in sold.items()), ZERO) / loan_price,
                        cat.precision(p.loan_asset))
    if repaid >= debt:
        return []
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
