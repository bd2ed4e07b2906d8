"""Telegram's HTML parse mode, as the fake Bot API applies it to text and captions.

This module owns one question: would Telegram accept this HTML, and what plain text and entities would the
user see? It follows the Bot API rules (https://core.telegram.org/bots/api#html-style): only the listed tags,
properly nested and closed; ``<`` only as a tag; ``&`` only as ``&lt;`` ``&gt;`` ``&amp;`` ``&quot;`` or a
numeric entity. Real Telegram is lenient about a stray ``&`` (it keeps it as text); the fake is stricter on
purpose, because an unescaped ``&`` means a dynamic value was not passed through ``html.escape`` and the
next value may contain ``<``. Errors carry Telegram's wording after "can't parse entities: ".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
}
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_SPACE = " \t\r\n"


class HtmlError(ValueError):
    """The HTML is refused; ``str(error)`` is the part after "can't parse entities: "."""


@dataclass
class _Open:
    name: str
    attrs: dict[str, str]
    offset: int  # UTF-16 offset in the plain text where the entity starts
    language: str | None = None


@dataclass
class ParsedText:
    """What the user sees: the plain text and the Bot API ``MessageEntity`` dicts (UTF-16 offsets)."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Bot API entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode())


def _decode_entity(source: str, index: int) -> tuple[str, int]:
    match = _ENTITY.match(source, index)
    if match is None:
        raise HtmlError(f"Character entity expected at byte offset {_byte_offset(source, index)}")
    named, decimal, hexadecimal = match.groups()
    if named:
        return _NAMED[named], match.end()
    code = int(decimal) if decimal else int(hexadecimal, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise HtmlError(f"Invalid character entity at byte offset {_byte_offset(source, index)}")
    return chr(code), match.end()


def _unescape_attribute(value: str) -> str:
    return _ENTITY.sub(lambda m: _decode_entity(m.group(0), 0)[0], value)


def _parse_attributes(source: str, index: int, begin: int) -> tuple[dict[str, str], int]:
    """Read ``name="value"`` pairs up to the closing ``>``; returns them and the index after ``>``."""
    attrs: dict[str, str] = {}
    n = len(source)
    unclosed = HtmlError(f"Unclosed start tag at byte offset {_byte_offset(source, begin)}")
    while True:
        while index < n and source[index] in _SPACE:
            index += 1
        if index >= n:
            raise unclosed
        if source[index] == ">":
            return attrs, index + 1
        start = index
        while index < n and source[index] not in _SPACE + "=>":
            index += 1
        name = source[start:index].lower()
        while index < n and source[index] in _SPACE:
            index += 1
        if index < n and source[index] == "=":
            index += 1
            while index < n and source[index] in _SPACE:
                index += 1
            if index >= n:
                raise unclosed
            if source[index] in "\"'":
                quote = source[index]
                close = source.find(quote, index + 1)
                if close == -1:
                    raise unclosed
                value, index = source[index + 1 : close], close + 1
            else:
                start = index
                while index < n and source[index] not in _SPACE + ">":
                    index += 1
                value = source[start:index]
            attrs[name] = _unescape_attribute(value)
        else:
            attrs[name] = ""


def _entity(tag: _Open, end: int) -> dict[str, Any] | None:
    length = end - tag.offset
    if length <= 0:
        return None
    kind = ENTITY_TYPES[tag.name]
    entity: dict[str, Any] = {"type": kind, "offset": tag.offset, "length": length}
    if tag.name == "a":
        if not tag.attrs.get("href"):
            return None
        entity["url"] = tag.attrs["href"]
    elif tag.name == "pre" and tag.language:
        entity["language"] = tag.language
    elif tag.name == "blockquote" and "expandable" in tag.attrs:
        entity["type"] = "expandable_blockquote"
    return entity


def parse_html(source: str) -> ParsedText:
    """Parse Bot API HTML into plain text and entities, or raise :class:`HtmlError` like Telegram."""
    out: list[str] = []
    offset = 0
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    index, n = 0, len(source)
    while index < n:
        char = source[index]
        if char == "&":
            decoded, index = _decode_entity(source, index)
            out.append(decoded)
            offset += utf16_len(decoded)
            continue
        if char != "<":
            out.append(char)
            offset += utf16_len(char)
            index += 1
            continue
        begin = index
        if source.startswith("</", index):
            close = source.find(">", index)
            if close == -1:
                raise HtmlError(f"Unclosed end tag at byte offset {_byte_offset(source, begin)}")
            name = source[index + 2 : close].strip().lower()
            if not stack:
                raise HtmlError(f"Unexpected end tag at byte offset {_byte_offset(source, begin)}")
            top = stack[-1]
            if name and name != top.name:
                raise HtmlError(
                    f"Unmatched end tag at byte offset {_byte_offset(source, begin)}, "
                    f'expected "</{top.name}>", found "</{name}>"'
                )
            stack.pop()
            code_in_pre = top.name == "code" and stack and stack[-1].name == "pre"
            if code_in_pre and top.attrs.get("class", "").startswith("language-"):
                stack[-1].language = top.attrs["class"].removeprefix("language-")
            elif (entity := _entity(top, offset)) is not None:
                entities.append(entity)
            index = close + 1
            continue
        index += 1
        start = index
        while index < n and source[index] not in _SPACE + ">":
            index += 1
        if index >= n:
            raise HtmlError(f"Unclosed start tag at byte offset {_byte_offset(source, begin)}")
        name = source[start:index].lower()
        if name not in ENTITY_TYPES:
            raise HtmlError(f'Unsupported start tag "{name}" at byte offset {_byte_offset(source, begin)}')
        attrs, index = _parse_attributes(source, index, begin)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise HtmlError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(source, begin)}'
            )
        stack.append(_Open(name, attrs, offset))
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return ParsedText("".join(out), entities)
