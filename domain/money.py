"""Money: Decimal amounts parsed from text, rounded per asset only at the edges.

Amounts are ``decimal.Decimal`` built from strings, never floats. Ledger movements of real funds use the
asset's precision (8 decimals by default); internal accumulators (debts, indices, Earn shares) keep the full
working precision and are fixed to 18 decimal places when posted. Debts round *up* when settled, payouts to
the borrower round *down*.
"""

from __future__ import annotations

import decimal
import re
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

# Debts times indices reach 30+ significant digits (1e12 USDT at 18 decimals); the default 28 would raise on
# quantize. Set once for this thread and for threads created later.
decimal.DefaultContext.prec = 50
decimal.getcontext().prec = 50

ZERO = Decimal(0)
ONE = Decimal(1)
ACCUMULATOR_PLACES = 18
ACCUMULATOR = Decimal(1).scaleb(-ACCUMULATOR_PLACES)

_PLAIN = re.compile(r"^\d*(\.\d+)?$", re.ASCII)  # "1000", "0.01", ".02"
_GROUPED = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$", re.ASCII)
MAX_WHOLE_DIGITS = 15  # a quadrillion: more than any order this desk takes, far below any column's width
MAX_DECIMALS = 18


class AmountError(ValueError):
    """Text that is not an amount a person could mean."""


def parse_amount(text: str) -> Decimal:
    """Parse ``1000``, ``1,000.50``, ``0.01`` or ``.02`` into a positive-or-zero Decimal.

    Rejects signs, exponents, ``nan``/``inf``, non-ASCII digits, misplaced thousands separators, empty text, and
    amounts longer than any order could be (15 whole digits, 18 decimals).
    """
    t = text.strip()
    if not t:
        raise AmountError("an amount is missing")
    if not (_PLAIN.match(t) or _GROUPED.match(t)) or t == ".":
        shown = t if len(t) <= 40 else t[:37] + "…"
        raise AmountError(f"'{shown}' is not an amount (write it like 1000, 1,000.50 or 0.01)")
    whole, _, decimals = t.replace(",", "").partition(".")
    if len(whole.lstrip("0")) > MAX_WHOLE_DIGITS:
        raise AmountError(f"that amount has more than {MAX_WHOLE_DIGITS} digits before the point; no order is "
                          "that large")
    if len(decimals) > MAX_DECIMALS:
        raise AmountError(f"that amount has more than {MAX_DECIMALS} decimal places")
    return Decimal(t.replace(",", ""))


def to_decimal(value: str | int | Decimal) -> Decimal:
    """A Decimal from a string, int or Decimal; floats are refused because they are already inexact."""
    if isinstance(value, (bool, float)):
        raise TypeError(f"money must not pass through a float: {value!r}")
    try:
        d = Decimal(value)
    except decimal.InvalidOperation as exc:
        raise AmountError(f"'{value}' is not a number") from exc
    if not d.is_finite():
        raise AmountError(f"'{value}' is not a finite number")
    return d


def quantum(places: int) -> Decimal:
    return Decimal(1).scaleb(-places)


def round_down(x: Decimal, places: int) -> Decimal:
    """Round toward zero to ``places`` decimals: what a borrower is paid."""
    return x.quantize(quantum(places), rounding=ROUND_DOWN)


def round_up(x: Decimal, places: int) -> Decimal:
    """Round away from zero to ``places`` decimals: what a borrower owes when it is settled."""
    # Working-precision noise (1e-40) must not cost a whole unit, so fix the accumulator first.
    return exact(x).quantize(quantum(places), rounding=ROUND_UP)


def exact(x: Decimal) -> Decimal:
    """Fix an internal accumulator value to 18 decimal places (banker's rounding)."""
    return x.quantize(ACCUMULATOR, rounding=ROUND_HALF_EVEN)


def decimals_of(x: Decimal) -> int:
    exp = x.normalize().as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def fmt(x: Decimal) -> str:
    """Plain text without exponent or trailing zeros: ``30000``, ``1.3``, ``0``."""
    if x == 0:
        return "0"
    s = format(x.normalize(), "f")
    return s


def pct(x: Decimal) -> str:
    """A ratio as people read it: one decimal and a percent sign (``0.6`` → ``60.0%``; infinite: ``∞``)."""
    if x.is_infinite():
        return "∞"
    return f"{(x * 100).quantize(Decimal('0.1'))}%"


def fmt_ratio(x: Decimal, places: int = 4) -> str:
    """A ratio (LTV, APR) rounded half-even to ``places`` decimals, trailing zeros dropped."""
    return fmt(x.quantize(quantum(places), rounding=ROUND_HALF_EVEN))
