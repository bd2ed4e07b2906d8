"""Positions (loans), what they hold, and the records that hang on them.

A position's debt is kept as *scaled* shares of its loan asset's debt index (``debt = shares × index``), so an
hour's interest changes one number per asset and never touches a position. Fixed positions do not compound:
their index is 1. Collateral pledged from Spot is an exact amount; collateral pledged from Earn is kept as
Earn shares and keeps earning (``amount = shares × earn index``).

The records a borrower keeps beside positions live here too, below the desk and the storage port that keep
them: an ``Account`` (the personal warning level), a ``PriceAlert`` (``/alert price``) and a ``ProtectionRule``
(``/protect``). The rules that act on them are in ``domain.watch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from domain.money import ZERO


class Product(StrEnum):
    FLEXIBLE = "flexible"
    FIXED = "fixed"
    VIP = "vip"


class Status(StrEnum):
    OPEN = "open"
    OVERDUE = "overdue"
    CLOSED = "closed"
    LIQUIDATED = "liquidated"
    LIQUIDATED_WITH_DEBT = "liquidated_with_debt"


ACTIVE = frozenset({Status.OPEN, Status.OVERDUE})


class Source(StrEnum):
    SPOT = "spot"
    EARN = "earn"


@dataclass
class Holding:
    """One collateral asset of a position: an exact Spot-sourced amount plus Earn shares."""

    spot: Decimal = ZERO
    earn_shares: Decimal = ZERO

    def amount(self, earn_index: Decimal) -> Decimal:
        return self.spot + self.earn_shares * earn_index

    @property
    def empty(self) -> bool:
        return self.spot == 0 and self.earn_shares == 0


@dataclass
class RiskState:
    """Which alerts are armed. A level fires once on crossing and re-arms 2 points below it."""

    warned: bool = False
    margin_call: bool = False
    margin_call_at: datetime | None = None
    liquidation_pending_since: datetime | None = None


@dataclass
class FixedTerms:
    """What a Fixed (or fixed-rate VIP) loan agreed to: term, APR, expiry and what happens then."""

    term_days: int
    apr: Decimal
    expires_at: datetime
    interest: Decimal
    auto_repay: bool = True
    auto_renew: bool = False
    convert_to_flexible: bool = False
    late_fees: Decimal = ZERO
    late_fee_hours: int = 0
    reminders_sent: list[str] = field(default_factory=list)


@dataclass
class Position:
    id: int
    owner: str
    product: Product
    loan_asset: str
    opened_at: datetime
    debt_shares: Decimal = ZERO
    principal: Decimal = ZERO
    collateral: dict[str, Holding] = field(default_factory=dict)
    status: Status = Status.OPEN
    risk: RiskState = field(default_factory=RiskState)
    rate_key: str | None = None  # which debt index the shares are in; None: not compounding (index 1)
    fixed: FixedTerms | None = None
    vip_sheet: int | None = None
    closed_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def collateral_assets(self) -> list[str]:
        return [a for a, h in self.collateral.items() if not h.empty]

    @property
    def single_collateral(self) -> str | None:
        assets = self.collateral_assets
        return assets[0] if len(assets) == 1 else None


@dataclass
class Account:
    """A borrower's settings (wallet balances live in the ledger)."""

    id: str
    warning_ltv: Decimal | None = None


@dataclass(frozen=True)
class PriceAlert:
    """``/alert price <id> <pct>``: ``distance`` is a fraction (0.1 = within 10% of the margin-call price)."""

    position: int
    owner: str
    distance: Decimal
    armed: bool = True


PROTECTION_MODES = ("topup", "repay")
DEFAULT_PROTECTION_LIMIT = 3


@dataclass
class ProtectionRule:
    """One position's ``/protect`` rule (at most one per position) and how many actions it took on ``used_day``."""

    position: int
    owner: str
    trigger: Decimal
    target: Decimal
    mode: str  # "topup" | "repay"
    daily_limit: int = DEFAULT_PROTECTION_LIMIT
    used_day: str | None = None  # UTC date, ISO
    used_count: int = 0
    created_at: datetime | None = None

    def used_on(self, now: datetime) -> int:
        return self.used_count if self.used_day == now.date().isoformat() else 0

    def left_on(self, now: datetime) -> int:
        return max(self.daily_limit - self.used_on(now), 0)
