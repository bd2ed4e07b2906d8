"""Answers of the protection and risk-tool commands, one function per message kind (HTML, values escaped).

``/protect``, ``/alert price``, ``/alerts``, ``/stress``, ``/estimate``, ``/backtest`` (text + chart),
``/chart`` (chart, or the current numbers while too little price history is recorded) and VIP term sheets.
The numbers come from the domain's ``describe_*`` lines; LTVs read with one decimal (``81.1%``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from bot.render.answers import position_lines
from bot.render.common import Reply, e
from bot.service.tools import MIN_TICKS, AlertsOverview, ChartData
from domain.analysis import estimate as estimates
from domain.analysis import stress as stresses
from domain.analysis.backtest import BacktestResult, describe
from domain.money import fmt, pct
from domain.positions import PriceAlert, ProtectionRule
from domain.risk import Distance
from domain.watch.protection import describe_rule


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


def stress(r: stresses.StressResult) -> Reply:
    first, *rest = stresses.describe_stress(r)
    return Reply("\n".join([f"<b>{e(first)}</b>", *(e(x) for x in rest)]))


def estimate(est: estimates.Estimate) -> Reply:
    first, *rest = estimates.describe_estimate(est)
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
    candles = f", {data.candles} of them the exchange's candles" if data.candles else ""
    since = ("since it opened" if data.start is None or data.opened is None or data.start == data.opened
             else f"since it opened at {data.opened:%H:%M} UTC, with the hour before")
    return Reply("\n".join(position_lines(v)), photo=png,
                 caption=f"#{v.id}: {e(data.watched)} price and LTV {since} ({data.ticks} prices{candles})")


