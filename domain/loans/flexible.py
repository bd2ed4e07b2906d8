"""Flexible loans (SPEC §1–4): open term, variable rate, one collateral asset per loan, one loan per pair.

Borrowing a pair the borrower already holds adds to that position: the preview shows the LTV the position
reaches with the new debt and collateral together. Debt compounds hourly in the loan asset's index
(``Desk.accrue``); the levels are the collateral market's (initial 78% for BTC, margin call 85%, liquidation 91%).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.loans.common import (
    BorrowPreview,
    BorrowRequest,
    check_collateral_cap,
    check_order,
    check_wallet,
    open_loan,
)
from domain.money import ONE, ZERO, exact, fmt, pct, round_up
from domain.positions import Position
from domain.prices import Prices, price
from domain.rates import HOURS_PER_YEAR, next_hour
from domain.risk import Lot, collateral_to_reach, ltv, price_at_ltv


def preview_flexible(desk: Desk, req: BorrowRequest, prices: Prices, now: datetime) -> BorrowPreview:
    """Validate a Flexible borrow (or an addition to the open loan of the same pair) and compute its numbers;
    changes nothing."""
    cat = desk.catalog
    loan = cat.loans.get(req.loan_asset)
    if loan is None:
        raise Rejected("unknown_loan_asset", f"{req.loan_asset} cannot be borrowed here "
                                             f"(borrowable: {', '.join(cat.loans)})")
    if len(req.collateral) != 1:
        raise Rejected("one_collateral_asset", "a flexible loan takes exactly one collateral asset")
    (coll_asset, coll_amount), = req.collateral.items()
    if coll_asset == req.loan_asset:
        raise Rejected("same_asset", "the collateral asset must differ from the loan asset")
    if coll_asset not in cat.collateral:
        raise Rejected("unknown_collateral_asset", f"{coll_asset} is not accepted as collateral "
                                                   f"(accepted: {', '.join(cat.collateral)})")
    if coll_amount != 0:
        desk.check_amount(coll_asset, coll_amount)
    state = check_order(desk, req.loan_asset, req.amount, now)
    existing = desk.book.find_flexible(req.owner, req.loan_asset, coll_asset)
    check_collateral_cap(desk, req.owner, coll_asset, coll_amount, now)
    check_wallet(desk, req.owner, coll_asset, coll_amount, req.source, now)
    debt = (desk.debt(existing, now) if existing else ZERO) + req.amount
    amounts = desk.collateral_amounts(existing, now) if existing else {}
    amounts[coll_asset] = amounts.get(coll_asset, ZERO) + coll_amount
    th = cat.thresholds("flexible", coll_asset)
    loan_price = price(prices, req.loan_asset)
    lots = [Lot(coll_asset, amounts[coll_asset], price(prices, coll_asset))]
    after = ltv(debt, loan_price, lots)
    if after > th.initial:
        need = collateral_to_reach(debt, loan_price, lots, lots[0], th.initial)
        raise Rejected("ltv_too_high", f"that would be {pct(after)} LTV; the limit is {pct(th.initial)}. "
                                       f"Add at least {fmt(round_up(need, cat.precision(coll_asset)))} "
                                       f"{coll_asset} more collateral or borrow less")
    apr = state.apr_at(next_hour(now))
    hourly = debt * apr / HOURS_PER_YEAR
    daily = debt * ((ONE + apr / HOURS_PER_YEAR) ** 24 - ONE)
    return BorrowPreview(req, after, th, price_at_ltv(debt, loan_price, lots, coll_asset, th.margin_call),
                         price_at_ltv(debt, loan_price, lots, coll_asset, th.liquidation), apr,
                         exact(hourly), exact(daily), req.amount, next_hour(now),
                         existing.id if existing else None, debt, amounts)


def borrow_flexible(desk: Desk, req: BorrowRequest, prices: Prices, now: datetime) -> tuple[Position, Event]:
    """Open a Flexible loan, or add to the open one of the same pair (one per pair, SPEC §1)."""
    pv = preview_flexible(desk, req, prices, now)
    position = desk.book.get_position(pv.existing) if pv.existing else None
    if position is None:
        position = Position(desk.book.new_position_id(), req.owner, req.product, req.loan_asset, now,
                            rate_key=req.loan_asset)
    return position, open_loan(desk, position, req, pv, now)


def collateral_for_ltv(desk: Desk, owner: str, loan_asset: str, amount: Decimal, coll_asset: str, target: Decimal,
                       prices: Prices, now: datetime) -> Decimal:
    """Collateral that puts the loan at ``target`` LTV (``/borrow … with BTC at 50%``). Borrowing a pair the
    borrower already holds adds to that position, so its debt and collateral count: the result is what brings the
    *whole* position to the target (zero when it is already at or below it with the new debt)."""
    if not ZERO < target < ONE:
        raise Rejected("bad_target", "the target LTV must be between 0% and 100%")
    debt, have = amount, ZERO
    existing = desk.book.find_flexible(owner, loan_asset, coll_asset)
    if existing is not None:
        debt += desk.debt(existing, now)
        have = desk.collateral_amounts(existing, now).get(coll_asset, ZERO)
    needed = debt * price(prices, loan_asset) / (price(prices, coll_asset) * target) - have
    return round_up(max(needed, ZERO), desk.catalog.precision(coll_asset))
