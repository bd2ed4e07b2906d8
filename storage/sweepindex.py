"""The SQL side of the sweep index (``domain.sweepindex``): keeping ``sweep_index`` in step with positions, and
the range query that gives a tick's candidates.

``write`` runs whenever ``SqlBook`` writes a changed position, in the same transaction. ``candidate_ids`` is
one statement: the tick's bands go in as a ``VALUES`` list joined to ``sweep_index`` on the index
``(state, grp, k)``, one range per (group, state, bound), plus the margin calls whose reminder is due and the
direct rows. Its cost is O(groups × log n + candidates), whatever the size of the book. Accounts with a
personal warning level are read from their own index and their positions filtered with the same predicate.

``k`` is the exact 48-digit key of ``domain.sweepindex.key``: equal-width digit text sorts numerically on both
databases (which the exact ``Money`` text of SQLite would not) and no float is involved. It selects candidates
only, with the margin that ``domain.sweepindex`` explains; nothing is decided on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from domain.positions import Position
from domain.sweepindex import Entry, State, SweepPlan, entry_of
from storage.tables import accounts, sweep_index

CHUNK = 1000


def row_of(p: Position, entry: Entry) -> dict[str, Any]:
    return {"position_id": p.id, "owner": p.owner, "state": int(entry.state), "grp": entry.group, "k": entry.k,
            "called_at": entry.called_at}


def write(db: Connection, p: Position) -> None:
    """Bring ``p``'s row up to date (removed once the sweep has nothing left to judge: closed, no collateral)."""
    entry = entry_of(p)
    if entry is None:
        db.execute(delete(sweep_index).where(sweep_index.c.position_id == p.id))
        return
    values = row_of(p, entry)
    done = db.execute(_UPDATE, {"pid": p.id, **{f"v_{k}": v for k, v in values.items() if k != "position_id"}})
    if done.rowcount == 0:
        db.execute(_INSERT, values)


# built once: the values are parameters (a sweep writes one row per crossing)
_UPDATE = (update(sweep_index).where(sweep_index.c.position_id == bindparam("pid"))
           .values({c: bindparam(f"v_{c}", type_=sweep_index.c[c].type)
                    for c in ("owner", "state", "grp", "k", "called_at")}))
_INSERT = insert(sweep_index)


def candidate_ids(db: Connection, plan: SweepPlan) -> set[int]:
    """Ids of every position ``plan`` admits, by the index (see the module docstring)."""
    sql, params = candidate_statement(db, plan)
    if db.dialect.name == "postgresql":
        # The planner cannot know how few rows a band's range holds, estimates hundreds per band, and above
        # jit_above_cost compiles the statement: 25 ms of JIT for 3 ms of index reads. Off for this transaction.
        db.exec_driver_sql("SET LOCAL jit = off")
    found = {row[0] for row in db.exec_driver_sql(sql, params)}
    return found | _personal(db, plan)


def candidate_statement(db: Connection, plan: SweepPlan) -> tuple[str, tuple[Any, ...]]:
    """The range query of ``candidate_ids`` as driver SQL and its parameters (for ``EXPLAIN`` too)."""
    groups = sorted(plan.bands)
    params: list[Any] = []
    for g in groups:
        b = plan.bands[g]
        params += [g, b.rise, b.escalate, b.rearm, b.liquidate, b.clear]
    params.append(_stored_time(db, plan.remind_before))
    sql = _query(len(groups), "?" if db.dialect.paramstyle == "qmark" else "%s", db.dialect.name == "postgresql")
    return sql, tuple(params)


def _stored_time(db: Connection, when: datetime) -> Any:
    """``when`` as ``UtcDateTime`` stores it: on SQLite the text SQLAlchemy writes (compared as text)."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.%f") if db.dialect.name == "sqlite" else utc


@lru_cache(maxsize=8)
def _query(n: int, mark: str, lateral: bool = False) -> str:
    """The statement for ``n`` bands, as driver SQL (built once: a tick binds about 800 numbers).

    Each band must be one index range scan, ``(state, grp) = (…, b.grp) AND k ⋛ b.bound``, looked up once per
    band. On SQLite ``b CROSS JOIN s`` fixes that loop order (the few bands outside, the index inside). PostgreSQL
    would plan the same join as a hash join over a sequential scan of the quiet rows (nearly the whole book), so
    there each band reads the index in a ``LATERAL`` subquery, kept from being flattened into a join by
    ``OFFSET 0``, which can only be a nested loop driven by ``b``: an index range scan per band.
    """
    ranges = ""
    if n:
        dbl = f"CAST({mark} AS VARCHAR(49))"
        rows = ", ".join(f"(CAST({mark} AS VARCHAR(80)), {dbl}, {dbl}, {dbl}, {dbl}, {dbl})" for _ in range(n))
        if lateral:
            band = ("SELECT x.position_id FROM b CROSS JOIN LATERAL (SELECT s.position_id FROM sweep_index s "
                    "WHERE s.state = {state} AND s.grp = b.grp AND {cond} OFFSET 0) x")
        else:
            band = ("SELECT s.position_id FROM b CROSS JOIN sweep_index s WHERE s.state = {state} AND s.grp = b.grp "
                    "AND {cond}")
        parts = [band.format(state=int(State.QUIET), cond="s.k >= b.rise"),
                 band.format(state=int(State.WARNED), cond="s.k >= b.escalate"),
                 band.format(state=int(State.WARNED), cond="s.k < b.rearm"),
                 band.format(state=int(State.CALLED), cond="s.k >= b.liquidate"),
                 band.format(state=int(State.CALLED), cond="s.k < b.clear")]
        ranges = (f"WITH b (grp, rise, escalate, rearm, liquidate, clear) AS (VALUES {rows}) "
                  + " UNION ALL ".join(parts) + " UNION ALL ")
    return (ranges + f"SELECT position_id FROM sweep_index WHERE called_at <= {mark} AND state = {int(State.CALLED)} "
            f"UNION ALL SELECT position_id FROM sweep_index WHERE state = {int(State.DIRECT)}")


def _personal(db: Connection, plan: SweepPlan) -> set[int]:
    """Positions of borrowers whose personal warning level moves their bands, filtered with that level."""
    levels: dict[str, Decimal] = {}
    for owner, level in db.execute(select(accounts.c.id, accounts.c.warning_ltv)
                                   .where(accounts.c.warning_ltv.is_not(None))):
        if any(plan.is_personal(g, level) for g in plan.groups):
            levels[owner] = level
    found: set[int] = set()
    owners = sorted(levels)
    for start in range(0, len(owners), CHUNK):
        rows = db.execute(select(sweep_index).where(sweep_index.c.owner.in_(owners[start:start + CHUNK])))
        for r in rows:
            entry = Entry(State(r.state), r.grp, r.k, r.called_at)
            if plan.admits(entry, levels[r.owner]):
                found.add(r.position_id)
    return found


def backfill(db: Connection, found: Iterable[Position]) -> int:
    """Write the rows of ``found`` (a rebuild, or the migration of an existing book); returns how many."""
    rows = [row_of(p, e) for p in found if (e := entry_of(p)) is not None]
    for start in range(0, len(rows), CHUNK):
        db.execute(insert(sweep_index), rows[start:start + CHUNK])
    return len(rows)

