"""VIP term sheets (SPEC §6): what an operator agreed with one borrower, stored and versioned.

A sheet names the loan assets, the rate (a fixed APR, or a spread over the asset's flexible rate), the LTV
levels, the collateral assets with their ratios, caps, the minimum first order, the liquidation mode
(``full`` or ``partial``) and an optional liquidation delay. A new sheet for the same borrower is a new
version; open positions keep the version they were opened under (``Position.vip_sheet``).

VIP debt compounds hourly like Flexible debt, in its own index per (borrower, sheet version, loan asset):
``rate_key(asset)``. For a fixed sheet the index grows at the sheet's APR; for a flexible one at the asset's
flexible APR in force at that hour plus the spread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from domain.markets import Thresholds

RATES = ("fixed", "flexible")
LIQUIDATION_MODES = ("full", "partial")
DEFAULT_MIN_ORDER = Decimal(50000)
KEY_MARK = "@vip:"


@dataclass(frozen=True)
class TermSheet:
    owner: str
    loan_assets: tuple[str, ...]
    rate: str  # "fixed" | "flexible"
    apr: Decimal  # the fixed APR, or the spread over the flexible APR
    initial_ltv: Decimal
    margin_call_ltv: Decimal
    liquidation_ltv: Decimal
    collateral: Mapping[str, Decimal]  # asset → collateral ratio
    liquidation: str = "full"  # "full" | "partial"
    liquidation_delay_minutes: int = 0
    min_order: Decimal = DEFAULT_MIN_ORDER  # the first order's value in USDT
    max_borrow: Decimal | None = None  # cap on the borrower's total VIP debt value in USDT (None: none)
    max_collateral: Mapping[str, Decimal] = field(default_factory=dict)  # per-asset pledge caps
    warning_ltv: Decimal | None = None
    version: int = 0  # set by issue_term_sheet: 1, 2, …
    issued_at: datetime | None = None
    issued_by: str | None = None

    def rate_key(self, asset: str) -> str:
        """The debt index of this sheet's ``asset`` loans."""
        return f"{asset}{KEY_MARK}{self.owner}:v{self.version}"

    def thresholds(self, default_warning: Decimal, fee: Decimal) -> Thresholds:
        warning = self.warning_ltv
        if warning is None:
            warning = default_warning if self.initial_ltv < default_warning < self.margin_call_ltv \
                else self.initial_ltv + (self.margin_call_ltv - self.initial_ltv) / 2
        return Thresholds(self.initial_ltv, warning, self.margin_call_ltv, self.liquidation_ltv, fee)


def loan_asset_of(key: str) -> str:
    """The loan asset a debt index key counts in (``USDT@vip:alice:v1`` → ``USDT``)."""
    return key.split(KEY_MARK, 1)[0]

