"""The double-entry ledger: every movement of funds is an entry whose postings sum to zero per asset.

Sign convention (credit-positive): what the desk owes or has earned is positive — borrowers' Spot wallets,
pledged collateral, the Earn pool, fee and interest income; what the desk holds or is owed is negative — its
custody of deposits (``desk:cash``) and its receivables (``desk:loans``). A borrower's wallet can therefore
never be below zero, and the whole book sums to zero per asset at every moment.

Accounts:
  spot:<owner>         a borrower's Spot wallet
  collateral:<pos>     Spot-sourced collateral pledged to a position
  earn:pool            every Earn holding (wallets and Earn-pledged collateral; ownership is kept in shares)
  desk:cash            the desk's custody counterpart of deposits and withdrawals
  desk:loans           receivables: −(sum of all debts)
  desk:interest        interest income          desk:late_fees   late-fee income
  desk:fees            liquidation fees         desk:earn        Earn rewards paid (negative)
  desk:liquidations    collateral sold in liquidations (collateral in, loan asset paid to desk:loans)
  desk:conversions     collateral sold to repay a loan at the quoted rate (spread included)
  desk:rounding        sub-unit remainders of settlement (debts rounded up, payouts rounded down)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from domain.money import ZERO, exact


class UnbalancedEntry(ValueError):
    """An entry whose postings do not sum to zero for some asset."""


@dataclass(frozen=True)
class Posting:
    account: str
    asset: str
    amount: Decimal


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str
    postings: tuple[Posting, ...]
    position: int | None = None
    memo: str = ""

    def __post_init__(self) -> None:
        sums: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for p in self.postings:
            sums[p.asset] += p.amount
        bad = {a: s for a, s in sums.items() if s != 0}
        if bad:
            raise UnbalancedEntry(f"entry {self.kind} does not balance: {bad}")


@dataclass
class EntryBuilder:
    """Collects postings for one entry; zero amounts are dropped."""

    at: datetime
    kind: str
    position: int | None = None
    memo: str = ""
    postings: list[Posting] = field(default_factory=list)

    def move(self, asset: str, amount: Decimal, source: str, target: str) -> EntryBuilder:
        """Move ``amount`` of ``asset`` from ``source`` to ``target`` (credit-positive accounts)."""
        amount = exact(amount)
        if amount != 0:
            self.postings.append(Posting(source, asset, -amount))
            self.postings.append(Posting(target, asset, amount))
        return self

    def build(self) -> Entry:
        return Entry(self.at, self.kind, tuple(self.postings), self.position, self.memo)


def spot(owner: str) -> str:
    return f"spot:{owner}"


def collateral(position: int) -> str:
    return f"collateral:{position}"


EARN_POOL = "earn:pool"
CASH = "desk:cash"
LOANS = "desk:loans"
INTEREST = "desk:interest"
LATE_FEES = "desk:late_fees"
FEES = "desk:fees"
EARN_REWARDS = "desk:earn"
LIQUIDATIONS = "desk:liquidations"
CONVERSIONS = "desk:conversions"
ROUNDING = "desk:rounding"


def is_customer_account(account: str) -> bool:
    """Accounts that hold a borrower's funds and may never go below zero."""
    return account.startswith(("spot:", "collateral:")) or account == EARN_POOL
