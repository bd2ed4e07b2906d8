"""What a borrower can do (SPEC §4): borrow (with a preview), add and withdraw collateral, repay with the
loan asset or with collateral at a quoted rate, and close.

Each action validates everything first and raises ``Rejected`` (changing nothing) or applies completely:
ledger entries, position, market totals and one event, all through the ``Book``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from domain import ledger
from domain.desk import Desk, Prices, price
from domain.errors import Rejected
from domain.events import Event
from domain.ledger import EntryBuilder
from domain.markets import Thresholds
from domain.money import ONE, ZERO, exact, fmt, fmt_ratio, round_down, round_up
from domain.moves import add_debt, pledge, reduce_debt, take, unpledge
from domain.positions import Position, Product, Source, Status
from domain.rates import HOURS_PER_YEAR, MarketState, next_hour
from domain.risk import Lot, collateral_to_reach, ltv, price_at_ltv


@dataclass(frozen=True)
class BorrowRequest:
    owner: str
    loan_asset: str
    amount: Decimal
    collateral: Mapping[str, Decimal]
    product: Product = Product.FLEXIBLE
    source: Source = Source.SPOT
    term_days: int | None = None  # Fixed loans: 7, 14, 30, 60, 90 or 180


@dataclass(frozen=True)
class BorrowPreview:
    """Everything the borrower sees before confirming (and what ``borrow`` will do)."""

    request: BorrowRequest
    ltv: Decimal
    thresholds: Thresholds
    margin_call_price: Decimal | None
    liquidation_price: Decimal | None
    apr: Decimal
    hourly_interest: Decimal
    daily_interest: Decimal
    receive: Decimal
    first_interest_at: datetime
    existing: int | None = None
    debt_after: Decimal = ZERO
    collateral_after: dict[str, Decimal] = field(default_factory=dict)
    # Fixed loans: the interest taken up front, the term and its expiry; notes the borrower must read.
    term_days: int | None = None
    fixed_interest: Decimal | None = None
    expires_at: datetime | None = None
    notes: tuple[str, ...] = ()
    variable_rate: bool = True  # False: the APR is fixed for the loan (a fixed-rate VIP term sheet)


def preview_borrow(desk: Desk, req: BorrowRequest, prices: Prices, now: datetime) -> BorrowPreview:
    """Validate a borrow and compute its numbers; changes nothing."""
    cat = desk.catalog
    if req.product is Product.FIXED:
        from domain.fixed import preview_fixed  # the product modules build on this one
        return preview_fixed(desk, req, prices, now)
    if req.product is Product.VIP:
        from domain.vip import preview_vip
        return preview_vip(desk, req, prices, now)
    if req.product is not Product.FLEXIBLE:
        raise Rejected("unknown_product", f"{req.product.value} loans are not offered on this desk")
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
    _check_wallet(desk, req.owner, coll_asset, coll_amount, req.source, now)
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


def check_order(desk: Desk, loan_asset: str, amount: Decimal, now: datetime) -> MarketState:
    """The order rules every product shares: precision, minimum and maximum per order, the desk's lending cap.
    Returns the loan asset's market state, caught up to ``now``."""
    loan = desk.catalog.loans[loan_asset]
    desk.check_amount(loan_asset, amount)
    if amount < loan.min_borrow:
        raise Rejected("below_minimum", f"the smallest {loan_asset} loan is {fmt(loan.min_borrow)}")
    if amount > loan.max_borrow:
        raise Rejected("above_maximum", f"the largest {loan_asset} order is {fmt(loan.max_borrow)}")
    lent = desk.borrowed(loan_asset, now)  # catches up every index first
    state = desk.market(loan_asset, now)
    if lent + amount > loan.lending_cap:
        room = round_down(max(loan.lending_cap - lent, ZERO), desk.catalog.precision(loan_asset))
        raise Rejected("lending_cap", f"the desk can lend at most {fmt(room)} more "
                                      f"{loan_asset} right now")
    return state


def pledged(desk: Desk, owner: str, asset: str, now: datetime, product: Product | None = None) -> Decimal:
    """How much ``asset`` the owner has pledged in open positions (of one product, if given)."""
    return sum((desk.holding_amount(asset, p.collateral[asset], now) for p in desk.book.positions_of(owner)
                if p.active and asset in p.collateral and product in (None, p.product)), ZERO)


def check_collateral_cap(desk: Desk, owner: str, asset: str, amount: Decimal, now: datetime) -> None:
    """The catalog's maximum collateral of ``asset`` per account, across all open positions."""
    already = pledged(desk, owner, asset, now)
    cap = desk.catalog.collateral[asset].max_per_account
    if already + amount > cap:
        raise Rejected("collateral_cap", f"at most {fmt(cap)} {asset} may be pledged per account "
                                         f"({fmt(already)} already is)")


def collateral_for_ltv(desk: Desk, loan_asset: str, amount: Decimal, coll_asset: str, target: Decimal,
                       prices: Prices) -> Decimal:
    """Collateral that puts a new loan of ``amount`` at ``target`` LTV (``/borrow … with BTC at 50%``)."""
    if not ZERO < target < ONE:
        raise Rejected("bad_target", "the target LTV must be between 0% and 100%")
    needed = amount * price(prices, loan_asset) / (price(prices, coll_asset) * target)
    return round_up(needed, desk.catalog.precision(coll_asset))


def borrow(desk: Desk, req: BorrowRequest, prices: Prices, now: datetime) -> tuple[Position, Event]:
    """Open a flexible loan, or add to the open one of the same pair (Fixed and VIP loans: a new position)."""
    if req.product is Product.FIXED:
        from domain.fixed import borrow_fixed
        return borrow_fixed(desk, req, prices, now)
    if req.product is Product.VIP:
        from domain.vip import borrow_vip
        return borrow_vip(desk, req, prices, now)
    pv = preview_borrow(desk, req, prices, now)
    position = desk.book.get_position(pv.existing) if pv.existing else None
    if position is None:
        position = Position(desk.book.new_position_id(), req.owner, req.product, req.loan_asset, now,
                            rate_key=req.loan_asset)
    return position, open_loan(desk, position, req, pv, now)


def open_loan(desk: Desk, position: Position, req: BorrowRequest, pv: BorrowPreview, now: datetime,
              upfront_interest: Decimal = ZERO, **details: object) -> Event:
    """Book a borrow on ``position`` (new or merged): collateral pledged, debt added, the amount less any
    ``upfront_interest`` to Spot and that interest to the desk's income; one entry, one ``borrowed`` event."""
    entry = EntryBuilder(now, "borrow", position=position.id)
    for asset, amount in req.collateral.items():
        if amount:
            pledge(desk, position, asset, amount, req.source, entry, now)
    add_debt(desk, position, req.amount, now)
    entry.move(req.loan_asset, req.amount - upfront_interest, ledger.LOANS, ledger.spot(req.owner))
    entry.move(req.loan_asset, upfront_interest, ledger.LOANS, ledger.INTEREST)
    position.updated_at = now
    desk.book.post(entry.build())
    desk.book.save_position(position)
    return desk.emit(Event(now, "borrowed", req.owner, position.id, {
        "ltv": fmt_ratio(pv.ltv), "amount": fmt(req.amount), "asset": req.loan_asset,
        "collateral": {a: fmt(v) for a, v in req.collateral.items()}, "source": req.source.value, **details}))


def add_collateral(desk: Desk, owner: str, pid: int, asset: str | None, amount: Decimal, prices: Prices,
                   now: datetime, source: Source = Source.SPOT) -> Event:
    """Pledge more collateral (always allowed while the position is open)."""
    p = _active(desk, owner, pid)
    asset = asset or p.single_collateral or next(iter(p.collateral))
    if p.product is Product.FLEXIBLE and asset not in p.collateral:
        raise Rejected("wrong_collateral_asset", f"#{pid} is secured by {', '.join(p.collateral)}; "
                                                 f"a flexible loan keeps one collateral asset")
    if asset not in desk.catalog.collateral:
        raise Rejected("unknown_collateral_asset", f"{asset} is not accepted as collateral")
    desk.check_amount(asset, amount)
    desk.accrue(now)
    check_collateral_cap(desk, owner, asset, amount, now)
    _check_wallet(desk, owner, asset, amount, source, now)
    entry = EntryBuilder(now, "add_collateral", position=pid)
    pledge(desk, p, asset, amount, source, entry, now)
    desk.book.post(entry.build())
    p.updated_at = now
    desk.book.save_position(p)
    return desk.emit(Event(now, "collateral_added", owner, pid, {
        "asset": asset, "amount": fmt(amount), "ltv": _ltv_or_none(desk, p, prices, now)}))


def withdraw_collateral(desk: Desk, owner: str, pid: int, asset: str | None, amount: Decimal, prices: Prices,
                        now: datetime) -> Event:
    """Take collateral back, only while the LTV after stays at or below the initial LTV."""
    p = _active(desk, owner, pid)
    asset = asset or p.single_collateral or ""
    if asset not in p.collateral:
        raise Rejected("wrong_collateral_asset", f"#{pid} holds no {asset or 'such'} collateral")
    desk.check_amount(asset, amount)
    desk.accrue(now)
    amounts = desk.collateral_amounts(p, now)
    have = amounts.get(asset, ZERO)
    if amount > have:
        raise Rejected("insufficient_collateral", f"#{pid} holds only {fmt(have)} {asset}")
    amounts[asset] = have - amount
    th = desk.thresholds(p)
    after = ltv(desk.debt(p, now), price(prices, p.loan_asset), desk.lots(p, prices, now, amounts))
    if after > th.initial:
        lots = desk.lots(p, prices, now)
        allowed = _withdrawable(desk, p, asset, lots, th.initial, prices, now)
        room = f"you can withdraw up to {fmt(allowed)} {asset}" if allowed else "nothing can be withdrawn now"
        raise Rejected("ltv_too_high", f"that would take the LTV above {pct(th.initial)}, the limit for "
                                       f"withdrawals; {room}")
    entry = EntryBuilder(now, "withdraw_collateral", position=pid)
    unpledge(desk, p, asset, amount, entry, now)
    desk.book.post(entry.build())
    p.updated_at = now
    desk.book.save_position(p)
    return desk.emit(Event(now, "collateral_withdrawn", owner, pid, {
        "asset": asset, "amount": fmt(amount), "ltv": fmt_ratio(after)}))


def _withdrawable(desk: Desk, p: Position, asset: str, lots: list[Lot], limit: Decimal, prices: Prices,
                  now: datetime) -> Decimal:
    debt_value = desk.debt(p, now) * price(prices, p.loan_asset)
    others = sum((lot.weighted for lot in lots if lot.asset != asset), ZERO)
    mine = next(lot for lot in lots if lot.asset == asset)
    keep = (debt_value / limit - others) / (mine.price * mine.ratio)
    room = mine.amount - max(keep, ZERO)
    places = desk.catalog.precision(asset)
    return max(room.quantize(Decimal(1).scaleb(-places), rounding="ROUND_DOWN"), ZERO)


def repay(desk: Desk, owner: str, pid: int, amount: Decimal | None, now: datetime) -> Event:
    """Repay from Spot in the loan asset; ``None`` repays everything. Interest is paid before principal."""
    p = _owned_with_debt(desk, owner, pid)
    desk.accrue(now)
    debt = desk.debt(p, now)
    due = round_up(debt, desk.catalog.precision(p.loan_asset))
    pay = due if amount is None else min(amount, due)
    if amount is not None:
        desk.check_amount(p.loan_asset, amount)
    have = desk.spot(owner, p.loan_asset)
    if have < pay:
        raise Rejected("insufficient_funds", f"Spot holds {fmt(have)} {p.loan_asset}; repaying {fmt(pay)} "
                                             f"needs more (credit Spot or repay with collateral)")
    entry = EntryBuilder(now, "repay", position=pid)
    _settle(desk, p, pay, debt, due, ledger.spot(owner), entry, now)
    returned = _finish(desk, p, entry, now) if pay == due else None
    desk.book.post(entry.build())
    p.updated_at = now
    desk.book.save_position(p)
    event = desk.emit(Event(now, "repaid", owner, pid, {
        "amount": fmt(pay), "asset": p.loan_asset, "with": "loan", "debt": _owed(desk, p, now),
        "status": p.status.value}))
    _closed_event(desk, p, returned, now)
    return event


@dataclass(frozen=True)
class CollateralQuote:
    """A price to repay ``repay`` of the loan asset by selling ``sell`` collateral, valid until ``expires``."""

    position: int
    asset: str
    rate: Decimal  # loan units per collateral unit, spread included
    repay: Decimal
    sell: Decimal
    full: bool
    expires: datetime


def quote_repay_with_collateral(desk: Desk, owner: str, pid: int, amount: Decimal | None, prices: Prices,
                                now: datetime) -> CollateralQuote:
    p = _active(desk, owner, pid)
    asset = p.single_collateral
    if asset is None:
        raise Rejected("one_collateral_asset", "repaying with collateral needs a single-collateral position")
    if amount is not None:
        desk.check_amount(p.loan_asset, amount)
    desk.accrue(now)
    debt = desk.debt(p, now)
    due = round_up(debt, desk.catalog.precision(p.loan_asset))
    pay = due if amount is None else min(amount, due)
    rate = price(prices, asset) / price(prices, p.loan_asset) * (ONE - desk.catalog.desk.repay_spread)
    sell = round_up(pay / rate, desk.catalog.precision(asset))
    have = desk.collateral_amounts(p, now).get(asset, ZERO)
    if sell > have:
        raise Rejected("insufficient_collateral", f"repaying {fmt(pay)} {p.loan_asset} needs {fmt(sell)} {asset}; "
                                                  f"#{pid} holds {fmt(have)}")
    return CollateralQuote(pid, asset, rate, pay, sell, pay == due,
                           now + timedelta(seconds=desk.catalog.desk.quote_seconds))


def repay_with_collateral(desk: Desk, owner: str, pid: int, amount: Decimal | None, prices: Prices,
                          now: datetime, quote: CollateralQuote | None = None) -> Event:
    """Sell collateral at the quoted rate to repay; on full repayment the rest of the collateral is unlocked."""
    if quote is not None and now > quote.expires:
        raise Rejected("quote_expired", "that quote has expired (quotes last "
                                        f"{desk.catalog.desk.quote_seconds} s); ask for a new one")
    q = quote or quote_repay_with_collateral(desk, owner, pid, amount, prices, now)
    p = _active(desk, owner, pid)
    debt = desk.debt(p, now)
    due = round_up(debt, desk.catalog.precision(p.loan_asset))
    pay = min(q.repay, due)
    entry = EntryBuilder(now, "repay_with_collateral", position=pid)
    take(desk, p, q.asset, q.sell, ledger.CONVERSIONS, entry, now)
    _settle(desk, p, pay, debt, due, ledger.CONVERSIONS, entry, now)
    returned = _finish(desk, p, entry, now) if pay == due else None
    desk.book.post(entry.build())
    p.updated_at = now
    desk.book.save_position(p)
    event = desk.emit(Event(now, "repaid", owner, pid, {
        "amount": fmt(pay), "asset": p.loan_asset, "with": "collateral", "collateral_sold": {q.asset: fmt(q.sell)},
        "rate": fmt(exact(q.rate)), "debt": _owed(desk, p, now), "status": p.status.value}))
    _closed_event(desk, p, returned, now)
    return event


def close(desk: Desk, owner: str, pid: int, now: datetime) -> Event:
    """Repay everything from Spot; the collateral returns to the wallets it came from."""
    p = _active(desk, owner, pid)
    return repay(desk, owner, p.id, None, now)


# --------------------------------------------------------------------------- helpers


def pct(x: Decimal) -> str:
    """An LTV as people read it: one decimal and a percent sign (``60.0%``)."""
    if x.is_infinite():
        return "∞"
    return f"{(x * 100).quantize(Decimal('0.1'))}%"


def _owed(desk: Desk, p: Position, now: datetime) -> str:
    return fmt(round_up(desk.debt(p, now), desk.catalog.precision(p.loan_asset)))


def _ltv_or_none(desk: Desk, p: Position, prices: Prices, now: datetime) -> str | None:
    try:
        return fmt_ratio(desk.ltv(p, prices, now))
    except Rejected:
        return None


def _active(desk: Desk, owner: str, pid: int) -> Position:
    p = desk.own(owner, pid)
    if not p.active:
        raise Rejected("position_not_open", f"#{pid} is {p.status.value.replace('_', ' ')}")
    return p


def _owned_with_debt(desk: Desk, owner: str, pid: int) -> Position:
    p = desk.own(owner, pid)
    if not (p.active or p.status is Status.LIQUIDATED_WITH_DEBT):
        raise Rejected("position_not_open", f"#{pid} is {p.status.value.replace('_', ' ')}")
    return p


def _check_wallet(desk: Desk, owner: str, asset: str, amount: Decimal, source: Source, now: datetime) -> None:
    have = desk.spot(owner, asset) if source is Source.SPOT else desk.earn(owner, asset, now)
    if have < amount:
        raise Rejected("insufficient_funds", f"your {source.value.title()} wallet holds {fmt(have)} {asset}, "
                                             f"less than {fmt(amount)}")








def _closed_event(desk: Desk, p: Position, returned: dict[str, Decimal] | None, now: datetime) -> None:
    if returned is not None and p.status is Status.CLOSED:
        desk.emit(Event(now, "closed", p.owner, p.id, {"returned": {a: fmt(v) for a, v in returned.items()}}))






def _settle(desk: Desk, p: Position, pay: Decimal, debt: Decimal, due: Decimal, payer: str,
            entry: EntryBuilder, now: datetime) -> None:
    """Book a repayment of ``pay`` from ``payer``; a full one clears the exact debt, the rounding to the desk."""
    full = pay == due
    if full:
        entry.move(p.loan_asset, debt, payer, ledger.LOANS)
        entry.move(p.loan_asset, pay - debt, payer, ledger.ROUNDING)
    else:
        entry.move(p.loan_asset, pay, payer, ledger.LOANS)
    reduce_debt(desk, p, pay if not full else debt, debt, now, full)


def _finish(desk: Desk, p: Position, entry: EntryBuilder, now: datetime) -> dict[str, Decimal]:
    """A fully repaid position: collateral back where it came from, position closed."""
    returned: dict[str, Decimal] = {}
    for asset in list(p.collateral):
        amount = desk.holding_amount(asset, p.collateral[asset], now)
        if amount > 0:
            unpledge(desk, p, asset, amount, entry, now)
            returned[asset] = round_down(amount, desk.catalog.precision(asset))
    if p.status is Status.LIQUIDATED_WITH_DEBT:
        p.status = Status.LIQUIDATED
    else:
        p.status = Status.CLOSED
    p.closed_at = now
    return returned
