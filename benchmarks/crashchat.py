"""``python -m benchmarks.crashchat --positions N [--database URL] [--json]``: the chat under a crash.

A book of N open positions (``benchmarks.sweep.build``, the sweep benchmark's book) plus ``--crash`` (1,000)
positions of Telegram users at 83% LTV, and ``--users`` (50) people with a healthy position each. The real bot
(``bot.entry.compose.build_application``: PTB polling the fake Bot API with Telegram's limits on, prices streamed
from the fake exchange, the notifier) runs in a process of its own (``--serve``), as in production; the people,
the fakes and the measuring run in this one, so they do not compete with the bot for its GIL. The people chat the
whole time — each sends a command (``/markets``, ``/positions``, ``/wallet``, ``/position N``, ``/alerts``,
``/help``; every tenth a ``/repay`` preview, a write), waits for the answer, thinks ``--think`` seconds (3–6), and
again. After ``--warmup`` seconds the collateral of the crash positions falls 10%: a tick margin-calls and
liquidates all of them, in parts of ``LOANDESK_TICK_PART_SECONDS``, and the notifier drains their pushes through
the same Telegram budget as the replies. Measured over the ``--seconds`` after the fall: reply latency (sending the
command at the fake → the first answer accepted by the fake) p50 / p95 / max, the event loop's stalls (a probe on
the bot's loop sleeps 10 ms again and again; a stall is how late it wakes), and the CPU cores each process used.

The think time decides whether the replies fit in Telegram's budget at all: 30 sends a second for the whole bot,
of which a push waiting keeps 10 (``bot.telegram.budget``). Fifty people thinking 3–6 s ask for about 11 replies
a second; thinking 1–2 s (``--think 1-2``) they ask for about 30, more than the budget leaves them while the
crash's pushes drain, and the replies then queue for their turn to be sent whatever the bot does.

The same run is made twice on the same book: with updates handled concurrently (per chat in order, the default),
then one at a time (PTB without ``concurrent_updates``), each with its own crash (BTC, then ETH collateral).
On PostgreSQL (``--database``) a throw-away schema is made and dropped, as ``benchmarks.sweep`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random
from typing import IO, Any

from sqlalchemy import Engine, func, select, update

from benchmarks import report, throwaway_database
from benchmarks import sweep as bulk
from benchmarks.sweep import PRICES, T0, pct
from bot.entry.compose import build_application
from bot.entry.run import run_app
from bot.service.store import StateStore
from bot.settings import Settings
from domain.desk import Desk
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import SHIPPED, Catalog, load_catalog
from domain.positions import Position
from domain.watch.sweep import sweep
from storage import UnitOfWork, migrate
from storage.engine import READ_ONLY
from storage.monitoring import Monitoring
from storage.tables import POSITION_COUNTER, counters, deliveries, outbox, positions
from tests.fakes.exchange import FakeExchange
from tests.fakes.telegram import FakeTelegram

TOKEN = "123:ABC"
OPERATOR = 1
FIRST_USER = 500
FIRST_OWNER = {"BTC": 100_000, "ETH": 200_000}
CRASH_LTV = Decimal("0.83")  # below the margin call (85%); 92% after a 10% fall: liquidated
OPENED_LTV = Decimal("0.75")  # under the initial LTV, when the collateral was worth 0.83 / 0.75 of today's price
FALL = Decimal("0.90")
LOAN = Decimal(1000)
PROBE_SECONDS = 0.01
LEASE_SECONDS = 120.0
COMMANDS = ("/markets", "/positions", "/wallet", "/position {pid}", "/alerts", "/help")


class Clock:
    """The desk's business time: the book's T0 plus real time elapsed since ``started`` (``time.time()``; the
    benchmark's and the bot's process share it), so accrual stays small."""

    def __init__(self, started: float | None = None) -> None:
        self.started = time.time() - 1.0 if started is None else started

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=time.time() - self.started)


def build(engine: Engine, n: int, catalog: Catalog) -> None:
    """``benchmarks.sweep``'s book of ``n`` positions (its generator and writer), without the collateral the crashes
    hit (BTC, ETH): the crash liquidates its own thousand positions, not a tenth of the bulk book as well."""
    with UnitOfWork(engine, clock=lambda: T0) as uow:
        desk = Desk(catalog, uow.book)
        for asset in {*catalog.loans, *catalog.collateral}:
            desk.market(asset, T0)
        uow.commit()
    kept = 0
    last = 0
    debt: dict[str, Decimal] = {}
    earn: dict[str, Decimal] = {}
    with engine.begin() as conn:
        chunk: list[Position] = []
        for p in bulk.book_positions(n * 2, catalog):
            if set(p.collateral) & set(FIRST_OWNER):
                continue
            debt[p.loan_asset] = debt.get(p.loan_asset, Decimal(0)) + p.debt_shares
            for asset, h in p.collateral.items():
                earn[asset] = earn.get(asset, Decimal(0)) + h.earn_shares
            chunk.append(p)
            kept += 1
            last = p.id
            if len(chunk) == bulk.BATCH:
                bulk._write(conn, chunk)
                chunk = []
            if kept == n:
                break
        bulk._write(conn, chunk)
        conn.execute(update(counters).where(counters.c.name == POSITION_COUNTER).values(value=last))
    with UnitOfWork(engine, clock=lambda: T0) as uow:  # the markets know what the bulk book owes and holds in Earn
        for totals, field in ((debt, "debt_shares"), (earn, "earn_shares")):
            for key, shares in totals.items():
                state = uow.book.market(key)
                assert state is not None
                setattr(state, field, getattr(state, field) + shares)
        uow.commit()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def open_positions(store: StateStore, catalog: Catalog, owners: list[int], coll: str, ltv: Decimal,
                   prices: dict[str, Decimal], now: datetime) -> list[int]:
    """One USDT loan each, secured by ``coll`` at ``ltv``, opened through the engine."""
    made: list[int] = []
    for start in range(0, len(owners), 200):
        with store.unit_of_work() as uow:
            desk = Desk(catalog, uow.domain_book)
            for owner in owners[start:start + 200]:
                qty = (LOAN / (ltv * prices[coll])).quantize(Decimal("0.00000001"))
                desk.deposit(str(owner), coll, qty, now)
                p, _ = borrow(desk, BorrowRequest(str(owner), "USDT", LOAN, {coll: qty}), prices, now)
                made.append(p.id)
            uow.commit()
    return made


def settle(store: StateStore, catalog: Catalog, prices: dict[str, Decimal], now: datetime) -> None:
    """The desk has swept at today's prices (the crash positions' warnings), everything told so far counts as told
    (each run starts clean), and the desk knows today's prices."""
    with store.unit_of_work() as uow:
        sweep(Desk(catalog, uow.domain_book), prices, now)
        uow.commit()
    with store.unit_of_work() as uow:
        uow.session.execute(update(outbox).where(outbox.c.sent_at.is_(None)).values(sent_at=now))
        uow.session.execute(update(deliveries).where(deliveries.c.status == "pending").values(status="sent"))
        m = Monitoring(uow.session)
        last = m.last_ticks(prices)
        for asset, price in prices.items():
            if asset != "USDT":
                m.record_tick(asset, price, now, "exchange", last.get(asset))
        uow.commit()


class Person(threading.Thread):
    """Sends a command, waits for the answer, thinks (``think``: a range of seconds), again, until told to stop."""

    def __init__(self, tg: FakeTelegram, user: int, pid: int, stop: threading.Event, seed: int,
                 think: tuple[float, float]) -> None:
        super().__init__(daemon=True)
        self.tg, self.user, self.pid, self.stop, self.think = tg, user, pid, stop, think
        self.rng = Random(seed)
        self.samples: list[tuple[float, float, bool]] = []  # (sent at, seconds to the answer, a write)
        self.lost = 0

    def run(self) -> None:
        n = self.rng.randrange(len(COMMANDS))
        while not self.stop.is_set():
            n += 1
            write = n % 10 == 0
            text = f"/repay {self.pid} 1" if write else COMMANDS[n % len(COMMANDS)].format(pid=self.pid)
            since = len(self.tg.sent)
            sent = time.monotonic()
            self.tg.send_text(self.user, text)
            try:
                answer = self.tg.wait_for(lambda r: r["chat_id"] == self.user and r["method"] == "sendMessage",
                                          timeout=30, since=since)
                self.samples.append((sent, answer["time"] - sent, write))
            except AssertionError:
                self.lost += 1
            self.stop.wait(self.rng.uniform(*self.think))


def one_run(url: str, schema: str | None, tg: FakeTelegram, exchange: FakeExchange, users: list[tuple[int, int]],
            crash_asset: str, prices: dict[str, Decimal], doomed: list[int], args: argparse.Namespace,
            concurrent: bool, engine: Engine, clock: Clock, markets: Path) -> dict[str, Any]:
    config = {"telegram": tg.base_url, "exchange": exchange.url, "stream": exchange.stream_url, "database": url,
              "schema": schema, "markets": str(markets), "concurrent": concurrent, "started": clock.started}
    bot = subprocess.Popen([sys.executable, "-m", "benchmarks.crashchat", "--serve", json.dumps(config)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
                               str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")]))})
    assert bot.stdin is not None and bot.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_forward, args=(bot.stdout, lines), daemon=True).start()
    try:
        _expect(lines, READY, 120)
        halt = threading.Event()
        people = [Person(tg, user, pid, halt, seed=user, think=args.think) for user, pid in users]
        for p in people:
            p.start()
        time.sleep(args.warmup)
        before = len(tg.sent)
        crashed = {a: (p * FALL if a == crash_asset else p) for a, p in prices.items()}
        fell, fell_wall, harness_cpu = time.monotonic(), time.time(), time.process_time()
        for asset, price in crashed.items():
            if asset != "USDT":
                exchange.set_price(asset, str(price))
        time.sleep(args.seconds)
        harness_cpu = time.process_time() - harness_cpu
        halt.set()
        for p in people:
            p.join(35)

        def liquidated() -> int:
            with engine.execution_options(**{READ_ONLY: True}).connect() as conn:  # no wait for the tick's lock
                return int(conn.execute(select(func.count()).select_from(positions).where(
                    positions.c.id.in_(doomed), positions.c.status == "liquidated")).scalar_one())

        gone = liquidated()
        deadline = time.monotonic() + 300
        while liquidated() < len(doomed) and time.monotonic() < deadline:  # the next run starts after this crash
            time.sleep(1)
        bot.stdin.write("stop\n")
        bot.stdin.flush()
        measured = json.loads(_expect(lines, RESULT, 120))
        bot.wait(60)
        lags = measured["lags"]
        ticks = measured["ticks"]
        window = [s for p in people for s in p.samples if s[0] >= fell]
        latencies = [s[1] * 1000 for s in window]
        reads = [s[1] * 1000 for s in window if not s[2]]
        window_lags = [(lag, cpu) for t, lag, cpu in lags if fell_wall <= t <= fell_wall + args.seconds]
        stalls = [lag * 1000 for lag, _ in window_lags]
        bot_cpu = (window_lags[-1][1] - window_lags[0][1]) / args.seconds if window_lags else None
        pushes = [r for r in tg.sent[before:] if r["chat_id"] >= FIRST_OWNER["BTC"]]
        return {
            "replies": len(latencies), "lost_replies": sum(p.lost for p in people),
            "reply_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
            "reply_p95_ms": round(pct(latencies, 0.95), 1) if latencies else None,
            "reply_max_ms": round(max(latencies), 1) if latencies else None,
            "read_reply_p95_ms": round(pct(reads, 0.95), 1) if reads else None,
            "loop_stall_max_ms": round(max(stalls), 1) if stalls else None,
            "loop_stall_p99_ms": round(pct(stalls, 0.99), 1) if stalls else None,
            "liquidated": int(gone), "of": len(doomed), "pushes_sent": len(pushes),
            "crash_tick_s": round(max((took for t, took, _ in ticks if t >= fell_wall), default=0.0), 2),
            "crash_tick_events": max((n for t, _, n in ticks if t >= fell_wall), default=0),
            "first_push_after_s": round(min((r["time"] for r in pushes), default=fell) - fell, 2),
            "http_429": sum(1 for r in tg.requests if r["status"] == 429),
            # CPU cores used over the window: the bot's process, and this one's (the people and the fakes)
            "bot_cpu_cores": round(bot_cpu, 2) if bot_cpu is not None else None,
            "harness_cpu_cores": round(harness_cpu / args.seconds, 2),
        }
    finally:
        if bot.poll() is None:  # the run failed: no bot left behind
            bot.kill()


READY = "crashchat-bot-ready"
RESULT = "crashchat-bot-result "


def _forward(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _expect(lines: queue.Queue[str], marker: str, timeout: float) -> str:
    """The rest of the bot process's first output line that starts with ``marker``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError(f"the bot process did not say {marker.strip()!r} within {timeout:g} s") from None
        if line.startswith(marker):
            return line[len(marker):]


def serve(config: dict[str, Any]) -> None:
    """The bot alone in this process (``--serve``), as it runs in production: the people, the fakes and the
    measuring stay in the benchmark's process and do not compete with the bot for its GIL. The event loop's lag
    (a 10 ms sleep probe) and the ticks are recorded here and printed when a line arrives on stdin."""
    settings = Settings(TELEGRAM_BOT_TOKEN=TOKEN, LOANDESK_TELEGRAM_BASE_URL=config["telegram"],
                        LOANDESK_BINANCE_URL=config["exchange"], LOANDESK_BINANCE_STREAM_URL=config["stream"],
                        LOANDESK_DATABASE_URL=config["database"], LOANDESK_DATABASE_SCHEMA=config["schema"],
                        LOANDESK_ADMIN_IDS=frozenset({OPERATOR}), LOANDESK_PRICE_POLL_SECONDS=1,
                        LOANDESK_MIGRATE_ON_START=False, LOANDESK_MARKETS_FILE=config["markets"],
                        # a lease renewal waits its turn behind the tick's parts: room for a slow machine
                        LOANDESK_LEADER_TTL_SECONDS=LEASE_SECONDS)
    lags: list[tuple[float, float, float]] = []  # (time.time() when the probe slept, seconds late, CPU seconds used)
    ticks: list[tuple[float, float, int]] = []  # (time.time() when it ended, seconds, events)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(target=lambda: (sys.stdin.readline(), loop.call_soon_threadsafe(stop.set)),
                         daemon=True).start()
        app = build_application(settings, clock=Clock(config["started"]), concurrent=config["concurrent"],
                                get_updates_read_timeout=3, read_timeout=3)
        app.bot_data["monitor"].on_tick.append(lambda took, events: ticks.append((time.time(), took, len(events))))

        async def probe() -> None:
            while not stop.is_set():
                t = time.monotonic()
                await asyncio.sleep(PROBE_SECONDS)
                lags.append((time.time(), time.monotonic() - t - PROBE_SECONDS, time.process_time()))

        watch = asyncio.create_task(probe())
        await run_app(app, stop, started=lambda: print(READY, flush=True), poll_interval=0, timeout=1)
        await watch

    asyncio.run(main())
    print(RESULT + json.dumps({"lags": lags, "ticks": ticks}), flush=True)


def roomy_markets(folder: Path) -> Path:
    """The shipped markets with lending caps 1000× larger (a million-position book has lent up to the shipped caps,
    and the crash positions still need room) and the circuit breaker off."""
    path = folder / "markets.toml"
    text = re.sub(r'lending_cap = "(\d+)"', lambda m: f'lending_cap = "{int(m.group(1)) * 1000}"',
                  SHIPPED.read_text())
    # the crash takes nearly every BTC (then ETH) position: a real crash, not a feed error for the breaker to hold
    text = re.sub(r'breaker_(asset_)?share = "[0-9.]+"', lambda m: f'breaker_{m.group(1) or ""}share = "1"', text)
    path.write_text(text)
    return path


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.TemporaryDirectory(prefix="loandesk-crashchat-")
    markets = roomy_markets(Path(tmp.name))
    catalog = load_catalog(markets)
    try:
        with throwaway_database(args.database, Path(tmp.name), "crashchat") as db:
            url, schema, engine = db.url, db.schema, db.engine
            migrate(engine)
            t = time.perf_counter()
            build(engine, args.positions, catalog)
            build_s = time.perf_counter() - t
            store = StateStore(url, schema=schema, migrate=False)
            prices = dict(PRICES)
            clock = Clock()
            now = clock()
            user_ids = [FIRST_USER + i for i in range(args.users)]
            pids = open_positions(store, catalog, user_ids, "BTC", Decimal("0.40"), prices, now)
            doomed = {a: open_positions(store, catalog, [FIRST_OWNER[a] + i for i in range(args.crash)], a, OPENED_LTV,
                                        {**prices, a: prices[a] * CRASH_LTV / OPENED_LTV}, now) for a in ("BTC", "ETH")}
            settle(store, catalog, prices, now)
            with FakeTelegram(rate_limits=True) as tg, \
                    FakeExchange({a: str(p) for a, p in prices.items() if a != "USDT"}) as exchange:
                for user in [OPERATOR, *user_ids, *(o for a in FIRST_OWNER.values() for o in range(a, a + args.crash))]:
                    tg.add_user(user)
                users = list(zip(user_ids, pids, strict=True))
                runs: dict[str, dict[str, Any]] = {}
                for label, asset, concurrent in (("concurrent", "BTC", True), ("one_at_a_time", "ETH", False)):
                    runs[label] = one_run(url, schema, tg, exchange, users, asset, prices, doomed[asset], args,
                                          concurrent, engine, clock, markets)
                    prices = {a: (p * FALL if a == asset else p) for a, p in prices.items()}
                    if label != "one_at_a_time":  # the next run starts from a settled book
                        settle(store, catalog, prices, clock())
            store.close()
    finally:
        tmp.cleanup()
    c, s = runs["concurrent"], runs["one_at_a_time"]
    return {"positions": args.positions, "database": engine.dialect.name, "users": args.users,
            "think_s": list(args.think), "crash_positions": args.crash, "seconds": args.seconds,
            "build_s": round(build_s, 1),
            **{f"{k}": v for k, v in c.items()},
            **{f"serial_{k}": v for k, v in s.items() if k.startswith(("reply", "read", "loop", "liquidated"))},
            "target_met": bool(c["reply_p95_ms"] is not None and c["reply_p95_ms"] <= 250
                               and c["loop_stall_max_ms"] is not None and c["loop_stall_max_ms"] <= 100)}


def _span(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crashchat", description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=100_000, help="the bulk book (benchmarks.sweep's)")
    parser.add_argument("--crash", type=int, default=1000, help="positions the crash liquidates (each run)")
    parser.add_argument("--users", type=int, default=50, help="people chatting")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of chat before the fall")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds measured after the fall")
    parser.add_argument("--think", type=_span, default=(3.0, 6.0), metavar="MIN-MAX",
                        help="seconds a person thinks between an answer and the next command (default 3-6)")
    parser.add_argument("--database", help="a PostgreSQL URL (a fresh schema is made and dropped)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the bot's own process (JSON settings)
    args = parser.parse_args(argv)
    if args.serve:
        serve(json.loads(args.serve))
        return 0
    result = run(args)
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
