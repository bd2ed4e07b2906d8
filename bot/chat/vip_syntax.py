"""The operators' ``/vip`` term-sheet syntax, read into an ``IssueTermSheet`` action (``bot.service.usecases``).

One line, keywords in any order after the borrower's id and loan assets::

    /vip <user_id> <LOAN[,LOAN…]> fixed <apr>% | flexible +<spread>%
         ltv <initial>/<margin call>/<liquidation> collateral <ASSET[:ratio]>[,…]
         [full|partial] [delay <minutes> min] [min <first order>] [max <total borrow>] [warn <pct>]

e.g. ``/vip 123 USDT fixed 5% ltv 80/88/93 collateral BTC:1,ETH:0.95 partial delay 10 min min 50000``.
A collateral asset without ``:ratio`` takes the catalog's ratio; a bare amount at the end is the minimum first
order. Every problem raises ``Usage`` naming the field; the domain then checks the levels and assets.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

from bot.chat.parsing import Usage, amount, asset, percent, quoted
from bot.service.usecases import IssueTermSheet
from domain.markets import QUOTE
from domain.termsheet import DEFAULT_MIN_ORDER

USAGE = ("/vip 123456789 USDT fixed 5% ltv 80/88/93 collateral BTC:1,ETH:0.95 [partial] [delay 10 min] "
         "[min 50000] [max 1000000] [warn 84%]")
_RATIO = re.compile(r"^(?:0(?:\.\d{1,4})?|1(?:\.0{1,4})?)$")


def _problem(field: str, text: str) -> Usage:
    return Usage(f"{field}: {text}\nWrite it like: {USAGE}")


def parse_vip(args: Sequence[str], loans: Collection[str], collateral: Mapping[str, Decimal]) -> IssueTermSheet:
    """``args`` after ``/vip`` (user id first) → the operator's ``IssueTermSheet`` action."""
    if not args or not (args[0].isascii() and args[0].isdigit() and len(args[0]) <= 15):
        raise _problem("user id", f"'{quoted(args[0]) if args else ''}' is not a Telegram user id")
    if len(args) < 2:
        raise _problem("loan", "name the loan asset(s), e.g. USDT or USDT,USDC")
    out: dict[str, Any] = {"user": str(int(args[0])), "liquidation": "full", "delay": 0,
                           "min_order": DEFAULT_MIN_ORDER, "max_borrow": None, "warning": None}
    out["loan"] = [_asset(a, loans, "loan", "loan asset") for a in args[1].split(",") if a]
    toks = list(args[2:])
    i = 0
    while i < len(toks):
        word = toks[i].lower()
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if word in ("fixed", "flexible"):
            if nxt is None:
                raise _problem("rate", f"{word} needs its APR, like {word} {'5%' if word == 'fixed' else '+2%'}")
            out["rate"], out["apr"] = word, _pct(nxt.lstrip("+"), "rate")
            i += 2
        elif word == "ltv":
            levels = (nxt or "").split("/")
            if len(levels) != 3:
                raise _problem("ltv", "give initial/margin-call/liquidation levels, like ltv 80/88/93")
            out["initial"], out["margin_call"], out["liquidation_ltv"] = (_pct(x, "ltv") for x in levels)
            i += 2
        elif word == "collateral":
            if nxt is None:
                raise _problem("collateral", "list the assets, like collateral BTC:1,ETH:0.95")
            out["collateral"] = _collateral(nxt, collateral)
            i += 2
        elif word in ("full", "partial"):
            out["liquidation"] = word
            i += 1
        elif word == "delay":
            if nxt is None or not nxt.isdigit() or int(nxt) > 24 * 60:
                raise _problem("delay", "the liquidation delay is whole minutes (0–1440), like delay 10 min")
            out["delay"] = int(nxt)
            i += 3 if i + 2 < len(toks) and toks[i + 2].lower() in ("min", "mins", "minutes", "m") else 2
        elif word in ("min", "max"):
            if nxt is None:
                raise _problem(word, f"{word} needs an amount in {QUOTE}, like {word} 50000")
            out["min_order" if word == "min" else "max_borrow"] = _amount(nxt, word)
            i += 2
        elif word == "warn":
            out["warning"] = _pct(nxt or "", "warn")
            i += 2
        elif toks[i][:1].isdigit() and i == len(toks) - 1:
            out["min_order"] = _amount(toks[i], "min")
            i += 1
        else:
            raise _problem("syntax", f"I did not understand '{quoted(toks[i])}'")
    for key, field in (("rate", "rate"), ("initial", "ltv"), ("collateral", "collateral")):
        if key not in out:
            raise _problem(field, f"the {field} is missing")
    return IssueTermSheet(out["user"], tuple(out["loan"]), out["rate"], out["apr"], out["initial"],
                          out["margin_call"], out["liquidation_ltv"], out["collateral"], out["liquidation"],
                          int(out["delay"]), out["min_order"], out["max_borrow"], out["warning"])


def _asset(text: str, known: Collection[str], field: str, role: str) -> str:
    try:
        return asset(text, known, "vip", role)
    except Usage:
        known_list = ", ".join(sorted(known))
        raise _problem(field, f"{quoted(text)} is not a {role} of this desk (known: {known_list})") from None


def _pct(text: str, field: str) -> Decimal:
    try:
        return percent(text, "vip")
    except Usage:
        raise _problem(field, f"'{quoted(text)}' is not a percentage") from None


def _amount(text: str, field: str) -> Decimal:
    try:
        return amount(text, "vip")
    except Usage:
        raise _problem(field, f"'{quoted(text)}' is not an amount") from None


def _collateral(text: str, known: Mapping[str, Decimal]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for item in (x for x in text.split(",") if x):
        name, _, ratio = item.partition(":")
        symbol = _asset(name, known, "collateral", "collateral asset")
        if ratio and not _RATIO.match(ratio):
            raise _problem("collateral", f"the ratio of {symbol} must be a number from 0 to 1, like {symbol}:0.95")
        out[symbol] = Decimal(ratio) if ratio else known[symbol]
    if not out:
        raise _problem("collateral", "list the assets, like collateral BTC:1,ETH:0.95")
    return out
