"""``SqlBook``: the domain's ``Book`` port on SQL tables, inside one session (one transaction).

It behaves like ``domain.book.MemoryBook``: objects handed out are the book's own, kept in an identity map
so that ``get_position(5)`` twice gives the same object within a unit of work; the ``save_*`` methods write
them at once (so later queries see them) and ``flush()`` writes anything handed out and changed but not
saved, as ``MemoryBook`` would have kept it. Queries match on the live objects, not on stale rows.
``post`` keeps ``balances`` in step with the journal and refuses to take a borrower's account below zero.
Events go to the outbox table in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from domain.book import Book
from domain.events import Event
from domain.ledger import Entry, Posting, is_customer_account
from domain.money import ZERO
from domain.positions import ACTIVE, Account, Position, Product
from domain.rates import MarketState
from domain.sweepindex import SweepPlan, entry_of
from domain.termsheet import TermSheet
from storage import mapping, sweepindex
from storage.protection import ProtectionTables
from storage.tables import (
    POSITION_COUNTER,
    accounts,
    balances,
    counters,
    desk_settings,
    earn_shares,
    holdings,
    journal_entries,
    markets,
    outbox,
    positions,
    postings,
    rate_points,
    sweep_index,
    term_sheets,
)

Clock = Callable[[], datetime]
ACTIVE_VALUES = sorted(s.value for s in ACTIVE)


def utc_now() -> datetime:
    return datetime.now(UTC)


class SqlBook(ProtectionTables):
    """A complete ``Book`` over the tables of ``storage.tables``; see the module docstring.

    Protection rules and price alerts come from ``storage.protection.ProtectionTables``."""

    def __init__(self, session: Session, clock: Clock = utc_now) -> None:
        self.session = session
        self.clock = clock
        self.emitted: list[Event] = []
        self._positions: dict[int, Position] = {}
        self._position_rows: dict[int, tuple[mapping.Values, mapping.HoldingValues]] = {}
        self._markets: dict[str, MarketState] = {}
        self._market_rows: dict[str, tuple[mapping.Values, mapping.RateValues]] = {}
        self._accounts: dict[str, Account] = {}
        self._account_rows: dict[str, Decimal | None] = {}
        self._no_account: set[str] = set()  # owners read and found without an accounts row
        self._markets_loaded = False
        self._sheets: list[TermSheet] | None = None  # every sheet, read once per unit of work

    @property
    def db(self) -> Connection:
        return self.session.connection()

    # ------------------------------------------------------------------ ledger and wallets

    def balance(self, account: str, asset: str) -> Decimal:
        amount = self.db.execute(select(balances.c.amount).where(
            balances.c.account == account, balances.c.asset == asset)).scalar_one_or_none()
        return ZERO if amount is None else amount

    def post(self, entry: Entry) -> None:
        keys = {(p.account, p.asset) for p in entry.postings}
        stored: dict[tuple[str, str], Decimal] = {}
        if keys:
            rows = self.db.execute(select(balances.c.account, balances.c.asset, balances.c.amount)
                                   .where(tuple_(balances.c.account, balances.c.asset).in_(sorted(keys)))
                                   .with_for_update())
            stored = {(r.account, r.asset): r.amount for r in rows}
        running = {k: stored.get(k, ZERO) for k in keys}
        for p in entry.postings:  # posting by posting, exactly as MemoryBook checks them
            running[(p.account, p.asset)] += p.amount
            if is_customer_account(p.account) and running[(p.account, p.asset)] < 0:
                raise AssertionError(f"{p.account} {p.asset} would go negative in {entry.kind}")
        # statements built once, values as parameters (a crash tick posts a thousand entries: no per-row compile)
        written = self.db.execute(_insert_statement(journal_entries), {
            "at": entry.at, "kind": entry.kind, "position": entry.position, "memo": entry.memo}).inserted_primary_key
        assert written is not None
        entry_id = written[0]
        if entry.postings:
            self.db.execute(_insert_statement(postings), [{"entry_id": entry_id, "account": p.account,
                                                           "asset": p.asset, "amount": p.amount}
                                                          for p in entry.postings])
        changed = [{"k_account": account, "k_asset": asset, "v_amount": amount}
                   for (account, asset), amount in sorted(running.items()) if (account, asset) in stored]
        added = [{"account": account, "asset": asset, "amount": amount}
                 for (account, asset), amount in sorted(running.items()) if (account, asset) not in stored]
        if changed:
            self.db.execute(_update_statement(balances, ("account", "asset"), ("amount",)), changed)
        if added:
            self.db.execute(_insert_statement(balances), added)

    def earn_shares(self, owner: str, asset: str) -> Decimal:
        shares = self.db.execute(select(earn_shares.c.shares).where(
            earn_shares.c.owner == owner, earn_shares.c.asset == asset)).scalar_one_or_none()
        return ZERO if shares is None else shares

    def set_earn_shares(self, owner: str, asset: str, shares: Decimal) -> None:
        self._upsert(earn_shares, {"owner": owner, "asset": asset}, {"shares": shares})

    # ------------------------------------------------------------------ accounts

    def account(self, owner: str) -> Account:
        if owner in self._accounts:
            return self._accounts[owner]
        if owner in self._no_account:
            return Account(owner)
        row = self.db.execute(_ACCOUNT_QUERY, {"owner": owner}).one_or_none()
        if row is None:
            self._no_account.add(owner)  # only ``save_account`` writes the table, and it maps the account
            return Account(owner)  # a fresh default each time, like MemoryBook, until it is saved
        account = Account(owner, row.warning_ltv)
        self._accounts[owner] = account
        self._account_rows[owner] = row.warning_ltv
        return account

    def save_account(self, account: Account) -> None:
        self._accounts[account.id] = account
        self._write_account(account)

    # ------------------------------------------------------------------ market state

    def market(self, key: str) -> MarketState | None:
        if not self._markets_loaded:
            self._load_markets()
        return self._markets.get(key)

    def save_market(self, state: MarketState) -> None:
        self._markets[state.asset] = state
        self._write_market(state)

    # ------------------------------------------------------------------ positions

    def new_position_id(self) -> int:
        bumped = self.db.execute(update(counters).where(counters.c.name == POSITION_COUNTER)
                                 .values(value=counters.c.value + 1).returning(counters.c.value))
        value = bumped.scalar_one_or_none()
        if value is None:  # tables made without the migration's seed row: start after the largest id
            value = int(self.db.execute(select(func.coalesce(func.max(positions.c.id), 0))).scalar_one()) + 1
            self.db.execute(insert(counters).values(name=POSITION_COUNTER, value=value))
        return int(value)

    def save_position(self, position: Position) -> None:
        self._positions[position.id] = position
        self._write_position(position)

    def get_position(self, pid: int) -> Position | None:
        if pid in self._positions:
            return self._positions[pid]
        found = self._load(positions.c.id == pid)
        return found[0] if found else None

    def get_positions(self, pids: Sequence[int]) -> list[Position]:
        """The positions of ``pids`` that exist, in that order, in a query per ``CHUNK`` ids."""
        ids = list(pids)
        found: dict[int, Position] = {}
        for start in range(0, len(ids), sweepindex.CHUNK):
            found.update((p.id, p) for p in self._load(positions.c.id.in_(ids[start:start + sweepindex.CHUNK])))
        return [found[pid] for pid in ids if pid in found]

    def find_flexible(self, owner: str, loan: str, collateral: str) -> Position | None:
        rows = self._load(and_(positions.c.owner == owner, positions.c.product == Product.FLEXIBLE.value,
                               positions.c.loan_asset == loan, positions.c.status.in_(ACTIVE_VALUES)))
        for p in self._with_mapped(rows):
            if (p.owner == owner and p.product is Product.FLEXIBLE and p.loan_asset == loan
                    and p.status in ACTIVE and collateral in p.collateral):
                return p
        return None

    def positions_of(self, owner: str) -> list[Position]:
        rows = self._load(positions.c.owner == owner)
        return [p for p in self._with_mapped(rows) if p.owner == owner]

    def active_positions(self) -> Iterable[Position]:
        rows = self._load(positions.c.status.in_(ACTIVE_VALUES))
        return [p for p in self._with_mapped(rows) if p.status in ACTIVE]

    def active_fixed(self) -> Iterable[Position]:
        """Active Fixed loans, by the index on (product, status): a tick reads these, never the whole book."""
        rows = self._load(and_(positions.c.product == Product.FIXED.value, positions.c.status.in_(ACTIVE_VALUES)))
        return [p for p in self._with_mapped(rows) if p.status in ACTIVE and p.product is Product.FIXED]

    # ------------------------------------------------------------------ events (the outbox)

    def emit(self, event: Event) -> None:
        self.db.execute(_OUTBOX_INSERT, mapping.event_values(event, self.clock()))
        self.emitted.append(event)

    # ------------------------------------------------------------------ VIP term sheets

    def save_term_sheet(self, sheet: TermSheet) -> None:
        values = mapping.sheet_values(sheet)
        self._upsert(term_sheets, {"owner": sheet.owner, "version": sheet.version},
                     {k: v for k, v in values.items() if k not in ("owner", "version")})
        self._sheets = None

    def term_sheet(self, owner: str, version: int | None = None) -> TermSheet | None:
        versions = self.term_sheets(owner)
        if version is None:
            return versions[-1] if versions else None
        return next((s for s in versions if s.version == version), None)

    def term_sheets(self, owner: str | None = None) -> list[TermSheet]:
        """By borrower, then version (sorted here: database collations do not sort like Python)."""
        if self._sheets is None:
            rows = self.db.execute(select(term_sheets)).mappings()
            self._sheets = sorted((mapping.sheet_from(r) for r in rows), key=lambda s: (s.owner, s.version))
        return [s for s in self._sheets if owner is None or s.owner == owner]

    # ------------------------------------------------------------------ the risk sweep's candidates

    def sweep_candidates(self, plan: SweepPlan) -> list[Position]:
        """Positions ``plan`` admits, by id: the index range query (``storage.sweepindex``), plus positions already
        handed out in this unit of work that ``plan`` admits on their live (maybe not yet written) values."""
        indexed = sweepindex.candidate_ids(self.db, plan)
        live = set()
        for pid, p in self._positions.items():
            entry = entry_of(p)
            if pid not in indexed and entry is not None and plan.admits(entry, self.account(p.owner).warning_ltv):
                live.add(pid)
        ids = sorted(indexed | live)
        found: list[Position] = []
        for start in range(0, len(ids), sweepindex.CHUNK):
            found += self._load(positions.c.id.in_(ids[start:start + sweepindex.CHUNK]))
        self._read_accounts({p.owner for p in found})  # the sweep reads each owner's warning level
        return [p for p in found if p.active]

    def _read_accounts(self, owners: Iterable[str]) -> None:
        """Map the accounts of ``owners`` not read yet in one query per thousand, not one per owner."""
        unread = sorted(o for o in owners if o not in self._accounts and o not in self._no_account)
        for start in range(0, len(unread), sweepindex.CHUNK):
            chunk = unread[start:start + sweepindex.CHUNK]
            rows = {r.id: r.warning_ltv for r in self.db.execute(
                select(accounts.c.id, accounts.c.warning_ltv).where(accounts.c.id.in_(chunk)))}
            for owner in chunk:
                if owner in rows:
                    self._accounts[owner] = Account(owner, rows[owner])
                    self._account_rows[owner] = rows[owner]
                else:
                    self._no_account.add(owner)

    def count_watched(self) -> dict[str, int]:
        """Active positions in the sweep index per single collateral asset ("" for the directly judged ones)."""
        self.flush()
        counts: dict[str, int] = {}
        for grp, n in self.db.execute(select(sweep_index.c.grp, func.count()).group_by(sweep_index.c.grp)):
            key = grp.split("/")[1] if grp.count("/") == 2 else ""
            counts[key] = counts.get(key, 0) + int(n)
        return counts

    # ------------------------------------------------------------------ desk settings

    def setting(self, key: str) -> str | None:
        value = self.db.execute(select(desk_settings.c.value).where(desk_settings.c.key == key)).scalar_one_or_none()
        return None if value is None else str(value)

    def save_setting(self, key: str, value: str | None) -> None:
        self.db.execute(delete(desk_settings).where(desk_settings.c.key == key))
        if value is not None:
            self.db.execute(insert(desk_settings).values(key=key, value=value, updated_at=self.clock()))

    # ------------------------------------------------------------------ reading the whole book

    def owners(self) -> list[str]:
        spot = self.db.execute(select(balances.c.account).where(balances.c.account.like("spot:%")).distinct())
        names = {a.split(":", 1)[1] for a in spot.scalars()}
        names |= set(self.db.execute(select(earn_shares.c.owner).distinct()).scalars())
        return sorted(names)

    def all_balances(self) -> dict[tuple[str, str], Decimal]:
        rows = self.db.execute(select(balances.c.account, balances.c.asset, balances.c.amount))
        return {(r.account, r.asset): r.amount for r in rows}

    def all_earn_shares(self) -> dict[tuple[str, str], Decimal]:
        rows = self.db.execute(select(earn_shares.c.owner, earn_shares.c.asset, earn_shares.c.shares))
        return {(r.owner, r.asset): r.shares for r in rows}

    def all_positions(self) -> list[Position]:
        return self._with_mapped(self._load(None))

    def market_keys(self) -> list[str]:
        if not self._markets_loaded:
            self._load_markets()
        return sorted(self._markets)

    def journal(self) -> list[Entry]:
        """Every entry in the order it was posted (for checks and audits, not for hot paths)."""
        by_entry: dict[int, list[Posting]] = {}
        for r in self.db.execute(select(postings).order_by(postings.c.id)):
            by_entry.setdefault(r.entry_id, []).append(Posting(r.account, r.asset, r.amount))
        return [Entry(r.at, r.kind, tuple(by_entry.get(r.id, ())), r.position, r.memo)
                for r in self.db.execute(select(journal_entries).order_by(journal_entries.c.id))]

    # ------------------------------------------------------------------ unit-of-work support

    def flush(self) -> None:
        """Write every object handed out that changed since it was read or saved."""
        for account in self._accounts.values():
            self._write_account(account)
        for state in self._markets.values():
            self._write_market(state)
        for p in self._positions.values():
            self._write_position(p)

    def forget(self) -> None:
        """Drop the identity map and the emitted list (after a commit or a rollback)."""
        self.emitted = []
        self._sheets = None
        self._markets_loaded = False
        self._no_account.clear()
        for cache in (self._positions, self._position_rows, self._markets, self._market_rows, self._accounts,
                      self._account_rows):
            cache.clear()

    # ------------------------------------------------------------------ writing

    def _write_account(self, account: Account) -> None:
        if account.id in self._account_rows and self._account_rows[account.id] == account.warning_ltv:
            return
        self._upsert(accounts, {"id": account.id}, {"warning_ltv": account.warning_ltv})
        self._account_rows[account.id] = account.warning_ltv

    def _write_market(self, state: MarketState) -> None:
        values, rates = mapping.market_values(state), mapping.rate_values(state)
        before = self._market_rows.get(state.asset)
        if before is not None and before == (values, rates):
            return
        if before is None or before[0] != values:
            self._upsert(markets, {"key": state.asset}, {k: v for k, v in values.items() if k != "key"})
        # The history only grows at its end (a same-hour change replaces the last point): rewrite the tail.
        old = before[1] if before is not None else None
        keep = _common_prefix(old, rates) if old is not None else 0
        if old is None or keep < len(old):
            self.db.execute(delete(rate_points).where(rate_points.c.market_key == state.asset,
                                                      rate_points.c.seq >= keep))
        if keep < len(rates):
            self.db.execute(insert(rate_points), [
                {"market_key": state.asset, "seq": i, "effective_from": t, "apr": apr}
                for i, (t, apr) in enumerate(rates) if i >= keep])
        self._market_rows[state.asset] = (values, rates)

    def _write_position(self, p: Position) -> None:
        values, held = mapping.position_values(p), mapping.holding_values(p)
        before = self._position_rows.get(p.id)
        if before is not None and before == (values, held):
            return
        if before is None or before[0] != values:
            self._upsert(positions, {"id": p.id}, {k: v for k, v in values.items() if k != "id"})
        if before is None or before[1] != held:
            self.db.execute(delete(holdings).where(holdings.c.position_id == p.id))
            if held:
                self.db.execute(insert(holdings), [
                    {"position_id": p.id, "asset": asset, "ordinal": i, "spot": spot, "earn_shares": shares}
                    for i, (asset, spot, shares) in enumerate(held)])
        sweepindex.write(self.db, p)  # the sweep's k and alert state, in the same transaction
        self._position_rows[p.id] = (values, held)

    def _upsert(self, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        """UPDATE, else INSERT, through statements built once per (table, key columns, value columns): the
        values go in as parameters, so SQLAlchemy neither rebuilds nor re-keys the statement per row."""
        params = {**{f"k_{k}": v for k, v in key.items()}, **{f"v_{k}": v for k, v in values.items()}}
        done = self.db.execute(_update_statement(table, tuple(key), tuple(values)), params)
        if done.rowcount == 0:
            self.db.execute(_insert_statement(table), {**key, **values})

    # ------------------------------------------------------------------ reading

    def _load_markets(self) -> None:
        """Every market state in two queries: each action's interest catch-up reads them all anyway."""
        rates: dict[str, list[mapping.RowLike]] = {}
        for r in self.db.execute(select(rate_points).order_by(rate_points.c.market_key, rate_points.c.seq)).mappings():
            rates.setdefault(r["market_key"], []).append(r)
        for row in self.db.execute(select(markets)).mappings():
            key = row["key"]
            if key not in self._markets:  # keep an object already handed out (saved earlier in this unit)
                state = mapping.market_from(row, rates.get(key, []))
                self._markets[key] = state
                self._market_rows[key] = (mapping.market_values(state), mapping.rate_values(state))
        self._markets_loaded = True


    def _load(self, where: ColumnElement[bool] | None) -> list[Position]:
        """Positions matching ``where`` (all if None), by id; ones already handed out are reused as they are."""
        query = select(positions).order_by(positions.c.id)
        held_query = (select(holdings).join(positions, holdings.c.position_id == positions.c.id)
                      .order_by(holdings.c.position_id, holdings.c.ordinal))
        if where is not None:
            query, held_query = query.where(where), held_query.where(where)
        rows = self.db.execute(query).mappings().all()
        if all(r["id"] in self._positions for r in rows):
            return [self._positions[r["id"]] for r in rows]
        held: dict[int, list[mapping.RowLike]] = {}
        for h in self.db.execute(held_query).mappings():
            held.setdefault(h["position_id"], []).append(h)
        found: list[Position] = []
        for row in rows:
            pid = row["id"]
            if pid not in self._positions:
                p = mapping.position_from(row, held.get(pid, []))
                self._positions[pid] = p
                self._position_rows[pid] = (mapping.position_values(p), mapping.holding_values(p))
            found.append(self._positions[pid])
        return found

    def _with_mapped(self, loaded: list[Position]) -> list[Position]:
        """``loaded`` plus every position already handed out, by id (the caller filters on live values)."""
        seen = {p.id: p for p in loaded}
        seen.update(self._positions)
        return [seen[pid] for pid in sorted(seen)]


def as_book(book: SqlBook) -> Book:
    """``book`` as the domain's port; also where mypy proves ``SqlBook`` has every ``Book`` method."""
    return book


_ACCOUNT_QUERY = select(accounts.c.warning_ltv).where(accounts.c.id == bindparam("owner"))
_OUTBOX_INSERT = insert(outbox)


@lru_cache(maxsize=64)
def _update_statement(table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Executable:
    """``UPDATE table SET columns WHERE keys``, parameters ``k_<key>`` and ``v_<column>``."""
    return (update(table).where(*[table.c[k] == bindparam(f"k_{k}", type_=table.c[k].type) for k in keys])
            .values({c: bindparam(f"v_{c}", type_=table.c[c].type) for c in columns}))


@lru_cache(maxsize=64)
def _insert_statement(table: Table) -> Executable:
    return insert(table)


def _common_prefix(a: mapping.RateValues, b: mapping.RateValues) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
