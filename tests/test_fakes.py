"""The fakes speak the real protocols: python-telegram-bot and httpx talk to them unchanged.

Each Telegram test runs a real PTB ``Application`` (or its ``bot``) over HTTP against ``FakeTelegram`` inside
``asyncio.run``; the exchange tests use a real ``httpx.Client`` against ``FakeExchange``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import json
import struct
import threading
import time
import warnings
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
)

from tests.fakes._tg_html import HtmlError, parse_html
from tests.fakes.exchange import FakeExchange
from tests.fakes.telegram import FakeTelegram

TOKEN = "123:ABC"
ANN = 42
GROUP = -1001


def _png(width: int = 3, height: int = 2) -> bytes:
    """A real (tiny, grey) PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x80" * width for _ in range(height)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def build_app(tg: FakeTelegram) -> Application[Any, Any, Any, Any, Any, Any]:
    """A real Application aimed at the fake, with short timeouts so a broken fake fails fast."""
    return (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(tg.base_url)
        .job_queue(None)
        .connect_timeout(2)
        .read_timeout(2)
        .write_timeout(2)
        .pool_timeout(2)
        .get_updates_connect_timeout(2)
        .get_updates_read_timeout(3)
        .get_updates_write_timeout(2)
        .get_updates_pool_timeout(2)
        .build()
    )


@contextlib.asynccontextmanager
async def polling(app: Application[Any, Any, Any, Any, Any, Any]) -> AsyncIterator[None]:
    """Run the app the way TECH.md prescribes (no run_polling, so the test owns the loop)."""
    async with app:
        await app.updater.start_polling(poll_interval=0, timeout=1)  # type: ignore[union-attr]
        await app.start()
        try:
            yield
        finally:
            await app.updater.stop()  # type: ignore[union-attr]
            await app.stop()


def with_bot(tg: FakeTelegram, scenario: Callable[[Bot], Awaitable[object]]) -> None:
    """Run ``scenario(app.bot)`` with an initialised (not polling) application."""

    async def main() -> None:
        async with build_app(tg) as app:
            await scenario(app.bot)

    asyncio.run(main())


def seconds(error: RetryAfter) -> float:
    """``RetryAfter.retry_after`` in seconds (PTB 22 may give int or timedelta, with a deprecation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def pong(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/ping → "pong" with one button."""
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Again", callback_data="again")]])
    await update.effective_message.reply_text("pong", reply_markup=keyboard)  # type: ignore[union-attr]


async def tapped(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap is answered and the message edited (which drops the keyboard)."""
    query = update.callback_query
    assert query is not None
    await query.answer("ok")
    await query.edit_message_text(f"tapped <b>{query.data}</b>", parse_mode=ParseMode.HTML)


# ---------------------------------------------------------------------------------------------- Telegram


def test_a_command_is_answered_and_a_button_tap_edits_the_message() -> None:
    with FakeTelegram() as tg:

        async def scenario() -> None:
            app = build_app(tg)
            app.add_handler(CommandHandler("ping", pong))
            app.add_handler(CallbackQueryHandler(tapped, pattern="^again$"))
            async with polling(app):
                tg.send_text(ANN, "/ping", first_name="Ann", username="ann")
                reply = await tg.await_for(lambda m: m["chat_id"] == ANN)
                assert (reply["method"], reply["text"]) == ("sendMessage", "pong")
                assert reply["reply_markup"] == {
                    "inline_keyboard": [[{"text": "Again", "callback_data": "again"}]]
                }
                tg.tap(ANN, reply, "again")
                await tg.await_for(lambda m: m["method"] == "editMessageText")

        asyncio.run(scenario())
        (message,) = tg.messages_to(ANN)
        assert message["plain"] == "tapped again"
        assert message["text"] == "tapped <b>again</b>"
        assert message["reply_markup"] is None
        assert [(a["data"], a["text"]) for a in tg.answers] == [("again", "ok")]
        tg.wait_until(lambda: len(tg.answers) == 1, timeout=0.1)  # re-entrant: may read the fake
        assert tg.unanswered_callbacks() == []
        methods = [r["method"] for r in tg.requests]
        assert methods[:2] == ["getMe", "deleteWebhook"]
        assert "getUpdates" in methods


def test_a_tap_needs_a_button_that_is_on_the_message() -> None:
    with FakeTelegram() as tg:
        tg.add_user(ANN)

        async def scenario(bot: Bot) -> None:
            await bot.send_message(ANN, "no buttons")

        with_bot(tg, scenario)
        with pytest.raises(ValueError, match="no button"):
            tg.tap(ANN, tg.sent[0], "again")


def test_a_redelivered_update_reaches_the_bot_twice_with_the_same_message_id() -> None:
    seen: list[tuple[int, int]] = []

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        seen.append((update.update_id, update.effective_message.message_id))
        await update.effective_message.reply_text(f"seen {len(seen)}")

    with FakeTelegram() as tg:

        async def scenario() -> None:
            app = build_app(tg)
            app.add_handler(CommandHandler("start", record))
            async with polling(app):
                first = tg.send_text(ANN, "/start")
                again = tg.redeliver(first)
                assert again["update_id"] != first["update_id"]
                await tg.await_for(lambda m: m["text"] == "seen 2")

        asyncio.run(scenario())
    assert len({update_id for update_id, _ in seen}) == 2
    assert len({message_id for _, message_id in seen}) == 1


def test_joining_a_group_arrives_as_my_chat_member_and_member_statuses_are_configurable() -> None:
    changes: list[tuple[str, str, int]] = []

    async def membership(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change = update.my_chat_member
        assert change is not None
        changes.append((change.old_chat_member.status, change.new_chat_member.status, change.from_user.id))
        status = await context.bot.get_chat_member(change.chat.id, change.from_user.id)
        if change.new_chat_member.status == "member":
            await context.bot.send_message(change.chat.id, f"hello, adder is {status.status}")

    with FakeTelegram() as tg:
        tg.set_member_status(GROUP, ANN, "creator")

        async def scenario() -> None:
            app = build_app(tg)
            app.add_handler(ChatMemberHandler(membership, ChatMemberHandler.MY_CHAT_MEMBER))
            async with polling(app):
                tg.add_bot_to_group(GROUP, ANN, title="Desk")
                await tg.await_for(lambda m: m["chat_id"] == GROUP)
                tg.remove_bot_from_group(GROUP, ANN)
                await asyncio.to_thread(tg.wait_until, lambda: len(changes) == 2)
                with pytest.raises(Forbidden, match="bot was kicked from the group chat"):
                    await app.bot.send_message(GROUP, "still here?")
                admin = await app.bot.get_chat_member(GROUP, 7)
                assert admin.status == "member"
                tg.set_member_status(GROUP, 7, "administrator")
                assert (await app.bot.get_chat_member(GROUP, 7)).status == "administrator"

        asyncio.run(scenario())
    assert changes == [("left", "member", ANN), ("member", "kicked", ANN)]
    assert tg.sent[0]["text"] == "hello, adder is creator"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<b>bold</i>", 'Unmatched end tag at byte offset 7, expected "</b>", found "</i>"'),
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("AT&T", "Character entity expected at byte offset 2"),
        ("x</b>", "Unexpected end tag at byte offset 1"),
    ],
)
def test_invalid_html_is_refused_with_telegrams_words(text: str, error: str) -> None:
    with FakeTelegram() as tg:
        tg.add_user(ANN)

        async def scenario(bot: Bot) -> None:
            with pytest.raises(BadRequest) as refused:
                await bot.send_message(ANN, text, parse_mode=ParseMode.HTML)
            # PTB drops "Bad Request: " and applies str.capitalize() to the rest.
            assert refused.value.message == f"Can't parse entities: {error}".capitalize()

        with_bot(tg, scenario)
        assert tg.requests[-1]["description"] == f"Bad Request: can't parse entities: {error}"
        assert tg.sent == []


def test_telegram_limits_are_refused_as_bad_request() -> None:
    with FakeTelegram() as tg:
        tg.add_user(ANN)

        async def scenario(bot: Bot) -> None:
            async def refused(call: Awaitable[object]) -> str:
                with pytest.raises(BadRequest) as error:
                    await call
                return error.value.message

            assert await refused(bot.send_message(ANN, "x" * 4097)) == "Message is too long"
            await bot.send_message(ANN, "&lt;" * 4096, parse_mode=ParseMode.HTML)  # 4096 after parsing
            assert await refused(bot.send_message(ANN, "<b> </b>", parse_mode="HTML")) == (
                "Message text is empty"
            )
            too_much = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 33)]])
            assert await refused(bot.send_message(ANN, "hi", reply_markup=too_much)) == (
                "Button_data_invalid"
            )
            just_fits = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 32)]])
            message = await bot.send_message(ANN, "hi", reply_markup=just_fits)
            assert await refused(bot.send_photo(ANN, _png(), caption="c" * 1025)) == (
                "Message caption is too long"
            )
            assert await refused(bot.send_photo(ANN, b"not an image")) == "Image_process_failed"
            assert await refused(bot.send_message(999, "who?")) == "Chat not found"
            assert (await refused(message.edit_reply_markup(just_fits))).startswith("Message is not modified")
            query = tg.tap(ANN, tg.sent[-1], "é" * 32)["callback_query"]["id"]
            assert await refused(bot.answer_callback_query(query, "a" * 201)) == "Message_too_long"
            await bot.answer_callback_query(query, "a" * 200)
            assert (await refused(bot.answer_callback_query(query))).startswith("Query is too old")
            await message.delete()
            assert await refused(message.delete()) == "Message to delete not found"

        with_bot(tg, scenario)
        assert [r["method"] for r in tg.sent] == ["sendMessage", "sendMessage", "deleteMessage"]
        assert len(tg.sent[0]["plain"]) == 4096


# PTB 22 warns inside RetryAfter itself unless PTB_TIMEDELTA is set; that is PTB's business, not ours.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_flood_control_becomes_retry_after() -> None:
    with FakeTelegram() as tg:
        tg.add_user(ANN)
        for chat in range(1, 32):
            tg.add_user(chat)
        tg.add_bot_to_group(GROUP, ANN)

        async def scenario(bot: Bot) -> None:
            tg.flood(chat_id=ANN, retry_after=7, times=1)
            with pytest.raises(RetryAfter) as flooded:
                await bot.send_message(ANN, "one")
            assert seconds(flooded.value) == 7
            await bot.send_message(ANN, "one, later")

            tg.rate_limits(True)
            await bot.send_message(ANN, "two")
            with pytest.raises(RetryAfter) as per_chat:
                await bot.send_message(ANN, "three")  # 1 message per second to one private chat
            assert seconds(per_chat.value) == 1
            for chat in range(1, 30):
                await bot.send_message(chat, "broadcast")
            with pytest.raises(RetryAfter):
                await bot.send_message(31, "broadcast")  # 31st in a second overall

            tg.rate_limits(True)
            for _ in range(20):
                await bot.send_message(GROUP, "group")
            with pytest.raises(RetryAfter) as per_group:
                await bot.send_message(GROUP, "group")  # 20 per minute to one group
            assert 55 <= seconds(per_group.value) <= 60
            tg.rate_limits(False)
            await bot.send_message(GROUP, "limiter off")

        with_bot(tg, scenario)
        refused = [r for r in tg.requests if r["status"] == 429]
        assert refused[0]["description"] == "Too Many Requests: retry after 7"


def test_blocked_users_are_forbidden_and_migrated_groups_raise_chat_migrated() -> None:
    with FakeTelegram() as tg:
        tg.add_user(ANN)
        tg.add_bot_to_group(GROUP, ANN)
        tg.block(ANN)
        tg.migrate(GROUP, -1002)

        async def scenario(bot: Bot) -> None:
            with pytest.raises(Forbidden) as blocked:
                await bot.send_message(ANN, "hello?")
            assert blocked.value.message == "Forbidden: bot was blocked by the user"
            with pytest.raises(ChatMigrated) as migrated:
                await bot.send_message(GROUP, "hello group")
            assert migrated.value.new_chat_id == -1002
            await bot.send_message(-1002, "hello supergroup")

        with_bot(tg, scenario)
        tg.send_text(ANN, "/start")  # writing to the bot again unblocks it
        with_bot(tg, lambda bot: bot.send_message(ANN, "welcome back"))
        assert [r["chat_id"] for r in tg.sent] == [-1002, ANN]


def test_photos_commands_and_chat_actions_round_trip() -> None:
    with FakeTelegram() as tg:
        tg.add_user(ANN)

        async def scenario(bot: Bot) -> None:
            photo = await bot.send_photo(ANN, _png(5, 4), caption="<i>chart</i>", parse_mode="HTML")
            assert (photo.photo[-1].width, photo.photo[-1].height) == (5, 4)
            assert photo.caption == "chart"
            assert photo.caption_entities[0].type == "italic"
            again = await bot.send_photo(ANN, photo.photo[-1].file_id)
            assert again.photo
            await bot.send_chat_action(ANN, "upload_photo")
            await bot.set_my_commands([("start", "Start"), ("borrow", "Take a loan")])
            assert [c.command for c in await bot.get_my_commands()] == ["start", "borrow"]
            with pytest.raises(BadRequest, match="Bot_command_invalid"):
                await bot.set_my_commands([("Borrow-Now", "no")])

        with_bot(tg, scenario)
        assert tg.sent[0]["photo_size"] == len(_png(5, 4))
        assert tg.sent[0]["photo"] == _png(5, 4)
        assert tg.actions[0]["action"] == "upload_photo"
        assert tg.commands()[1] == {"command": "borrow", "description": "Take a loan"}


def test_get_updates_waits_at_most_the_cap_and_wakes_when_an_update_arrives() -> None:
    with FakeTelegram(poll_cap=0.5) as tg, httpx.Client(base_url=f"{tg.base_url}{TOKEN}/") as client:
        started = time.monotonic()
        empty = client.post("getUpdates", data={"timeout": "30"}).json()
        assert empty == {"ok": True, "result": []}
        assert 0.4 <= time.monotonic() - started < 1.5

        timer = threading.Timer(0.1, tg.send_text, args=(ANN, "hi"))
        timer.start()
        started = time.monotonic()
        woke = client.post("getUpdates", json={"timeout": 30}).json()
        timer.join()
        assert time.monotonic() - started < 0.45
        (update,) = woke["result"]
        assert update["message"]["text"] == "hi"
        assert "entities" not in update["message"]

        tg.send_text(ANN, "/borrow@loandesk_test_bot 100 USDT")
        pending = client.post("getUpdates", data={"offset": str(update["update_id"])}).json()["result"]
        assert [u["update_id"] for u in pending] == [update["update_id"], update["update_id"] + 1]
        assert pending[1]["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 25}]
        confirmed = client.post("getUpdates", data={"offset": str(update["update_id"] + 2)}).json()
        assert confirmed["result"] == []
        assert tg.pending_updates == 0

        first: list[httpx.Response] = []
        rival = threading.Thread(
            target=lambda: first.append(client.post("getUpdates", data={"timeout": "5"}))
        )
        rival.start()
        tg.wait_until(lambda: tg.waiting_polls == 1)
        assert client.post("getUpdates").status_code == 200  # a second poller...
        rival.join()
        assert first[0].status_code == 409  # ...terminates the first, like Telegram
        assert first[0].json()["description"].startswith("Conflict: terminated by other getUpdates request")

        unknown = client.post("sendDocument", data={"chat_id": str(ANN)})
        assert unknown.status_code == 404 and unknown.json()["ok"] is False


def test_html_parsing_yields_the_text_and_entities_the_person_sees() -> None:
    parsed = parse_html('<b>Loan #7</b> &amp; <a href="https://x.org/?a=1&amp;b=2">link</a> 🙂 <i>x</i>')
    assert parsed.text == "Loan #7 & link 🙂 x"
    assert parsed.entities == [
        {"type": "bold", "offset": 0, "length": 7},
        {"type": "text_link", "offset": 10, "length": 4, "url": "https://x.org/?a=1&b=2"},
        {"type": "italic", "offset": 18, "length": 1},  # the emoji is two UTF-16 units
    ]
    assert parse_html('<pre><code class="language-python">x</code></pre>').entities == [
        {"type": "pre", "offset": 0, "length": 1, "language": "python"}
    ]
    assert parse_html('<span class="tg-spoiler">s</span>&#33;&#x41;').text == "s!A"
    with pytest.raises(HtmlError, match='must have class "tg-spoiler"'):
        parse_html("<span>s</span>")


def test_closing_the_fakes_wakes_waiting_requests_and_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    with FakeTelegram(poll_cap=10) as tg, FakeExchange({"BTC": "1"}) as ex:
        ex.hang(10)
        calls = [
            threading.Thread(
                target=httpx.get, args=(f"{ex.url}/api/v3/ticker/price",), kwargs={"timeout": 20}
            ),
            threading.Thread(
                target=httpx.post,
                args=(f"{tg.base_url}{TOKEN}/getUpdates",),
                kwargs={"data": {"timeout": "10"}, "timeout": 20},
            ),
        ]
        for call in calls:
            call.start()
        tg.wait_until(lambda: tg.waiting_polls == 1)
        while ex.hits == 0:
            time.sleep(0.005)
        started = time.monotonic()
    for call in calls:
        call.join()
    assert time.monotonic() - started < 2
    assert set(threading.enumerate()) == before


# ---------------------------------------------------------------------------------------------- exchange


@pytest.fixture
def exchange() -> Any:
    with FakeExchange({"BTC": "50000", "ETH": Decimal("3000.5")}) as ex:
        yield ex


def test_prices_in_all_three_query_forms(exchange: FakeExchange) -> None:
    with httpx.Client(base_url=exchange.url, timeout=2) as client:
        everything = client.get("/api/v3/ticker/price").json()
        assert everything == [
            {"symbol": "BTCUSDT", "price": "50000.00000000"},
            {"symbol": "ETHUSDT", "price": "3000.50000000"},
        ]
        one = client.get("/api/v3/ticker/price", params={"symbol": "ETHUSDT"}).json()
        assert one == {"symbol": "ETHUSDT", "price": "3000.50000000"}
        symbols = json.dumps(["BTCUSDT", "ETHUSDT"], separators=(",", ":"))
        some = client.get("/api/v3/ticker/price", params={"symbols": symbols}).json()
        assert [p["symbol"] for p in some] == ["BTCUSDT", "ETHUSDT"]
        unknown = client.get("/api/v3/ticker/price", params={"symbol": "DOGEUSDT"})
        assert (unknown.status_code, unknown.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
        listed = client.get("/api/v3/ticker/price", params={"symbols": '["BTCUSDT","XUSDT"]'})
        assert listed.json()["code"] == -1121
        exchange.set_price("BTC", "49999.123456789")
        btc = client.get("/api/v3/ticker/price", params={"symbol": "BTCUSDT"}).json()
        assert btc["price"] == "49999.12345679"
        assert exchange.hits == 6
    with pytest.raises(TypeError):
        exchange.set_price("BTC", 1.5)  # type: ignore[arg-type]


def test_exchange_failure_modes(exchange: FakeExchange) -> None:
    url = "/api/v3/ticker/price"
    with httpx.Client(base_url=exchange.url, timeout=0.3) as client:
        exchange.fail(status=500, times=2)
        assert [client.get(url).status_code for _ in range(3)] == [500, 500, 200]
        exchange.fail(status=429)
        limited = client.get(url)
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "60")

        exchange.garbage(times=1)
        with pytest.raises(json.JSONDecodeError):
            client.get(url).json()
        assert client.get(url).status_code == 200

        exchange.hang(1.0, times=1)
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.get(url)
        assert time.monotonic() - started < 0.8
        assert client.get(url).json()[0]["symbol"] == "BTCUSDT"
        assert exchange.hits == 8
