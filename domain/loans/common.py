"""The borrowing steps every product shares, public so that Flexible, Fixed and VIP build on them alike.

A borrow is a ``BorrowRequest`` judged into a ``BorrowPreview`` (what the borrower sees before confirming) and
booked by ``open_loan``: collateral pledged, debt added, the amount (less any up-front interest) to Spot, one
ledger entry and one ``borrowed`` event. The checks here are the order rules (precision, minimum and maximum
per order, the desk's lending cap), the per-account collateral cap, the wallet check, and the validation of
loans with several collateral assets valued with their ratios (Fixed and VIP). Repayments settle through
``settle`` (a full one clears the exact debt, the rounding goes to the desk) and ``finish`` (collateral back to
the wallets it came from, the position closed).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from domain import ledger
from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.ledger import EntryBuilder
from domain.loans.moves import add_debt, pledge, reduce_debt, unpledge
from domain.markets import Thresholds
from domain.money import ZERO, fmt, fmt_ratio, pct, round_down, round_up
from domain.positions import Position, Product, Source, Status
from domain.prices import Prices, price
from domain.rates import MarketState
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


def check_wallet(desk: Desk, owner: str, asset: str, amount: Decimal, source: Source, now: datetime) -> None:
    have = desk.spot(owner, asset) if source is Source.SPOT else desk.earn(owner, asset, now)
    if have < amount:
        raise Rejected("insufficient_funds", f"your {source.value.title()} wallet holds {fmt(have)} {asset}, "
                                             f"less than {fmt(amount)}")


def check_term_borrow(desk: Desk, req: BorrowRequest, prices: Prices, now: datetime, th: Thresholds,
                      ratio: Callable[[str], Decimal], accepted: Collection[str]) -> tuple[list[Lot], Decimal]:
    """Validation shared by Fixed and VIP borrows (several collateral assets, valued with ratios).

    Returns the collateral lots and the LTV after borrowing; raises ``Rejected`` and changes nothing.
    """
    cat = desk.catalog
    loan = cat.loans.get(req.loan_asset)
    if loan is None:
        raise Rejected("unknown_loan_asset", f"{req.loan_asset} cannot be borrowed here "
                                             f"(borrowable: {', '.join(cat.loans)})")
    if not req.collateral:
        raise Rejected("no_collateral", "name at least one collateral asset and amount")
    for asset, amount in req.collateral.items():
        if asset == req.loan_asset:
            raise Rejected("same_asset", "the collateral asset must differ from the loan asset")
        if asset not in accepted:
            raise Rejected("unknown_collateral_asset", f"{asset} is not accepted as collateral "
                                                       f"(accepted: {', '.join(accepted)})")
        desk.check_amount(asset, amount)
    check_order(desk, req.loan_asset, req.amount, now)
    for asset, amount in req.collateral.items():
        check_collateral_cap(desk, req.owner, asset, amount, now)
        check_wallet(desk, req.owner, asset, amount, req.source, now)
    loan_price = price(prices, req.loan_asset)
    lots = [Lot(a, amt, price(prices, a), ratio(a)) for a, amt in req.collateral.items()]
    after = ltv(req.amount, loan_price, lots)
    if after > th.initial:
        first = lots[0]
        need = collateral_to_reach(req.amount, loan_price, lots, first, th.initial)
        raise Rejected("ltv_too_high", f"that would be {pct(after)} LTV; the limit is {pct(th.initial)}. "
                                       f"Add at least {fmt(round_up(need, cat.precision(first.asset)))} "
                                       f"{first.asset} more collateral or borrow less")
    return lots, after


def trigger_prices(req: BorrowRequest, lots: list[Lot], loan_price: Decimal,
                   th: Thresholds) -> tuple[Decimal | None, Decimal | None]:
    """Margin-call and liquidation prices of the collateral (single-collateral loans only)."""
    if len(lots) != 1:
        return None, None
    asset = lots[0].asset
    return (price_at_ltv(req.amount, loan_price, lots, asset, th.margin_call),
            price_at_ltv(req.amount, loan_price, lots, asset, th.liquidation))


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


def settle(desk: Desk, p: Position, pay: Decimal, debt: Decimal, due: Decimal, payer: str,
            entry: EntryBuilder, now: datetime) -> None:
    """Book a repayment of ``pay`` from ``payer``; a full one clears the exact debt, the rounding to the desk."""
    full = pay == due
    if full:
        entry.move(p.loan_asset, debt, payer, ledger.LOANS)
        entry.move(p.loan_asset, pay - debt, payer, ledger.ROUNDING)
    else:
        entry.move(p.loan_asset, pay, payer, ledger.LOANS)
    reduce_debt(desk, p, pay if not full else debt, debt, now, full)


def finish(desk: Desk, p: Position, entry: EntryBuilder, now: datetime) -> dict[str, Decimal]:
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


def closed_event(desk: Desk, p: Position, returned: dict[str, Decimal] | None, now: datetime) -> None:
    if returned is not None and p.status is Status.CLOSED:
        desk.emit(Event(now, "closed", p.owner, p.id, {"returned": {a: fmt(v) for a, v in returned.items()}}))


def owed(desk: Desk, p: Position, now: datetime) -> str:
    return fmt(round_up(desk.debt(p, now), desk.catalog.precision(p.loan_asset)))


def ltv_or_none(desk: Desk, p: Position, prices: Prices, now: datetime) -> str | None:
    try:
        return fmt_ratio(desk.ltv(p, prices, now))
    except Rejected:
        return None


def active_position(desk: Desk, owner: str, pid: int) -> Position:
    p = desk.own(owner, pid)
    if not p.active:
        raise Rejected("position_not_open", f"#{pid} is {p.status.value.replace('_', ' ')}")
    return p


def owned_with_debt(desk: Desk, owner: str, pid: int) -> Position:
    p = desk.own(owner, pid)
    if not (p.active or p.status is Status.LIQUIDATED_WITH_DEBT):
        raise Rejected("position_not_open", f"#{pid} is {p.status.value.replace('_', ' ')}")
    return p
