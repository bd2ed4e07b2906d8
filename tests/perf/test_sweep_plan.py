"""The sweep's candidate query is planned as index range scans on both databases (issue 12, item 6): every band
reads ``sweep_index`` through ``(state, grp, k)`` with ``k`` in the index condition, and nothing reads the whole
table — so a planner change (or an index that tempts it) is caught here, not by a benchmark at a million rows.
A modest bulk book, a few sweeps (so warned rows exist that the statistics gathered after the load do not
know about, as in production between two auto-analyses), then ``EXPLAIN``; on PostgreSQL once more after
``ANALYZE``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine

from benchmarks.sweep import build, ticks
from domain.desk import Desk
from domain.markets import load_catalog
from domain.watch.sweep import plan as sweep_plan
from domain.watch.sweep import sweep
from storage import UnitOfWork
from storage.sweepindex import candidate_statement

CATALOG = load_catalog()
POSITIONS = 20_000
INDEX = "ix_sweep_index_state_group_k"
BANDS = 5  # quiet → warn, warned → call, warned → re-arm, called → liquidate, called → clear


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def explain(engine: Engine, prices: dict[str, Any], now: Any) -> list[Any]:
    with UnitOfWork(engine) as uow:
        desk = Desk(CATALOG, uow.book)
        desk.accrue(now)
        db = uow.session.connection()
        sql, params = candidate_statement(db, sweep_plan(desk, prices, now))
        if engine.dialect.name == "postgresql":
            rows = db.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params).scalar_one()
            document = rows if isinstance(rows, list) else json.loads(rows)
            out = list(nodes(document[0]["Plan"]))
        else:
            out = [row[3] for row in db.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
        uow.rollback()
    return out


def assert_range_scans(engine: Engine, prices: dict[str, Any], now: Any) -> None:
    plan = explain(engine, prices, now)
    if engine.dialect.name == "postgresql":
        on_index = [n for n in plan if n.get("Relation Name") == "sweep_index"]
        assert not [n for n in on_index if n["Node Type"] in ("Seq Scan", "Bitmap Heap Scan")], plan
        ranges = [n for n in on_index if n.get("Index Name") == INDEX and "(k)::text" in n.get("Index Cond", "")]
        assert len(ranges) == BANDS, [(n["Node Type"], n.get("Index Name"), n.get("Index Cond")) for n in on_index]
        assert all("grp" in n["Index Cond"] and "state" in n["Index Cond"] for n in ranges)
        assert not [n for n in plan if n["Node Type"] == "Hash Join"], "a band joined by hash: a scan of the book"
    else:
        ranges = [d for d in plan if d.startswith(("SEARCH s USING INDEX " + INDEX, "SEARCH s USING COVERING INDEX "
                                                   + INDEX)) and ("k>" in d or "k<" in d)]
        assert len(ranges) == BANDS, plan
        assert not [d for d in plan if d.startswith("SCAN") and ("sweep_index" in d or d.startswith("SCAN s"))], plan


def test_every_band_is_an_index_range_scan(db_engine: Engine) -> None:
    build(db_engine, POSITIONS, CATALOG)  # ANALYZE on PostgreSQL after the load
    planned = ticks(db_engine, CATALOG, 4)
    for prices, now in planned[:3]:  # warnings the statistics do not know about yet
        with UnitOfWork(db_engine) as uow:
            assert sweep(Desk(CATALOG, uow.book), prices, now)
            uow.commit()
    prices, now = planned[3]
    assert_range_scans(db_engine, prices, now)
    if db_engine.dialect.name == "postgresql":
        with db_engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        assert_range_scans(db_engine, prices, now)
