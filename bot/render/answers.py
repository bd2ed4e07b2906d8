"""The answers to borrower and operator commands, one function per message kind (HTML parse mode; every
dynamic value escaped). The primitives (``Reply``, escaping, amounts) are ``bot.render.common``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from bot.render.common import Reply, amount, e, ltv_text, price
from bot.service.views import BookView, PositionView
from domain.markets import Catalog, DeskRules
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
    return " + ".join(amount(v, a) for a, v in c.items()) or "none"


def position_lines(v: PositionView) -> list[str]:
    lines = [f"<b>#{v.id}</b> {e(v.product)} · {e(v.status.replace('_', ' '))}",
             f"Debt: {amount(v.debt, v.loan_asset, up=True)}",
             f"Collateral: {collateral_text(v.collateral)}",
             f"LTV: {ltv_text(v.ltv)} (margin call {e(pct(v.thresholds.margin_call))}, "
             f"liquidation {e(pct(v.thresholds.liquidation))})"]
    if v.single_collateral and v.margin_call_price is not None:
        a = e(v.single_collateral)
        lines.append(f"Margin call at {a} {price(v.margin_call_price)} · liquidation at {a} "
                     f"{price(v.liquidation_price)}")
    if v.fixed_interest is not None:
        lines.append(f"Interest: {amount(v.fixed_interest, v.loan_asset, up=True)} paid up front (fixed APR "
                     f"{e(fmt(v.apr * 100))}%)")
    elif v.debt > 0:
        lines.append(f"Interest: {amount(v.hourly_interest, v.loan_asset, up=True)}/hour, "
                     f"{amount(v.daily_interest, v.loan_asset, up=True)}/day (APR {e(fmt(v.apr * 100))}%)")
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
    lines += [f"{e(a)}: {amount(s, a, unit=False)} · {amount(r, a, unit=False)}" for a, (s, r) in balances.items()]
    return Reply("\n".join(lines))


def markets(catalog: Catalog, aprs: Mapping[str, Decimal]) -> Reply:
    """/markets: Flexible and Fixed rates per loan asset, order limits, and the LTV levels of each product."""
    lines = ["<b>Flexible</b> (APR now, variable · min–max per order)"]
    for a, m in catalog.loans.items():
        lines.append(f"{e(a)}: {e(fmt(aprs[a] * 100))}% · {amount(m.min_borrow, a, unit=False)}–"
                     f"{amount(m.max_borrow, a, unit=False)}")
    terms = catalog.desk.fixed_terms
    if any(m.fixed_apr for m in catalog.loans.values()):
        lines.append(f"\n<b>Fixed</b> (APR for {' · '.join(f'{t}d' for t in terms)}; interest taken up front)")
        for a, m in catalog.loans.items():
            if m.fixed_apr:
                lines.append(f"{e(a)}: " + " · ".join(e(f"{fmt(m.fixed_apr[t] * 100)}%") if t in m.fixed_apr
                                                      else "—" for t in terms))
    lines.append("\n<b>Collateral</b>, Flexible loans (initial · margin call · liquidation LTV)")
    for a, c in catalog.collateral.items():
        lines.append(f"{e(a)}: {e(pct(c.initial_ltv))} · {e(pct(c.margin_call_ltv))} · "
                     f"{e(pct(c.liquidation_ltv))}")
    fixed = catalog.products["fixed"]
    lines.append(f"Fixed loans, any collateral: {e(pct(fixed.initial_ltv or Decimal(0)))} · "
                 f"{e(pct(fixed.margin_call_ltv))} · {e(pct(fixed.liquidation_ltv))}. VIP: your own term sheet "
                 "(/terms).")
    lines.append("Borrow Fixed with /borrow 5000 USDT with 0.1 BTC fixed 30d, or step by step with /borrow.")
    return Reply("\n".join(lines))


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
        lines.append(f"#{p.id} user {e(p.owner)}: {ltv_text(p.ltv)} · {amount(p.debt, p.loan_asset, up=True)} "
                     f"against {collateral_text(p.collateral)}")
    lines.append("\n<b>Lent</b>: " + ", ".join(amount(x, a, up=True) for a, x in v.debt.items()))
    lines.append("<b>Collateral</b>: " + ", ".join(amount(x, a) for a, x in v.collateral.items()))
    return Reply("\n".join(lines))




def welcome(catalog: Catalog, demo: bool) -> Reply:
    """/start: what the desk does, the three products, and the first commands to try."""
    fixed = catalog.products["fixed"]
    terms = ", ".join(f"{t}d" for t in catalog.desk.fixed_terms)
    lines = ["<b>Welcome to loandesk</b>: borrow stablecoins or crypto against your crypto, without selling it.",
             "",
             "<b>Flexible</b>: no term, variable rate charged every hour, repay any time. "
             "Try /borrow 500 USDT with 0.01 BTC",
             f"<b>Fixed</b>: a term ({e(terms)}) at a fixed rate, the interest taken up front; LTV up to "
             f"{e(pct(fixed.initial_ltv or Decimal(0)))}, margin call at {e(pct(fixed.margin_call_ltv))}, "
             f"liquidation at {e(pct(fixed.liquidation_ltv))}. Try /borrow 5000 USDT with 0.1 BTC fixed 30d",
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


def offline_prices(prices: Mapping[str, Decimal], replaying: str | None) -> Reply:
    """/price in the console: every offline price."""
    shown = " · ".join(f"{e(a)} {e(fmt(p))}" for a, p in prices.items() if a != "USDT")
    lines = [f"<b>Offline prices</b> (USDT): {shown}"]
    if replaying:
        lines.append(f"Replaying {e(replaying)}; /price BTC 100000 stops it.")
    lines.append("Set one with /price BTC 60000; replay a crash with /price replay march2020.")
    return Reply("\n".join(lines))


def price_set(asset: str, new: Decimal, old: Decimal | None, stopped: bool, desk: DeskRules) -> Reply:
    """/price BTC 40000: what changed and when the bot acts on it."""
    a = e(asset)
    change = f" (was {e(fmt(old))}: {e(_signed_pct(new / old - 1))})" if old else ""
    lines = [f"{a} is now {e(fmt(new))} USDT{change}."]
    if stopped:
        lines.append("The replay is stopped; the other prices stay where it left them.")
    said = "The bot reads it at its next price poll (about a second): a warning or margin call follows at once"
    if old and abs(new / old - 1) > desk.price_jump:
        said += (f"; a move of more than {e(pct(desk.price_jump))} must hold for {desk.price_confirm_seconds} s "
                 "before it can liquidate")
    lines.append(said + ".")
    if old and (new > old * desk.price_band or new * desk.price_band < old):
        lines.append(f"Note: a price more than {e(fmt(desk.price_band))}× away from the last accepted one is "
                     "refused as a bad tick however long it stays; move it in steps.")
    return Reply("\n".join(lines))


def replay_started(name: str, title: str, speed: Decimal, lead: str, low: Decimal, low_in: float) -> Reply:
    """/price replay march2020: what will happen, and how soon."""
    minutes = f"{round(low_in / 60)} min" if low_in >= 90 else f"{max(1, round(low_in))} s"
    return Reply(f"Replaying <b>{e(title)}</b> at {e(fmt(speed))}× ({e(_pace(speed))}), starting from today's "
                 f"prices: BTC and ETH move as they moved then, other coins follow BTC, stablecoins stay at 1. "
                 f"{e(lead)}'s low ({e(_signed_pct(low))}) comes in about {minutes}. Price notes appear as it "
                 "runs; /price BTC 100000 stops it.")


def _signed_pct(x: Decimal) -> str:
    return f"{(x * 100).quantize(Decimal('0.1')):+}%".replace("-", "−")


def _pace(speed: Decimal) -> str:
    hour = Decimal(3600) / speed
    if hour >= 60:
        return f"an hour of history every {fmt(round(hour / 60, 1))} min"
    return f"an hour of history every {fmt(round(hour, 1))} s"
