"""Auto-protection (SPEC §8 ``/protect <id> <trigger>% <target>% topup|repay``): the borrower's own rule that
acts on a position before the risk sweep can.

When a position's LTV is at or above the rule's ``trigger``, protection brings it back to ``target``:

* ``topup`` pledges more collateral from the borrower's wallets, Spot first, then Earn (Earn collateral keeps
  earning). With weighted collateral ``W`` and quote-valued debt ``D·P_loan`` the LTV reaches the target once
  ``W' = D·P_loan / target``; the missing weight is bought with each collateral asset of the position in turn:
  ``c = (D·P_loan / target − W) / (P·ratio)``, rounded **up** to the asset's precision (so the LTV ends at or
  just below the target), capped by the wallets and by the per-account collateral cap.
* ``repay`` repays debt from Spot in the loan asset: ``r = D − target·W / P_loan``, rounded up, capped by Spot.
  Interest is repaid before principal, as with any repayment.

If the wallets cannot cover it all, protection moves what there is and says so (``covered: false``). Each
attempt counts towards the rule's daily limit (default 3 per UTC day; ``[desk] protection_daily_limit`` in
the markets file), so an empty wallet costs at most that many pushes a day. Every attempt emits one
``protection`` event with what it moved. Protection uses the newest prices (like warnings): it only ever
moves the borrower's own funds towards safety, never sells anything.

``run_protection`` is a step of the tick (``domain.watch.tick``); it runs before price alerts and the risk sweep
and costs one query when no rule exists.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from domain import ledger
from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.ledger import EntryBuilder
from domain.loans.moves import pledge, reduce_debt
from domain.money import ZERO, fmt, fmt_ratio, pct, quantum, round_down, round_up
from domain.positions import PROTECTION_MODES, Position, ProtectionRule, Source
from domain.prices import Prices, price

MAX_DAILY_LIMIT = 24


def set_protection(desk: Desk, owner: str, pid: int, trigger: Decimal, target: Decimal, mode: str,
                   now: datetime, limit: int | None = None) -> ProtectionRule:
    """Store (or replace) the rule of ``pid``. Actions already taken today still count against the limit."""
    p = desk.own(owner, pid)
    if not p.active:
        raise Rejected("position_not_open", f"#{pid} is {p.status.value.replace('_', ' ')}")
    if mode not in PROTECTION_MODES:
        raise Rejected("bad_mode", f"the mode must be topup or repay (got {mode!r})")
    th = desk.thresholds(p)
    if not ZERO < target < trigger:
        raise Rejected("bad_levels", "the target LTV must be above 0% and below the trigger")
    if trigger >= th.liquidation:
        raise Rejected("bad_levels", f"the trigger must be below the liquidation LTV "
                                     f"({pct(th.liquidation)})")
    limit = desk.catalog.desk.protection_daily_limit if limit is None else limit
    if not 1 <= limit <= MAX_DAILY_LIMIT:
        raise Rejected("bad_limit", f"the daily limit must be between 1 and {MAX_DAILY_LIMIT}")
    old = next((r for r in desk.book.protection_rules(owner) if r.position == pid), None)
    rule = ProtectionRule(pid, owner, trigger, target, mode, limit, old.used_day if old else None,
                          old.used_count if old else 0, now)
    desk.book.save_protection_rule(rule)
    return rule


def remove_protection(desk: Desk, owner: str, pid: int) -> bool:
    """Drop the rule of ``pid``; False when there was none."""
    desk.own(owner, pid)
    if not any(r.position == pid for r in desk.book.protection_rules(owner)):
        return False
    desk.book.delete_protection_rule(pid)
    return True


def run_protection(desk: Desk, prices: Prices, now: datetime) -> list[Event]:
    """Apply every rule whose position is at or above its trigger; rules of finished positions are dropped."""
    rules = desk.book.protection_rules()
    events: list[Event] = []
    for rule in rules:
        p = desk.book.get_position(rule.position)
        if p is None or not p.active:
            desk.book.delete_protection_rule(rule.position)
            continue
        try:
            current = desk.ltv(p, prices, now)
        except Rejected:
            continue  # a price is missing: nothing can be judged now
        if current < rule.trigger or rule.left_on(now) == 0:
            continue
        events.append(protect(desk, p, rule, prices, now, current))
    return events


def protect(desk: Desk, p: Position, rule: ProtectionRule, prices: Prices, now: datetime,
            before: Decimal) -> Event:
    """One protection action on ``p`` (LTV ``before`` ≥ trigger); counts against the daily limit."""
    if rule.mode == "topup":
        moved, sources, covered = _top_up(desk, p, rule.target, prices, now)
    else:
        moved, sources, covered = _repay(desk, p, rule.target, prices, now)
    day = now.date().isoformat()
    rule.used_count = rule.used_on(now) + 1
    rule.used_day = day
    desk.book.save_protection_rule(rule)
    after = desk.ltv(p, prices, now)
    data: dict[str, object] = {
        "mode": rule.mode, "trigger": fmt_ratio(rule.trigger), "target": fmt_ratio(rule.target),
        "ltv_before": fmt_ratio(before), "ltv": fmt_ratio(after), "moved": {a: fmt(v) for a, v in moved.items()},
        "from": sources, "covered": covered, "actions_left_today": rule.left_on(now),
        "prices": {a: fmt(price(prices, a)) for a in [*p.collateral_assets, p.loan_asset]}}
    return desk.emit(Event(now, "protection", p.owner, p.id, data))


def _top_up(desk: Desk, p: Position, target: Decimal, prices: Prices,
            now: datetime) -> tuple[dict[str, Decimal], dict[str, dict[str, str]], bool]:
    cat = desk.catalog
    lots = desk.lots(p, prices, now)
    missing = desk.debt(p, now) * price(prices, p.loan_asset) / target - sum((x.weighted for x in lots), ZERO)
    moved: dict[str, Decimal] = {}
    sources: dict[str, dict[str, str]] = {}
    entry = EntryBuilder(now, "protection_topup", position=p.id)
    for asset in p.collateral_assets:
        if missing <= 0:
            break
        weight = price(prices, asset) * desk.ratio(p, asset)
        want = round_up(missing / weight, cat.precision(asset))
        pledged = sum((desk.holding_amount(asset, q.collateral[asset], now)
                       for q in desk.book.positions_of(p.owner) if q.active and asset in q.collateral), ZERO)
        room = round_down(max(cat.collateral[asset].max_per_account - pledged, ZERO), cat.precision(asset))
        want = min(want, room)
        taken: dict[str, str] = {}
        for source in (Source.SPOT, Source.EARN):
            have = desk.spot(p.owner, asset) if source is Source.SPOT else desk.earn(p.owner, asset, now)
            units = min(want, have)
            if units <= 0:
                continue
            pledge(desk, p, asset, units, source, entry, now)
            taken[source.value] = fmt(units)
            want -= units
            moved[asset] = moved.get(asset, ZERO) + units
            missing -= units * weight
        if taken:
            sources[asset] = taken
    if moved:
        desk.book.post(entry.build())
        p.updated_at = now
        desk.book.save_position(p)
    return moved, sources, missing <= 0


def _repay(desk: Desk, p: Position, target: Decimal, prices: Prices,
           now: datetime) -> tuple[dict[str, Decimal], dict[str, dict[str, str]], bool]:
    places = desk.catalog.precision(p.loan_asset)
    debt = desk.debt(p, now)
    weighted = sum((x.weighted for x in desk.lots(p, prices, now)), ZERO)
    need = round_up(max(debt - target * weighted / price(prices, p.loan_asset), ZERO), places)
    # Protection lowers the debt; it never closes the position (that is the borrower's /close).
    need = min(need, round_up(debt, places) - quantum(places))
    pay = min(need, desk.spot(p.owner, p.loan_asset))
    if pay <= 0:
        return {}, {}, need <= 0
    entry = EntryBuilder(now, "protection_repay", position=p.id)
    entry.move(p.loan_asset, pay, ledger.spot(p.owner), ledger.LOANS)
    reduce_debt(desk, p, pay, debt, now, full=False)
    desk.book.post(entry.build())
    p.updated_at = now
    desk.book.save_position(p)
    return {p.loan_asset: pay}, {p.loan_asset: {"spot": fmt(pay)}}, pay >= need


def describe_rule(rule: ProtectionRule, now: datetime) -> str:
    """One line for a person."""
    how = "top up collateral from Spot, then Earn" if rule.mode == "topup" else "repay from Spot"
    return (f"#{rule.position}: at {pct(rule.trigger)} LTV {how} back to {pct(rule.target)} "
            f"({rule.left_on(now)} of {rule.daily_limit} actions left today)")
