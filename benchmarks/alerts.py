"""``python -m benchmarks.alerts --positions N [--moves 50] [--database URL] [--json]``: alert latency — a price
change at the exchange to the margin-call push at Telegram — with the exchange's stream against 10-s polling,
in one run, on a book of N positions.

The book is ``benchmarks.sweep``'s (N flexible positions written in bulk, LTVs uniform over [0.30, 0.80) at its
start prices, every shipped pair; the catalog's lending caps raised as in ``benchmarks.chat``) plus
2 × ``--moves`` *probe* positions opened through the engine by borrowers the fake Telegram knows: 1 BTC each,
with a debt that reaches the 85% margin call exactly half-way between two BTC prices of the benchmark's path.
The path lowers BTC by 0.1% per move (never more than a tenth in all, so no position of the bulk book reaches
liquidation); move k therefore margin-calls probe k and nobody else's chat (the bulk book's owners have no
chat: their warnings and margin calls are written, not pushed).

Each phase runs the real bot (``bot.entry.compose.build_application``: PTB, the scheduler, the guard, the sweep,
the notifier) against ``tests.fakes`` on 127.0.0.1: FakeExchange's REST ticker and combined WebSocket stream,
FakeTelegram's Bot API. The bot's clock starts just after the book's and runs with real time (no hour passes,
so no accrual run lands in the middle). Phase one streams (``LOANDESK_BINANCE_STREAM_URL`` = the fake's
stream; REST every 10 s as the fallback); phase two polls only (``off``, ``LOANDESK_PRICE_POLL_SECONDS`` 10).
In each, once the start-up pushes are out, ``--moves`` moves follow at random gaps of 1–2 s (seeded; Binance
sends a symbol's miniTicker at most once a second, so a faster path could not reach the bot), each timed when
FakeExchange is told the new price; a probe's latency ends when FakeTelegram receives its margin
call (its own ``time.monotonic()``, same process). Reported: p50 / p95 / max per phase, pushes that never
came, and the tick times the scheduler measured.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random
from typing import Any

from sqlalchemy import update

from benchmarks import report, throwaway_database
from benchmarks.chat import big_catalog
from benchmarks.sweep import PRICES, T0, build, pct
from bot.entry.compose import build_application
from bot.entry.run import run_app
from bot.monitor.scheduler import Monitor
from bot.settings import Settings
from domain.desk import Desk
from domain.events import Event
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import Catalog, load_catalog
from storage import UnitOfWork, migrate
from storage.tables import outbox
from tests.fakes.exchange import FakeExchange
from tests.fakes.telegram import FakeTelegram

TOKEN = "123:ABC"
FIRST_PROBE = 20_000
STEP = Decimal("0.001")  # each move lowers BTC by 0.1% of its start price
MARGIN_CALL = Decimal("0.85")
OPEN_AT = {"BTC": Decimal(70000), "USDT": Decimal(1)}  # probes open at 70,000 (at most 73% LTV), then BTC is 60,000
POLL_SECONDS = 10.0
START = T0 + timedelta(seconds=20)  # the bot's clock: just after the book was written


def price_after(move: int) -> Decimal:
    return (PRICES["BTC"] * (1 - STEP * move)).quantize(Decimal("0.01"))


def open_probes(engine: Any, catalog: Catalog, count: int, tg: FakeTelegram) -> None:
    """Probe k (1-based) owes 85% of 1 BTC at the price half-way between moves k−1 and k."""
    opened = T0 + timedelta(seconds=10)
    with UnitOfWork(engine, clock=lambda: opened) as uow:
        desk = Desk(catalog, uow.book)
        for k in range(1, count + 1):
            owner = str(FIRST_PROBE + k)
            tg.add_user(FIRST_PROBE + k)
            crossing = (price_after(k - 1) + price_after(k)) / 2
            debt = (MARGIN_CALL * crossing).quantize(Decimal("0.01"))
            desk.deposit(owner, "BTC", Decimal(1), opened)
            borrow(desk, BorrowRequest(owner, "USDT", debt, {"BTC": Decimal(1)}), OPEN_AT, opened)
        uow.commit()
    with UnitOfWork(engine) as uow:  # the borrow receipts are not what is measured
        uow.session.execute(update(outbox).where(outbox.c.sent_at.is_(None)).values(sent_at=opened))
        uow.commit()


class Clock:
    """``START`` plus the real time elapsed since the first phase began."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> datetime:
        return START + timedelta(seconds=time.monotonic() - self.t0)


class Bot:
    """The whole bot in its own thread and event loop (as ``loandesk run`` runs it)."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.monitor: Monitor | None = None
        self.ticks: list[float] = []
        self.called: dict[str, float] = {}  # owner → when the tick that margin-called them committed
        ready = threading.Event()

        async def main() -> None:
            self.stop_event = asyncio.Event()
            app = build_application(settings, clock=clock, get_updates_read_timeout=3, read_timeout=3)
            self.monitor = app.bot_data["monitor"]
            self.monitor.on_tick.append(self._ticked)
            await run_app(app, self.stop_event, started=ready.set, poll_interval=0, timeout=1)

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True)
        self.thread.start()
        if not ready.wait(60):
            raise RuntimeError("the bot did not start")

    def _ticked(self, seconds: float, events: list[Event]) -> None:
        self.ticks.append(seconds)
        now = time.monotonic()
        for ev in events:
            if ev.type == "margin_call" and ev.account is not None:
                self.called.setdefault(ev.account, now)

    def stop(self) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(60)
        self.loop.close()


def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.02)


def settled(tg: FakeTelegram, quiet: float = 3.0, timeout: float = 120.0) -> None:
    """Wait until the fake Telegram has received nothing for ``quiet`` seconds (the start-up pushes are out)."""
    since = time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        sent = tg.sent
        last = max((r["time"] for r in sent), default=since)
        if time.monotonic() - last >= quiet:
            return
        time.sleep(0.2)


def phase(name: str, settings: Settings, clock: Clock, exchange: FakeExchange, tg: FakeTelegram,
          moves: range, rng: Random, timeout: float, gaps: tuple[float, float]) -> dict[str, Any]:
    bot = Bot(settings, clock)
    try:
        monitor = bot.monitor
        assert monitor is not None
        streaming = settings.binance_stream_url != "off"
        wait(lambda: monitor.leading and "BTC" in monitor.feed.guard.newest_seen
             and (monitor.feed.streaming or not streaming) and len(bot.ticks) > 0, 60,
             f"{name}: the bot to lead and tick with prices")
        settled(tg)
        ticks_before = len(bot.ticks)
        moved: dict[int, float] = {}
        for k in moves:
            time.sleep(rng.uniform(*gaps))
            moved[k] = time.monotonic()
            exchange.set_price("BTC", price_after(k))
        arrived: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while len(arrived) < len(moved) and time.monotonic() < deadline:
            for r in tg.sent:
                k = r["chat_id"] - FIRST_PROBE
                if k in moved and k not in arrived and r["method"] == "sendMessage" \
                        and "Margin call" in (r["plain"] or ""):
                    arrived[k] = r["time"]
            time.sleep(0.05)
        latencies = sorted(arrived[k] - moved[k] for k in arrived)
        committed = {k: bot.called[str(FIRST_PROBE + k)] for k in arrived if str(FIRST_PROBE + k) in bot.called}
        to_commit = sorted(committed[k] - moved[k] for k in committed)
        to_push = sorted(arrived[k] - committed[k] for k in committed)
        ticks = bot.ticks[ticks_before:]
    finally:
        bot.stop()
    return {"moves": len(moved), "pushes": len(latencies), "missing": len(moved) - len(latencies),
            "p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "p95_s": round(pct(latencies, 0.95), 3) if latencies else None,
            "max_s": round(latencies[-1], 3) if latencies else None,
            "move_to_commit_p95_s": round(pct(to_commit, 0.95), 3) if to_commit else None,
            "commit_to_push_p95_s": round(pct(to_push, 0.95), 3) if to_push else None,
            "ticks": len(ticks), "tick_p50_ms": round(statistics.median(ticks) * 1000, 1) if ticks else None,
            "tick_max_ms": round(max(ticks) * 1000, 1) if ticks else None}


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.TemporaryDirectory(prefix="loandesk-alerts-")
    markets_file = big_catalog(Path(tmp.name))  # the bulk book borrows past the shipped lending caps
    catalog = load_catalog(markets_file)
    rng = Random(12)
    gaps = (args.gap_min, args.gap_max)
    try:
        with throwaway_database(args.database, Path(tmp.name), "alerts") as db:
            url, schema, engine = db.url, db.schema, db.engine
            migrate(engine)
            t = time.perf_counter()
            build(engine, args.positions, catalog)
            with FakeTelegram() as tg, \
                    FakeExchange({a: str(p) for a, p in PRICES.items() if a != "USDT"}) as exchange:
                open_probes(engine, catalog, 2 * args.moves, tg)
                build_s = time.perf_counter() - t
                engine.dispose()
                common: dict[str, Any] = {
                    "TELEGRAM_BOT_TOKEN": TOKEN, "LOANDESK_TELEGRAM_BASE_URL": tg.base_url,
                    "LOANDESK_BINANCE_URL": exchange.url, "LOANDESK_DATABASE_URL": url,
                    "LOANDESK_DATABASE_SCHEMA": schema, "LOANDESK_PRICE_POLL_SECONDS": POLL_SECONDS,
                    "LOANDESK_MARKETS_FILE": str(markets_file)}
                clock = Clock()
                streamed = phase("streaming", Settings(**common, LOANDESK_BINANCE_STREAM_URL=exchange.stream_url),
                                 clock, exchange, tg, range(1, args.moves + 1), rng, args.timeout, gaps)
                polled = phase("polling", Settings(**common, LOANDESK_BINANCE_STREAM_URL="off"), clock, exchange, tg,
                               range(args.moves + 1, 2 * args.moves + 1), rng, args.timeout, gaps)
    finally:
        tmp.cleanup()
    return {"positions": args.positions, "database": "postgresql" if args.database else "sqlite",
            "moves": args.moves, "streaming": streamed, f"polling_{POLL_SECONDS:g}s": polled,
            "gaps_s": list(gaps), "build_s": round(build_s, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alerts", description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=100_000, help="the bulk book (probes come on top)")
    parser.add_argument("--moves", type=int, default=50, help="price moves per phase (each margin-calls a probe)")
    parser.add_argument("--database", help="a PostgreSQL URL (a fresh schema is made and dropped)")
    parser.add_argument("--gap-min", type=float, default=1.0, help="shortest gap between two moves (seconds)")
    parser.add_argument("--gap-max", type=float, default=2.0, help="longest gap between two moves (seconds)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the last push of a phase")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.moves > 50:
        parser.error("at most 50 moves a phase: 100 moves of 0.1% keep the bulk book clear of liquidation")
    result = run(args)
    report(result, args.json)
    return 0 if result["streaming"]["missing"] == 0 and result[f"polling_{POLL_SECONDS:g}s"]["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
