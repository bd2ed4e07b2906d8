"""``/history`` written for people: one sentence per event, grouped by UTC day, times to the minute, amounts at
each asset's display precision. Events come from the outbox with ``data`` as stored (decimals as strings);
a kind without its own sentence is named by its title, never dumped field by field."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bot.render.common import Reply, amount, e
from bot.render.pushes import TITLES, amounts, loan_asset, ltv

Data = Mapping[str, Any]


def _ltv(d: Data, key: str = "ltv") -> str:
    return f" (LTV {ltv(d[key])})" if d.get(key) not in (None, "") else ""


def _owed(d: Data) -> str:
    return f"; {amount(d['debt'], loan_asset(d), up=True)} still owed" if d.get("debt") not in (None, "", "0") else ""


def _borrowed(d: Data) -> str:
    fixed = f", Fixed {e(d['term_days'])}d" if d.get("term_days") else ""
    return (f"Borrowed {amount(d.get('amount'), loan_asset(d))} against {amounts(d.get('collateral'))}{fixed}"
            f"{_ltv(d)}")


def _repaid(d: Data) -> str:
    sold = f" by selling {amounts(d.get('collateral_sold'))}" if d.get("with") == "collateral" else ""
    return f"Repaid {amount(d.get('amount'), loan_asset(d))}{sold}{_owed(d)}"


def _liquidated(d: Data) -> str:
    why = " (overdue)" if d.get("reason") == "overdue" else ""
    partly = "Partly liquidated" if d.get("mode") == "partial" else "Liquidated"
    returned = amounts(d.get("returned"))
    back = f"; {returned} returned to Spot" if returned != "none" else "; nothing returned"
    return (f"{partly}{why} at LTV {ltv(d.get('ltv'))}: sold {amounts(d.get('collateral_sold'))} to repay "
            f"{amount(d.get('debt_repaid'), loan_asset(d))}, fee {amounts(d.get('fee'))}{back}")


def _closed(d: Data) -> str:
    returned = amounts(d.get("returned"))
    return "Closed" + (f"; {returned} back in your wallet" if returned != "none" else "")


SENTENCES: dict[str, Callable[[Data], str]] = {
    "borrowed": _borrowed,
    "repaid": _repaid,
    "closed": _closed,
    "liquidated": _liquidated,
    "collateral_added": lambda d: f"Added {amount(d.get('amount'), str(d.get('asset')))} of collateral{_ltv(d)}",
    "collateral_withdrawn": lambda d: f"Withdrew {amount(d.get('amount'), str(d.get('asset')))} of collateral"
                                      f"{_ltv(d)}",
    "transferred": lambda d: f"Moved {amount(d.get('amount'), str(d.get('asset')))} to "
                             f"{'Earn' if d.get('to') == 'earn' else 'Spot'}",
    "warning": lambda d: f"LTV warning at {ltv(d.get('ltv'))} (your level {ltv(d.get('level'))})",
    "margin_call": lambda d: f"Margin call at LTV {ltv(d.get('ltv'))}",
    "margin_call_reminder": lambda d: f"Still in margin call at LTV {ltv(d.get('ltv'))}",
    "margin_call_cleared": lambda d: f"Margin call cleared at LTV {ltv(d.get('ltv'))}",
    "shortfall": lambda d: "Collateral did not cover the debt: "
                           f"{amount(d.get('debt_outstanding'), loan_asset(d), up=True)} still owed",
    "protection": lambda d: f"Auto-protection {'added' if d.get('mode') == 'topup' else 'repaid'} "
                            f"{amounts(d.get('moved'))}: LTV {ltv(d.get('ltv_before'))} → {ltv(d.get('ltv'))}",
    "price_alert": lambda d: f"Price alert: {e(d.get('asset'))} within {ltv(d.get('distance'))} of the margin-call "
                             "price",
    "late_fee": lambda d: f"Late fee {amount(d.get('fee'), loan_asset(d), up=True)} (hour {e(d.get('hour'))} "
                          f"overdue){_owed(d)}",
    "auto_repaid": lambda d: f"Auto-repaid {amount(d.get('amount'), loan_asset(d))} at expiry{_owed(d)}",
    "expiry_reminder": lambda d: f"Reminder: expires in {e(d.get('hours'))} h{_owed(d)}",
    "expired": lambda d: f"Reached its expiry{_owed(d)}",
    "overdue": lambda d: f"Overdue{_owed(d)}",
    "renewed": lambda d: f"Renewed for {e(d.get('term_days'))} days{_owed(d)}",
    "converted": lambda d: "Converted to Flexible" + (f" (into #{e(d['into'])})" if d.get("into") else "") + _owed(d),
    # loans held elsewhere (SPEC §9)
    "tracked_warning": lambda d: f"LTV warning at {ltv(d.get('ltv'))} ({_at(d)})",
    "tracked_margin_call": lambda d: f"Margin call at LTV {ltv(d.get('ltv'))} ({_at(d)})",
    "tracked_margin_call_reminder": lambda d: f"Still in margin call at LTV {ltv(d.get('ltv'))} ({_at(d)})",
    "tracked_margin_call_cleared": lambda d: f"Margin call cleared at LTV {ltv(d.get('ltv'))} ({_at(d)})",
    "liquidation_near": lambda d: f"Liquidation near: LTV {ltv(d.get('ltv'))}, the lender liquidates at "
                                  f"{ltv(d.get('liquidation_ltv'))} ({_at(d)})",
    "tracked_liquidated": lambda d: _liquidated_there(d),
    "tracked_repaid": lambda d: f"Repaid {amount(d.get('amount'), loan_asset(d))} ({_at(d)})",
    "tracked_collateral_changed": lambda d: f"Collateral {e(d.get('change'))}: "
                                            f"{amount(d.get('amount'), str(d.get('collateral_asset')))} ({_at(d)})",
    "tracked_found": lambda d: f"New loan found: {amount(d.get('debt'), loan_asset(d))} ({_at(d)})",
    "tracked_price_alert": lambda d: f"Price alert: {e(d.get('collateral_asset'))} within {ltv(d.get('distance'))} "
                                     f"of the lender's margin-call price ({_at(d)})",
    "tracked_expiry_reminder": lambda d: f"Reminder: the VIP loan expires in {e(d.get('hours'))} h",
}


def _liquidated_there(d: Data) -> str:
    coll = str(d.get("collateral_asset"))
    return (f"Liquidated on Binance: {amount(d.get('collateral_sold'), coll)} taken for "
            f"{amount(d.get('debt_repaid'), loan_asset(d))}, fee {amount(d.get('fee'), coll)} included; "
            f"{amount(d.get('returned'), coll)} returned")


def _at(d: Data) -> str:
    return "on Binance" if d.get("lender") == "Binance" else "held elsewhere"


def line(kind: str, data: Data) -> str:
    make = SENTENCES.get(kind)
    if make is not None:
        return make(data)
    title = TITLES.get(kind, kind.replace("_", " ").capitalize())
    return e(title.split(" ", 1)[-1] if not title[:1].isalnum() else title)  # without the push's emoji


def history(events: Iterable[Any]) -> Reply:
    """Events (``domain.events.Event``) oldest first, under a heading per UTC day."""
    lines: list[str] = []
    day = ""
    for ev in events:
        when = ev.at.strftime("%Y-%m-%d")
        if when != day:
            day = when
            lines.append(f"\n<b>{e(ev.at.strftime('%d %b %Y'))}</b> (UTC)")
        where = f"#{ev.position} " if ev.position else ""
        lines.append(f"{e(ev.at.strftime('%H:%M'))} {where}{line(ev.type, ev.data)}.")
    return Reply("<b>History</b>" + "\n".join(lines) if lines else "No history yet.")
