"""Answers of the protection and risk-tool commands, one function per message kind (HTML, values escaped).

``/protect``, ``/alert price``, ``/alerts``, ``/stress``, ``/estimate``, ``/backtest`` (text + chart),
``/chart`` (chart, or the current numbers while too little price history is recorded) and VIP term sheets.
The numbers come from the domain's ``describe_*`` lines; LTVs read with one decimal (``81.1%``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from bot.render import Reply, e, position_lines
from bot.tools_service import MIN_TICKS, AlertsOverview, ChartData
from domain import tools
from domain.actions import pct
from domain.alerts import Distance, PriceAlert
from domain.backtest import BacktestResult, describe
from domain.money import fmt
from domain.protection import ProtectionRule, describe_rule
from domain.termsheet import TermSheet


def _price(x: Decimal) -> str:
    return e(fmt(x.quantize(Decimal("0.01"))))


def protection_set(rule: ProtectionRule, now: datetime) -> Reply:
    return Reply(f"Done. Auto-protection for {e(describe_rule(rule, now))}.\n"
                 "It is checked on every price update, before any liquidation check, and you get a message "
                 "each time it acts. Turn it off with /protect "
                 f"{rule.position} off")


def protection_removed(pid: int, removed: bool) -> Reply:
    if not removed:
        return Reply(f"#{pid} has no auto-protection; nothing was changed.")
    return Reply(f"Done. Auto-protection of #{pid} is off.")


def _distance(d: Distance | None) -> str:
    if d is None:
        return "no price right now"
    if d.distance <= 0:
        return f"{e(d.asset)} {_price(d.price)} is at or past the margin-call price {_price(d.margin_call_price)}"
    return (f"{e(d.asset)} {_price(d.price)} is {e(pct(d.distance))} above the margin-call price "
            f"{_price(d.margin_call_price)}")


def price_alert_set(alert: PriceAlert, d: Distance | None) -> Reply:
    return Reply(f"Done. You will be warned when the collateral price of #{alert.position} comes within "
                 f"{e(pct(alert.distance))} of its margin-call price.\nNow: {_distance(d)}.")


def price_alert_removed(pid: int, removed: bool) -> Reply:
    if not removed:
        return Reply(f"#{pid} has no price alert; nothing was changed.")
    return Reply(f"Done. The price alert of #{pid} is off.")


def alerts_overview(o: AlertsOverview) -> Reply:
    level = o.warning if o.warning is not None else o.default_warning
    lines = ["<b>Alerts</b>",
             f"LTV warning at {e(pct(level))}{'' if o.warning is not None else ' (the default)'} — "
             "change it with /alert ltv 75%. Margin calls and liquidations are always sent."]
    lines.append("\n<b>Price alerts</b>")
    lines += [f"#{a.position}: within {e(pct(a.distance))} of the margin-call price"
              f"{'' if a.armed else ' (sent; re-arms when the price moves away)'} · now {_distance(d)}"
              for a, d in o.price_alerts] or ["none — add one with /alert price 12 10%"]
    lines.append("\n<b>Auto-protection</b>")
    lines += [e(describe_rule(r, o.now)) for r in o.rules] or ["none — add one with /protect 12 80% 65% topup"]
    return Reply("\n".join(lines))


def stress(r: tools.StressResult) -> Reply:
    first, *rest = tools.describe_stress(r)
    return Reply("\n".join([f"<b>{e(first)}</b>", *(e(x) for x in rest)]))


def estimate(est: tools.Estimate) -> Reply:
    first, *rest = tools.describe_estimate(est)
    return Reply("\n".join([f"<b>{e(first)}</b>", *(e(x) for x in rest)]))


def backtest(pid: int, title: str, r: BacktestResult, chart: bytes) -> Reply:
    lines = [f"<b>#{pid} through {e(title)}</b> (today's prices moved as they moved then)", *map(e, describe(r))]
    outcome = "survived" if r.outcome == "survived" else "liquidated"
    return Reply("\n".join(lines), photo=chart, caption=f"#{pid} through {e(title)}: {outcome}")


def chart(data: ChartData, png: bytes | None) -> Reply:
    v = data.view
    if png is None:
        return Reply(f"The chart of #{v.id} needs some price history: {data.ticks} {e(data.watched)} price"
                     f"{'' if data.ticks == 1 else 's'} recorded since it opened (at least {MIN_TICKS} needed). "
                     "Try again in a few minutes. The numbers now:\n" + "\n".join(position_lines(v)))
    return Reply("\n".join(position_lines(v)), photo=png,
                 caption=f"#{v.id}: {e(data.watched)} price and LTV since it opened ({data.ticks} prices)")


def term_sheet_lines(s: TermSheet | Mapping[str, object], version: int | None = None) -> list[str]:
    """A sheet (issued, or the params of a preview) for borrower and operator alike."""
    if isinstance(s, TermSheet):
        values: Mapping[str, object] = {
            "user": s.owner, "loan": list(s.loan_assets), "rate": s.rate, "apr": s.apr, "initial": s.initial_ltv,
            "margin_call": s.margin_call_ltv, "liquidation_ltv": s.liquidation_ltv, "collateral": s.collateral,
            "liquidation": s.liquidation, "delay": s.liquidation_delay_minutes, "min_order": s.min_order,
            "max_borrow": s.max_borrow, "warning": s.warning_ltv}
        version = s.version
    else:
        values = s
    apr = values["apr"]
    assert isinstance(apr, Decimal)
    rate = (f"fixed {e(fmt(apr * 100))}% APR" if values["rate"] == "fixed"
            else f"the flexible APR + {e(fmt(apr * 100))}%")
    coll = values["collateral"]
    assert isinstance(coll, Mapping)
    loans = values["loan"]
    assert isinstance(loans, list)
    lines = [f"<b>VIP term sheet</b>{f' v{version}' if version else ''} for user {e(values['user'])}",
             f"Borrow: {e(', '.join(loans))} at {rate}, compounding hourly",
             f"LTV: initial {_ltv(values['initial'])} · margin call {_ltv(values['margin_call'])} · "
             f"liquidation {_ltv(values['liquidation_ltv'])}"
             + (f" · warning {_ltv(values['warning'])}" if values.get("warning") is not None else ""),
             "Collateral (ratio): " + ", ".join(f"{e(a)} {e(fmt(r))}" for a, r in coll.items()),
             f"Liquidation: {e(values['liquidation'])}"
             + (f", after a {e(values['delay'])} min delay" if values["delay"] else ""),
             f"Minimum first order: {_money(values['min_order'])} USDT"
             + (f" · maximum total: {_money(values['max_borrow'])} USDT" if values.get("max_borrow") else "")]
    return lines


def _ltv(x: object) -> str:
    return e(pct(x)) if isinstance(x, Decimal) else "—"


def _money(x: object) -> str:
    return e(fmt(x)) if isinstance(x, Decimal) else "—"


def term_sheet(s: TermSheet | None) -> Reply:
    if s is None:
        return Reply("You have no VIP term sheet. Ask the desk for one; once issued it shows here.")
    return Reply("\n".join([*term_sheet_lines(s), "Borrow under it with e.g. /borrow 60000 USDT with 1.5 BTC vip"]))
