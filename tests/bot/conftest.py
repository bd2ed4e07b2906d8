"""End-to-end harness: the real PTB Application polling FakeTelegram, prices from FakeExchange, SQLite in tmp.

The bot runs in its own thread and event loop (as ``loandesk run`` does); the test acts as people through
the fake's ``send_text`` / ``tap`` and waits for the bot's answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.entry.compose import build_application
from bot.entry.run import run_app
from bot.service.store import StateStore
from bot.settings import Settings
from bot.telegram.budget import TelegramBudget
from bot.telegram.flood import FloodLimiter
from domain.desk import Desk
from domain.markets import load_catalog
from tests.fakes.exchange import FakeExchange
from tests.fakes.telegram import FakeTelegram

TOKEN = "123:ABC"
OPERATOR = 1
ANN = 42
BOB = 77


def quick_chats() -> TelegramBudget:
    """Telegram's overall limit, without the per-chat pacing (one message a second per private chat, 20 a minute
    per group): tests talk faster than people. The tests of the limits themselves use the real budget."""
    return TelegramBudget(private_per_second=10**6, group_per_minute=10**6)


class Harness:
    def __init__(self, tg: FakeTelegram, exchange: FakeExchange, db: str) -> None:
        self.tg = tg
        self.exchange = exchange
        self.db = db

    def say(self, user: int, text: str, chat_id: int | None = None, chat_type: str | None = None) -> dict[str, Any]:
        """Send ``text`` and return the bot's first message to that chat after it."""
        since = len(self.tg.sent)
        self.tg.send_text(user, text, chat_id=chat_id, chat_type=chat_type)
        chat = chat_id if chat_id is not None else user
        return self.tg.wait_for(lambda r: r["chat_id"] == chat and r["method"] == "sendMessage", since=since)

    def tap(self, user: int, message: dict[str, Any], data: str, check: bool = True) -> dict[str, Any]:
        """Tap a button (``check=False``: one already removed, as a quick double tap would); return the answer."""
        answered = len(self.tg.answers)
        self.tg.tap(user, message, data, check=check)
        self.tg.wait_until(lambda: len(self.tg.answers) > answered)
        return self.tg.answers[answered]

    def tap_and_reply(self, user: int, message: dict[str, Any], data: str) -> dict[str, Any]:
        since = len(self.tg.sent)
        self.tap(user, message, data)
        return self.tg.wait_for(lambda r: r["chat_id"] == message["chat_id"] and r["method"] == "sendMessage",
                                since=since)

    def state(self) -> dict[str, Any]:
        """Wallets and positions straight from the database, through the engine."""
        store = StateStore(f"sqlite:///{self.db}")
        try:
            with store.unit_of_work() as uow:
                desk = Desk(load_catalog(None), uow.domain_book)
                spot = {(o, a): desk.spot(o, a) for o in (str(ANN), str(BOB)) for a in ("BTC", "USDT", "ETH")}
                positions = {p.id: p for o in (str(ANN), str(BOB)) for p in uow.book.positions_of(o)}
                return {"spot": spot, "positions": positions}
        finally:
            store.close()


def confirm_data(record: dict[str, Any]) -> str:
    return str(record["reply_markup"]["inline_keyboard"][0][0]["callback_data"])


def cancel_data(record: dict[str, Any]) -> str:
    return str(record["reply_markup"]["inline_keyboard"][0][1]["callback_data"])


@contextlib.contextmanager
def running(tmp_path: Path, budget: TelegramBudget, flood: FloodLimiter | None = None) -> Iterator[Harness]:
    """The bot polling a fresh FakeTelegram, with ``budget`` as its Telegram limits (``flood``: the per-person
    limiter, default the bot's own)."""
    with FakeTelegram() as tg, FakeExchange({"BTC": "50000", "ETH": "3000", "BNB": "600"}) as exchange:
        db = str(tmp_path / "bot.db")
        settings = Settings(TELEGRAM_BOT_TOKEN=TOKEN, LOANDESK_TELEGRAM_BASE_URL=tg.base_url,
                            LOANDESK_BINANCE_URL=exchange.url, LOANDESK_DATABASE_URL=f"sqlite:///{db}",
                            LOANDESK_ADMIN_IDS=str(OPERATOR), LOANDESK_MODE="demo")
        stop: asyncio.Event | None = None
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def main() -> None:
            nonlocal stop
            stop = asyncio.Event()
            app = build_application(settings, get_updates_read_timeout=3, read_timeout=3, budget=budget,
                                    flood=flood)
            await run_app(app, stop, started=ready.set, poll_interval=0, timeout=1)

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        assert ready.wait(10), "the bot did not start"
        try:
            yield Harness(tg, exchange, db)
        finally:
            assert stop is not None
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)
            loop.close()


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    with running(tmp_path, quick_chats()) as harness:
        yield harness


def dec(x: str) -> Decimal:
    return Decimal(x)
