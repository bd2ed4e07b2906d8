"""The text of every push, in one place: what happened, the numbers, what to do, and the buttons.

Events arrive with ``data`` as stored in the outbox (decimals as strings). ``push(event)`` renders one event;
``fold(events)`` joins several for one chat into one message (most urgent first). Buttons carry ids only
(``pa:<id>`` add collateral, ``pr:<id>`` repay, ``pv:<id>`` view — far below Telegram's 64 bytes) and are
authorised again when tapped: in a private chat by the owner only; in a group, View shows the position's board
line if the group sees it, and Add collateral / Repay answer the owner in their private chat and anyone else
with a toast (``bot.groups``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.render.common import Buttons, Reply, e
from domain.events import Event
from domain.money import pct

SILENT = frozenset({"borrowed", "closed", "collateral_added", "collateral_withdrawn", "repaid",
                    "expiry_options_set", "term_sheet_issued", "transferred"})  # the borrower's own: answered
DESK_KINDS = frozenset({"margin_call", "margin_call_reminder", "liquidated", "shortfall"})
OPERATOR_KINDS = frozenset({"prices_stale", "prices_recovered", "price_missing", "price_back",
                            "liquidations_paused", "liquidations_resumed"})
BREAKER_KINDS = frozenset({"liquidations_paused", "liquidations_resumed"})  # also to the desk risk channel
ACT = "Add collateral or repay now to lower the LTV."
TITLES = {
    "warning": "⚠️ LTV warning", "margin_call": "🚨 Margin call", "margin_call_reminder": "🚨 Margin call (still)",
    "margin_call_cleared": "✅ Margin call cleared", "liquidated": "⛔️ Liquidated", "shortfall": "⛔️ Debt outstanding",
    "expiry_reminder": "⏰ Fixed loan expiry", "expired": "⏰ Fixed loan expired", "overdue": "⛔️ Fixed loan overdue",
    "late_fee": "⛔️ Late fee charged", "auto_repaid": "✅ Auto-repaid at expiry", "renewed": "🔁 Renewed",
    "renewal_failed": "⚠️ Renewal failed", "converted": "🔁 Converted to Flexible",
    "liquidation_pending": "⛔️ Liquidation pending", "liquidation_cancelled": "✅ Liquidation cancelled",
    "rate_changed": "📈 Rate change", "digest": "📋 Daily digest", "protection": "🛡 Auto-protection",
    "price_alert": "⚠️ Price alert", "prices_stale": "⚠️ Prices are stale", "prices_recovered": "✅ Prices are back",
    "price_missing": "⚠️ A price cannot be used", "price_back": "✅ A price is usable again",
    "liquidations_paused": "⛔️ Liquidations paused", "liquidations_resumed": "✅ Liquidations resumed",
}


def ltv(value: object) -> str:
    try:
        return e(pct(Decimal(str(value))))
    except (InvalidOperation, ValueError):
        return e(value)


def amounts(m: object) -> str:
    if not isinstance(m, Mapping) or not m:
        return "none"
    return " + ".join(f"{e(v)} {e(a)}" for a, v in m.items())


def loan_asset(d: Mapping[str, Any]) -> str:
    """The loan asset: named in ``asset``, or the last of the ``prices`` (collateral first, then loan)."""
    if isinstance(d.get("asset"), str):
        return str(d["asset"])
    prices = d.get("prices")
    return str(list(prices)[-1]) if isinstance(prices, Mapping) and prices else ""


def _prices(d: Mapping[str, Any]) -> str:
    prices = d.get("prices")
    if not isinstance(prices, Mapping):
        return ""
    return ", ".join(f"{e(a)} {e(p)}" for a, p in prices.items() if a != "USDT")


def body(ev: Event) -> list[str]:
    """The lines under the title."""
    d = ev.data
    asset = e(loan_asset(d))
    if ev.type in ("warning", "margin_call", "margin_call_reminder", "margin_call_cleared"):
        lines = [f"LTV <b>{ltv(d.get('ltv'))}</b> (margin call {ltv(d.get('margin_call_ltv'))}, "
                 f"liquidation {ltv(d.get('liquidation_ltv'))})",
                 f"Debt: {e(d.get('debt'))} {asset} · Collateral: {amounts(d.get('collateral'))}",
                 f"Prices: {_prices(d)} USDT"]
        if ev.type == "margin_call_cleared":
            return [*lines, "Nothing to do; keep an eye on it."]
        if ev.type == "warning":
            return [*lines, f"Your warning level {ltv(d.get('level'))} was reached. {ACT}"]
        return [*lines, f"{ACT} At {ltv(d.get('liquidation_ltv'))} the position is liquidated."]
    if ev.type == "liquidated":
        why = " (overdue fixed loan)" if d.get("reason") == "overdue" else ""
        return [f"Liquidated at LTV <b>{ltv(d.get('ltv'))}</b>{why}.",
                f"Sold {amounts(d.get('collateral_sold'))} to repay {e(d.get('debt_repaid'))} {asset}; "
                f"fee {amounts(d.get('fee'))}.",
                f"Returned to your Spot wallet: {amounts(d.get('returned'))}.", f"Prices: {_prices(d)} USDT"]
    if ev.type == "shortfall":
        return [f"The collateral did not cover the debt: {e(d.get('debt_outstanding'))} {asset} is still owed "
                "and keeps accruing interest.", "Repay it from Spot with /repay."]
    if ev.type == "expiry_reminder":
        return [f"Debt {e(d.get('debt'))} {asset}, due {e(str(d.get('expires_at', ''))[:16])} UTC "
                f"({e(d.get('hours'))} h).", "Repay before expiry, or keep Spot funded for auto-repay."]
    if ev.type == "late_fee":
        return [f"Hour {e(d.get('hour'))} overdue: fee {e(d.get('fee'))} {asset}; debt now {e(d.get('debt'))} "
                f"{asset}.", "Repay now: after 24 hours overdue the collateral is liquidated."]
    if ev.type == "protection":
        verb = "Added collateral" if d.get("mode") == "topup" else "Repaid"
        return [f"{verb}: {amounts(d.get('moved'))}. LTV {ltv(d.get('ltv_before'))} → <b>{ltv(d.get('ltv'))}</b> "
                f"(trigger {ltv(d.get('trigger'))}, target {ltv(d.get('target'))}).",
                f"Prices: {_prices(d)} USDT · actions left today: {e(d.get('actions_left_today'))}"]
    if ev.type == "price_alert":
        return [f"{e(d.get('asset'))} is at {e(d.get('price'))} USDT, {ltv(d.get('distance'))} above the "
                f"margin-call price {e(d.get('margin_call_price'))} (LTV {ltv(d.get('ltv'))}).", ACT]
    if ev.type == "rate_changed":
        return [f"{e(d.get('asset'))} flexible APR is now {e(_apr(d.get('apr')))} from "
                f"{e(str(d.get('effective_from', ''))[:16])} UTC."]
    if ev.type == "digest":
        rows = d.get("positions") or []
        return [f"#{e(r['id'])}: LTV {ltv(r['ltv']) if r.get('ltv') else 'unknown (no fresh price)'} · "
                f"debt {e(r['debt'])} {e(r['asset'])} · {_to_margin_call(r)}" for r in rows] or [
            "No open positions."]
    if ev.type in OPERATOR_KINDS:
        return [e(d.get("message", ""))]
    return [", ".join(f"{e(k.replace('_', ' '))} {e(v)}" for k, v in d.items() if isinstance(v, (str, int)))]


def _to_margin_call(row: Mapping[str, Any]) -> str:
    """How far a digest row is from its margin call, in LTV points (one decimal)."""
    try:
        points = (Decimal(str(row["margin_call"])) - Decimal(str(row["ltv"]))) * 100
    except (KeyError, InvalidOperation, ValueError):
        return "distance to margin call unknown"
    if points <= 0:
        return "<b>in margin call</b>"
    return f"{e(points.quantize(Decimal('0.1')))} points to margin call ({ltv(row['margin_call'])})"


def _apr(value: object) -> str:
    try:
        return f"{Decimal(str(value)) * 100:f}%"
    except (InvalidOperation, ValueError):
        return str(value)


def push(ev: Event) -> str:
    title = TITLES.get(ev.type, ev.type.replace("_", " ").capitalize())
    where = f" · position #{ev.position}" if ev.position is not None else ""
    return "\n".join([f"<b>{e(title)}</b>{where}", *body(ev)])


def buttons(pid: int) -> Buttons:
    return [[("Add collateral", f"pa:{pid}"), ("Repay", f"pr:{pid}"), ("View", f"pv:{pid}")]]


def fold(events: Sequence[Event]) -> Reply:
    """One message for one chat (private or group, same buttons: taps are authorised by chat and person);
    buttons for the most urgent open position."""
    text = "\n\n".join(push(ev) for ev in events)
    over = {ev.position for ev in events if ev.type in ("liquidated", "auto_repaid")}  # e.g. a held margin call
    actionable = [ev for ev in events if ev.position is not None and ev.position not in over and ev.type not in (
        "liquidated", "margin_call_cleared", "auto_repaid", "liquidation_cancelled", "digest")]
    if actionable:
        assert actionable[0].position is not None
        return Reply(text, buttons(actionable[0].position))
    if events and events[0].type in ("liquidated", "shortfall") and events[0].position is not None:
        return Reply(text, [[("View", f"pv:{events[0].position}")]])
    return Reply(text)
