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

from bot.render.common import Buttons, Reply, amount, e, price_of
from domain.events import Event
from domain.money import pct

SILENT = frozenset({"borrowed", "closed", "collateral_added", "collateral_withdrawn", "repaid",
                    "expiry_options_set", "term_sheet_issued", "transferred"})  # the borrower's own: answered
DESK_KINDS = frozenset({"margin_call", "margin_call_reminder", "liquidated", "shortfall"})
OPERATOR_KINDS = frozenset({"prices_stale", "prices_recovered", "price_missing", "price_back",
                            "liquidations_paused", "liquidations_resumed"})
BREAKER_KINDS = frozenset({"liquidations_paused", "liquidations_resumed"})  # also to the desk risk channel
ACT = "Add collateral or repay now to lower the LTV."
BINANCE_LOANS = "https://www.binance.com/en/loan"
BINANCE_VIP_LOANS = "https://www.binance.com/en/vip-loan"
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
    # loans held elsewhere (SPEC §9): the lender acts, loandesk only warns
    "tracked_warning": "⚠️ LTV warning", "tracked_margin_call": "🚨 Margin call",
    "tracked_margin_call_reminder": "🚨 Margin call (still)", "tracked_margin_call_cleared": "✅ Margin call cleared",
    "liquidation_near": "⛔️ Liquidation near", "tracked_liquidated": "⛔️ Liquidated",
    "tracked_repaid": "✅ Repaid", "tracked_gone": "ℹ️ Loan no longer there", "tracked_found": "ℹ️ New loan found",
    "tracked_collateral_changed": "ℹ️ Collateral changed", "tracked_expiry_reminder": "⏰ VIP loan expiry",
    "link_revoked": "⚠️ Binance key refused", "tracked_price_alert": "⚠️ Price alert",
}
TRACKED_RISK = frozenset({"tracked_warning", "tracked_margin_call", "tracked_margin_call_reminder",
                          "tracked_margin_call_cleared", "liquidation_near"})
TRACKED_OVER = frozenset({"tracked_liquidated", "tracked_repaid", "tracked_gone"})  # the position is gone
TRACKED_KINDS = TRACKED_RISK | TRACKED_OVER | frozenset({"tracked_found", "tracked_collateral_changed",
                                                         "tracked_expiry_reminder", "link_revoked",
                                                         "tracked_price_alert"})


def ltv(value: object) -> str:
    try:
        return e(pct(Decimal(str(value))))
    except (InvalidOperation, ValueError):
        return e(value)


def amounts(m: object) -> str:
    if not isinstance(m, Mapping) or not m:
        return "none"
    return " + ".join(amount(v, str(a)) for a, v in m.items())


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
    return ", ".join(f"{e(a)} {price_of(p)}" for a, p in prices.items() if a != "USDT")


def body(ev: Event) -> list[str]:
    """The lines under the title."""
    d = ev.data
    asset = loan_asset(d)
    if ev.type in TRACKED_KINDS:
        return tracked_body(ev)
    if ev.type in ("warning", "margin_call", "margin_call_reminder", "margin_call_cleared"):
        lines = [f"LTV <b>{ltv(d.get('ltv'))}</b> (margin call {ltv(d.get('margin_call_ltv'))}, "
                 f"liquidation {ltv(d.get('liquidation_ltv'))})",
                 *_holding(d, asset)]
        if ev.type == "margin_call_cleared":
            return [*lines, "Nothing to do; keep an eye on it."]
        if ev.type == "warning":
            return [*lines, f"Your warning level {ltv(d.get('level'))} was reached. {ACT}"]
        if _at_or_above(d.get("ltv"), d.get("liquidation_ltv")):
            return [*lines, f"The LTV is past the liquidation level {ltv(d.get('liquidation_ltv'))}: the position "
                            "is liquidated as soon as this price is confirmed. Add collateral or repay at once."]
        return [*lines, f"{ACT} At {ltv(d.get('liquidation_ltv'))} the position is liquidated."]
    if ev.type == "liquidated":
        why = " (overdue fixed loan)" if d.get("reason") == "overdue" else ""
        return [f"Liquidated at LTV <b>{ltv(d.get('ltv'))}</b>{why}.",
                f"Sold {amounts(d.get('collateral_sold'))} to repay {amount(d.get('debt_repaid'), asset)}; "
                f"fee {amounts(d.get('fee'))}.",
                f"Returned to your Spot wallet: {amounts(d.get('returned'))}.", f"Prices: {_prices(d)} USDT"]
    if ev.type == "shortfall":
        return [f"The collateral did not cover the debt: {amount(d.get('debt_outstanding'), asset, up=True)} is "
                "still owed "
                "and keeps accruing interest.", "Repay it from Spot with /repay."]
    if ev.type == "expiry_reminder":
        return [f"Debt {amount(d.get('debt'), asset, up=True)}, due {e(str(d.get('expires_at', ''))[:16])} UTC "
                f"({e(d.get('hours'))} h).", "Repay before expiry, or keep Spot funded for auto-repay."]
    if ev.type == "late_fee":
        return [f"Hour {e(d.get('hour'))} overdue: fee {amount(d.get('fee'), asset, up=True)}; debt now "
                f"{amount(d.get('debt'), asset, up=True)}.",
                "Repay now: after 24 hours overdue the collateral is liquidated."]
    if ev.type == "protection":
        verb = "Added collateral" if d.get("mode") == "topup" else "Repaid"
        return [f"{verb}: {amounts(d.get('moved'))}. LTV {ltv(d.get('ltv_before'))} → <b>{ltv(d.get('ltv'))}</b> "
                f"(trigger {ltv(d.get('trigger'))}, target {ltv(d.get('target'))}).",
                f"Prices: {_prices(d)} USDT · actions left today: {e(d.get('actions_left_today'))}"]
    if ev.type == "price_alert":
        return [f"{e(d.get('asset'))} is at {price_of(d.get('price'))} USDT, {ltv(d.get('distance'))} above the "
                f"margin-call price {price_of(d.get('margin_call_price'))} (LTV {ltv(d.get('ltv'))}).", ACT]
    if ev.type == "rate_changed":
        return [f"{e(d.get('asset'))} flexible APR is now {e(_apr(d.get('apr')))} from "
                f"{e(str(d.get('effective_from', ''))[:16])} UTC."]
    if ev.type == "digest":
        rows = d.get("positions") or []
        return [f"#{e(r['id'])}: LTV {ltv(r['ltv']) if r.get('ltv') else 'unknown (no fresh price)'} · "
                f"debt {amount(r['debt'], str(r['asset']), up=True)} · {_to_margin_call(r)}" for r in rows] or [
            "No open positions."]
    if ev.type in OPERATOR_KINDS:
        return [e(d.get("message", ""))]
    return [", ".join(f"{e(k.replace('_', ' '))} {e(v)}" for k, v in d.items() if isinstance(v, (str, int)))]


def tracked_body(ev: Event) -> list[str]:
    """A loan held elsewhere: the same numbers as a desk push, and what the lender will do (we never act)."""
    d = ev.data
    asset = loan_asset(d)
    lender = str(d.get("lender", "elsewhere"))
    at = "on Binance" if lender == "Binance" else "at your lender"
    if ev.type in TRACKED_RISK:
        lines = [f"Held {e(at)}. LTV <b>{ltv(d.get('ltv'))}</b> (lender's margin call "
                 f"{ltv(d.get('margin_call_ltv'))}, liquidation {ltv(d.get('liquidation_ltv'))})",
                 *_holding(d, asset)]
        if ev.type == "tracked_margin_call_cleared":
            return [*lines, "Nothing to do; keep an eye on it."]
        if ev.type == "tracked_warning":
            return [*lines, f"Your warning level {ltv(d.get('level'))} was reached. Add collateral or repay "
                            f"{e(at)}."]
        if ev.type == "liquidation_near":
            return [*lines, f"The lender liquidates at {ltv(d.get('liquidation_ltv'))}. Add collateral or repay "
                            f"{e(at)} now: loandesk cannot do it for you."]
        return [*lines, f"Add collateral or repay {e(at)} to lower the LTV. At {ltv(d.get('liquidation_ltv'))} "
                        "the lender liquidates it."]
    if ev.type == "tracked_liquidated":
        coll = str(d.get("collateral_asset", ""))
        return [f"Binance liquidated this loan at {price_of(d.get('price'))} {e(asset)} per {e(coll)}.",
                f"Taken: {amount(d.get('collateral_sold'), coll)} to repay {amount(d.get('debt_repaid'), asset)}, "
                f"fee {amount(d.get('fee'), coll)} included.",
                f"Returned to you: {amount(d.get('returned'), coll)}. It is no longer tracked."]
    if ev.type == "tracked_repaid":
        back = d.get("collateral_returned")
        extra = (f" Collateral returned: {amount(back, str(d.get('collateral_asset')))}."
                 if back not in (None, "0") and d.get("collateral_asset") else "")
        return [f"Repaid {e(at)}: {amount(d.get('amount'), asset)}.{extra} It is no longer tracked."]
    if ev.type == "tracked_gone":
        return [f"This {e(asset)} loan is no longer {e(at)}, and its liquidation and repayment histories do not "
                "say why. It is no longer tracked."]
    if ev.type == "tracked_found":
        return [f"A new {e(asset)} loan {e(at)}: debt {amount(d.get('debt'), asset, up=True)}, collateral "
                f"{amounts(d.get('collateral'))}, LTV {ltv(d.get('ltv'))}. I watch it now."]
    if ev.type == "tracked_collateral_changed":
        coll = str(d.get("collateral_asset", ""))
        return [f"Collateral {e(d.get('change'))} {e(at)}: {amount(d.get('amount'), coll)}; now "
                f"{amount(d.get('collateral'), coll)}."]
    if ev.type == "tracked_price_alert":
        return [f"Held {e(at)}. {e(d.get('collateral_asset'))} is at {price_of(d.get('price'))} USDT, "
                f"{ltv(d.get('distance'))} above the price of the lender's margin call "
                f"{price_of(d.get('margin_call_price'))} (LTV {ltv(d.get('ltv'))}).",
                f"Add collateral or repay {e(at)} to lower the LTV."]
    if ev.type == "tracked_expiry_reminder":
        return [f"Debt {amount(d.get('debt'), asset, up=True)}, due {e(str(d.get('expires_at', ''))[:16])} UTC "
                f"({e(d.get('hours'))} h). Repay or renew it on Binance."]
    if ev.type == "link_revoked":
        return ["Binance refuses the linked API key (deleted, expired, IP-restricted or without Reading). I stopped "
                "syncing; your Binance positions here are no longer updated. Link a new key with /unlink, then "
                "/link."]
    return []


def _holding(d: Mapping[str, Any], asset: str) -> list[str]:
    """A risk push's debt, collateral and prices lines (desk and tracked positions alike)."""
    return [f"Debt: {amount(d.get('debt'), asset, up=True)} · Collateral: {amounts(d.get('collateral'))}",
            f"Prices: {_prices(d)} USDT"]


def _at_or_above(value: object, level: object) -> bool:
    try:
        return Decimal(str(value)) >= Decimal(str(level))
    except (InvalidOperation, ValueError):
        return False


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


def tracked_buttons(pid: int, lender: str, kind: str) -> Buttons:
    """Add collateral / Repay open the lender's page (a URL button); View shows the position here."""
    if lender == "Binance":
        url = BINANCE_VIP_LOANS if kind == "vip" else BINANCE_LOANS
        return [[("Add collateral on Binance", url), ("Repay on Binance", url), ("View", f"pv:{pid}")]]
    return [[("View", f"pv:{pid}")]]


def fold(events: Sequence[Event]) -> Reply:
    """One message for one chat (private or group, same buttons: taps are authorised by chat and person);
    buttons for the most urgent open position."""
    text = "\n\n".join(push(ev) for ev in events)
    over = {ev.position for ev in events if ev.type in ("liquidated", "auto_repaid")}  # e.g. a held margin call
    actionable = [ev for ev in events if ev.position is not None and ev.position not in over and ev.type not in (
        "liquidated", "margin_call_cleared", "auto_repaid", "liquidation_cancelled", "digest",
        "tracked_margin_call_cleared", *TRACKED_OVER)]
    if actionable:
        first = actionable[0]
        assert first.position is not None
        if first.type in TRACKED_KINDS:  # held elsewhere: act at the lender, view here
            return Reply(text, tracked_buttons(first.position, str(first.data.get("lender", "")),
                                               str(first.data.get("kind", ""))))
        return Reply(text, buttons(first.position))
    if events and events[0].type in ("liquidated", "shortfall") and events[0].position is not None:
        return Reply(text, [[("View", f"pv:{events[0].position}")]])
    return Reply(text)
