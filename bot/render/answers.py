"""The answers to borrower and operator commands, one function per message kind (HTML parse mode; every
dynamic value escaped). The primitives (``Reply``, escaping, amounts) are ``bot.render.common``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from bot.render.common import Reply, amt, e, ltv_text, price
from bot.service.views import BookView, PositionView
from domain.events import Event
from domain.markets import Catalog
from domain.money import fmt, pct


def notify_prefs(prefs: Mapping[str, Any], head: str = "") -> Reply:
    """/notify: the opt-in pushes and how to change them."""
    hour = f"{int(prefs['digest_hour']):02d}:00 UTC"
    rates = "on" if prefs["rate_changes"] else "off"
    digest = f"on, at {hour}" if prefs["daily_digest"] else "off"
    lines = [f"{e(head)}\n" if head else "", "<b>Notifications</b>",
             f"Rate changes of the assets you borrow: <b>{rates}</b> — /notify rates "
             f"{'off' if prefs['rate_changes'] else 'on'}",
             f"Daily digest (LTV, debt, distance to margin call): <b>{e(digest)}</b> — "
             f"{'/notify digest off' if prefs['daily_digest'] else '/notify digest on 8'}",
             "Margin calls, liquidations and overdue notices are always sent."]
    return Reply("\n".join(line for line in lines if line))


def collateral_text(c: Mapping[str, Decimal]) -> str:
    return " + ".join(f"{amt(v)} {e(a)}" for a, v in c.items()) or "none"


def position_lines(v: PositionView) -> list[str]:
    lines = [f"<b>#{v.id}</b> {e(v.product)} · {e(v.status.replace('_', ' '))}",
             f"Debt: {amt(v.debt)} {e(v.loan_asset)}",
             f"Collateral: {collateral_text(v.collateral)}",
             f"LTV: {ltv_text(v.ltv)} (margin call {e(pct(v.thresholds.margin_call))}, "
             f"liquidation {e(pct(v.thresholds.liquidation))})"]
    if v.single_collateral and v.margin_call_price is not None:
        a = e(v.single_collateral)
        lines.append(f"Margin call at {a} {price(v.margin_call_price)} · liquidation at {a} "
                     f"{price(v.liquidation_price)}")
    if v.fixed_interest is not None:
        lines.append(f"Interest: {amt(v.fixed_interest)} {e(v.loan_asset)} paid up front (fixed APR "
                     f"{e(fmt(v.apr * 100))}%)")
    elif v.debt > 0:
        lines.append(f"Interest: {amt(v.hourly_interest)} {e(v.loan_asset)}/hour, {amt(v.daily_interest)} "
                     f"{e(v.loan_asset)}/day (APR {e(fmt(v.apr * 100))}%)")
    if v.expires_at is not None:
        lines.append(f"Expires {e(v.expires_at.strftime('%Y-%m-%d %H:%M UTC'))}")
    return lines


def position(v: PositionView, hint: bool = False) -> Reply:
    """One position; ``hint``: with the commands that lower its LTV (under a push's View)."""
    lines = position_lines(v)
    if hint and v.status in ("open", "overdue"):
        lines.append(f"Add collateral: /add {v.id} &lt;amount&gt; · repay: /repay {v.id} &lt;amount|all&gt;")
    return Reply("\n".join(lines))


def positions(views: Sequence[PositionView]) -> Reply:
    if not views:
        return Reply("You have no open positions. Borrow with /borrow 500 USDT with 0.01 BTC")
    return Reply("<b>Your positions</b>\n\n" + "\n\n".join("\n".join(position_lines(v)) for v in views))


def wallet(balances: Mapping[str, tuple[Decimal, Decimal]], catalog: Catalog | None = None) -> Reply:
    if not balances:
        return Reply("Your wallet is empty.")
    lines = ["<b>Wallet</b> (Spot · Earn)"]
    lines += [f"{e(a)}: {amt(s)} · {amt(r)}" for a, (s, r) in balances.items()]
    return Reply("\n".join(lines))


def markets(catalog: Catalog, aprs: Mapping[str, Decimal]) -> Reply:
    lines = ["<b>Borrow</b> (flexible APR · min–max per order)"]
    for a, m in catalog.loans.items():
        lines.append(f"{e(a)}: {e(fmt(aprs[a] * 100))}% · {amt(m.min_borrow)}–{amt(m.max_borrow)}")
    lines.append("\n<b>Collateral</b> (initial · margin call · liquidation LTV)")
    for a, c in catalog.collateral.items():
        lines.append(f"{e(a)}: {e(pct(c.initial_ltv))} · {e(pct(c.margin_call_ltv))} · "
                     f"{e(pct(c.liquidation_ltv))}")
    return Reply("\n".join(lines))


def history(events: Iterable[Event], catalog: Catalog | None = None) -> Reply:
    lines = []
    for ev in events:
        d = ", ".join(f"{k} {v}" for k, v in ev.data.items() if isinstance(v, str))
        where = f" #{ev.position}" if ev.position else ""
        lines.append(f"{e(ev.at.strftime('%Y-%m-%d %H:%M'))} {e(ev.type.replace('_', ' '))}{where}: {e(d)}")
    return Reply("<b>History</b>\n" + "\n".join(lines) if lines else "No history yet.")


def alerts(own: Decimal | None, default: Decimal) -> Reply:
    level = own if own is not None else default
    return Reply(f"You are warned when a position's LTV reaches {e(pct(level))}"
                 f"{'' if own is not None else ' (the default)'}. Margin calls and liquidations are always sent.\n"
                 "Change it with /alert ltv 75%")


def book(v: BookView) -> Reply:
    if not v.positions:
        return Reply("The book is empty: no open positions.")
    lines = ["<b>Book</b> (by LTV)"]
    for p in v.positions:
        lines.append(f"#{p.id} user {e(p.owner)}: {ltv_text(p.ltv)} · {amt(p.debt)} {e(p.loan_asset)} "
                     f"against {collateral_text(p.collateral)}")
    lines.append("\n<b>Lent</b>: " + ", ".join(f"{amt(x)} {e(a)}" for a, x in v.debt.items()))
    lines.append("<b>Collateral</b>: " + ", ".join(f"{amt(x)} {e(a)}" for a, x in v.collateral.items()))
    return Reply("\n".join(lines))




def welcome(catalog: Catalog, demo: bool) -> Reply:
    """/start: what the desk does, the three products, and the first commands to try."""
    fixed = catalog.products["fixed"]
    terms = ", ".join(f"{t}d" for t in catalog.desk.fixed_terms)
    lines = ["<b>Welcome to loandesk</b>: borrow stablecoins or crypto against your crypto, without selling it.",
             "",
             "<b>Flexible</b>: no term, variable rate charged every hour, repay any time. "
             "Try /borrow 500 USDT with 0.01 BTC",
             f"<b>Fixed</b>: a term ({e(terms)}) and a fixed rate, interest taken up front; levels "
             f"{e(pct(fixed.initial_ltv or Decimal(0)))} / {e(pct(fixed.margin_call_ltv))} / "
             f"{e(pct(fixed.liquidation_ltv))}. Try /borrow 5000 USDT with 0.1 BTC fixed 30d",
             "<b>VIP</b>: your own term sheet from the desk (/terms).",
             "",
             "I watch every loan's LTV and warn you before a margin call or liquidation. "
             "/markets shows rates and limits, /help every command."]
    if demo:
        lines.append("This is the demo desk: /faucet gives you demo funds.")
    return Reply("\n".join(lines))


def help_text(sections: Sequence[tuple[str, Sequence[tuple[str, str, str]]]]) -> Reply:
    """/help: the commands this person may use by section, each as (name, one-line help, usage)."""
    lines = ["<b>loandesk</b> lends against your crypto."]
    for section, commands in sections:
        lines.append(f"\n<b>{e(section)}</b>" + (" (in a group)" if section == "Groups" else ""))
        for name, text, usage in commands:
            shown = f"\n   {e(usage)}" if usage and usage != f"/{name}" else ""
            lines.append(f"/{e(name)} — {e(text)}{shown}")
    return Reply("\n".join(lines))
