"""The chat never waits for the database, for another chat, or for Telegram's refusals (issue 12 items 1, 2, 4 and
7; issue 15 item 12): the real Application against the fake Telegram, a deliberately held SQLite write lock standing
in for a long crash tick.

No timers are asserted: each test shows an order of events (a reply arrives *while* the lock is held, a tap is
acknowledged *before* its work could finish) or counts (429s, actions)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.service.store import StateStore
from bot.telegram.budget import TelegramBudget
from bot.telegram.flood import FloodLimiter
from bot.telegram.handlers import BUSY
from tests.bot.conftest import ANN, BOB, OPERATOR, Harness, confirm_data, quick_chats, running

GROUP = -500
WENT_WRONG = "Something went wrong"


@contextmanager
def writer_held(db: str) -> Iterator[None]:
    """Another connection holds the database's write lock (as a long crash tick does) for the block. Held for less
    than SQLite's busy timeout (5 s): a writer waiting behind it gets through once it is released."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def to(bot: Harness, chat: int, since: int) -> list[str]:
    return [r["plain"] or "" for r in bot.tg.sent[since:] if r["chat_id"] == chat and r["method"] == "sendMessage"]


def fund(bot: Harness, user: int = ANN) -> None:
    bot.tap_and_reply(OPERATOR, p := bot.say(OPERATOR, f"/credit {user} 2 BTC"), confirm_data(p))


@pytest.fixture
def unlimited(tmp_path: Path) -> Iterator[Harness]:
    """The bot without the per-person flood limiter (one person sends every command in a row here)."""
    with running(tmp_path, quick_chats(), FloodLimiter(10**6, 10**6)) as harness:
        yield harness


def test_no_unit_of_work_runs_on_the_event_loop(unlimited: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command, text and tap below opens its units of work off the loop: one opened on the loop's thread
    is refused here, and would come back as "Something went wrong"."""
    bot = unlimited
    monkeypatch.setattr(StateStore, "on_loop", "raise")
    fund(bot)
    preview = bot.say(ANN, "/borrow 30000 USDT with 1 BTC")
    bot.tap_and_reply(ANN, preview, confirm_data(preview))
    for text in ("/start", "/help", "/markets", "/wallet", "/faucet", "/positions", "/position 1", "#1",
                 "/history", "/history 1", "/alerts", "/alert 70%", "/alert 1 -10%", "/protect 1 80% 60%",
                 "/notify", "/notify digest on 9", "/stress 1 -30%", "/estimate 1000 USDT 30", "/terms",
                 "/backtest 1 march2020", "/repay 1 100", "/add 1 0.1", "/withdraw 1 0.01", "/earn 0.1 BTC",
                 "/borrow"):
        bot.say(ANN, text)
    guided = bot.tg.wait_for(lambda r: r["chat_id"] == ANN and r["reply_markup"] is not None
                             and "bl:" in str(r["reply_markup"]))
    bot.tap(ANN, guided, "bl:USDT")
    for text in ("/book", "/vip 42", f"/credit {BOB} 1 ETH", "/setrate USDT 7%"):
        bot.say(OPERATOR, text)
    bot.tg.add_bot_to_group(GROUP, ANN, title="loop room")
    bot.tg.set_member_status(GROUP, ANN, "administrator")
    for text in ("/monitor", "/share", "/board", "/unshare"):
        bot.say(ANN, text, chat_id=GROUP)
    pv = bot.say(ANN, "/position 1")
    bot.tap(ANN, pv, "pv:1", check=False)
    assert not [r for r in bot.tg.sent if WENT_WRONG in (r["plain"] or "")]
    assert not [a for a in bot.tg.answers if WENT_WRONG in (a.get("text") or "")]


def test_one_chat_stays_in_order_while_another_chat_is_served(bot: Harness) -> None:
    bot.say(BOB, "/start")  # the bot leads and polls (taking the lease needs the write lock)
    since = len(bot.tg.sent)
    with writer_held(bot.db):
        bot.tg.send_text(ANN, "/faucet")  # a write: it waits for the lock
        bot.tg.send_text(ANN, "/wallet")  # a read, but after Ann's /faucet: it waits for it
        markets = bot.say(BOB, "/markets")  # another chat: served while Ann's update waits
        assert "USDT" in markets["plain"]
        assert to(bot, ANN, since) == []
    bot.tg.wait_until(lambda: len(to(bot, ANN, since)) >= 2)
    faucet, wallet = to(bot, ANN, since)[:2]
    assert "empty" not in wallet and "Wallet" in wallet, (faucet, wallet)


def test_a_slow_database_never_stalls_replies(bot: Harness) -> None:
    """While the write lock is held, every read is answered and a tap is acknowledged; the writes wait and then
    go through."""
    fund(bot)
    preview = bot.say(ANN, "/borrow 30000 USDT with 1 BTC")
    since, answered = len(bot.tg.sent), len(bot.tg.answers)
    with writer_held(bot.db):
        bot.tg.tap(ANN, preview, confirm_data(preview))  # a write
        for user, text in ((BOB, "/markets"), (BOB, "/wallet"), (OPERATOR, "/book"), (OPERATOR, "/help"),
                           (ANN, "/positions")):  # Ann's read queues behind her tap: her chat's order
            bot.tg.send_text(user, text)
        bot.tg.wait_until(lambda: len(to(bot, BOB, since)) >= 2 and len(to(bot, OPERATOR, since)) >= 2)
        bot.tg.wait_until(lambda: len(bot.tg.answers) > answered)  # the tap: acknowledged, its work still waiting
        assert to(bot, ANN, since) == []
    bot.tg.wait_until(lambda: len(to(bot, ANN, since)) >= 2)
    assert "#1" in to(bot, ANN, since)[-1]  # the borrow went through, then Ann's /positions saw it
    assert not [r for r in bot.tg.sent if WENT_WRONG in (r["plain"] or "")]


def test_a_tap_is_acknowledged_before_its_work_finishes_and_a_double_tap_acts_once(bot: Harness) -> None:
    fund(bot)
    preview = bot.say(ANN, "/borrow 30000 USDT with 1 BTC")
    since, answered = len(bot.tg.sent), len(bot.tg.answers)
    with writer_held(bot.db):
        bot.tg.tap(ANN, preview, confirm_data(preview))
        bot.tg.tap(ANN, preview, confirm_data(preview), check=False)  # the same button again at once
        bot.tg.wait_until(lambda: len(bot.tg.answers) > answered)
        assert to(bot, ANN, since) == []  # acknowledged, not yet done
    bot.tg.wait_until(lambda: len(bot.tg.answers) >= answered + 2 and len(to(bot, ANN, since)) >= 1)
    assert bot.tg.unanswered_callbacks() == []
    positions = bot.state()["positions"]
    assert len(positions) == 1  # acted once
    assert sum("#1" in text for text in to(bot, ANN, since)) == 1


def test_replies_are_retried_after_a_429(bot: Harness) -> None:
    bot.tg.flood(ANN, retry_after=1, times=2)
    since = len(bot.tg.sent)
    bot.tg.send_text(ANN, "/markets")
    reply = bot.tg.wait_for(lambda r: r["chat_id"] == ANN, since=since)
    assert "USDT" in reply["plain"]
    refused = [r for r in bot.tg.requests if r["status"] == 429]
    assert len(refused) == 2


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Harness]:
    """The bot with Telegram's own limits (the default budget) against a fake that enforces them."""
    with running(tmp_path, TelegramBudget()) as harness:
        harness.tg.rate_limits(True)
        yield harness


def test_a_burst_of_replies_keeps_within_telegrams_limits(limited: Harness) -> None:
    """Three people and a group write faster than Telegram lets a bot answer one chat: every answer comes, paced,
    and Telegram refuses none."""
    bot = limited
    bot.tg.add_bot_to_group(GROUP, ANN, title="busy room")
    since = len(bot.tg.sent)
    for _ in range(4):
        for user in (ANN, BOB, OPERATOR):
            bot.tg.send_text(user, "/markets")
        bot.tg.send_text(ANN, "/help", chat_id=GROUP)
    bot.tg.wait_until(lambda: all(len(to(bot, chat, since)) >= 4 for chat in (ANN, BOB, OPERATOR, GROUP)),
                      timeout=15)
    assert [r for r in bot.tg.requests if r["status"] == 429] == []


def test_a_write_that_cannot_get_the_lock_in_time_is_told_so_and_changes_nothing(bot: Harness) -> None:
    bot.say(BOB, "/start")  # the bot leads and polls
    since = len(bot.tg.sent)
    with writer_held(bot.db):
        bot.tg.send_text(ANN, "/faucet")
        bot.tg.wait_until(lambda: len(to(bot, ANN, since)) >= 1, timeout=15)  # SQLite's busy timeout is 5 s
    assert to(bot, ANN, since) == [BUSY]
    assert "empty" in bot.say(ANN, "/wallet")["plain"]


def test_httpcore_finds_the_async_library_without_a_search_of_sys_path() -> None:
    """httpcore asks which async library runs every request (``import sniffio`` inside the call). Without sniffio
    installed that import failed every time after searching all of ``sys.path`` — file-system calls on the event
    loop, stalls of 100-250 ms in a crash; installed, it is a dictionary lookup."""
    import asyncio
    import sys

    from httpcore._synchronization import current_async_library

    async def ask() -> str:
        return current_async_library()

    assert asyncio.run(ask()) == "asyncio"
    assert "sniffio" in sys.modules
