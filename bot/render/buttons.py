"""The buttons' data, both ways: what each inline button carries (ids only, far below Telegram's 64 bytes) and how a
tap is read back. Nothing is trusted: the data is authorised again on the server when it is used.

    c:<token>   Confirm a preview          x:<token>   Cancel it
    pa:<id>     Add collateral (push)      pr:<id>     Repay (push)      pv:<id>   View (push)
    bl:<ASSET>  guided borrow: the loan    bc:<ASSET>  the collateral    bt:<pct> the target LTV
    bp:FLEX|<days>  guided borrow: Flexible, or a Fixed term
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ADD, REPAY, VIEW = "pa", "pr", "pv"
LOAN, COLLATERAL, TARGET, PRODUCT = "bl", "bc", "bt", "bp"
FLEX = "FLEX"
_ID = re.compile(r"^[1-9]\d{0,8}$")  # a position id: at most 9 digits (no overflow in any database)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,32}$")
_VALUE = re.compile(r"^[A-Z0-9]{1,10}$")


@dataclass(frozen=True)
class Confirm:
    token: str


@dataclass(frozen=True)
class Cancel:
    token: str


@dataclass(frozen=True)
class PushButton:
    action: str  # ADD | REPAY | VIEW
    pid: int


@dataclass(frozen=True)
class Guide:
    step: str  # LOAN | PRODUCT | COLLATERAL | TARGET
    value: str


Tap = Confirm | Cancel | PushButton | Guide | None


def decode(data: str) -> Tap:
    """The tap ``data`` stands for, or None when it is not a button this bot made."""
    kind, _, value = data.partition(":")
    if kind in ("c", "x") and _TOKEN.match(value):
        return Confirm(value) if kind == "c" else Cancel(value)
    if kind in (ADD, REPAY, VIEW) and _ID.match(value):
        return PushButton(kind, int(value))
    if kind in (LOAN, PRODUCT, COLLATERAL, TARGET) and _VALUE.match(value):
        return Guide(kind, value)
    return None


def confirm(token: str) -> str:
    return f"c:{token}"


def cancel(token: str) -> str:
    return f"x:{token}"


def push(action: str, pid: int) -> str:
    return f"{action}:{pid}"


def guide(step: str, value: str) -> str:
    return f"{step}:{value}"
