"""``python -m benchmarks.chat [--positions N] [--json]``: how fast the bot answers ``/positions`` and a
``/borrow 500 USDT with 0.01 BTC`` preview with N open positions in the database.

The book is built like ``benchmarks.sweep`` builds it (N flexible positions of 200,000 other borrowers, in
bulk), then ``--users`` Telegram users each get a wallet and three positions through the engine. The real
Application (``bot.entry.compose.build_application``: PTB polling, handlers, ``LoanService``, SQLite) runs in its own
thread and event loop against the fake Bot API and the fake exchange on 127.0.0.1, as in the end-to-end tests;
the scheduler is off so that only the chat path is measured. Each sample is one command typed by a user and
timed from the update being queued at the fake to the reply arriving at the fake (long poll, PTB dispatch, the
service with its unit of work, rendering, ``sendMessage``); nothing is subtracted. Commands go one at a time,
spread over the users (each stays inside the bot's per-user flood limit).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.sweep import PRICES, build, pct
from bot.entry.compose import build_application
from bot.entry.run import run_app
from bot.service.store import StateStore
from bot.settings import Settings
from domain import markets
from domain.desk import Desk
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import Catalog, load_catalog
from storage import make_engine, migrate
from tests.fakes.exchange import FakeExchange
from tests.fakes.telegram import FakeTelegram

TOKEN = "123:ABC"
FIRST_USER = 501
COMMANDS = ("/positions", "/borrow 500 USDT with 0.01 BTC")


def big_catalog(folder: Path) -> Path:
    """The shipped catalog with every lending cap a million times larger: the bulk book borrows far more than
    the shipped caps allow, and a preview at the cap would only say "the desk can lend at most 0 more"."""
    text = (Path(markets.__file__).parent / "markets.toml").read_text()
    path = folder / "markets.toml"
    path.write_text(re.sub(r'lending_cap = "(\d+)"', r'lending_cap = "\g<1>000000"', text))
    return path


def add_users(url: str, users: int, catalog: Catalog) -> None:
    """Each user: spare BTC and ETH in Spot and three open positions, opened through the engine."""
    store = StateStore(url)
    now = datetime.now(UTC)
    try:
        with store.unit_of_work() as uow:
            desk = Desk(catalog, uow.domain_book)
            for u in range(FIRST_USER, FIRST_USER + users):
                owner = str(u)
                desk.deposit(owner, "BTC", Decimal(2), now)
                desk.deposit(owner, "ETH", Decimal(20), now)
                for loan, coll, amount, qty in (("USDT", "BTC", "20000", "1"), ("USDT", "ETH", "20000", "10"),
                                                ("USDC", "BTC", "10000", "0.5")):
                    borrow(desk, BorrowRequest(owner, loan, Decimal(amount), {coll: Decimal(qty)}),
                                   PRICES, now)
            uow.commit()
    finally:
        store.close()


class Running:
    """The Application in its own thread and event loop (as ``loandesk run`` runs it)."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        ready = threading.Event()

        async def main() -> None:
            self.stop_event = asyncio.Event()
            app = build_application(settings, monitor=False, get_updates_read_timeout=3, read_timeout=3)
            await run_app(app, self.stop_event, started=ready.set, poll_interval=0, timeout=1)

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True)
        self.thread.start()
        assert ready.wait(30), "the bot did not start"

    def stop(self) -> None:
        assert self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(15)
        self.loop.close()


def ask(tg: FakeTelegram, user: int, text: str) -> tuple[float, str]:
    since = len(tg.sent)
    t0 = time.monotonic()
    tg.send_text(user, text)
    reply = tg.wait_for(lambda r: r["chat_id"] == user and r["method"] == "sendMessage", since=since, timeout=30)
    return (reply["time"] - t0) * 1000, reply["plain"] or ""


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="loandesk-chat-") as tmp, FakeTelegram() as tg, \
            FakeExchange({a: p for a, p in PRICES.items() if a != "USDT"}) as exchange:
        markets_file = big_catalog(Path(tmp))
        catalog = load_catalog(markets_file)
        url = f"sqlite:///{Path(tmp) / 'chat.db'}"
        engine = make_engine(url)
        try:
            migrate(engine)
            t = time.perf_counter()
            build(engine, args.positions, catalog)
            build_s = time.perf_counter() - t
        finally:
            engine.dispose()
        add_users(url, args.users, catalog)
        settings = Settings(TELEGRAM_BOT_TOKEN=TOKEN, LOANDESK_TELEGRAM_BASE_URL=tg.base_url,
                            LOANDESK_BINANCE_URL=exchange.url,
                            LOANDESK_BINANCE_STREAM_URL=exchange.stream_url, LOANDESK_DATABASE_URL=url,
                            LOANDESK_MARKETS_FILE=str(markets_file))
        users = list(range(FIRST_USER, FIRST_USER + args.users))
        for u in users:
            tg.add_user(u)
        bot = Running(settings)
        samples: dict[str, list[float]] = {c: [] for c in COMMANDS}
        checks: dict[str, str] = {}
        try:
            for i in range(args.warmup):
                ask(tg, users[i % len(users)], COMMANDS[i % 2])
            for i in range(args.samples):
                for c in COMMANDS:
                    ms, text = ask(tg, users[i % len(users)], c)
                    samples[c].append(ms)
                    checks.setdefault(c, text[:120])
        finally:
            bot.stop()
    out: dict[str, Any] = {"positions": args.positions + 3 * args.users, "samples_per_command": args.samples}
    for c, values in samples.items():
        key = "positions" if c == "/positions" else "borrow_preview"
        out[f"{key}_p50_ms"] = round(statistics.median(values), 1)
        out[f"{key}_p95_ms"] = round(pct(values, 0.95), 1)
        out[f"{key}_max_ms"] = round(max(values), 1)
    every = [v for values in samples.values() for v in values]
    out["all_p95_ms"] = round(pct(every, 0.95), 1)
    out["first_replies"] = checks
    out["build_s"] = round(build_s, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chat", description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--samples", type=int, default=60, help="of each command (≤ 7 per user a minute)")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args)
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
