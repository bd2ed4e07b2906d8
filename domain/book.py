"""The ``Book`` port: where the desk keeps its state, and an in-memory implementation of it.

The desk reads and writes state only through this interface; ``storage/`` implements it on SQLModel (SQLite
or PostgreSQL) inside one transaction per action, and ``MemoryBook`` implements it in memory for the
simulator and the domain tests. Objects handed out are the book's own: the desk validates everything before
it changes anything, then calls the ``save_*`` methods.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Protocol

from domain.events import Event
from domain.ledger import Entry, is_customer_account
from domain.money import ZERO
from domain.positions import ACTIVE, Account, Position, PriceAlert, Product, ProtectionRule
from domain.rates import MarketState
from domain.sweepindex import SweepPlan, entry_of
from domain.termsheet import TermSheet


class Book(Protocol):
    # ledger and wallets
    def balance(self, account: str, asset: str) -> Decimal: ...
    def post(self, entry: Entry) -> None: ...
    def earn_shares(self, owner: str, asset: str) -> Decimal: ...
    def set_earn_shares(self, owner: str, asset: str, shares: Decimal) -> None: ...
    # accounts
    def account(self, owner: str) -> Account: ...
    def save_account(self, account: Account) -> None: ...
    # market state
    def market(self, key: str) -> MarketState | None: ...
    def save_market(self, state: MarketState) -> None: ...
    # positions
    def new_position_id(self) -> int: ...
    def save_position(self, position: Position) -> None: ...
    def get_position(self, pid: int) -> Position | None: ...
    def get_positions(self, pids: Sequence[int]) -> list[Position]: ...  # those that exist, in the order asked
    def find_flexible(self, owner: str, loan: str, collateral: str) -> Position | None: ...
    def positions_of(self, owner: str) -> list[Position]: ...
    def active_positions(self) -> Iterable[Position]: ...
    def active_fixed(self) -> Iterable[Position]: ...  # active Fixed loans only: what every tick's expiry step reads
    # events (the outbox)
    def emit(self, event: Event) -> None: ...
    # VIP term sheets, versioned per borrower
    def save_term_sheet(self, sheet: TermSheet) -> None: ...
    def term_sheet(self, owner: str, version: int | None = None) -> TermSheet | None: ...
    def term_sheets(self, owner: str | None = None) -> list[TermSheet]: ...
    # the risk sweep's candidates: every active position ``plan`` admits, by id
    def sweep_candidates(self, plan: SweepPlan) -> list[Position]: ...
    # how many active positions the sweep watches, per single collateral asset ("" for the others)
    def count_watched(self) -> dict[str, int]: ...
    # small named values the desk keeps between ticks (the circuit breaker's state)
    def setting(self, key: str) -> str | None: ...
    def save_setting(self, key: str, value: str | None) -> None: ...
    # the borrower's auto-protection rules and price alerts, one of each per position (SPEC §8)
    def protection_rules(self, owner: str | None = None) -> list[ProtectionRule]: ...
    def save_protection_rule(self, rule: ProtectionRule) -> None: ...
    def delete_protection_rule(self, position: int) -> None: ...
    def price_alerts(self, owner: str | None = None) -> list[PriceAlert]: ...
    def save_price_alert(self, alert: PriceAlert) -> None: ...
    def delete_price_alert(self, position: int) -> None: ...


class MemoryBook:
    """A complete ``Book`` in dictionaries, with the journal kept for checks."""

    def __init__(self) -> None:
        self.balances: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        self.journal: list[Entry] = []
        self.shares: dict[tuple[str, str], Decimal] = {}
        self.accounts: dict[str, Account] = {}
        self.markets: dict[str, MarketState] = {}
        self.positions: dict[int, Position] = {}
        self.events: list[Event] = []
        self.sheets: dict[str, list[TermSheet]] = {}
        self.protection: dict[int, ProtectionRule] = {}
        self.alerts: dict[int, PriceAlert] = {}
        self.settings: dict[str, str] = {}
        self._next_id = 0

    def balance(self, account: str, asset: str) -> Decimal:
        return self.balances.get((account, asset), ZERO)

    def post(self, entry: Entry) -> None:
        after: dict[tuple[str, str], Decimal] = {}
        for p in entry.postings:
            key = (p.account, p.asset)
            after[key] = after.get(key, self.balance(*key)) + p.amount
            if is_customer_account(p.account) and after[key] < 0:
                raise AssertionError(f"{p.account} {p.asset} would go negative in {entry.kind}")
        self.balances.update(after)  # all or nothing, like a database transaction
        self.journal.append(entry)

    def earn_shares(self, owner: str, asset: str) -> Decimal:
        return self.shares.get((owner, asset), ZERO)

    def set_earn_shares(self, owner: str, asset: str, shares: Decimal) -> None:
        self.shares[(owner, asset)] = shares

    def account(self, owner: str) -> Account:
        return self.accounts.get(owner) or Account(owner)

    def save_account(self, account: Account) -> None:
        self.accounts[account.id] = account

    def market(self, key: str) -> MarketState | None:
        return self.markets.get(key)

    def save_market(self, state: MarketState) -> None:
        self.markets[state.asset] = state

    def new_position_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def save_position(self, position: Position) -> None:
        self.positions[position.id] = position

    def get_position(self, pid: int) -> Position | None:
        return self.positions.get(pid)

    def get_positions(self, pids: Sequence[int]) -> list[Position]:
        return [self.positions[pid] for pid in pids if pid in self.positions]

    def find_flexible(self, owner: str, loan: str, collateral: str) -> Position | None:
        for p in self.positions.values():
            if (p.owner == owner and p.product is Product.FLEXIBLE and p.loan_asset == loan
                    and p.status in ACTIVE and collateral in p.collateral):
                return p
        return None

    def positions_of(self, owner: str) -> list[Position]:
        return [p for p in self.positions.values() if p.owner == owner]

    def active_positions(self) -> Iterable[Position]:
        return [p for p in self.positions.values() if p.status in ACTIVE]

    def active_fixed(self) -> Iterable[Position]:
        return [p for p in self.active_positions() if p.product is Product.FIXED]

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def save_term_sheet(self, sheet: TermSheet) -> None:
        versions = self.sheets.setdefault(sheet.owner, [])
        versions[:] = [s for s in versions if s.version != sheet.version]
        versions.append(sheet)
        versions.sort(key=lambda s: s.version)

    def term_sheet(self, owner: str, version: int | None = None) -> TermSheet | None:
        versions = self.sheets.get(owner, [])
        if version is None:
            return versions[-1] if versions else None
        return next((s for s in versions if s.version == version), None)

    def term_sheets(self, owner: str | None = None) -> list[TermSheet]:
        owners = sorted(self.sheets) if owner is None else [owner]
        return [s for o in owners for s in self.sheets.get(o, [])]

    def protection_rules(self, owner: str | None = None) -> list[ProtectionRule]:
        return [r for _, r in sorted(self.protection.items()) if owner is None or r.owner == owner]

    def save_protection_rule(self, rule: ProtectionRule) -> None:
        self.protection[rule.position] = rule

    def delete_protection_rule(self, position: int) -> None:
        self.protection.pop(position, None)

    def price_alerts(self, owner: str | None = None) -> list[PriceAlert]:
        return [a for _, a in sorted(self.alerts.items()) if owner is None or a.owner == owner]

    def save_price_alert(self, alert: PriceAlert) -> None:
        self.alerts[alert.position] = alert

    def delete_price_alert(self, position: int) -> None:
        self.alerts.pop(position, None)

    def sweep_candidates(self, plan: SweepPlan) -> list[Position]:
        """A scan applying the same filter as storage's index query (the maths under test, not the speed)."""
        found = []
        for p in self.active_positions():
            entry = entry_of(p)
            if entry is not None and plan.admits(entry, self.account(p.owner).warning_ltv):
                found.append(p)
        return found

    def count_watched(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.active_positions():
            if entry_of(p) is not None:
                key = p.single_collateral or ""
                counts[key] = counts.get(key, 0) + 1
        return counts

    def setting(self, key: str) -> str | None:
        return self.settings.get(key)

    def save_setting(self, key: str, value: str | None) -> None:
        if value is None:
            self.settings.pop(key, None)
        else:
            self.settings[key] = value

    def owners(self) -> list[str]:
        names = {a.split(":", 1)[1] for a, _ in self.balances if a.startswith("spot:")}
        names |= {o for o, _ in self.shares}
        return sorted(names)
