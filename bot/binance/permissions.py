"""Is this API key read-only? Names every enabled permission that could trade, transfer or withdraw.

loandesk only reads (SPEC §9), so it keeps a key only when ``enableReading`` is on and nothing else that can
move money is. The answer of ``GET /sapi/v1/account/apiRestrictions`` is a set of booleans; the names below are
the ones a person sees on Binance → API Management → Edit restrictions, so the bot can say exactly which box
to untick. A boolean Binance adds later that we do not know is treated as a write permission (shown by its
field name): refusing a harmless key is a nuisance, keeping a key that can trade is not recoverable.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.binance.models import ApiRestrictions

READING = "enableReading"

# Field → the label on Binance's API Management page.
WRITE_PERMISSIONS: dict[str, str] = {
    "enableWithdrawals": "Enable Withdrawals",
    "enableInternalTransfer": "Enable Internal Transfer",
    "permitsUniversalTransfer": "Permits Universal Transfer",
    "enableSpotAndMarginTrading": "Enable Spot & Margin Trading",
    "enableMargin": "Enable Margin Loan, Repay & Transfer",
    "enableFutures": "Enable Futures",
    "enableVanillaOptions": "Enable European Options",
    "enablePortfolioMarginTrading": "Enable Portfolio Margin Trading",
    "enableFixApiTrade": "Enable FIX API Trading",
}

# Booleans that cannot move anything.
READ_ONLY_FLAGS = frozenset({READING, "enableFixReadOnly", "ipRestrict"})


def _flags(restrictions: ApiRestrictions | Mapping[str, object]) -> Mapping[str, object]:
    return restrictions.flags if isinstance(restrictions, ApiRestrictions) else restrictions


def write_permissions(restrictions: ApiRestrictions | Mapping[str, object]) -> list[str]:
    """Every enabled permission that can trade, transfer or withdraw, by its API Management label, in the
    page's order; unknown enabled booleans last, by field name. Empty means the key cannot write."""
    flags = _flags(restrictions)
    known = [label for name, label in WRITE_PERMISSIONS.items() if flags.get(name) is True]
    unknown = sorted(
        name for name, value in flags.items()
        if value is True and name not in WRITE_PERMISSIONS and name not in READ_ONLY_FLAGS
    )
    return known + unknown


def can_read(restrictions: ApiRestrictions | Mapping[str, object]) -> bool:
    """``enableReading`` is on (without it the loan endpoints answer -2015)."""
    return _flags(restrictions).get(READING) is True


def refusal(restrictions: ApiRestrictions | Mapping[str, object]) -> str | None:
    """Why a key must not be kept, as a sentence for the borrower; ``None`` when it is read-only and can read."""
    writes = write_permissions(restrictions)
    if writes:
        listed = ", ".join(f"“{name}”" for name in writes)
        return (f"This API key can move money ({listed}). Switch {'these' if len(writes) > 1 else 'it'} off in "
                "Binance → API Management → Edit restrictions, keep only “Enable Reading”, and link it again.")
    if not can_read(restrictions):
        return "This API key cannot read your account. Switch on “Enable Reading” in Binance → API Management."
    return None
