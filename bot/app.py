"""The composition root: settings → catalog, database, price source, service, chat → PTB Application.

``build_application`` wires everything; the Telegram handlers here only translate updates to ``ChatDesk``
calls and ``Reply`` objects to Bot API calls. A gate in handler group -1 drops redelivered updates (keyed by
chat+message id or callback query id, persisted) and slows down floods before any command runs; a chat that
had refused the bot (403) and writes again is reactivated there and its held critical pushes are sent before
the answer. The error handler logs and answers with one generic sentence, never a traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from typing import Any

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ChatMemberHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import render
from bot.commands import BORROWER_COMMANDS, ChatDesk
from bot.flood import SLOW_DOWN, FloodLimiter
from bot.groups import GROUP_COMMANDS, OWNER_ONLY, Groups
from bot.notifier import telegram_sender
from bot.prices import ExchangePrices, PriceSource
from bot.render import Reply
from bot.scheduler import Hook, Monitor, build_monitor
from bot.services import Clock, LoanService, utcnow
from bot.settings import Settings
from bot.state import StateStore
from domain.markets import load_catalog

log = logging.getLogger("loandesk.bot")
SORRY = "Something went wrong on our side; nothing was changed."
App = Application[Any, Any, Any, Any, Any, Any]


def build_desk(settings: Settings, prices: PriceSource | None = None,
               clock: Clock = utcnow) -> tuple[ChatDesk, StateStore, PriceSource]:
    """The chat core on the configured database and exchange (shared by ``run`` and the tests)."""
    catalog = load_catalog(settings.markets_file)
    store = StateStore(settings.database_url)
    source = prices or ExchangePrices(settings.binance_url, list(catalog.assets))
    service = LoanService(catalog, store, demo=settings.demo, clock=clock)
    return ChatDesk(service, source, settings.admin_ids, settings.demo), store, source


def build_application(settings: Settings, prices: PriceSource | None = None, *, clock: Clock = utcnow,
                      monitor: bool = True, **timeouts: float) -> App:
    """The bot; with ``monitor`` also the scheduler (prices, sweeps, accrual) and the notifier, in its loop."""
    if not settings.telegram_bot_token:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    desk, store, source = build_desk(settings, prices, clock)
    flood = FloodLimiter()
    watcher: Monitor | None = None

    async def post_init(app: App) -> None:
        if isinstance(source, ExchangePrices):
            await source.start()
        await app.bot.set_my_commands([BotCommand(c, d) for c, d in BORROWER_COMMANDS])
        if watcher is not None:
            await watcher.feed_start()
            watcher.start()

    async def post_shutdown(app: App) -> None:
        if watcher is not None:
            await watcher.stop()
        if isinstance(source, ExchangePrices):
            await source.close()
        store.close()

    builder = ApplicationBuilder().token(settings.telegram_bot_token).job_queue(None)
    if settings.telegram_base_url:
        builder = builder.base_url(settings.telegram_base_url)
    for name, value in timeouts.items():
        builder = getattr(builder, name)(value)
    app: App = builder.post_init(post_init).post_shutdown(post_shutdown).build()
    catalog = desk.service.catalog
    groups = Groups(catalog, store, source, settings.admin_ids, clock)
    if monitor:
        watcher = build_monitor(settings, catalog, store, telegram_sender(app.bot), clock, pre_sweep_hooks())
        app.bot_data["monitor"] = watcher
    handlers = TelegramHandlers(desk, flood, groups, watcher)
    app.add_handler(TypeHandler(Update, handlers.gate), group=-1)
    app.add_handler(ChatMemberHandler(handlers.on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_handler(MessageHandler(filters.COMMAND, handlers.on_command))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, handlers.on_text))
    app.add_handler(CallbackQueryHandler(handlers.on_tap))
    app.add_error_handler(handlers.on_error)
    app.bot_data["desk"] = desk
    app.bot_data["store"] = store
    return app


def pre_sweep_hooks() -> list[Hook]:
    """What the tick runs after accrual and fixed-loan expiries, before the sweep: auto-protection, then price
    alerts (``domain.protection`` / ``domain.alerts``; skipped while those modules are not there)."""
    hooks: list[Hook] = []
    for module, name in (("domain.protection", "run_protection"), ("domain.alerts", "run_price_alerts")):
        try:
            hooks.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            log.info("pre-sweep hook %s.%s is not available", module, name)
    return hooks


def markup(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data) for label, data in row]
                                 for row in reply.buttons])


async def send(update: Update, context: ContextTypes.DEFAULT_TYPE, replies: list[Reply]) -> None:
    chat = update.effective_chat
    if chat is not None:
        await send_to(context, chat.id, replies)


async def send_to(context: ContextTypes.DEFAULT_TYPE, chat_id: int, replies: list[Reply]) -> None:
    for reply in replies:
        parts = render.split(reply.text)
        for i, part in enumerate(parts):
            await context.bot.send_message(chat_id, part, parse_mode=ParseMode.HTML,
                                           reply_markup=markup(reply) if i == len(parts) - 1 else None)
        if reply.photo is not None:
            await context.bot.send_photo(chat_id, reply.photo, caption=reply.caption[:1024] or None,
                                         parse_mode=ParseMode.HTML)


def update_key(update: Update) -> str:
    """What identifies an update across redeliveries (Telegram may resend it with a new update id)."""
    if update.callback_query is not None:
        return f"q:{update.callback_query.id}"
    message = update.effective_message
    if message is not None and update.effective_chat is not None:
        return f"m:{update.effective_chat.id}:{message.message_id}"
    return f"u:{update.update_id}"


class TelegramHandlers:
    """parse the update → one ``ChatDesk`` call → send the replies."""

    def __init__(self, desk: ChatDesk, flood: FloodLimiter, groups: Groups, monitor: Monitor | None = None) -> None:
        self.desk = desk
        self.flood = flood
        self.groups = groups
        self.monitor = monitor

    async def welcome_back(self, chat_id: int, released: int | None) -> None:
        """A chat that refused the bot is back: its held critical pushes go out now (if this process leads)."""
        if released and self.monitor is not None and self.monitor.leader():
            await self.monitor.notifier.flush(chat_id)

    async def gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Drop redelivered updates; slow down floods (one warning, then silence)."""
        if not self.desk.service.first_time(update_key(update)):
            raise ApplicationHandlerStop
        chat = update.effective_chat
        if chat is not None and (update.message is not None or update.callback_query is not None):
            await self.welcome_back(chat.id, self.groups.returned(chat.id))
        user = update.effective_user
        if user is None:
            return
        verdict = self.flood.check(user.id)
        if verdict == "ok":
            return
        if verdict == "warn":
            if update.callback_query is not None:
                await update.callback_query.answer(SLOW_DOWN[:200])
            else:
                await send(update, context, [Reply(render.e(SLOW_DOWN))])
        raise ApplicationHandlerStop

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A /command: name and whitespace-separated arguments."""
        message, user, chat = update.effective_message, update.effective_user, update.effective_chat
        if message is None or user is None or chat is None or not message.text:
            return
        head, *args = message.text.split()
        name = head[1:].split("@", 1)[0]
        if name.lower() in GROUP_COMMANDS:
            async def status() -> str:
                return str((await context.bot.get_chat_member(chat.id, user.id)).status)
            await send(update, context, await self.groups.command(name.lower(), chat.id, chat.type, chat.title,
                                                                  user.id, args, status))
            return
        await send(update, context, await self.desk.command(user.id, chat.type == "private", name, args))

    async def on_my_chat_member(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The bot was added to / removed from a group, or blocked / restarted in a private chat."""
        change = update.my_chat_member
        if change is not None:
            chat = change.chat
            released = self.groups.member_changed(chat.id, chat.type, chat.title, str(change.new_chat_member.status))
            await self.welcome_back(chat.id, released)

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Plain text: an amount a guided /borrow asked for."""
        message, user, chat = update.effective_message, update.effective_user, update.effective_chat
        if message is None or user is None or chat is None or not message.text:
            return
        await send(update, context, await self.desk.text(user.id, chat.type == "private", message.text))

    async def on_tap(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A button: answered with a toast; the tapped keyboard goes away when the choice is used up."""
        query = update.callback_query
        if query is None or query.data is None:
            return
        chat = update.effective_chat
        kind, _, value = query.data.partition(":")
        if chat is not None and chat.type != "private" and kind in ("pa", "pr", "pv") and value.isdigit():
            await self.on_group_tap(update, context, chat.id, kind, int(value))
            return
        result = await self.desk.tap(query.from_user.id, query.data)
        await query.answer(result.toast[:200] or None)
        if result.clear_buttons and query.message is not None:
            with contextlib.suppress(BadRequest):  # already without buttons
                await query.edit_message_reply_markup(None)
        await send(update, context, result.replies)

    async def on_group_tap(self, update: Update, context: ContextTypes.DEFAULT_TYPE, chat_id: int, kind: str,
                           pid: int) -> None:
        """A push button in a group: View answers in the group; Add collateral / Repay only for the owner, and
        only in their private chat (a preview there; nothing is done in the group)."""
        query = update.callback_query
        assert query is not None and query.data is not None
        user = query.from_user.id
        answer = await self.groups.tap(chat_id, user, kind, pid)
        if not answer.owner:
            await query.answer(answer.toast[:200] or None)
            await send(update, context, answer.replies)
            return
        result = await self.desk.tap(user, query.data)
        try:
            await send_to(context, user, result.replies)
        except Forbidden:  # the owner never opened (or blocked) the private chat
            await query.answer(OWNER_ONLY)
            return
        await query.answer("Sent to our private chat.")

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log it; tell the person something generic (never the exception)."""
        log.error("update failed", exc_info=context.error)
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        try:
            if update.callback_query is not None:
                await update.callback_query.answer(SORRY)
            await context.bot.send_message(update.effective_chat.id, SORRY)
        except TelegramError:
            log.warning("could not report the failure to chat %s", update.effective_chat.id)
