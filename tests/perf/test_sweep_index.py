"""The index sweep finds exactly what the full scan finds: on random books (Spot, Earn, mixed and
multi-collateral holdings, accrued interest, grown Earn indices, personal warning levels, positions warned or in
margin call, LTVs exactly on the levels), every position the full scan acts on is a candidate, and sweeping
the candidates gives the same events and the same states as sweeping everything — in memory, on SQLite and
on PostgreSQL."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine, delete, select

from domain.book import Book, MemoryBook
from domain.desk import Desk
from domain.events import Event
from domain.markets import load_catalog
from domain.positions import Holding, Position, Product, RiskState
from domain.sweepindex import DUST, State, entry_of, key
from domain.watch.sweep import plan as sweep_plan
from domain.watch.sweep import sweep
from storage import UnitOfWork
from storage.tables import TABLES, sweep_index
from tests.perf.books import T0, BookSpec, books, build, catalog_assets, tick

CATALOG = load_catalog()
catalog_assets(CATALOG)


def outcome(book: Book, events: list[Event]) -> tuple[list[tuple[object, ...]], dict[int, tuple[object, ...]]]:
    states = {p.id: (p.status, p.risk.warned, p.risk.margin_call, p.risk.margin_call_at, p.debt_shares)
              for p in book.active_positions()}
    return [(e.type, e.position, e.data) for e in events], states


def acted_on(book: Book, run: list[Event], before: dict[int, tuple[object, ...]]) -> set[int]:
    after = {p.id: (p.status, p.risk.warned, p.risk.margin_call, p.risk.margin_call_at) for p in
             (book.get_position(pid) for pid in before) if p is not None}
    return {e.position for e in run if e.position is not None} | {pid for pid in before if after[pid] != before[pid]}


def risk_of(book: Book) -> dict[int, tuple[object, ...]]:
    return {p.id: (p.status, p.risk.warned, p.risk.margin_call, p.risk.margin_call_at) for p in book.active_positions()}


@settings(max_examples=150, deadline=None)
@given(books)
def test_in_memory_the_candidates_cover_every_position_the_full_scan_acts_on(spec: BookSpec) -> None:
    desk = Desk(CATALOG, MemoryBook())
    build(desk, spec)
    prices, now = tick(spec)
    full_desk = Desk(CATALOG, copy.deepcopy(desk.book))
    desk.accrue(now)
    candidates = {p.id for p in desk.book.sweep_candidates(sweep_plan(desk, prices, now))}
    before = risk_of(full_desk.book)
    full = sweep(full_desk, prices, now, positions=full_desk.book.active_positions())
    assert acted_on(full_desk.book, full, before) <= candidates
    indexed = sweep(desk, prices, now)
    assert outcome(desk.book, indexed) == outcome(full_desk.book, full)


def _clean(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(TABLES):
            conn.execute(delete(table))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(books)
def test_on_sql_the_index_query_finds_what_the_full_scan_acts_on(db_engine: Engine, spec: BookSpec) -> None:
    _clean(db_engine)
    with UnitOfWork(db_engine) as uow:
        build(Desk(CATALOG, uow.book), spec)
        uow.commit()
    prices, now = tick(spec)
    with UnitOfWork(db_engine) as uow:  # what the index keeps is what the domain says about each position
        stored = {r.position_id: (r.state, r.grp, r.k, r.called_at) for r in uow.session.execute(select(sweep_index))}
        expected = {}
        for p in uow.book.active_positions():
            e = entry_of(p)
            if e is not None:
                expected[p.id] = (int(e.state), e.group, e.k, e.called_at)
        assert stored == expected
    with UnitOfWork(db_engine) as uow:
        desk = Desk(CATALOG, uow.book)
        desk.accrue(now)
        candidates = {p.id for p in uow.book.sweep_candidates(sweep_plan(desk, prices, now))}
        uow.book.forget()  # judge the scan on fresh rows, as a new tick would
        before = risk_of(uow.book)
        full = sweep(desk, prices, now, positions=uow.book.active_positions())
        assert acted_on(uow.book, full, before) <= candidates
        full_outcome = outcome(uow.book, full)
        uow.rollback()
    with UnitOfWork(db_engine) as uow:
        desk = Desk(CATALOG, uow.book)
        indexed = sweep(desk, prices, now)
        assert outcome(uow.book, indexed) == full_outcome
        uow.commit()
    with UnitOfWork(db_engine) as uow:  # and the index followed every state the sweep changed
        stored = {r.position_id: (r.state, r.k) for r in uow.session.execute(select(sweep_index))}
        live = {p.id: (int(e.state), e.k) for p in uow.book.active_positions() if (e := entry_of(p)) is not None}
        assert stored == live


def _flexible(pid: int, holding: Holding, shares: str = "100", **risk: object) -> Position:
    return Position(pid, "u", Product.FLEXIBLE, "USDT", T0, debt_shares=Decimal(shares),
                    collateral={"BTC": holding}, rate_key="USDT", risk=RiskState(**risk))  # type: ignore[arg-type]


@pytest.mark.parametrize(("position", "state", "group"), [
    (_flexible(1, Holding(Decimal("0.01"))), State.QUIET, "USDT/BTC/spot"),
    (_flexible(2, Holding(earn_shares=Decimal("0.01")), warned=True), State.WARNED, "USDT/BTC/earn"),
    (_flexible(3, Holding(Decimal("0.01")), warned=True, margin_call=True, margin_call_at=T0), State.CALLED,
     "USDT/BTC/spot"),
    (_flexible(4, Holding(Decimal("0.01"), Decimal("0.01"))), State.DIRECT, ""),  # Spot and Earn mixed
    (_flexible(5, Holding(DUST / 2)), State.DIRECT, ""),
    (_flexible(6, Holding(Decimal(1)), shares="0.0000000001"), State.DIRECT, ""),
])
def test_what_goes_to_the_direct_set(position: Position, state: State, group: str) -> None:
    e = entry_of(position)
    assert e is not None and (e.state, e.group) == (state, group)
    assert (e.k is None) == (state is State.DIRECT)


def test_fixed_vip_and_multi_collateral_positions_are_judged_directly() -> None:
    two = _flexible(1, Holding(Decimal(1)))
    two.collateral["ETH"] = Holding(Decimal(1))
    fixed = _flexible(2, Holding(Decimal(1)))
    fixed.product, fixed.rate_key = Product.FIXED, None
    vip = _flexible(3, Holding(Decimal(1)))
    vip.product, vip.rate_key = Product.VIP, "USDT@vip:u:v1"
    for p in (two, fixed, vip):
        e = entry_of(p)
        assert e is not None and e.state is State.DIRECT


def test_zero_debt_is_keyed_at_zero_and_never_rises() -> None:
    e = entry_of(_flexible(1, Holding(Decimal(1)), shares="0"))
    assert e is not None and e.state is State.QUIET and e.k == key(Decimal(0)) == "0" * 48


def test_the_migration_fills_the_index_for_positions_already_open(db_engine: Engine) -> None:
    from storage import sweepindex as sql_index

    spec = BookSpec([], {}, {"USDT": Decimal(1), "BTC": Decimal(1)}, {}, 0)
    with UnitOfWork(db_engine) as uow:
        build(Desk(CATALOG, uow.book), spec)
        for pid in range(3):
            uow.book.save_position(_flexible(uow.book.new_position_id(), Holding(Decimal(f"0.0{pid}1"))))
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        before = {r.position_id: r.k for r in uow.session.execute(select(sweep_index))}
        uow.session.execute(delete(sweep_index))
        assert sql_index.backfill(uow.session.connection(), uow.book.active_positions()) == 3
        assert {r.position_id: r.k for r in uow.session.execute(select(sweep_index))} == before
