"""The primitives every answer is made of: a ``Reply`` (HTML text, inline buttons, an optional photo), escaping,
amounts, prices and LTVs as people read them, and cutting long text into messages Telegram accepts.

A ``Reply`` is text plus inline buttons as (label, callback data) rows; the Telegram adapter and the console
both show it. ``split`` cuts long answers at line breaks to stay under Telegram's 4,096 characters.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from bot.render import buttons
from bot.service.store import Preview
from domain.money import fmt, pct, round_down

LIMIT = 4000  # under Telegram's 4,096, leaving room for entity overhead
Buttons = list[list[tuple[str, str]]]


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: Buttons = field(default_factory=list)
    photo: bytes | None = None  # a PNG sent after the text (sendPhoto), with ``caption`` (≤ 1,024 characters)
    caption: str = ""


@dataclass
class TapAnswer:
    """What a button tap produces: a short toast, new messages, and whether the tapped keyboard goes."""

    toast: str = ""
    replies: list[Reply] = field(default_factory=list)
    clear_buttons: bool = False


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


_PIECE = re.compile(r"<[^>]*>|&[#\w]+;|[^<&]+|[<&]")


def split(text: str, limit: int = LIMIT) -> list[str]:
    """Cut HTML text into parts Telegram accepts: at line breaks where possible; a line longer than ``limit`` is
    cut between characters, never inside a tag or an entity (``&amp;``), and a tag open at a cut is closed at
    the end of one part and opened again at the start of the next."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
            current = ""
        if len(line) <= limit:
            current = line
            continue
        *whole, rest = _cut(line, limit)
        parts += whole
        current = rest
    if current or not parts:
        parts.append(current)
    return parts


def _cut(line: str, limit: int) -> list[str]:
    """One over-long HTML line as parts of at most ``limit`` characters, tags balanced in each."""
    out: list[str] = []
    open_tags: list[tuple[str, str]] = []  # (name, the opening tag as written), innermost last
    fresh = current = ""  # ``fresh``: what a new part starts with (the tags open at the cut, opened again)
    for whole in _PIECE.findall(line):
        piece = whole
        atom = piece.startswith(("<", "&"))  # a tag or an entity: never cut
        while piece:
            close = "".join(f"</{name}>" for name, _ in reversed(open_tags))
            room = limit - len(current) - len(close)
            if len(piece) <= room or (atom and current == fresh):
                take = piece
            elif atom or room <= 0:
                out.append(current + close)
                fresh = current = "".join(tag for _, tag in open_tags)
                continue
            else:
                take = piece[:room]
            current += take
            piece = piece[len(take):]
        if atom:
            _track(open_tags, whole)
    out.append(current)
    return out


def _track(open_tags: list[tuple[str, str]], tag: str) -> None:
    """Keep the stack of open tags in step with ``tag`` (an opening, closing or entity piece)."""
    if not tag.startswith("<") or tag.endswith("/>"):
        return
    name = tag.strip("</>").split()[0].lower() if tag.strip("</>") else ""
    if tag.startswith("</"):
        for k in range(len(open_tags) - 1, -1, -1):
            if open_tags[k][0] == name:
                del open_tags[k]
                break
    else:
        open_tags.append((name, tag))


def confirm_buttons(p: Preview) -> Buttons:
    return [[("Confirm", buttons.confirm(p.token)), ("Cancel", buttons.cancel(p.token))]]


def refused(message: str) -> Reply:
    return Reply(f"{e(_sentence(message))} Nothing was changed.")


def usage(message: str) -> Reply:
    return Reply(e(message))


def _sentence(message: str) -> str:
    m = message.strip()
    m = m[:1].upper() + m[1:]
    return m if m.endswith((".", "!", "?")) else m + "."


def choose(question: str, options: Sequence[str], prefix: str, per_row: int = 3) -> Reply:
    rows = [[(o, f"{prefix}{o}") for o in options[i:i + per_row]] for i in range(0, len(options), per_row)]
    return Reply(e(question), rows)

