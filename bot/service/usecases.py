"""The actions a person previews and then confirms: one small dataclass per use case.

A chat command builds one of these; ``bot.service.loans.LoanService`` runs it (a handler per type, in its
``HANDLERS`` table) once as a rolled-back trial for the preview and once for real on Confirm; ``bot.render``
shows each type in its own way; the stored preview keeps it as JSON (``encode``/``decode``, Decimals as
strings). ``operator`` marks what only the desk's operators may confirm.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from domain.loans.servicing import CollateralQuote


@dataclass(frozen=True)
class Borrow:
    loan: str
    amount: Decimal
    collateral: Mapping[str, Decimal]
    product: str = "flexible"  # flexible | fixed | vip
    term_days: int | None = None
    target: Decimal | None = None  # "/borrow … with BTC at 50%": the LTV the collateral was sized for
    kind: ClassVar[str] = "borrow"
    operator: ClassVar[bool] = False


@dataclass(frozen=True)
class AddCollateral:
    pid: int
    amount: Decimal
    asset: str | None = None
    source: str = "spot"  # spot | earn
    kind: ClassVar[str] = "add"
    operator: ClassVar[bool] = False


@dataclass(frozen=True)
class WithdrawCollateral:
    pid: int
    amount: Decimal
    asset: str | None = None
    kind: ClassVar[str] = "withdraw"
    operator: ClassVar[bool] = False


@dataclass(frozen=True)
class Repay:
    pid: int
    amount: Decimal | None  # None: everything
    kind: ClassVar[str] = "repay"
    operator: ClassVar[bool] = False


@dataclass(frozen=True)
class RepayWithCollateral:
    pid: int
    amount: Decimal | None  # None: everything
    quote: CollateralQuote | None = None  # set by the preview: Confirm sells at this rate or not at all
    kind: ClassVar[str] = "repay_collateral"
    operator: ClassVar[bool] = False


@dataclass(frozen=True)
class Close:
    pid: int
    kind: ClassVar[str] = "close"
    operator: ClassVar[bool] = False


@dataclass(frozen=True)
class Transfer:
    """Move funds between the borrower's own Spot and Earn wallets (``/earn``, ``/redeem``)."""

    asset: str
    amount: Decimal
    to: str  # earn | spot
    kind: ClassVar[str] = "transfer"
    operator: ClassVar[bool] = False


@dataclass(frozen=True)
class Credit:
    user: str
    amount: Decimal
    asset: str
    kind: ClassVar[str] = "credit"
    operator: ClassVar[bool] = True


@dataclass(frozen=True)
class Debit:
    user: str
    amount: Decimal
    asset: str
    kind: ClassVar[str] = "debit"
    operator: ClassVar[bool] = True


@dataclass(frozen=True)
class SetRate:
    asset: str
    apr: Decimal
    kind: ClassVar[str] = "setrate"
    operator: ClassVar[bool] = True


@dataclass(frozen=True)
class IssueTermSheet:
    user: str
    loan: tuple[str, ...]
    rate: str  # fixed | flexible
    apr: Decimal
    initial: Decimal
    margin_call: Decimal
    liquidation_ltv: Decimal
    collateral: Mapping[str, Decimal]
    liquidation: str = "full"
    delay: int = 0
    min_order: Decimal = Decimal(50000)
    max_borrow: Decimal | None = None
    warning: Decimal | None = None
    kind: ClassVar[str] = "vip"
    operator: ClassVar[bool] = True


@dataclass(frozen=True)
class ResumeLiquidations:
    """An operator lets a wave paused by the circuit breaker through."""

    note: str = field(default="")
    kind: ClassVar[str] = "resume"
    operator: ClassVar[bool] = True


Action = (Borrow | AddCollateral | WithdrawCollateral | Repay | RepayWithCollateral | Close | Transfer | Credit
          | Debit | SetRate | IssueTermSheet | ResumeLiquidations)
TYPES: dict[str, type[Any]] = {t.kind: t for t in (Borrow, AddCollateral, WithdrawCollateral, Repay,
                                                    RepayWithCollateral, Close, Transfer, Credit, Debit, SetRate,
                                                    IssueTermSheet, ResumeLiquidations)}


def position_of(action: Action) -> int | None:
    """The position an action works on, if any (its numbers are shown before and after)."""
    pid = getattr(action, "pid", None)
    return pid if isinstance(pid, int) else None


# ----------------------------------------------------------------- stored as JSON (Decimals as strings)


def encode(action: Action) -> str:
    return json.dumps({f.name: _encode(getattr(action, f.name)) for f in fields(action)})


def decode(kind: str, text: str) -> Action:
    cls = TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown action kind {kind!r}")
    values = {k: _decode(v) for k, v in json.loads(text).items()}
    if "loan" in values and isinstance(values["loan"], list):
        values["loan"] = tuple(values["loan"])
    action: Action = cls(**values)
    return action


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    if isinstance(value, datetime):
        return {"$t": value.isoformat()}
    if isinstance(value, CollateralQuote):
        return {"$q": {f.name: _encode(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$d" in value:
            return Decimal(value["$d"])
        if "$t" in value:
            return datetime.fromisoformat(value["$t"])
        if "$q" in value:
            return CollateralQuote(**{k: _decode(v) for k, v in value["$q"].items()})
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value
