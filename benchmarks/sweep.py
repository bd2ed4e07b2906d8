"""``python -m benchmarks.sweep --positions N [--json] [--database URL]``: the risk sweep by index against a
full scan, and the hourly accrual against updating every position, on a book of N open flexible positions.

The book is written straight into the tables (``executemany`` in batches) from ``Position`` objects through
``storage.mapping`` and ``domain.sweepindex.entry_of``: the rows are the ones the engine would write. LTVs are
spread uniformly over [0.30, 0.80) at the start prices, over every shipped (loan, collateral) pair, 10% of the
collateral pledged from Earn. Each tick lowers one collateral's price by a step sized so that about 80
positions cross the 80% warning level (at most 100); a tick is ``sweep(desk, prices, now)`` in its own unit of
work, commit included. The full scan streams every active position with its holdings and judges it with exact
Decimals (the same levels); it is run ``--scan-ticks`` times because at a million rows one scan takes seconds.
Ledger rows for the bulk positions are not written: the benchmark only warns, it never liquidates.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random
from typing import Any

from sqlalchemy import Engine, insert, select, text, update

from benchmarks import report, throwaway_database
from domain import sweepindex
from domain.desk import Desk
from domain.markets import Catalog, load_catalog
from domain.money import ONE, exact
from domain.positions import Holding, Position, Product
from domain.rates import HOURS_PER_YEAR
from domain.watch.sweep import plan as sweep_plan
from domain.watch.sweep import sweep
from storage import UnitOfWork, mapping, migrate
from storage.book import ACTIVE_VALUES
from storage.sweepindex import row_of
from storage.tables import POSITION_COUNTER, counters, holdings, positions, sweep_index

T0 = datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)
PRICES = {"BTC": Decimal("60000"), "ETH": Decimal("3000"), "BNB": Decimal("600"), "SOL": Decimal("150"),
          "XRP": Decimal("0.6"), "ADA": Decimal("0.45"), "DOGE": Decimal("0.15"), "LTC": Decimal("80"),
          "USDT": Decimal(1), "USDC": Decimal(1), "FDUSD": Decimal(1)}
BATCH = 20_000
TARGET_CROSSINGS = 80


def pairs(catalog: Catalog) -> list[tuple[str, str]]:
    return [(loan, coll) for loan in catalog.loans for coll in catalog.collateral
            if coll != loan and not (catalog.is_stable(loan) and catalog.is_stable(coll))]


def book_positions(n: int, catalog: Catalog, seed: int = 7) -> Iterator[Position]:
    rng = Random(seed)
    shipped = pairs(catalog)
    for pid in range(1, n + 1):
        loan, coll = shipped[pid % len(shipped)]
        amount = Decimal(rng.randrange(10_000, 10_000_000)) / Decimal(10) ** 6 * 1000 / PRICES[coll]
        amount = amount.quantize(Decimal("0.00000001"))
        ltv = Decimal(rng.randrange(300_000, 800_000)) / Decimal(1_000_000)
        shares = exact(ltv * amount * PRICES[coll] / PRICES[loan])
        held = Holding(earn_shares=amount) if pid % 10 == 0 else Holding(amount)
        yield Position(pid, f"u{pid % 200_000}", Product.FLEXIBLE, loan, T0 - timedelta(days=30),
                       debt_shares=shares, principal=shares, collateral={coll: held}, rate_key=loan,
                       updated_at=T0 - timedelta(days=30))


def build(engine: Engine, n: int, catalog: Catalog) -> None:
    """Markets through the engine, then N positions (rows, holdings, index rows) in bulk."""
    with UnitOfWork(engine, clock=lambda: T0) as uow:
        desk = Desk(catalog, uow.book)
        for asset in {*catalog.loans, *catalog.collateral}:
            desk.market(asset, T0)
        uow.commit()
    debt: dict[str, Decimal] = {}
    earn: dict[str, Decimal] = {}
    with engine.begin() as conn:
        chunk: list[Position] = []
        for p in book_positions(n, catalog):
            debt[p.loan_asset] = debt.get(p.loan_asset, Decimal(0)) + p.debt_shares
            for asset, h in p.collateral.items():
                earn[asset] = earn.get(asset, Decimal(0)) + h.earn_shares
            chunk.append(p)
            if len(chunk) == BATCH:
                _write(conn, chunk)
                chunk = []
        _write(conn, chunk)
        conn.execute(update(counters).where(counters.c.name == POSITION_COUNTER).values(value=n))
    with UnitOfWork(engine, clock=lambda: T0) as uow:
        for key, shares in debt.items():
            state = uow.book.market(key)
            assert state is not None
            state.debt_shares += shares
        for key, shares in earn.items():
            state = uow.book.market(key)
            assert state is not None
            state.earn_shares += shares
        uow.commit()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def _write(conn: Any, chunk: list[Position]) -> None:
    if not chunk:
        return
    conn.execute(insert(positions), [mapping.position_values(p) for p in chunk])
    conn.execute(insert(holdings), [{"position_id": p.id, "asset": a, "ordinal": i, "spot": s, "earn_shares": e}
                                    for p in chunk for i, (a, s, e) in enumerate(mapping.holding_values(p))])
    rows = [row_of(p, e) for p in chunk if (e := sweepindex.entry_of(p)) is not None]
    conn.execute(insert(sweep_index), rows)


def ticks(engine: Engine, catalog: Catalog, count: int) -> list[tuple[dict[str, Decimal], datetime]]:
    """Price ticks that each push about ``TARGET_CROSSINGS`` positions over the warning level."""
    with engine.connect() as conn:
        per_coll = dict(conn.execute(select(holdings.c.asset, text("count(*)")).group_by(holdings.c.asset)).all())
    movable = sorted(a for a in per_coll if not catalog.is_stable(a))
    prices = dict(PRICES)
    out = []
    for i in range(count):
        coll = movable[i % len(movable)]
        # LTVs are uniform on [0.30, 0.80): a relative drop δ lifts ≈ n × 0.80 × δ / 0.50 of them over 0.80
        # (at most 0.4% a tick: small books keep below the margin call, so the benchmark only warns)
        delta = min(Decimal(TARGET_CROSSINGS) * Decimal("0.5") / (Decimal("0.8") * per_coll[coll]), Decimal("0.004"))
        prices[coll] = (prices[coll] * (ONE - delta)).quantize(Decimal("0.00000001"))
        out.append((dict(prices), T0 + timedelta(seconds=10 * (i + 1))))
    return out


def scan(engine: Engine, catalog: Catalog, prices: dict[str, Decimal], now: datetime) -> set[int]:
    """Every active position read and judged exactly: the detection the sweep did before the index."""
    gap = catalog.desk.rearm_gap
    found: set[int] = set()
    with UnitOfWork(engine) as uow:
        desk = Desk(catalog, uow.book)
        desk.accrue(now)
        debt_index = {a: desk.market(a, now).debt_index for a in catalog.loans}
        earn_index = {a: desk.earn_index(a, now) for a in catalog.collateral}
        levels = {a: catalog.thresholds("flexible", a) for a in catalog.collateral}
        query = (select(positions.c.id, positions.c.loan_asset, positions.c.debt_shares, positions.c.warned,
                        positions.c.margin_call, holdings.c.asset, holdings.c.spot, holdings.c.earn_shares)
                 .join(holdings, holdings.c.position_id == positions.c.id)
                 .where(positions.c.status.in_(ACTIVE_VALUES)))
        for r in uow.session.connection().execution_options(yield_per=BATCH).execute(query):
            amount = r.spot + exact(r.earn_shares * earn_index[r.asset]) if r.earn_shares else r.spot
            ltv = exact(r.debt_shares * debt_index[r.loan_asset]) * prices[r.loan_asset] / (amount * prices[r.asset])
            th = levels[r.asset]
            if r.margin_call:
                hit = ltv >= th.liquidation or ltv < th.margin_call - gap
            elif r.warned:
                hit = ltv >= th.margin_call or ltv < th.warning - gap
            else:
                hit = ltv >= th.warning
            if hit:
                found.add(r.id)
        uow.rollback()
    return found


def accrual_by_index(engine: Engine, catalog: Catalog, hour: datetime) -> float:
    start = time.perf_counter()
    with UnitOfWork(engine, clock=lambda: hour) as uow:
        Desk(catalog, uow.book).accrue(hour)
        uow.commit()
    return (time.perf_counter() - start) * 1000


def accrual_row_by_row(engine: Engine, catalog: Catalog) -> float:
    """The same hour applied to every position's own debt (what the index avoids); rolled back afterwards."""
    apr = {a: m.flexible_apr for a, m in catalog.loans.items()}
    start = time.perf_counter()
    with engine.connect() as conn:
        tx = conn.begin()
        last = 0
        while True:
            rows = conn.execute(select(positions.c.id, positions.c.loan_asset, positions.c.debt_shares)
                                .where(positions.c.id > last, positions.c.status.in_(ACTIVE_VALUES))
                                .order_by(positions.c.id).limit(BATCH)).all()
            if not rows:
                break
            last = rows[-1].id
            new = [(r.id, exact(r.debt_shares * (ONE + apr[r.loan_asset] / HOURS_PER_YEAR))) for r in rows]
            conn.execute(update(positions).where(positions.c.id == text(":pid")).values(debt_shares=text(":debt")),
                         [{"pid": pid, "debt": str(d) if conn.dialect.name == "sqlite" else d} for pid, d in new])
        elapsed = (time.perf_counter() - start) * 1000
        tx.rollback()
    return elapsed


def _fixed(now: datetime) -> Callable[[], datetime]:
    return lambda: now


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    catalog = load_catalog()
    tmp = tempfile.TemporaryDirectory(prefix="loandesk-bench-")
    try:
        with throwaway_database(args.database, Path(tmp.name), "bench") as db:
            engine = db.engine
            migrate(engine)
            t = time.perf_counter()
            build(engine, args.positions, catalog)
            build_s = time.perf_counter() - t
            sweep_ms: list[float] = []
            detect_ms: list[float] = []
            scan_ms: list[float] = []
            crossings: list[int] = []
            agree = True
            plan_ticks = ticks(engine, catalog, args.ticks)
            scan_every = max(1, len(plan_ticks) // max(1, args.scan_ticks))
            for i, (prices, now) in enumerate(plan_ticks):
                with UnitOfWork(engine, clock=_fixed(now)) as uow:
                    desk = Desk(catalog, uow.book)
                    desk.accrue(now)
                    t = time.perf_counter()
                    candidates = {p.id for p in uow.book.sweep_candidates(sweep_plan(desk, prices, now))}
                    detect_ms.append((time.perf_counter() - t) * 1000)
                    uow.rollback()
                if i % scan_every == 0 and len(scan_ms) < args.scan_ticks:
                    t = time.perf_counter()
                    scanned = scan(engine, catalog, prices, now)
                    scan_ms.append((time.perf_counter() - t) * 1000)
                    agree = agree and scanned <= candidates
                t = time.perf_counter()
                with UnitOfWork(engine, clock=_fixed(now)) as uow:
                    events = sweep(Desk(catalog, uow.book), prices, now)
                    uow.commit()
                sweep_ms.append((time.perf_counter() - t) * 1000)
                crossings.append(len(events))
            last = plan_ticks[-1][1]
            hours = [last.replace(minute=0, second=0, microsecond=0) + timedelta(hours=h + 1)
                     for h in range(args.ticks)]
            accrual = [accrual_by_index(engine, catalog, h) for h in hours]
            per_row = [accrual_row_by_row(engine, catalog) for _ in range(args.row_runs)]
    finally:
        tmp.cleanup()
    sweep_p50, scan_p50 = statistics.median(sweep_ms), statistics.median(scan_ms)
    accrual_ms, per_row_ms = statistics.median(accrual), statistics.median(per_row)
    return {"positions": args.positions, "sweep_p50_ms": round(sweep_p50, 2),
            "sweep_p99_ms": round(pct(sweep_ms, 0.99), 2),
            "scan_p50_ms": round(scan_p50, 1), "ratio": round(scan_p50 / sweep_p50, 1),
            "accrual_ms": round(accrual_ms, 2), "per_row_accrual_ms": round(per_row_ms, 1),
            "accrual_ratio": round(per_row_ms / accrual_ms, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "detect_p50_ms": round(statistics.median(detect_ms), 2), "accrual_p99_ms": round(pct(accrual, 0.99), 2),
            "ticks": len(sweep_ms), "scan_ticks": len(scan_ms), "max_crossings": max(crossings),
            "scan_within_candidates": agree, "build_s": round(build_s, 1),
            "database": engine.dialect.name}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=60, help="sweep ticks and hourly accruals (≥ 50)")
    parser.add_argument("--scan-ticks", type=int, default=None, help="full scans (default 50, 5 above 50k rows)")
    parser.add_argument("--row-runs", type=int, default=None, help="row-by-row accruals (default 5, 1 above 100k)")
    parser.add_argument("--database", help="a PostgreSQL URL (a fresh schema is made and dropped)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.scan_ticks is None:
        args.scan_ticks = 50 if args.positions <= 50_000 else 5
    if args.row_runs is None:
        args.row_runs = 5 if args.positions <= 100_000 else 1
    result = run(args)
    report(result, args.json)
    return 0 if result["scan_within_candidates"] else 1


if __name__ == "__main__":
    sys.exit(main())
