"""Harness for monitoring tests: the real Application with its scheduler and notifier, polling FakeTelegram
and FakeExchange every 0.2 s, on a SQLite file that outlives a stopped bot (so a "crash" and a restart can be
played), with an injected clock that runs with real time and can jump ahead.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot.entry.compose import build_application
from bot.entry.run import run_app
from bot.monitor.scheduler import Monitor
from bot.service.store import StateStore
from bot.settings import Settings
from bot.telegram.budget import TelegramBudget
from bot.telegram.handlers import App
from domain.desk import Desk
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import SHIPPED, load_catalog
from domain.positions import Position
from storage.monitoring import Monitoring
from storage.tables import positions
from tests.fakes.exchange import FakeExchange
from tests.fakes.telegram import FakeTelegram

TOKEN = "123:ABC"
OPERATOR = 1
ANN = 42
BOB = 77
GROUP = -100
POLL = 0.2
CONFIRM = 1  # seconds a jump must persist (the markets file's price_confirm_seconds) in these tests
START = datetime(2030, 1, 7, 10, 15, tzinfo=UTC)  # mid-hour: no HH:00 passes during a test unless we jump


def quick_chats() -> TelegramBudget:
    """Telegram's overall limit, without the per-chat pacing (one message a second per private chat, 20 a minute
    per group): tests talk faster than people. The tests of the limits themselves use the real budget."""
    return TelegramBudget(private_per_second=10**6, group_per_minute=10**6)


class Clock:
    """Real time elapsing from ``START``, plus whatever the test adds with ``advance``."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return START + timedelta(seconds=time.monotonic() - self.t0) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


class Bot:
    """One running process: the Application (with scheduler) in its own thread and event loop."""

    def __init__(self, settings: Settings, clock: Clock, prepare: Callable[[App], None] | None = None,
                 budget: TelegramBudget | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        ready = threading.Event()
        self.app: App | None = None

        async def main() -> None:
            self.stop_event = asyncio.Event()
            app = self.app = build_application(settings, clock=clock, get_updates_read_timeout=3, read_timeout=3,
                                               budget=budget or quick_chats())
            if prepare is not None:
                prepare(app)
            await run_app(app, self.stop_event, started=ready.set, poll_interval=0, timeout=1)

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True)
        self.thread.start()
        assert ready.wait(10), "the bot did not start"

    @property
    def monitor(self) -> Monitor:
        assert self.app is not None
        monitor: Monitor = self.app.bot_data["monitor"]
        return monitor

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        """Run a coroutine on the bot's loop (e.g. a job by hand) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        assert self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(15)
        self.loop.close()


class World:
    """Telegram, the exchange, the database and the clock; bots come and go."""

    def __init__(self, tg: FakeTelegram, exchange: FakeExchange, db: Path) -> None:
        self.tg = tg
        self.exchange = exchange
        self.url = f"sqlite:///{db}"
        self.clock = Clock()
        self.bots: list[Bot] = []
        # The shipped catalog with a 1-second confirmation window: polls are 0.2 s here, not 10 s, so a jump
        # (or a cold start) is confirmed after five polls instead of waiting out the default ten seconds.
        markets = self.markets = db.with_name("markets.toml")
        confirm = f"price_confirm_seconds = {CONFIRM}"
        markets.write_text(SHIPPED.read_text().replace("price_confirm_seconds = 10", confirm))
        self.settings = Settings(TELEGRAM_BOT_TOKEN=TOKEN, LOANDESK_TELEGRAM_BASE_URL=tg.base_url,
                                 LOANDESK_BINANCE_URL=exchange.url, LOANDESK_DATABASE_URL=self.url,
                                 LOANDESK_ADMIN_IDS=str(OPERATOR), LOANDESK_PRICE_POLL_SECONDS=POLL,
                                 LOANDESK_MARKETS_FILE=str(markets))
        self.catalog = load_catalog(markets)
        for user in (OPERATOR, ANN, BOB):
            tg.add_user(user)

    def start(self, prepare: Callable[[App], None] | None = None, budget: TelegramBudget | None = None) -> Bot:
        """A bot; ``budget``: Telegram's limits (default: no per-chat pacing, see ``quick_chats``)."""
        bot = Bot(self.settings, self.clock, prepare, budget)
        self.bots.append(bot)
        return bot

    def borrow(self, owner: int, loan: str, amount: str, collateral: str, qty: str, spare: str = "0",
               prices: dict[str, Decimal] | None = None) -> int:
        """A position opened straight through the engine (at the clock's time, BTC at 50,000 by default)."""
        store = StateStore(self.url)
        try:
            with store.unit_of_work() as uow:
                desk = Desk(self.catalog, uow.domain_book)
                now = self.clock()
                desk.deposit(str(owner), collateral, Decimal(qty) + Decimal(spare), now)
                req = BorrowRequest(str(owner), loan, Decimal(amount), {collateral: Decimal(qty)})
                p, _ = borrow(desk, req, prices or {"USDT": Decimal(1), "BTC": Decimal(50000)}, now)
                uow.commit()
                return p.id
        finally:
            store.close()

    def desk_rules(self, **values: object) -> None:
        """Edit ``[desk]`` settings of this world's markets file (before a bot starts)."""
        text = self.markets.read_text()
        for key, value in values.items():
            line = next(x for x in text.splitlines() if x.startswith(f"{key} ="))
            text = text.replace(line, f"{key} = {value}")
        self.markets.write_text(text)
        self.catalog = load_catalog(self.markets)

    def book(self, count: int, amount: str = "41000", qty: str = "1", open_price: str = "53000") -> list[int]:
        """``count`` borrowers with one BTC-backed USDT loan each, opened in one unit of work at ``open_price``."""
        first = 10_000 + int(self.rows(lambda u: u.session.execute(select(func.count()).select_from(
            positions)).scalar_one()))
        store = StateStore(self.url)
        try:
            with store.unit_of_work() as uow:
                desk = Desk(self.catalog, uow.domain_book)
                now = self.clock()
                prices = {"USDT": Decimal(1), "BTC": Decimal(open_price)}
                ids = []
                for i in range(count):
                    owner = str(first + i)
                    self.tg.add_user(first + i)
                    desk.deposit(owner, "BTC", Decimal(qty), now)
                    p, _ = borrow(desk, BorrowRequest(owner, "USDT", Decimal(amount), {"BTC": Decimal(qty)}),
                                  prices, now)
                    ids.append(p.id)
                uow.commit()
                return ids
        finally:
            store.close()

    def seed_price(self, asset: str, price: str) -> None:
        """The desk has been running: its last accepted price of ``asset`` is stored (no cold start)."""
        self.rows(lambda uow: (Monitoring(uow.session).record_tick(asset, Decimal(price), self.clock(), "exchange",
                                                                   None), uow.commit()))

    def count(self, status: str) -> int:
        return int(self.rows(lambda uow: uow.session.execute(
            select(func.count()).select_from(positions).where(positions.c.status == status)).scalar_one()))

    def position(self, pid: int) -> Position:
        store = StateStore(self.url)
        try:
            with store.unit_of_work() as uow:
                p = uow.book.get_position(pid)
                assert p is not None
                return p
        finally:
            store.close()

    def rows(self, query: Callable[[Any], Any]) -> Any:
        """Run ``query`` in a unit of work; waits while the bot holds the write lock (a long crash tick)."""
        deadline = time.monotonic() + 60
        while True:
            store = None
            try:
                store = StateStore(self.url)
                with store.unit_of_work() as uow:
                    return query(uow)
            except OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
            finally:
                if store is not None:
                    store.close()

    def say(self, user: int, text: str, chat_id: int | None = None) -> dict[str, Any]:
        since = len(self.tg.sent)
        self.tg.send_text(user, text, chat_id=chat_id)
        chat = chat_id if chat_id is not None else user
        return self.tg.wait_for(lambda r: r["chat_id"] == chat and r["method"] == "sendMessage", since=since)

    def monitoring_group(self, owner: int = ANN, share: str = "") -> None:
        """``owner`` adds the bot to GROUP, makes it a monitoring channel and shares their positions."""
        self.tg.add_bot_to_group(GROUP, owner, title="Ann's risk room")
        self.tg.set_member_status(GROUP, owner, "administrator")
        assert "monitoring channel" in self.say(owner, "/monitor", GROUP)["plain"]
        assert "Shared" in self.say(owner, f"/share {share}".strip(), GROUP)["plain"]

    def stop_bots(self) -> None:
        """Stop every bot this world started that still runs (the fixtures' clean-up)."""
        for bot in self.bots:
            if bot.thread.is_alive():
                bot.stop()

    def pushes(self, chat_id: int, word: str) -> list[dict[str, Any]]:
        return [r for r in self.tg.sent if r["chat_id"] == chat_id and r["method"] == "sendMessage"
                and word in (r["plain"] or "")]

    def polls(self, n: int = 3, timeout: float = 10) -> None:
        """Wait until the exchange has been asked ``n`` more times."""
        start = self.exchange.hits
        deadline = time.monotonic() + timeout
        while self.exchange.hits < start + n:
            assert time.monotonic() < deadline, "the scheduler stopped polling"
            time.sleep(0.05)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with FakeTelegram() as tg, FakeExchange({"BTC": "50000", "ETH": "3000"}) as exchange:
        w = World(tg, exchange, tmp_path / "monitor.db")
        try:
            yield w
        finally:
            w.stop_bots()


def wait(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
