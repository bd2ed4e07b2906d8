"""The tick's step for tracked positions: warnings, margin calls and "liquidation near", at the lender's levels.

It runs in the same tick as the desk's sweep (``domain.watch.tick``), on the same prices, and its events go to
the same outbox in the same commit: a price move reaches a tracked position's borrower exactly as fast as a
desk borrower. It never liquidates and never touches the ledger: the lender does that, and the next sync
explains it (``domain.tracking.sync``).

Levels, with the desk's hysteresis (fire once on crossing, re-arm ``rearm_gap`` below; margin calls repeat
every ``repeat`` while they last):

- personal warning: the borrower's own ``/alert ltv`` level when it is below the margin call, else
  ``margin call − 5 points`` (the desk's 80% against 85%);
- margin call: the lender's margin-call LTV;
- liquidation near: ``NEAR`` (3 points) below the lender's liquidation LTV, or above it — the desk cannot act,
  so the borrower must;
- VIP expiry reminders at 72 h, 24 h and 1 h before ``expires_at``, and at it (the latest one due, once);
- price alerts (``/alert price <id> <pct>``), as on the desk (``domain.watch.alerts``): once when a collateral
  price comes within the distance of the price that reaches the lender's margin call, re-armed 2 points further.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from domain.errors import Rejected
from domain.events import Event
from domain.money import ONE, ZERO, fmt, fmt_ratio, round_down, round_up
from domain.positions import PriceAlert
from domain.risk import Distance
from domain.tracking.position import QUOTE, Tracked, debt_at, ltv

NEAR = Decimal("0.03")
WARNING_BELOW = Decimal("0.05")
REMINDERS = (72, 24, 1, 0)  # hours before expiry


class TrackedBook(Protocol):
    def active_tracked(self) -> list[Tracked]: ...
    def save_tracked(self, t: Tracked) -> None: ...


@dataclass(frozen=True)
class WatchRules:
    rearm_gap: Decimal
    repeat: timedelta
    precision: Callable[[str], int]


def warning_level(t: Tracked, own: Decimal | None) -> Decimal:
    return own if own is not None and own < t.levels.margin_call else t.levels.margin_call - WARNING_BELOW


def numbers(t: Tracked, prices: Mapping[str, Decimal], now: datetime, current: Decimal,
            precision: Callable[[str], int]) -> dict[str, object]:
    """What every push about ``t`` shows (JSON-ready)."""
    return {"lender": t.where, "kind": t.kind.value, "asset": t.loan_asset, "ltv": fmt_ratio(current),
            "debt": fmt(round_up(debt_at(t, now), precision(t.loan_asset))),
            "collateral": {a: fmt(round_down(v, precision(a))) for a, v in t.collateral.items()},
            "prices": {a: fmt(prices[a]) for a in t.assets if a in prices},
            "margin_call_ltv": fmt_ratio(t.levels.margin_call), "liquidation_ltv": fmt_ratio(t.levels.liquidation),
            "synced_at": t.synced_at.isoformat() if t.synced_at else None}


def judge(t: Tracked, prices: Mapping[str, Decimal], now: datetime, rules: WatchRules,
          own_level: Decimal | None) -> list[Event]:
    """The events due for ``t`` at ``now``; updates ``t.alarm`` (the caller stores ``t`` when it changed)."""
    try:
        current = ltv(t, prices, now)
    except Rejected:
        return []  # no price for one of its assets: nothing can be judged now
    a, lv, gap = t.alarm, t.levels, rules.rearm_gap
    data = numbers(t, prices, now, current, rules.precision)
    events: list[Event] = []
    if current >= lv.margin_call:
        if not a.margin_call:
            a.margin_call, a.margin_call_at, a.warned = True, now, True
            events.append(Event(now, "tracked_margin_call", t.owner, t.id, data))
        elif a.margin_call_at is not None and now - a.margin_call_at >= rules.repeat:
            a.margin_call_at = now
            events.append(Event(now, "tracked_margin_call_reminder", t.owner, t.id, data))
    elif a.margin_call and current < lv.margin_call - gap:
        a.margin_call, a.margin_call_at = False, None
        events.append(Event(now, "tracked_margin_call_cleared", t.owner, t.id, data))
    near = lv.liquidation - NEAR
    if current >= near and not a.near:
        a.near = True
        events.append(Event(now, "liquidation_near", t.owner, t.id, {**data, "near": fmt_ratio(near)}))
    elif a.near and current < near - gap:
        a.near = False
    if not a.margin_call:
        level = warning_level(t, own_level)
        if current >= level and not a.warned:
            a.warned = True
            events.append(Event(now, "tracked_warning", t.owner, t.id, {**data, "level": fmt_ratio(level)}))
        elif a.warned and current < level - gap:
            a.warned = False
    return events + reminders(t, now, rules)


def reminders(t: Tracked, now: datetime, rules: WatchRules) -> list[Event]:
    """The latest expiry reminder due and not sent yet (earlier ones are marked sent with it)."""
    if t.expires_at is None:
        return []
    due = [h for h in REMINDERS if now >= t.expires_at - timedelta(hours=h) and f"{h}h" not in t.reminders_sent]
    if not due:
        return []
    t.reminders_sent = sorted({*t.reminders_sent, *(f"{h}h" for h in REMINDERS if h >= min(due))})
    hours = min(due)
    return [Event(now, "tracked_expiry_reminder", t.owner, t.id, {
        "lender": t.where, "asset": t.loan_asset, "hours": hours, "expires_at": t.expires_at.isoformat(),
        "debt": fmt(round_up(debt_at(t, now), rules.precision(t.loan_asset)))})]


def distance_to_margin_call(t: Tracked, prices: Mapping[str, Decimal], now: datetime) -> Distance | None:
    """Per collateral asset, other prices unchanged: ``P_mc = (debt × cal × P_loan / mc − others) / amount``."""
    loan_price = prices.get(t.loan_asset, ONE if t.loan_asset == QUOTE else ZERO)
    if loan_price <= 0 or any(prices.get(a, ZERO) <= 0 for a in t.collateral):
        return None
    seen = debt_at(t, now) * t.calibration * loan_price
    best: Distance | None = None
    for asset, amount in t.collateral.items():
        if amount <= 0:
            continue
        others = sum((x * prices[a] for a, x in t.collateral.items() if a != asset), ZERO)
        mc = (seen / t.levels.margin_call - others) / amount
        if mc <= 0:
            continue
        d = Distance(asset, prices[asset], mc, ONE - mc / prices[asset])
        if best is None or d.distance < best.distance:
            best = d
    return best


def price_alert(t: Tracked, alert: PriceAlert, prices: Mapping[str, Decimal], now: datetime,
                gap: Decimal) -> tuple[PriceAlert | None, list[Event]]:
    """The alert's new state (None: unchanged) and its event, if it fires now."""
    d = distance_to_margin_call(t, prices, now)
    if d is None:
        return None, []
    if alert.armed and d.distance <= alert.distance:
        current = ltv(t, prices, now)
        return replace(alert, armed=False), [Event(now, "tracked_price_alert", t.owner, t.id, {
            "lender": t.where, "kind": t.kind.value, "asset": t.loan_asset, "collateral_asset": d.asset,
            "price": fmt(d.price), "margin_call_price": fmt(d.margin_call_price.quantize(Decimal("0.01"))),
            "distance": fmt_ratio(max(d.distance, ZERO)), "level": fmt_ratio(alert.distance),
            "ltv": fmt_ratio(current), "margin_call_ltv": fmt_ratio(t.levels.margin_call)})]
    if not alert.armed and d.distance > alert.distance + gap:
        return replace(alert, armed=True), []
    return None, []


def watch_tracked(book: TrackedBook, prices: Mapping[str, Decimal], now: datetime, rules: WatchRules,
                  own_levels: Callable[[str], Decimal | None], emit: Callable[[Event], object],
                  alerts: Callable[[], Mapping[int, PriceAlert]] | None = None,
                  save_alert: Callable[[PriceAlert], object] | None = None) -> list[Event]:
    """Judge every tracked position (and its price alert); store the changed alarms; emit and return the events.
    ``alerts`` is read only when some position is tracked (a desk without any pays one query a tick)."""
    events: list[Event] = []
    watched = book.active_tracked()
    if not watched:
        return events
    by_position = alerts() if alerts is not None else {}
    for t in watched:
        alert = by_position.get(t.id)
        if alert is not None and alert.owner == t.owner:
            changed, fired = price_alert(t, alert, prices, now, rules.rearm_gap)
            if changed is not None and save_alert is not None:
                save_alert(changed)
            events += fired
        before = (t.alarm.warned, t.alarm.margin_call, t.alarm.margin_call_at, t.alarm.near, list(t.reminders_sent))
        found = judge(t, prices, now, rules, own_levels(t.owner))
        if (t.alarm.warned, t.alarm.margin_call, t.alarm.margin_call_at, t.alarm.near,
                t.reminders_sent) != before:
            book.save_tracked(t)
        events += found
    for e in events:
        emit(e)
    return events
