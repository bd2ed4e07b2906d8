"""What a borrower does with an open loan (SPEC §4): add and withdraw collateral, repay with the loan asset or
with collateral at a quoted rate, and close.

Each action validates everything first and raises ``Rejected`` (changing nothing) or applies completely:
ledger entries, position, market totals and one event, all through the ``Book``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from domain import ledger
from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.ledger import EntryBuilder
from domain.loans.common import (
    active_position,
    check_collateral_cap,
    check_wallet,
    closed_event,
    finish,
    ltv_or_none,
    owed,
    owned_with_debt,
    settle,
)
from domain.loans.moves import pledge, take, unpledge
from domain.money import ONE, ZERO, exact, fmt, fmt_ratio, pct, round_up
from domain.positions import Position, Product, Source
from domain.prices import Prices, price
from domain.risk import Lot, ltv


def add_collateral(desk: Desk, owner: str, pid: int, asset: str | None, amount: Decimal, prices: Prices,
                   now: datetime, source: Source = Source.SPOT) -> Event:
    """Pledge more collateral (always allowed while the position is open)."""
    p = active_position(desk, owner, pid)
    asset = asset or p.single_collateral or next(iter(p.collateral))
    if p.product is Product.FLEXIBLE and asset not in p.collateral:
        raise Rejected("wrong_collateral_asset", f"#{pid} is secured by {', '.join(p.collateral)}; "
                                                 f"a flexible loan keeps one collateral asset")
    if asset not in desk.catalog.collateral:
        raise Rejected("unknown_collateral_asset", f"{asset} is not accepted as collateral")
    desk.check_amount(asset, amount)
    desk.accrue(now)
    check_collateral_cap(desk, owner, asset, amount, now)
    check_wallet(desk, owner, asset, amount, source, now)
    entry = EntryBuilder(now, "add_collateral", position=pid)
    pledge(desk, p, asset, amount, source, entry, now)
    desk.book.post(entry.build())
    p.updated_at = now
    desk.book.save_position(p)
    return desk.emit(Event(now, "collateral_added", owner, pid, {
        "asset": asset, "amount": fmt(amount), "ltv": ltv_or_none(desk, p, prices, now)}))


def withdraw_collateral(desk: Desk, owner: str, pid: int, asset: str | None, amount: Decimal, prices: Prices,
                        now: datetime) -> Event:
    """Take collateral back, only while the LTV after stays at or below the initial LTV."""
    p = active_position(desk, owner, pid)
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
    p = owned_with_debt(desk, owner, pid)
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
    settle(desk, p, pay, debt, due, ledger.spot(owner), entry, now)
    returned = finish(desk, p, entry, now) if pay == due else None
    desk.book.post(entry.build())
    p.updated_at = now
    desk.book.save_position(p)
    event = desk.emit(Event(now, "repaid", owner, pid, {
        "amount": fmt(pay), "asset": p.loan_asset, "with": "loan", "debt": owed(desk, p, now),
        "status": p.status.value}))
    closed_event(desk, p, returned, now)
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
    p = active_position(desk, owner, pid)
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
    p = active_position(desk, owner, pid)
    debt = desk.debt(p, now)
    due = round_up(debt, desk.catalog.precision(p.loan_asset))
    pay = min(q.repay, due)
    entry = EntryBuilder(now, "repay_with_collateral", position=pid)
    take(desk, p, q.asset, q.sell, ledger.CONVERSIONS, entry, now)
    settle(desk, p, pay, debt, due, ledger.CONVERSIONS, entry, now)
    returned = finish(desk, p, entry, now) if pay == due else None
    desk.book.post(entry.build())
    p.updated_at = now
    desk.book.save_position(p)
    event = desk.emit(Event(now, "repaid", owner, pid, {
        "amount": fmt(pay), "asset": p.loan_asset, "with": "collateral", "collateral_sold": {q.asset: fmt(q.sell)},
        "rate": fmt(exact(q.rate)), "debt": owed(desk, p, now), "status": p.status.value}))
    closed_event(desk, p, returned, now)
    return event


def close(desk: Desk, owner: str, pid: int, now: datetime) -> Event:
    """Repay everything from Spot; the collateral returns to the wallets it came from."""
    p = active_position(desk, owner, pid)
    return repay(desk, owner, p.id, None, now)
