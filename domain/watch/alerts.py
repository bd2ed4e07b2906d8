"""Price alerts (SPEC §8 ``/alert price <id> <pct>``): warn when a collateral price comes within a distance of
the position's margin-call price.

The *distance* of a collateral asset is how far its price may still fall, other prices unchanged, before the
position reaches its margin-call LTV: ``distance = 1 − P_mc / P`` (``P_mc`` from ``domain.risk.price_at_ltv``
at the current debt). A position's distance is the smallest over its collateral assets (0 or below: already at
or past the margin call). An armed alert fires once when the distance is at or below its level, and re-arms
when the distance is again more than the desk's re-arm gap (2 points) above the level — the same hysteresis as
margin calls, so a price hovering at the line does not push every poll.

``price_alert_events`` is pure (reads the desk, changes nothing); ``evaluate_price_alerts`` also returns the
alerts' new armed state; ``run_price_alerts``, a step of the tick (``domain.watch.tick``), stores both. Alerts on
loans held elsewhere (``domain.tracking``) share the table and are left to ``domain.tracking.watch``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.money import ONE, ZERO, fmt, fmt_ratio
from domain.positions import Position, PriceAlert
from domain.prices import Prices, price
from domain.risk import Distance, price_at_ltv

MAX_DISTANCE = Decimal("0.9")


@dataclass(frozen=True)
class AlertCheck:
    events: list[Event]
    alerts: list[PriceAlert]  # the alerts whose armed state changed, with the new state


def distance_to_margin_call(desk: Desk, p: Position, prices: Prices, now: datetime) -> Distance | None:
    """The collateral asset whose price is nearest its margin-call price (None: no asset can trigger it)."""
    debt = desk.debt(p, now)
    if debt <= 0:
        return None
    lots = desk.lots(p, prices, now)
    level = desk.thresholds(p).margin_call
    loan_price = price(prices, p.loan_asset)
    best: Distance | None = None
    for lot in lots:
        mc = price_at_ltv(debt, loan_price, lots, lot.asset, level)
        if mc is None:
            continue
        d = Distance(lot.asset, lot.price, mc, ONE - mc / lot.price)
        if best is None or d.distance < best.distance:
            best = d
    return best


def set_price_alert(desk: Desk, owner: str, pid: int, distance: Decimal) -> PriceAlert:
    """Store (or replace, armed) the price alert of ``pid``."""
    p = desk.own(owner, pid)
    if not p.active:
        raise Rejected("position_not_open", f"#{pid} is {p.status.value.replace('_', ' ')}")
    if not ZERO < distance <= MAX_DISTANCE:
        raise Rejected("bad_distance", "the distance must be above 0% and at most 90%")
    alert = PriceAlert(pid, owner, distance)
    desk.book.save_price_alert(alert)
    return alert


def remove_price_alert(desk: Desk, owner: str, pid: int) -> bool:
    desk.own(owner, pid)
    if not any(a.position == pid for a in desk.book.price_alerts(owner)):
        return False
    desk.book.delete_price_alert(pid)
    return True


def evaluate_price_alerts(desk: Desk, alerts: Iterable[PriceAlert], prices: Prices, now: datetime) -> AlertCheck:
    """Which alerts fire now and which re-arm. Pure: nothing is stored or emitted."""
    gap = desk.catalog.desk.rearm_gap
    events: list[Event] = []
    changed: list[PriceAlert] = []
    for alert in alerts:
        p = desk.book.get_position(alert.position)
        if p is None or not p.active or p.owner != alert.owner:
            continue
        try:
            d = distance_to_margin_call(desk, p, prices, now)
            current = desk.ltv(p, prices, now)
        except Rejected:
            continue  # no price for one of its assets right now
        if d is None:
            continue
        if alert.armed and d.distance <= alert.distance:
            changed.append(replace(alert, armed=False))
            events.append(Event(now, "price_alert", p.owner, p.id, {
                "asset": d.asset, "price": fmt(d.price),
                "margin_call_price": fmt(d.margin_call_price.quantize(Decimal("0.01"))),
                "distance": fmt_ratio(max(d.distance, ZERO)), "level": fmt_ratio(alert.distance),
                "ltv": fmt_ratio(current), "margin_call_ltv": fmt_ratio(desk.thresholds(p).margin_call)}))
        elif not alert.armed and d.distance > alert.distance + gap:
            changed.append(replace(alert, armed=True))
    return AlertCheck(events, changed)


def price_alert_events(desk: Desk, alerts: Sequence[PriceAlert], prices: Prices, now: datetime) -> list[Event]:
    """The ``price_alert`` events due now for ``alerts`` (pure; see ``evaluate_price_alerts``)."""
    return evaluate_price_alerts(desk, alerts, prices, now).events


def run_price_alerts(desk: Desk, prices: Prices, now: datetime) -> list[Event]:
    """Evaluate every stored alert, store the new armed states and emit the events (scheduler entry point).
    Alerts of positions that are no longer open are dropped."""
    alerts = desk.book.price_alerts()
    if not alerts:
        return []
    live: list[PriceAlert] = []
    for a in alerts:
        p = desk.book.get_position(a.position)
        if p is None:
            continue  # not the desk's: a loan held elsewhere, judged by domain.tracking.watch
        if not p.active:
            desk.book.delete_price_alert(a.position)
        else:
            live.append(a)
    check = evaluate_price_alerts(desk, live, prices, now)
    for a in check.alerts:
        desk.book.save_price_alert(a)
    for e in check.events:
        desk.emit(e)
    return check.events
