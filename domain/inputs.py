"""Reading times and decimals out of files people write (scenarios, price histories): the one place.

Every problem raises ``InputError`` naming where it is (``steps[3].at``, ``BTC.csv line 12``) and what is wrong.
Decimals come from strings or integers, never from a float: a JSON float is refused with the fix.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from domain.errors import InputError
from domain.money import AmountError, to_decimal


def parse_time(value: Any, where: str) -> datetime:
    """An ISO-8601 time with a zone (``2026-01-01T00:00:00Z``) as an aware UTC datetime."""
    if not isinstance(value, str):
        raise InputError(f"{where}: a time must be an ISO-8601 string like 2026-01-01T00:00:00Z")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{where}: '{value}' is not an ISO-8601 time") from exc
    if t.tzinfo is None:
        raise InputError(f"{where}: '{value}' has no time zone (end it with Z)")
    return t.astimezone(UTC)


def iso(t: datetime) -> str:
    """A UTC time as the reports write it: ``2026-01-01T00:00:00Z``."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decimal_of(value: Any, where: str) -> Decimal:
    """A Decimal from a JSON string or integer; a JSON float is refused (it is already inexact)."""
    if isinstance(value, float):
        raise InputError(f'{where}: {value} is a JSON float; write decimals as strings ("{value}")')
    try:
        return to_decimal(value)
    except (AmountError, TypeError) as exc:
        raise InputError(f"{where}: {exc}") from exc
