"""Every answer's text, in one place per message kind (HTML parse mode; every dynamic value escaped).

A ``Reply`` is text plus inline buttons as (label, callback data) rows; the Telegram adapter and the console
both show it. ``split`` cuts long answers at line breaks to stay under Telegram's 4,096 characters.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.services import Outcome, Shown
from bot.state import Preview
from bot.views import BookView, PositionView
from domain.actions import pct
from domain.events import Event
from domain.markets import Catalog
from domain.money import fmt, round_down

LIMIT = 4000  # under Telegram's 4,096, leaving room for entity overhead
Buttons = list[list[tuple[str, str]]]


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: Buttons = field(default_factory=list)
    photo: bytes | None = None  # a PNG sent after the text (sendPhoto), with ``caption`` (≤ 1,024 characters)
    caption: str = ""


def e(value: object) -> str:
    return html.escape(str(value), quote=False)


def amt(x: Decimal, places: int = 8) -> str:
    return e(fmt(round_down(x, places)))


def price(x: Decimal | None) -> str:
    return "—" if x is None else e(fmt(x.quantize(Decimal("0.01"))))


def ltv_text(x: Decimal | None) -> str:
    return "unknown (no price)" if x is None else e(pct(x))


def plain(text: str) -> str:
    """What a person reads: tags dropped, entities unescaped (the console prints this)."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def split(text: str, limit: int = LIMIT) -> list[str]:
    """Cut at line breaks (a single over-long line is cut hard) so every part fits."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current or not parts:
        parts.append(current)
    return parts


def confirm_buttons(p: Preview) -> Buttons:
    return [[("Confirm", f"c:{p.token}"), ("Cancel", f"x:{p.token}")]]


def refused(message: str) -> Reply:
    return Reply(f"{e(_sentence(message))} Nothing was changed.")


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


def usage(message: str) -> Reply:
    return Reply(e(message))


def _sentence(message: str) -> str:
    m = message.strip()
    m = m[:1].upper() + m[1:]
    return m if m.endswith((".", "!", "?")) else m + "."


def _collateral(c: Mapping[str, Decimal]) -> str:
    return " + ".join(f"{amt(v)} {e(a)}" for a, v in c.items()) or "none"


def position_lines(v: PositionView) -> list[str]:
    lines = [f"<b>#{v.id}</b> {e(v.product)} · {e(v.status.replace('_', ' '))}",
             f"Debt: {amt(v.debt)} {e(v.loan_asset)}",
             f"Collateral: {_collateral(v.collateral)}",
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


def position(v: PositionView) -> Reply:
    return Reply("\n".join(position_lines(v)))


def positions(views: Sequence[PositionView]) -> Reply:
    if not views:
        return Reply("You have no open positions. Borrow with /borrow 500 USDT with 0.01 BTC")
    return Reply("<b>Your positions</b>\n\n" + "\n\n".join("\n".join(position_lines(v)) for v in views))


_TITLES = {"add": "Add collateral", "withdraw": "Withdraw collateral", "repay": "Repay", "close": "Close",
           "repay_collateral": "Repay with collateral", "credit": "Credit", "debit": "Debit",
           "setrate": "Set rate"}


def preview(s: Shown) -> Reply:
    p = s.preview
    k = p.params
    lines: list[str]
    if p.kind == "borrow" and s.borrow is not None:
        b = s.borrow
        coll = dict(b.request.collateral)
        lines = [f"<b>Borrow {amt(b.request.amount)} {e(b.request.loan_asset)}</b> against {_collateral(coll)}"]
        if b.existing:
            lines.append(f"This adds to your open position #{b.existing}.")
        asset = e(next(iter(coll)))
        triggers = (f"Margin call at {asset} {price(b.margin_call_price)} · liquidation at {asset} "
                    f"{price(b.liquidation_price)}" if b.margin_call_price is not None else
                    "Margin-call and liquidation prices depend on every collateral price: see /stress after.")
        lines += [f"LTV after: <b>{e(pct(b.ltv))}</b> (limit {e(pct(b.thresholds.initial))}, margin call "
                  f"{e(pct(b.thresholds.margin_call))}, liquidation {e(pct(b.thresholds.liquidation))})",
                  triggers,
                  f"Interest: {amt(b.hourly_interest)} {e(b.request.loan_asset)}/hour, "
                  f"{amt(b.daily_interest)} {e(b.request.loan_asset)}/day (APR {e(fmt(b.apr * 100))}%, "
                  f"{'variable' if b.variable_rate else 'fixed'}, charged at every full hour)",
                  f"You receive {amt(b.receive)} {e(b.request.loan_asset)} in Spot."]
        fixed_interest = getattr(b, "fixed_interest", None)
        expires_at = getattr(b, "expires_at", None)
        if fixed_interest is not None and expires_at is not None:
            lines[-2] = (f"Fixed interest: {amt(fixed_interest)} {e(b.request.loan_asset)}, taken up front "
                         f"(APR {e(fmt(b.apr * 100))}%); not refunded on early repayment")
            lines.append(f"Expires {e(expires_at.strftime('%Y-%m-%d %H:%M UTC'))}; you owe "
                         f"{amt(b.debt_after)} {e(b.request.loan_asset)} then.")
        lines += [e(n) for n in getattr(b, "notes", ()) or ()]
    elif p.kind in ("credit", "debit"):
        verb = "to" if p.kind == "credit" else "from"
        lines = [f"<b>{_TITLES[p.kind]}</b> {amt(k['amount'])} {e(k['asset'])} {verb} user {e(k['user'])}'s Spot"]
    elif p.kind == "vip":
        from bot.render_tools import term_sheet_lines
        lines = ["<b>Issue</b> (a new version; open VIP loans keep theirs)", *term_sheet_lines(k)]
    elif p.kind == "setrate":
        lines = [f"<b>Set rate</b>: {e(k['asset'])} flexible APR {e(fmt(k['apr'] * 100))}%, "
                 "in force from the next full hour"]
    else:
        head = f"<b>{_TITLES[p.kind]}</b> #{k['pid']}"
        if p.kind in ("add", "withdraw"):
            head += f": {amt(k['amount'])} {e(k['asset'] or (s.before.single_collateral if s.before else ''))}"
        elif p.kind == "repay":
            head += f": {'everything' if k['amount'] is None else amt(k['amount'])} " + (
                e(s.before.loan_asset) if s.before else "")
        lines = [head]
        if s.quote is not None:
            q = s.quote
            lines.append(f"Sell {amt(q.sell)} {e(q.asset)} at {e(fmt(q.rate.quantize(Decimal('0.00000001'))))} "
                         f"to repay {amt(q.repay)}. Quote valid {q.expires.strftime('%H:%M:%S')} UTC (15 s).")
        if s.before is not None:
            lines.append(f"Now: LTV {ltv_text(s.before.ltv)}, debt {amt(s.before.debt)} {e(s.before.loan_asset)}")
        if s.after is not None:
            lines.append("After:")
            lines += position_lines(s.after)
    lines.append("Confirm within 5 minutes." if s.quote is None else "Confirm within 15 seconds.")
    return Reply("\n".join(lines), confirm_buttons(p))


def outcome(o: Outcome) -> Reply:
    if o.status != "done":
        return Reply(e(o.message))
    k = o.params or {}
    if o.kind in ("credit", "debit"):
        verb = "Credited" if o.kind == "credit" else "Debited"
        return Reply(f"Done. {verb} {amt(k['amount'])} {e(k['asset'])} (user {e(k['user'])}).")
    if o.kind == "vip":
        return Reply(f"Done. The term sheet is issued to user {e(k['user'])}; they see it with /terms.")
    if o.kind == "setrate":
        return Reply(f"Done. {e(k['asset'])} flexible APR is {e(fmt(k['apr'] * 100))}% from the next full hour.")
    if o.after is None:
        return Reply("Done.")
    v = o.after
    if v.status in ("closed", "liquidated"):
        return Reply(f"Done. Position #{v.id} is {e(v.status)}; the collateral is back in your wallet.")
    return Reply("Done.\n" + "\n".join(position_lines(v)))


def wallet(balances: Mapping[str, tuple[Decimal, Decimal]]) -> Reply:
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


def history(events: Iterable[Event]) -> Reply:
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
                     f"against {_collateral(p.collateral)}")
    lines.append("\n<b>Lent</b>: " + ", ".join(f"{amt(x)} {e(a)}" for a, x in v.debt.items()))
    lines.append("<b>Collateral</b>: " + ", ".join(f"{amt(x)} {e(a)}" for a, x in v.collateral.items()))
    return Reply("\n".join(lines))


def choose(question: str, options: Sequence[str], prefix: str, per_row: int = 3) -> Reply:
    rows = [[(o, f"{prefix}{o}") for o in options[i:i + per_row]] for i in range(0, len(options), per_row)]
    return Reply(e(question), rows)
