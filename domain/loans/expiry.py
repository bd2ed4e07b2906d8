"""Fixed loans at and after expiry (SPEC §5): reminders, renewal, conversion, auto-repay, late fees, liquidation.

At expiry, in this order of preference, per the borrower's options:
  * ``convert_to_flexible`` (single-collateral loans only): the same position becomes a Flexible loan at the
    flexible rate, its debt entering the asset's index; it compounds from the next HH:00.
  * ``auto_renew``: a new term of the same length at the then-current fixed APR, on the debt owed at ``T``.
    The new up-front interest is paid from Spot if Spot holds all of it; otherwise it is *added to the debt*
    (the borrower then owes ``D + I'`` at the new expiry). Renewal fails — and the loan is treated as not
    renewed — if that term is no longer offered, or if the debt after renewal would exceed the initial LTV.
  * ``auto_repay`` (on by default): Spot pays what it holds of the loan asset, up to the debt.
Whatever is still owed makes the loan **overdue**: at ``T + k h`` (k = 1 … grace hours, 24) a late fee of
``outstanding debt × 3 × APR / 8760`` (rounded up to the asset's precision) is added, and after the last one
the collateral is liquidated in full, in the market's liquidation order, with the usual 2% fee.

Reminders go out at T−72h, T−24h, T−1h (``expiry_reminder``), at T (``expired``) and, while overdue, at T+12h
and T+23h. A reminder whose moment has been overtaken by the next one (after downtime) is recorded but not sent.

``process_fixed`` is idempotent and catch-up safe: it works from the stored expiry, ``late_fee_hours`` and
``reminders_sent``, never from counting calls, and applies missed hours in order.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from domain import ledger
from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.ledger import EntryBuilder
from domain.loans.common import finish, owed, settle
from domain.loans.fixed import fixed_apr, upfront_interest
from domain.loans.liquidation import liquidate
from domain.loans.moves import add_debt
from domain.money import ZERO, fmt, pct, round_up
from domain.positions import FixedTerms, Holding, Position, Product, Status
from domain.prices import Prices, price
from domain.rates import HOURS_PER_YEAR, next_hour
from domain.risk import ltv

HOUR = timedelta(hours=1)
BEFORE_EXPIRY = (-72, -24, -1)  # reminder hours relative to T while the loan runs
WHILE_OVERDUE = (12, 23)  # reminder hours relative to T while it is overdue


def late_fee(desk: Desk, p: Position, debt: Decimal) -> Decimal:
    """One hour's late fee on ``debt``: ``debt × 3 × APR / 8760``, rounded up to the asset's precision."""
    assert p.fixed is not None
    rate = desk.catalog.desk.late_fee_multiplier * p.fixed.apr / HOURS_PER_YEAR
    return round_up(debt * rate, desk.catalog.precision(p.loan_asset))


def due_times(p: Position) -> list[datetime]:
    """Every instant at which ``process_fixed`` may have something to do for ``p`` (for schedulers)."""
    if p.product is not Product.FIXED or p.fixed is None or not p.active:
        return []
    t = p.fixed.expires_at
    hours = [*BEFORE_EXPIRY, 0, *range(1, 25)]
    grace = max(24, p.fixed.late_fee_hours + 1)
    hours += list(range(25, grace + 1))
    return [t + h * HOUR for h in hours]


def process_fixed(desk: Desk, prices: Prices, now: datetime, confirmed: Prices | None = None) -> list[Event]:
    """Reminders, expiry, late fees and overdue liquidation for every active Fixed loan, caught up to ``now``."""
    desk.accrue(now)
    confirmed = prices if confirmed is None else confirmed
    events: list[Event] = []
    for p in list(desk.book.active_fixed()):
        if p.product is Product.FIXED and p.fixed is not None:
            events += _catch_up(desk, p, prices, confirmed, now)
    return events


def _catch_up(desk: Desk, p: Position, prices: Prices, confirmed: Prices, now: datetime) -> list[Event]:
    events: list[Event] = []
    grace = desk.catalog.desk.grace_hours
    while p.active and p.product is Product.FIXED and p.fixed is not None:
        f = p.fixed
        t = f.expires_at
        if p.status is Status.OPEN:
            due = [h for h in BEFORE_EXPIRY if t + h * HOUR <= now and str(h) not in f.reminders_sent]
            if due:
                f.reminders_sent += [str(h) for h in due]
                latest = max(due)
                if now < t:  # after T the "expired" notice says it all
                    events.append(_reminder(desk, p, latest, now))
                desk.book.save_position(p)
            if now < t:
                break
            events += _expire(desk, p, prices, now)
            continue
        if f.late_fee_hours >= grace:  # liquidation was due but could not run (no confirmed price)
            events += _liquidate_overdue(desk, p, confirmed, now)
            break
        k = f.late_fee_hours + 1
        at = t + k * HOUR
        if at > now:
            break
        events += _charge_late_fee(desk, p, k, at)
        for h in WHILE_OVERDUE:
            if h == k and str(h) not in f.reminders_sent:
                f.reminders_sent.append(str(h))
                if now < t + min([x for x in (*WHILE_OVERDUE, grace) if x > h]) * HOUR:
                    events.append(_reminder(desk, p, h, at))
                desk.book.save_position(p)
        if k >= grace:
            events += _liquidate_overdue(desk, p, confirmed, now)
            break
    return events


def _reminder(desk: Desk, p: Position, hours: int, at: datetime) -> Event:
    assert p.fixed is not None
    return desk.emit(Event(at, "expiry_reminder", p.owner, p.id, {
        "hours": hours, "expires_at": p.fixed.expires_at, "debt": owed(desk, p, at),
        "asset": p.loan_asset, "status": p.status.value}))


def _expire(desk: Desk, p: Position, prices: Prices, now: datetime) -> list[Event]:
    """The loan reached ``T``: convert, renew or auto-repay as chosen; whatever remains is overdue."""
    assert p.fixed is not None
    f = p.fixed
    t = f.expires_at
    events = [desk.emit(Event(t, "expired", p.owner, p.id, {
        "expires_at": t, "debt": owed(desk, p, t), "asset": p.loan_asset, "auto_repay": f.auto_repay,
        "auto_renew": f.auto_renew, "convert_to_flexible": f.convert_to_flexible}))]
    if f.convert_to_flexible and p.single_collateral is not None:
        return [*events, _convert(desk, p, t)]
    if f.auto_renew:
        renewed = _renew(desk, p, prices, t)
        if renewed.type == "renewed":
            return [*events, renewed]
        events.append(renewed)
    if f.auto_repay:
        events += _auto_repay(desk, p, t)
    if p.active and desk.debt(p, t) > 0:
        p.status = Status.OVERDUE
        p.updated_at = t
        desk.book.save_position(p)
        grace = desk.catalog.desk.grace_hours
        events.append(desk.emit(Event(t, "overdue", p.owner, p.id, {
            "debt": owed(desk, p, t), "asset": p.loan_asset,
            "late_fee_apr": fmt(desk.catalog.desk.late_fee_multiplier * f.apr),
            "liquidation_at": t + grace * HOUR})))
    return events


def _convert(desk: Desk, p: Position, t: datetime) -> Event:
    """The same position continues as a Flexible loan; its debt joins the asset's compounding index.

    An account keeps at most one open flexible position per pair (SPEC §1): if one is already open, the
    loan's debt and collateral join it — as borrowing that pair again would — and this position closes."""
    coll = p.single_collateral
    assert coll is not None
    debt = desk.debt(p, t)
    state = desk.market(p.loan_asset, t)
    state.fixed_debt -= debt
    shares = debt / state.debt_index
    state.debt_shares += shares
    desk.book.save_market(state)
    into = desk.book.find_flexible(p.owner, p.loan_asset, coll)
    if into is None:
        p.debt_shares, p.rate_key = shares, p.loan_asset
        p.product = Product.FLEXIBLE  # p.fixed is kept as the record of the term that ended
        target = p
    else:
        _move_into(desk, p, into, shares, debt, t)
        target = into
    p.updated_at = t
    desk.book.save_position(p)
    data: dict[str, object] = {"product": "flexible", "apr": fmt(state.apr_at(next_hour(t))),
                               "debt": owed(desk, target, t), "asset": p.loan_asset,
                               "first_interest_at": next_hour(t)}
    if target is not p:
        data["into"] = target.id
    return desk.emit(Event(t, "converted", p.owner, p.id, data))


def _move_into(desk: Desk, p: Position, into: Position, shares: Decimal, debt: Decimal, t: datetime) -> None:
    """Hand ``p``'s debt (already as flexible ``shares``) and collateral to the open flexible ``into``."""
    entry = EntryBuilder(t, "convert_merge", position=into.id, memo=f"from #{p.id}")
    for asset, h in p.collateral.items():
        entry.move(asset, h.spot, ledger.collateral(p.id), ledger.collateral(into.id))
        joined = into.collateral.setdefault(asset, Holding())
        joined.spot += h.spot
        joined.earn_shares += h.earn_shares
        h.spot = h.earn_shares = ZERO
    desk.book.post(entry.build())
    into.debt_shares += shares
    into.principal += debt
    into.updated_at = t
    desk.book.save_position(into)
    p.debt_shares = p.principal = ZERO
    p.status, p.closed_at = Status.CLOSED, t


def _renew(desk: Desk, p: Position, prices: Prices, t: datetime) -> Event:
    """A new term at today's rate; returns ``renewed`` or ``renewal_failed`` (nothing changed then)."""
    assert p.fixed is not None
    f = p.fixed
    debt = desk.debt(p, t)
    try:
        apr = fixed_apr(desk, p.loan_asset, f.term_days)
        interest = upfront_interest(desk, p.loan_asset, debt, apr, f.term_days)
        from_spot = desk.spot(p.owner, p.loan_asset) >= interest
        after = debt if from_spot else debt + interest
        level = ltv(after, price(prices, p.loan_asset), desk.lots(p, prices, t))
        initial = desk.thresholds(p).initial
        if level > initial:
            raise Rejected("ltv_too_high", f"renewing would be {pct(level)} LTV, above {pct(initial)}")
    except Rejected as exc:
        return desk.emit(Event(t, "renewal_failed", p.owner, p.id, {"reason": exc.code, "message": exc.message}))
    entry = EntryBuilder(t, "renew", position=p.id)
    if from_spot:
        entry.move(p.loan_asset, interest, ledger.spot(p.owner), ledger.INTEREST)
    else:
        entry.move(p.loan_asset, interest, ledger.LOANS, ledger.INTEREST)
        add_debt(desk, p, interest, t)
    desk.book.post(entry.build())
    p.fixed = FixedTerms(f.term_days, apr, t + timedelta(days=f.term_days), interest, f.auto_repay,
                         f.auto_renew, f.convert_to_flexible)
    p.updated_at = t
    desk.book.save_position(p)
    return desk.emit(Event(t, "renewed", p.owner, p.id, {
        "term_days": f.term_days, "apr": fmt(apr), "interest": fmt(interest),
        "interest_paid_from": "spot" if from_spot else "debt", "debt": owed(desk, p, t),
        "asset": p.loan_asset, "expires_at": p.fixed.expires_at}))


def _auto_repay(desk: Desk, p: Position, t: datetime) -> list[Event]:
    """Spot pays what it holds of the loan asset, up to the debt."""
    debt = desk.debt(p, t)
    due = round_up(debt, desk.catalog.precision(p.loan_asset))
    pay = min(desk.spot(p.owner, p.loan_asset), due)
    if pay <= 0:
        return []
    entry = EntryBuilder(t, "auto_repay", position=p.id)
    settle(desk, p, pay, debt, due, ledger.spot(p.owner), entry, t)
    returned = finish(desk, p, entry, t) if pay == due else None
    desk.book.post(entry.build())
    p.updated_at = t
    desk.book.save_position(p)
    events = [desk.emit(Event(t, "auto_repaid", p.owner, p.id, {
        "amount": fmt(pay), "asset": p.loan_asset, "debt": owed(desk, p, t), "status": p.status.value}))]
    if returned is not None and p.status is Status.CLOSED:
        events.append(desk.emit(Event(t, "closed", p.owner, p.id, {
            "returned": {a: fmt(v) for a, v in returned.items()}})))
    return events


def _charge_late_fee(desk: Desk, p: Position, k: int, at: datetime) -> list[Event]:
    assert p.fixed is not None
    debt = desk.debt(p, at)
    fee = late_fee(desk, p, debt)
    if fee > 0:
        desk.book.post(EntryBuilder(at, "late_fee", position=p.id).move(
            p.loan_asset, fee, ledger.LOANS, ledger.LATE_FEES).build())
        p.debt_shares += fee  # a fee is not principal: repayments pay it first
        state = desk.market(p.loan_asset, at)
        state.fixed_debt += fee
        desk.book.save_market(state)
    p.fixed.late_fees += fee
    p.fixed.late_fee_hours = k
    p.updated_at = at
    desk.book.save_position(p)
    return [desk.emit(Event(at, "late_fee", p.owner, p.id, {
        "hour": k, "fee": fmt(fee), "asset": p.loan_asset, "debt": owed(desk, p, at),
        "late_fees": fmt(p.fixed.late_fees)}))]


def _liquidate_overdue(desk: Desk, p: Position, confirmed: Prices, now: datetime) -> list[Event]:
    try:
        level = desk.ltv(p, confirmed, now)
    except Rejected:
        return []  # no confirmed price now: the next call tries again
    return liquidate(desk, p, confirmed, now, level, reason="overdue")
