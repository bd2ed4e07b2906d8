"""Reading command arguments typed in chat (SPEC §8) into values the services take.

Amounts go through ``domain.money.parse_amount`` (the one amount parser); assets are case-insensitive and
checked against the catalog; ``<id>`` is ``12`` or ``#12``. Anything else raises ``Usage`` with a short,
specific sentence and the right syntax (``bot.chat.registry``) — nothing has been changed when it is raised.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from bot.chat import registry
from domain.money import AmountError, parse_amount

_ID = re.compile(r"^#?(\d{1,9})$", re.ASCII)
_USER = re.compile(r"^\d{1,15}$", re.ASCII)
_PCT = re.compile(r"^(\d{1,3}(?:\.\d{1,4})?)%?$", re.ASCII)
_TERM = re.compile(r"^(\d{1,3})d$", re.IGNORECASE | re.ASCII)


class Usage(ValueError):
    """Input that cannot be read. ``message`` is for the person and names the right syntax."""

    def __init__(self, problem: str, command: str | None = None) -> None:
        text = problem if command is None else f"{problem}\nWrite it like: {registry.usage(command)}"
        super().__init__(text)
        self.message = text


def position_id(text: str, command: str) -> int:
    m = _ID.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise Usage(f"'{quoted(text)}' is not a position number.", command)
    return int(m.group(1))


def user_id(text: str, command: str) -> str:
    """A Telegram user id (digits only) as the account key."""
    if not _USER.match(text.strip()):
        raise Usage(f"'{quoted(text)}' is not a Telegram user id (digits, like 123456789).", command)
    return str(int(text.strip()))


def amount(text: str, command: str) -> Decimal:
    try:
        return parse_amount(text)
    except AmountError as exc:
        raise Usage(f"{str(exc)[:1].upper()}{str(exc)[1:]}.", command) from None


def asset(text: str, known: Collection[str], command: str, role: str = "asset") -> str:
    symbol = text.strip().upper()
    if symbol not in known:
        article = "an" if role[:1] in "aeiou" else "a"
        raise Usage(f"{quoted(text)} is not {article} {role} of this desk (known: {', '.join(sorted(known))}).",
                    command)
    return symbol


def percent(text: str, command: str) -> Decimal:
    """``50%`` or ``50`` → ``0.5``."""
    m = _PCT.match(text.strip())
    if not m:
        raise Usage(f"'{quoted(text)}' is not a percentage.", command)
    return Decimal(m.group(1)) / 100


_MOVE = re.compile(r"^([+-])(\d{1,3}(?:\.\d{1,2})?)%$", re.ASCII)


def move(text: str, command: str) -> Decimal:
    """A signed price move: ``-30%`` → ``-0.3``, ``+10%`` → ``0.1``."""
    m = _MOVE.match(text.strip())
    if not m:
        raise Usage(f"'{quoted(text)}' is not a price move; write it with its sign, like -30% or +10%.", command)
    value = Decimal(m.group(2)) / 100
    return -value if m.group(1) == "-" else value


def days(text: str, command: str) -> int:
    """``30d`` (or ``30``) → 30."""
    m = re.match(r"^(\d{1,4})d?$", text.strip(), re.IGNORECASE | re.ASCII)
    if not m or int(m.group(1)) == 0:
        raise Usage(f"'{quoted(text)}' is not a number of days, like 30d.", command)
    return int(m.group(1))


def need(args: Sequence[str], what: Sequence[str], command: str) -> None:
    """Raise ``Usage`` naming exactly the arguments not given (``what`` lists every argument in order)."""
    missing = list(what[len(args):])
    if missing:
        listed = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
        raise Usage(f"Missing {listed}.", command)


def quoted(text: str, limit: int = 60) -> str:
    """Someone's input, quoted back in an answer: cut to ``limit`` characters."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def extra(args: Sequence[str], count: int, command: str) -> None:
    """Raise ``Usage`` quoting what follows the first ``count`` arguments, if anything does."""
    if len(args) > count:
        raise Usage(f"I did not understand '{quoted(' '.join(args[count:]))}'.", command)


@dataclass
class BorrowArgs:
    """A possibly partial ``/borrow``: what is missing is asked for with buttons."""

    amount: Decimal | None = None
    loan: str | None = None
    collateral: dict[str, Decimal] = field(default_factory=dict)
    collateral_asset: str | None = None  # ``with BTC`` (sized by ``target`` or asked for)
    target: Decimal | None = None  # ``at 50%``
    term_days: int | None = None  # ``fixed 30d``
    vip: bool = False  # ``vip``: under the borrower's VIP term sheet

    @property
    def complete(self) -> bool:
        return (self.amount is not None and self.loan is not None
                and (bool(self.collateral) or (self.collateral_asset is not None and self.target is not None)))


def _looks_numeric(token: str) -> bool:
    return bool(token) and (token[0].isdigit() or token[0] in "-+.,")


def borrow(args: Sequence[str], loans: Collection[str], collateral: Collection[str]) -> BorrowArgs:
    """``[AMOUNT] [LOAN] [with AMOUNT ASSET (and AMOUNT ASSET)* | with ASSET [at PCT%]] [fixed Nd]``."""
    out = BorrowArgs()
    toks = list(args)
    i = 0
    if i < len(toks) and _looks_numeric(toks[i]):
        out.amount = amount(toks[i], "borrow")
        i += 1
    if i < len(toks) and toks[i].lower() not in ("with", "fixed"):
        out.loan = asset(toks[i], loans, "borrow", "loan asset")
        i += 1
    if i < len(toks) and toks[i].lower() == "with":
        i += 1
        if i >= len(toks):
            raise Usage("Missing the collateral after 'with'.", "borrow")
        while True:
            if i < len(toks) and _looks_numeric(toks[i]):
                qty = amount(toks[i], "borrow")
                if i + 1 >= len(toks):
                    raise Usage(f"Missing the collateral asset after {toks[i]}.", "borrow")
                sym = asset(toks[i + 1], collateral, "borrow", "collateral asset")
                if sym in out.collateral:
                    raise Usage(f"{sym} is named twice.", "borrow")
                out.collateral[sym] = qty
                i += 2
            elif i < len(toks) and not out.collateral:
                out.collateral_asset = asset(toks[i], collateral, "borrow", "collateral asset")
                i += 1
                if i < len(toks) and toks[i].lower() == "at":
                    if i + 1 >= len(toks):
                        raise Usage("Missing the target LTV after 'at'.", "borrow")
                    out.target = percent(toks[i + 1], "borrow")
                    i += 2
                break
            else:
                raise Usage("Missing the collateral after 'and'.", "borrow")
            if i < len(toks) and toks[i].lower() == "and":
                i += 1
                continue
            break
    if i < len(toks) and toks[i].lower() == "fixed":
        m = _TERM.match(toks[i + 1]) if i + 1 < len(toks) else None
        if not m:
            raise Usage("A fixed loan needs its term, like 'fixed 30d'.", "borrow")
        out.term_days = int(m.group(1))
        i += 2
    if i < len(toks) and toks[i].lower() == "vip" and out.term_days is None:
        out.vip = True
        i += 1
    if i < len(toks):
        raise Usage(f"I did not understand '{quoted(' '.join(toks[i:]))}'.", "borrow")
    return out
