"""VIP Loans (SPEC §6): term sheets issued by an operator, and borrowing under them.

A VIP loan is governed by the borrower's term sheet (``domain.termsheet``) in force when it was opened: its
levels, accepted collateral with ratios, caps and minimum first order, and its rate — a fixed APR or the
asset's flexible APR plus a spread — compounding hourly in the sheet's own debt index. How a sheet's
``partial`` liquidation and liquidation delay work is ``domain.loans.liquidation``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.loans.common import BorrowPreview, BorrowRequest, check_term_borrow, open_loan, pledged, trigger_prices
from domain.markets import QUOTE
from domain.money import ONE, ZERO, exact, fmt, fmt_ratio
from domain.positions import Position, Product
from domain.prices import Prices, price
from domain.rates import HOURS_PER_YEAR, RatePoint, floor_hour, next_hour
from domain.termsheet import LIQUIDATION_MODES, RATES, TermSheet


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
