"""The Telegram side of the chat: python-telegram-bot handlers that turn updates into ``ChatDesk`` / ``Groups``
calls and ``Reply`` objects into Bot API calls.

Commands are ``CommandHandler``s built from the one registry (``bot.chat.registry``), so a command addressed to
another bot (``/help@OtherBot``) is not ours and is ignored; an unknown command is answered (with "did you
mean") only in a private chat or when addressed to this bot by name. A gate in handler group -1 drops redelivered
updates (keyed by chat+message id or callback query id, persisted) and slows down floods before any command
runs; a chat that had refused the bot (403) and writes again is reactivated there and its held critical pushes
are sent before the answer. The error handler logs and answers with one true sentence, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from telegram import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.chat import registry
from bot.chat.desk import ChatDesk
from bot.chat.groups import OWNER_ONLY, Groups
from bot.monitor.scheduler import Monitor
from bot.ops import incidents as incident_ids
from bot.render import buttons, common, incidents
from bot.render.common import Reply
from bot.telegram.flood import SLOW_DOWN, FloodLimiter

log = logging.getLogger("loandesk.bot")
App = Application[Any, Any, Any, Any, Any, Any]
SORRY = incidents.failure_without_id()  # the offline console's answer to a failure (no operators to tell)


def markup(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, url=data) if data.startswith("https://")
                                  else InlineKeyboardButton(label, callback_data=data) for label, data in row]
                                 for row in reply.buttons])  # a URL: "act on the lender's site" (SPEC §9)


async def send(update: Update, context: ContextTypes.DEFAULT_TYPE, replies: list[Reply]) -> None:
    chat = update.effective_chat
    if chat is not None:
        await send_to(context, chat.id, replies)


async def send_to(context: ContextTypes.DEFAULT_TYPE, chat_id: int, replies: list[Reply]) -> None:
    for reply in replies:
        parts = common.split(reply.text)
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


async def set_menus(app: App, operators: frozenset[int], demo: bool) -> None:
    """Telegram's command menus from the registry: private chats, groups, and each operator's own chat."""
    bot = app.bot
    private = [BotCommand(c, d) for c, d in registry.menu(registry.PRIVATE, demo)]
    await bot.set_my_commands(private)  # the default scope, for clients that show no other
    await bot.set_my_commands(private, scope=BotCommandScopeAllPrivateChats())
    await bot.set_my_commands([BotCommand(c, d) for c, d in registry.menu(registry.GROUP, demo)],
                              scope=BotCommandScopeAllGroupChats())
    for operator in sorted(operators):
        with contextlib.suppress(TelegramError):  # an operator who never opened the chat has no chat yet
            await bot.set_my_commands([BotCommand(c, d) for c, d in registry.menu(registry.OPERATOR, demo)],
                                      scope=BotCommandScopeChat(operator))


class TelegramHandlers:
    """parse the update → one ``ChatDesk`` (or ``Groups``) call → send the replies."""

    def __init__(self, desk: ChatDesk, flood: FloodLimiter, groups: Groups, monitor: Monitor | None = None) -> None:
        self.desk = desk
        self.flood = flood
        self.groups = groups
        self.monitor = monitor

    def register(self, app: App) -> None:
        app.add_handler(TypeHandler(Update, self.gate), group=-1)
        app.add_handler(ChatMemberHandler(self.on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
        app.add_handler(ChatMemberHandler(self.on_chat_member, ChatMemberHandler.CHAT_MEMBER))
        app.add_handler(MessageHandler(filters.StatusUpdate.LEFT_CHAT_MEMBER, self.on_member_left))
        names = sorted(registry.BY_NAME)
        app.add_handler(CommandHandler(names, self.on_command))
        app.add_handler(MessageHandler(filters.COMMAND, self.on_unknown_command))
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self.on_text))
        app.add_handler(CallbackQueryHandler(self.on_tap))
        app.add_error_handler(self.on_error)

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
                await send(update, context, [Reply(common.e(SLOW_DOWN))])
        raise ApplicationHandlerStop

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A registered /command addressed to this bot (``CommandHandler`` checked the ``@botname``)."""
        message, user, chat = update.effective_message, update.effective_user, update.effective_chat
        if message is None or user is None or chat is None or not message.text:
            return
        name = message.text.split()[0][1:].split("@", 1)[0].lower()
        args = list(context.args or [])
        if name == "link" and len(args) >= 2:  # an HMAC secret in the chat: gone at once (SPEC §9)
            try:
                await message.delete()
            except TelegramError:
                await send(update, context, [Reply("I could not delete your message with the secret: delete it "
                                                   "yourself now, and make a new key on Binance.")])
        command = registry.find(name)
        if command is not None and command.where == registry.GROUP and chat.type != "private":
            async def status() -> str:
                return str((await context.bot.get_chat_member(chat.id, user.id)).status)
            await send(update, context, await self.groups.command(command.name, chat.id, chat.type, chat.title,
                                                                  user.id, args, status))
            return
        await send(update, context, await self.desk.command(user.id, chat.type == "private", name, args))

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A /command that no handler took: another bot's (ignored), or one we do not know (answered in a private
        chat, or in a group when addressed to this bot by name)."""
        message, user, chat = update.effective_message, update.effective_user, update.effective_chat
        if message is None or user is None or chat is None or not message.text:
            return
        head = message.text.split()[0][1:]
        name, _, addressee = head.partition("@")
        if addressee and addressee.lower() != (context.bot.username or "").lower():
            return  # someone else's command
        if chat.type != "private" and not addressee:
            return  # in a group, unknown bare commands may be another bot's
        await send(update, context, await self.desk.command(user.id, True, name, []))

    async def on_my_chat_member(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The bot was added to / removed from a group, or blocked / restarted in a private chat."""
        change = update.my_chat_member
        if change is not None:
            chat = change.chat
            released = self.groups.member_changed(chat.id, chat.type, chat.title, str(change.new_chat_member.status))
            await self.welcome_back(chat.id, released)

    async def on_chat_member(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Someone else's membership changed in a group: one who left or was removed stops sharing there."""
        change = update.chat_member
        if change is not None and change.new_chat_member.status in ("left", "kicked"):
            self.groups.member_left(change.chat.id, change.new_chat_member.user.id)

    async def on_member_left(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The ``left_chat_member`` service message (sent even where the bot gets no ``chat_member`` updates)."""
        message = update.effective_message
        if message is not None and message.left_chat_member is not None and not message.left_chat_member.is_bot:
            self.groups.member_left(message.chat.id, message.left_chat_member.id)

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
        tap = buttons.decode(query.data)
        if chat is not None and chat.type != "private" and isinstance(tap, buttons.PushButton):
            await self.on_group_tap(update, context, chat.id, tap)
            return
        result = await self.desk.tap(query.from_user.id, query.data)
        await query.answer(result.toast[:200] or None)
        message = query.message
        if result.clear_buttons and message is not None and getattr(message, "reply_markup", None) is not None:
            with contextlib.suppress(BadRequest):  # another tap cleared them meanwhile
                await query.edit_message_reply_markup(None)
        await send(update, context, result.replies)

    async def on_group_tap(self, update: Update, context: ContextTypes.DEFAULT_TYPE, chat_id: int,
                           tap: buttons.PushButton) -> None:
        """A push button in a group: View answers in the group; Add collateral / Repay only for the owner, and
        only in their private chat (a preview there; nothing is done in the group)."""
        query = update.callback_query
        assert query is not None and query.data is not None
        user = query.from_user.id
        answer = await self.groups.tap(chat_id, user, tap.action, tap.pid)
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
        """An incident (logged under an id, operators alerted); the person gets a true sentence with the id —
        never the exception, and never "nothing was changed": the failure may have come after a commit."""
        ops = context.application.bot_data.get("ops")
        if ops is not None:
            error_id = ops.report("a chat update", context.error)
        else:
            error_id = incident_ids.new_id()
            log.error("update failed", exc_info=context.error, extra={"error_id": error_id})
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        try:
            if update.callback_query is not None:
                with contextlib.suppress(BadRequest):  # already answered before the failure
                    await update.callback_query.answer(incidents.failure_toast(error_id))
            await context.bot.send_message(update.effective_chat.id, incidents.failure(error_id))
        except TelegramError:
            log.warning("could not report the failure to chat %s", update.effective_chat.id)
