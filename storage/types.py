"""Column types that keep money exact and time in UTC on both SQLite and PostgreSQL.

SQLite binds ``Numeric`` as a float (0.3 comes back as 0.29999999999999998), so ``Money`` stores the
Decimal's own text there and rebuilds it from that text: the round trip is exact, digit for digit. PostgreSQL
gets an unconstrained ``NUMERIC``, which psycopg 3 reads and writes as ``Decimal`` without loss (it may
normalise the exponent, ``1E+3`` → ``1000``, never the value). Floats are refused at the boundary.

SQLite also drops ``tzinfo``; ``UtcDateTime`` accepts only aware datetimes, stores them as UTC and hands
back aware UTC datetimes on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, Text
from sqlalchemy.types import TypeDecorator, TypeEngine


class Money(TypeDecorator[Decimal]):
    """An exact Decimal: TEXT on SQLite, NUMERIC (no precision or scale) elsewhere."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        number = _decimal(value)
        return str(number) if dialect.name == "sqlite" else number

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        if isinstance(value, str):
            return Decimal(value)
        raise TypeError(f"a money column returned {type(value).__name__} {value!r}, expected text or Decimal")

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        """For offline SQL (``alembic upgrade --sql``): quoted text on SQLite, a numeric literal elsewhere."""
        if value is None:
            return "NULL"
        number = _decimal(value)
        return f"'{number}'" if dialect.name == "sqlite" else str(number)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC; naive datetimes are refused (their zone is a guess)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__} {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware UTC datetime")
        utc = value.astimezone(UTC)
        # SQLite's DATETIME is text without an offset: store the UTC wall time (fixed width, so it sorts).
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"a timestamp column returned {type(value).__name__} {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool | float):
        raise TypeError(f"money must not pass through a float or bool: {value!r}")
    number = value if isinstance(value, Decimal) else Decimal(value) if isinstance(value, int | str) else None
    if number is None:
        raise TypeError(f"expected a Decimal, got {type(value).__name__} {value!r}")
    if not number.is_finite():
        raise ValueError(f"money must be finite, got {number}")
    return number
