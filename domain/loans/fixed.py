"""Fixed Rate Loans (SPEC §3–4): a term, interest taken up front, several collateral assets, expiry options.

A Fixed loan of ``principal`` for ``days`` at ``APR`` pays the borrower ``principal − I`` with
``I = principal × APR × days / 365`` (rounded up to the asset's precision: the borrower is paid less, never
more) and owes ``principal`` at ``T = start + days``. Its debt does not compound (``rate_key`` is None). It may
be repaid early at any time; the prepaid interest is not refunded. Several collateral assets are allowed,
each valued with its collateral ratio; the levels are the Fixed product's (72% / 77% / 91%, warning 75%).

What happens at and after ``T`` (renewal, conversion, auto-repay, late fees, liquidation) is
``domain.loans.expiry``; the options are chosen here (``set_fixed_expiry``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.loans.common import BorrowPreview, BorrowRequest, check_term_borrow, open_loan, trigger_prices
from domain.money import ZERO, fmt, round_up
from domain.positions import FixedTerms, Position, Product, Status
from domain.prices import Prices, price
from domain.rates import DAYS_PER_YEAR

NO_REFUND = "Interest is paid up front; it is not refunded if you repay early."


def fixed_apr(desk: Desk, loan_asset: str, term_days: int) -> Decimal:
    """The fixed APR offered now for (loan asset, term)."""
    loan = desk.catalog.loans.get(loan_asset)
    if loan is None:
        raise Rejected("unknown_loan_asset", f"{loan_asset} cannot be borrowed here")
    terms = desk.catalog.desk.fixed_terms
    if term_days not in terms:
        raise Rejected("unknown_term", f"fixed terms are {', '.join(map(str, terms))} days (got {term_days})")
    apr = loan.fixed_apr.get(term_days)
    if apr is None:
        raise Rejected("no_fixed_rate", f"{loan_asset} is not offered for {term_days} days")
    return apr


def upfront_interest(desk: Desk, asset: str, principal: Decimal, apr: Decimal, days: int) -> Decimal:
    """``I = principal × APR × days / 365``, rounded up to the asset's precision."""
    return round_up(principal * apr * days / DAYS_PER_YEAR, desk.catalog.precision(asset))


def preview_fixed(desk: Desk, req: BorrowRequest, prices: Prices, now: datetime) -> BorrowPreview:
    """Validate a Fixed borrow and show its numbers: up-front interest, what is received, expiry."""
    if req.term_days is None:
        terms = ", ".join(map(str, desk.catalog.desk.fixed_terms))
        raise Rejected("term_required", f"a fixed loan needs a term in days ({terms})")
    apr = fixed_apr(desk, req.loan_asset, req.term_days)
    cat = desk.catalog
    th = cat.thresholds("fixed")
    lots, after = check_term_borrow(desk, req, prices, now, th, lambda a: cat.collateral[a].ratio, cat.collateral)
    interest = upfront_interest(desk, req.loan_asset, req.amount, apr, req.term_days)
    mc, liq = trigger_prices(req, lots, price(prices, req.loan_asset), th)
    return BorrowPreview(req, after, th, mc, liq, apr, ZERO, ZERO, req.amount - interest, now,
                         None, req.amount, {lot.asset: lot.amount for lot in lots},
                         term_days=req.term_days, fixed_interest=interest,
                         expires_at=now + timedelta(days=req.term_days), notes=(NO_REFUND,))


def borrow_fixed(desk: Desk, req: BorrowRequest, prices: Prices, now: datetime) -> tuple[Position, Event]:
    """Open a Fixed loan: collateral pledged, ``principal − I`` to Spot, ``I`` to the desk's interest income."""
    pv = preview_fixed(desk, req, prices, now)
    assert pv.term_days is not None and pv.fixed_interest is not None and pv.expires_at is not None
    interest = pv.fixed_interest
    position = Position(desk.book.new_position_id(), req.owner, Product.FIXED, req.loan_asset, now,
                        rate_key=None, fixed=FixedTerms(pv.term_days, pv.apr, pv.expires_at, interest))
    event = open_loan(desk, position, req, pv, now, interest, product="fixed", term_days=pv.term_days,
                      apr=fmt(pv.apr), interest=fmt(interest), received=fmt(req.amount - interest),
                      expires_at=pv.expires_at)
    return position, event


def set_fixed_expiry(desk: Desk, owner: str, pid: int, now: datetime, auto_repay: bool | None = None,
                     auto_renew: bool | None = None, convert_to_flexible: bool | None = None) -> Event:
    """Change what happens at expiry; options not given keep their value."""
    p = desk.own(owner, pid)
    if p.product is not Product.FIXED or p.fixed is None:
        raise Rejected("not_fixed", f"#{pid} is not a fixed-rate loan")
    if p.status is not Status.OPEN:
        raise Rejected("position_not_open", f"#{pid} is {p.status.value.replace('_', ' ')}; "
                                            f"expiry options can only change before expiry")
    f = p.fixed
    repay_ = f.auto_repay if auto_repay is None else auto_repay
    renew = f.auto_renew if auto_renew is None else auto_renew
    convert = f.convert_to_flexible if convert_to_flexible is None else convert_to_flexible
    if renew and convert:
        raise Rejected("conflicting_options", "choose either auto-renew or convert to flexible, not both")
    if convert and p.single_collateral is None:
        raise Rejected("one_collateral_asset", "only a single-collateral loan can convert to flexible")
    f.auto_repay, f.auto_renew, f.convert_to_flexible = repay_, renew, convert
    p.updated_at = now
    desk.book.save_position(p)
    return desk.emit(Event(now, "expiry_options_set", owner, pid, {
        "auto_repay": repay_, "auto_renew": renew, "convert_to_flexible": convert}))
