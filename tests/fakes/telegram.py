"""A fake Telegram Bot API server for end-to-end tests through the real python-telegram-bot.

``FakeTelegram`` owns everything on Telegram's side of the wire: the chats and the people in them, the
messages the bot sent (and their edits), the update queue that ``getUpdates`` long-polls, and Telegram's
refusals (message limits, HTML errors, 64-byte callback data, flood control, blocked users, group
migrations) with Telegram's own error descriptions, so PTB raises the same exceptions it would in production.

Usage::

    with FakeTelegram() as tg:
        app = ApplicationBuilder().token("123:ABC").base_url(tg.base_url).job_queue(None).build()
        ...  # start polling (see TECH.md), then act as a person:
        tg.send_text(42, "/start")
        reply = tg.wait_for(lambda m: m["chat_id"] == 42)       # from a thread
        reply = await tg.await_for(lambda m: m["chat_id"] == 42)  # from the event loop running the bot
        tg.tap(42, reply, "confirm:7")

Records (``tg.sent``) are plain dicts with the keys ``method, chat_id, message_id, text, plain, parse_mode,
reply_markup, caption, photo, photo_size, time, params`` (``None`` when not applicable): ``text``/``caption``
as the bot sent them, ``plain`` as the person sees them after HTML parsing, ``time`` from
``time.monotonic()``. ``sent`` is the outgoing timeline (sends, edits, deletes) as snapshots;
``messages_to(chat_id)`` is what the chat shows now. ``requests`` logs every call with its HTTP status; a
long poll that PTB cancels (``updater.stop()``) is logged as 499, a real second poller gets 409 Conflict.
``setWebhook`` switches to webhook delivery (``tests/fakes/_tg_webhook.py``): queued updates are POSTed, with the
secret token header, round-robin to the addresses in ``tg.webhook.targets`` (the instances behind a load
balancer), and ``getUpdates`` answers 409 as Telegram does while a webhook is set.

Note that PTB turns a description such as "Bad Request: message is too long" into
``BadRequest.message == "Message is too long"`` (prefix dropped, then ``str.capitalize()``).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.fakes._http import FakeHTTPServer, Request, Response
from tests.fakes._tg_html import HtmlError, ParsedText, parse_html, utf16_len
from tests.fakes._tg_limits import FloodRule, RateLimiter
from tests.fakes._tg_objects import (
    Chat,
    Stored,
    check_image,
    check_reply_markup,
    inline_buttons,
    member_json,
    user_json,
)
from tests.fakes._tg_request import ApiError, Params, bad_request, read_params
from tests.fakes._tg_webhook import WebhookPusher

Record = dict[str, Any]
Update = dict[str, Any]

BOT_USERNAME = "loandesk_test_bot"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_ANSWER_LIMIT = 200
CHAT_ACTIONS = frozenset(
    [
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ]
)
_COMMAND = re.compile(r"/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?")
_BOT_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
_QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same as a "
    "current content and reply markup of the message"
)


class FakeTelegram(FakeHTTPServer):
    """The Bot API on 127.0.0.1; point PTB at :attr:`base_url`. All state is guarded by one lock."""

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_id: int | None = None,
        poll_cap: float = 1.0,
        strict_chats: bool = True,
        rate_limits: bool = False,
    ) -> None:
        """``token``: refuse others with 401 (default: accept any). ``bot_id``: default from the first
        request's token ("123:ABC" → 123). ``poll_cap``: longest getUpdates wait in seconds.
        ``strict_chats``: sending to a chat the fake has never seen is 400 "chat not found" (register people
        with :meth:`add_user` or :meth:`send_text`). ``rate_limits``: start with the realistic limiter on.
        """
        super().__init__()
        self.poll_cap = poll_cap
        self.strict_chats = strict_chats
        self._token = token
        self._bot_id = bot_id
        self._cond = threading.Condition(threading.RLock())  # re-entrant: wait_until may read tg.sent
        self._chats: dict[int, Chat] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._messages: dict[tuple[int, int], Stored] = {}
        self._members: dict[tuple[int, int], str] = {}
        self._updates: list[Update] = []
        self._update_ids = itertools.count(1000)
        self._callback_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._callbacks: dict[str, dict[str, Any]] = {}
        self._poll_generation = 0
        self._waiting_polls = 0
        self._allowed_updates: frozenset[str] | None = None  # None: Telegram's default set
        self._commands: dict[str, list[dict[str, str]]] = {}
        self._files: set[str] = set()
        self._floods: list[FloodRule] = []
        self._limiter: RateLimiter | None = RateLimiter() if rate_limits else None
        self._outage = False
        self._sent: list[Record] = []
        self._answers: list[Record] = []
        self._actions: list[Record] = []
        self._requests: list[Record] = []
        self._webhook: dict[str, Any] | None = None  # setWebhook's url, secret_token, allowed_updates
        self.webhook = WebhookPusher(self)  # posts queued updates to ``webhook.targets`` while a webhook is set
        self._api: dict[str, Callable[[Params], Any]] = {
            "getMe": self._get_me,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "getChatMember": self._get_chat_member,
            "sendChatAction": self._send_chat_action,
        }
        self._methods = {name.lower(): name for name in self._api}

    # ------------------------------------------------------------------ wiring

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``; PTB appends ``<token>/<method>``."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def bot_id(self) -> int:
        return self._bot_id if self._bot_id is not None else 123456

    def bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "LoanDesk Test", "username": BOT_USERNAME}

    def _on_closing(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        super().close()
        self.webhook.join()

    def handle(self, request: Request) -> Response:
        parts = request.path.split("/")
        if len(parts) != 3 or not parts[1].startswith("bot") or not parts[2]:
            return Response.json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        token, method = parts[1].removeprefix("bot"), self._methods.get(parts[2].lower(), parts[2])
        with self._cond:
            logged: dict[str, Any] = {}
            try:
                if self._token is not None and token != self._token:
                    raise ApiError(401, "Unauthorized")
                if self._bot_id is None and token.split(":")[0].isdigit():
                    self._bot_id = int(token.split(":")[0])
                params = read_params(request)
                logged = params.loggable()
                if method not in self._api:
                    raise ApiError(404, f"Not Found: method {method} is not implemented by FakeTelegram")
                status, payload = 200, {"ok": True, "result": self._api[method](params)}
            except ApiError as error:
                status, payload = error.code, error.payload()
            self._requests.append(
                {
                    "method": method,
                    "params": logged,
                    "status": status,
                    "description": payload.get("description"),
                    "time": time.monotonic(),
                }
            )
            self._cond.notify_all()
            return Response.json(status, payload)

    # ------------------------------------------------------------------ configuration

    def add_user(self, user_id: int, first_name: str | None = None, username: str | None = None) -> None:
        """Make a person and their private chat known without sending anything (as if they had /start-ed)."""
        with self._cond:
            self._private_chat(self._user(user_id, first_name, username))

    def set_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        """What ``getChatMember(chat_id, user_id)`` answers: creator, administrator, member, restricted,
        left or kicked (default member)."""
        member_json({}, status)  # validates
        with self._cond:
            self._members[(chat_id, user_id)] = status

    def flood(self, chat_id: int | None = None, retry_after: int = 5, times: int = 1) -> None:
        """The next ``times`` sends (sendMessage/sendPhoto) to ``chat_id`` (any chat if None) answer 429."""
        with self._cond:
            self._floods.append(FloodRule(chat_id, retry_after, times))

    def rate_limits(
        self,
        enabled: bool = True,
        *,
        per_second: int = 30,
        private_per_second: int = 1,
        group_per_minute: int = 20,
    ) -> None:
        """Switch the realistic limiter on (fresh windows) or off; sends over a limit answer 429."""
        with self._cond:
            self._limiter = RateLimiter(per_second, private_per_second, group_per_minute) if enabled else None

    def outage(self, down: bool = True) -> None:
        """Telegram in trouble (or back): while down, every send (sendMessage/sendPhoto) answers 502 Bad Gateway."""
        with self._cond:
            self._outage = down

    def block(self, chat_id: int, *, notify: bool = False) -> None:
        """The person blocks the bot: sends to the chat answer 403. ``notify`` queues the my_chat_member
        update Telegram sends for it."""
        with self._cond:
            chat = self._chats.get(chat_id) or self._private_chat(self._user(chat_id))
            chat.blocked = True
            if notify and chat.user is not None:
                self._queue_my_chat_member(chat, chat.user, "member", "kicked")

    def unblock(self, chat_id: int, *, notify: bool = False) -> None:
        """The person restarts the bot."""
        with self._cond:
            chat = self._chats[chat_id]
            chat.blocked = False
            if notify and chat.user is not None:
                self._queue_my_chat_member(chat, chat.user, "kicked", "member")

    def migrate(self, chat_id: int, new_chat_id: int) -> None:
        """The group becomes a supergroup: sends to ``chat_id`` answer 400 with ``migrate_to_chat_id``."""
        with self._cond:
            old = self._chats.get(chat_id) or self._group(chat_id, "group", None)
            old.migrated_to = new_chat_id
            self._chats[new_chat_id] = Chat(new_chat_id, "supergroup", old.title, bot_status=old.bot_status)

    # ------------------------------------------------------------------ acting as a person

    def send_text(
        self,
        user_id: int,
        text: str,
        chat_id: int | None = None,
        chat_type: str | None = None,
        first_name: str | None = None,
        username: str | None = None,
        title: str | None = None,
    ) -> Update:
        """The person types ``text`` in a chat (their private chat by default; a group when ``chat_id``
        differs). A leading ``/command`` gets its ``bot_command`` entity. Returns the queued update."""
        with self._cond:
            user = self._user(user_id, first_name, username)
            if chat_id is None or chat_id == user_id:
                if chat_type not in (None, "private"):
                    raise ValueError("a private chat has the person's id; pass chat_id for a group")
                chat = self._private_chat(user)
                chat.blocked = False  # writing to the bot again means they restarted it
            else:
                chat = self._chats.get(chat_id) or self._group(chat_id, chat_type or "group", title)
                if chat.migrated_to is not None or chat.bot_status in {"left", "kicked"}:
                    raise ValueError(f"the bot is not in chat {chat_id}; Telegram would not deliver this")
            message: dict[str, Any] = {
                "message_id": chat.next_message_id(),
                "from": user,
                "chat": chat.api(),
                "date": int(time.time()),
                "text": text,
            }
            command = _COMMAND.match(text)
            if command:
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command[0])}]
            self._messages[(chat.id, message["message_id"])] = Stored(message, from_bot=False)
            return self._queue("message", message)

    def tap(self, user_id: int, message: Record, data: str, *, check: bool = True) -> Update:
        """The person taps the button with ``data`` under a message the bot sent (a record from ``sent``,
        ``wait_for`` or ``messages_to``). ``check``: the button must be on the message as it is now."""
        with self._cond:
            stored = self._messages.get((message["chat_id"], message["message_id"]))
            if stored is None or stored.deleted or not stored.from_bot:
                raise ValueError(
                    f"no message {message['message_id']} from the bot in chat {message['chat_id']}"
                )
            offered = [b.get("callback_data") for b in inline_buttons(stored.api.get("reply_markup"))]
            if check and data not in offered:
                raise ValueError(f"the message has no button with callback_data {data!r}; it has {offered}")
            query_id = str(next(self._callback_ids))
            self._callbacks[query_id] = {"answered": False, "user_id": user_id, "data": data}
            query = {
                "id": query_id,
                "from": self._user(user_id),
                "chat_instance": f"ci{message['chat_id']}",
                "message": copy.deepcopy(stored.api),
                "data": data,
            }
            return self._queue("callback_query", query)

    def add_bot_to_group(
        self,
        chat_id: int,
        by_user_id: int,
        title: str = "Test group",
        chat_type: str = "group",
        status: str = "member",
    ) -> Update:
        """``by_user_id`` adds the bot to a group (``status="administrator"`` to add it as admin)."""
        with self._cond:
            chat = self._chats.get(chat_id)
            old = chat.bot_status if chat is not None else "left"
            if chat is None:
                chat = self._group(chat_id, chat_type, title)
            chat.bot_status = status
            return self._queue_my_chat_member(chat, self._user(by_user_id), old, status)

    def remove_bot_from_group(self, chat_id: int, by_user_id: int, *, kicked: bool = True) -> Update:
        """``by_user_id`` removes the bot; later sends there answer 403."""
        with self._cond:
            chat = self._chats[chat_id]
            old, chat.bot_status = chat.bot_status, "kicked" if kicked else "left"
            return self._queue_my_chat_member(chat, self._user(by_user_id), old, chat.bot_status)

    def member_leaves(self, chat_id: int, user_id: int, *, kicked: bool = False, by_user_id: int | None = None) -> None:
        """A member leaves the group (or is removed by ``by_user_id``): Telegram sends a ``chat_member`` update
        (only to bots that asked for it in ``allowed_updates``) and a ``left_chat_member`` service message."""
        with self._cond:
            chat = self._chats[chat_id]
            old = self._members.get((chat_id, user_id), "member")
            new = "kicked" if kicked else "left"
            self._members[(chat_id, user_id)] = new
            member, actor = self._user(user_id), self._user(by_user_id or user_id)
            self._queue("chat_member", {"chat": chat.api(), "from": actor, "date": int(time.time()),
                                        "old_chat_member": member_json(member, old),
                                        "new_chat_member": member_json(member, new)})
            message_id = chat.next_message_id()
            message = {"message_id": message_id, "from": actor, "chat": chat.api(),
                       "date": int(time.time()), "left_chat_member": member}
            self._messages[(chat.id, message_id)] = Stored(message, from_bot=False)
            self._queue("message", message)

    def redeliver(self, update: Update) -> Update:
        """Telegram delivers the same update twice: a copy with a new ``update_id`` (PTB confirms ids) but
        identical message / callback query ids. Returns the copy."""
        with self._cond:
            kind = next(key for key in update if key != "update_id")
            return self._queue(kind, copy.deepcopy(update[kind]))

    def push_update(self, kind: str, payload: dict[str, Any]) -> Update:
        """Queue any update (``kind`` is its field, e.g. "edited_message")."""
        with self._cond:
            return self._queue(kind, copy.deepcopy(payload))

    # ------------------------------------------------------------------ what the bot did

    @property
    def sent(self) -> list[Record]:
        """Snapshots of every accepted sendMessage, sendPhoto, edit and deleteMessage, in order."""
        with self._cond:
            return list(self._sent)

    @property
    def answers(self) -> list[Record]:
        """Accepted answerCallbackQuery calls: callback_query_id, data, user_id, text, show_alert, time."""
        with self._cond:
            return list(self._answers)

    @property
    def actions(self) -> list[Record]:
        """Accepted sendChatAction calls: chat_id, action, time."""
        with self._cond:
            return list(self._actions)

    @property
    def requests(self) -> list[Record]:
        """Every call, accepted or refused: method, params, status, description, time."""
        with self._cond:
            return list(self._requests)

    @property
    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by the bot's next getUpdates offset."""
        with self._cond:
            return len(self._updates)

    @property
    def waiting_polls(self) -> int:
        """getUpdates calls blocked in their long poll right now (1 while a bot is idle and polling)."""
        return self._waiting_polls

    def unanswered_callbacks(self) -> list[str]:
        """Ids of callback queries the bot has not answered (the person still sees a spinner)."""
        with self._cond:
            return [qid for qid, info in self._callbacks.items() if not info["answered"]]

    def commands(self, scope: dict[str, Any] | None = None, language_code: str = "") -> list[dict[str, str]]:
        """The command list set by setMyCommands for this scope."""
        with self._cond:
            return list(self._commands.get(self._commands_key(scope, language_code), []))

    def messages_to(self, chat_id: int) -> list[Record]:
        """The bot's messages in the chat as they are now (after edits; deleted ones left out)."""
        with self._cond:
            return [
                dict(stored.record)
                for (chat, _), stored in sorted(self._messages.items())
                if chat == chat_id and stored.from_bot and not stored.deleted
            ]

    def message(self, chat_id: int, message_id: int) -> Record | None:
        """One of the bot's messages as it is now, or None."""
        with self._cond:
            stored = self._messages.get((chat_id, message_id))
            return dict(stored.record) if stored and stored.from_bot and not stored.deleted else None

    def wait_for(
        self, predicate: Callable[[Record], bool] | None = None, timeout: float = 5.0, since: int = 0
    ) -> Record:
        """Block until a record in ``sent[since:]`` matches, and return the first that does. Do not call it
        on the event loop that runs the bot; use :meth:`await_for` there."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for record in self._sent[since:]:
                    if predicate is None or predicate(record):
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    shown = [(r["method"], r["chat_id"], r["plain"]) for r in self._sent[since:]]
                    raise AssertionError(f"nothing matched within {timeout}s; sent since {since}: {shown}")
                self._cond.wait(remaining)

    async def await_for(
        self, predicate: Callable[[Record], bool] | None = None, timeout: float = 5.0, since: int = 0
    ) -> Record:
        """:meth:`wait_for` for coroutines: waits in a worker thread so the bot's loop keeps running."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout, since)

    def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``condition()`` is true; it is re-evaluated after every request and queued update."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"condition not met within {timeout}s")
                self._cond.wait(remaining)

    # ------------------------------------------------------------------ internals (lock held)

    def _user(
        self, user_id: int, first_name: str | None = None, username: str | None = None
    ) -> dict[str, Any]:
        user = self._users.get(user_id)
        if user is None or first_name or username:
            known = user or {}
            user = user_json(
                user_id, first_name or known.get("first_name"), username or known.get("username")
            )
            self._users[user_id] = user
        return user

    def _private_chat(self, user: dict[str, Any]) -> Chat:
        chat = self._chats.get(user["id"])
        if chat is None:
            chat = self._chats[user["id"]] = Chat(user["id"], "private", user=user)
        chat.user = user
        return chat

    def _group(self, chat_id: int, chat_type: str, title: str | None) -> Chat:
        if chat_type not in {"group", "supergroup"}:
            raise ValueError(f"chat type {chat_type!r}: use 'group' or 'supergroup'")
        chat = self._chats[chat_id] = Chat(chat_id, chat_type, title)
        return chat

    def _queue(self, kind: str, payload: dict[str, Any]) -> Update:
        update = {"update_id": next(self._update_ids), kind: payload}
        self._updates.append(update)
        self._cond.notify_all()
        return copy.deepcopy(update)

    def _queue_my_chat_member(self, chat: Chat, by: dict[str, Any], old: str, new: str) -> Update:
        change = {
            "chat": chat.api(),
            "from": by,
            "date": int(time.time()),
            "old_chat_member": member_json(self.bot_user(), old),
            "new_chat_member": member_json(self.bot_user(), new),
        }
        return self._queue("my_chat_member", change)

    def _target(self, params: Params) -> Chat:
        """The chat a send or edit goes to, or Telegram's refusal."""
        chat_id = params.chat_id()
        chat = self._chats.get(chat_id)
        if chat is None:
            if self.strict_chats:
                raise bad_request("chat not found")
            chat = self._chats[chat_id] = Chat(chat_id, "private" if chat_id > 0 else "group")
        if chat.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        kind = "supergroup" if chat.type == "supergroup" else "group"
        if chat.is_group and chat.bot_status == "kicked":
            raise ApiError(403, f"Forbidden: bot was kicked from the {kind} chat")
        if chat.is_group and chat.bot_status == "left":
            raise ApiError(403, f"Forbidden: bot is not a member of the {kind} chat")
        return chat

    def _check_flood(self, chat: Chat) -> None:
        if self._outage:
            raise ApiError(502, "Bad Gateway")
        for rule in self._floods:
            if rule.applies(chat.id):
                rule.times -= 1
                self._floods = [r for r in self._floods if r.times > 0]
                raise self._too_many(rule.retry_after)
        if self._limiter is not None:
            wait = self._limiter.check(chat.id, chat.is_group, time.monotonic())
            if wait is not None:
                raise self._too_many(wait)

    @staticmethod
    def _too_many(retry_after: int) -> ApiError:
        return ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})

    @staticmethod
    def _parse(text: str, params: Params, *, limit: int, too_long: str, empty: str | None) -> ParsedText:
        mode = (params.get_str("parse_mode") or "").lower()
        if mode and mode not in {"html", "markdown", "markdownv2"}:
            raise bad_request("unsupported parse_mode")
        if mode == "html":
            try:
                parsed = parse_html(text)
            except HtmlError as error:
                raise bad_request(f"can't parse entities: {error}") from None
        else:  # Markdown is passed through unparsed; explicit entities are kept as given
            entities = params.get_json("entities") or params.get_json("caption_entities") or []
            parsed = ParsedText(text, list(entities))
        if empty is not None and not parsed.text.strip():
            raise bad_request(empty)
        if len(parsed.text) > limit:
            raise bad_request(too_long)
        return parsed

    def _record(self, method: str, chat_id: int, message_id: int, params: Params, **fields: Any) -> Record:
        record: Record = {
            "method": method,
            "chat_id": chat_id,
            "message_id": message_id,
            "text": None,
            "plain": None,
            "parse_mode": params.get_str("parse_mode"),
            "reply_markup": None,
            "caption": None,
            "photo": None,
            "photo_size": None,
            "time": time.monotonic(),
            "params": params.loggable(),
        }
        record.update(fields)
        self._sent.append(record)
        self._cond.notify_all()
        return record

    def _store(self, chat: Chat, content: dict[str, Any], record: Record) -> dict[str, Any]:
        message = {"message_id": record["message_id"], "from": self.bot_user(), "chat": chat.api()}
        message["date"] = int(time.time())
        message.update(content)
        self._messages[(chat.id, record["message_id"])] = Stored(message, from_bot=True, record=dict(record))
        return copy.deepcopy(message)

    def _editable(self, params: Params) -> tuple[Chat, Stored]:
        chat = self._target(params)
        message_id = params.get_int("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        stored = self._messages.get((chat.id, message_id))
        if stored is None or stored.deleted:
            raise bad_request("message to edit not found")
        if not stored.from_bot:
            raise bad_request("message can't be edited")
        return chat, stored

    @staticmethod
    def _edited(stored: Stored, content: dict[str, Any], changes: Record) -> dict[str, Any]:
        """Apply an edit: ``content`` replaces text/entities/keyboard, ``changes`` updates the record."""
        for key in ("text", "entities", "reply_markup"):
            stored.api.pop(key, None)
        stored.api.update(content)
        stored.api["edit_date"] = int(time.time())
        stored.record.update(changes)
        return copy.deepcopy(stored.api)

    def _is_allowed(self, update: Update) -> bool:
        kinds = update.keys() - {"update_id"}
        if self._allowed_updates is None:
            return not kinds & _NOT_BY_DEFAULT
        return kinds <= self._allowed_updates

    @staticmethod
    def _commands_key(scope: Any, language_code: str | None) -> str:
        return json.dumps(scope or {"type": "default"}, sort_keys=True) + "|" + (language_code or "")

    # ------------------------------------------------------------------ Bot API methods (lock held)

    def _get_me(self, params: Params) -> dict[str, Any]:
        return self.bot_user() | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _delete_webhook(self, params: Params) -> bool:
        if params.get_bool("drop_pending_updates"):
            self._updates.clear()
        self._webhook = None
        return True

    def _set_webhook(self, params: Params) -> bool:
        url = params.get_str("url") or ""
        if not url:
            return self._delete_webhook(params)
        if not url.startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get_str("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        allowed = params.get_json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or None
        if params.get_bool("drop_pending_updates"):
            self._updates.clear()
        self._webhook = {"url": url, "secret_token": secret, "allowed_updates": allowed}
        self.webhook.start()
        return True

    def _next_webhook_update(self) -> Update | None:
        """The oldest queued update the webhook may take (lock held); None without a webhook."""
        if self._webhook is None:
            return None
        self._updates = [u for u in self._updates if self._is_allowed(u)]
        return copy.deepcopy(self._updates[0]) if self._updates else None

    @property
    def webhook_info(self) -> dict[str, Any] | None:
        """What setWebhook set (url, secret_token, allowed_updates), or None."""
        with self._cond:
            return dict(self._webhook) if self._webhook is not None else None

    def _get_webhook_info(self, params: Params) -> dict[str, Any]:
        url = self._webhook["url"] if self._webhook is not None else ""
        return {"url": url, "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    def _set_my_commands(self, params: Params) -> bool:
        commands = params.get_json("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _BOT_COMMAND.fullmatch(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
        key = self._commands_key(params.get_json("scope"), params.get_str("language_code"))
        self._commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
        return True

    def _get_my_commands(self, params: Params) -> list[dict[str, str]]:
        key = self._commands_key(params.get_json("scope"), params.get_str("language_code"))
        return list(self._commands.get(key, []))

    def _delete_my_commands(self, params: Params) -> bool:
        self._commands.pop(
            self._commands_key(params.get_json("scope"), params.get_str("language_code")), None
        )
        return True

    def _get_updates(self, params: Params) -> list[Update]:
        if self._webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook "
                                "to delete the webhook first")
        offset = params.get_int("offset")
        limit = min(max(params.get_int("limit") or 100, 1), 100)
        deadline = time.monotonic() + min(max(params.get_float("timeout") or 0.0, 0.0), self.poll_cap)
        allowed = params.get_json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or None
        self._poll_generation += 1
        generation = self._poll_generation
        self._cond.notify_all()
        while True:
            if generation != self._poll_generation:
                if params.client_gone():  # PTB cancelled this poll (updater.stop()): no conflict
                    raise ApiError(499, "client closed the request")
                raise ApiError(409, _CONFLICT)
            if offset is not None and offset < 0:
                self._updates = self._updates[offset:]
            elif offset is not None:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self._updates = [u for u in self._updates if self._is_allowed(u)]
            remaining = deadline - time.monotonic()
            if self._updates or remaining <= 0 or self.closing.is_set():
                return copy.deepcopy(self._updates[:limit])
            self._waiting_polls += 1
            self._cond.notify_all()
            try:
                self._cond.wait(remaining)
            finally:
                self._waiting_polls -= 1

    def _send_message(self, params: Params) -> dict[str, Any]:
        chat = self._target(params)
        text = params.get_str("text") or ""
        parsed = self._parse(
            text, params, limit=TEXT_LIMIT, too_long="message is too long", empty="message text is empty"
        )
        markup = check_reply_markup(params.get_json("reply_markup"))
        self._check_flood(chat)
        record = self._record(
            "sendMessage", chat.id, chat.next_message_id(), params, text=text, plain=parsed.text,
            reply_markup=markup,
        )  # fmt: skip
        content: dict[str, Any] = {"text": parsed.text}
        if parsed.entities:
            content["entities"] = parsed.entities
        if markup is not None and "inline_keyboard" in markup:
            content["reply_markup"] = markup
        return self._store(chat, content, record)

    def _send_photo(self, params: Params) -> dict[str, Any]:
        chat = self._target(params)
        data = params.file("photo")
        reference = params.get_str("photo")
        if data is None and not reference:
            raise bad_request("there is no photo in the request")
        if data is not None:
            width, height = check_image(data)
        elif reference in self._files or (reference or "").startswith(("http://", "https://")):
            width, height = 1, 1
        else:
            raise bad_request("wrong file identifier/HTTP URL specified")
        caption = params.get_str("caption") or ""
        parsed = self._parse(
            caption, params, limit=CAPTION_LIMIT, too_long="message caption is too long", empty=None
        )
        markup = check_reply_markup(params.get_json("reply_markup"))
        self._check_flood(chat)
        record = self._record(
            "sendPhoto", chat.id, chat.next_message_id(), params, caption=caption or None,
            plain=parsed.text, reply_markup=markup, photo=data,
            photo_size=len(data) if data is not None else None,
        )  # fmt: skip
        file_id = f"photo-{next(self._file_ids)}"
        self._files.add(file_id)
        size = {"file_id": file_id, "file_unique_id": f"u{file_id}", "width": width, "height": height}
        content: dict[str, Any] = {"photo": [size | {"file_size": len(data or b"")}]}
        if parsed.text:
            content["caption"] = parsed.text
        if parsed.entities:
            content["caption_entities"] = parsed.entities
        if markup is not None and "inline_keyboard" in markup:
            content["reply_markup"] = markup
        return self._store(chat, content, record)

    def _edit_message_text(self, params: Params) -> dict[str, Any]:
        chat, stored = self._editable(params)
        if "text" not in stored.api:
            raise bad_request("there is no text in the message to edit")
        text = params.get_str("text") or ""
        parsed = self._parse(
            text, params, limit=TEXT_LIMIT, too_long="message is too long", empty="message text is empty"
        )
        # Telegram drops the keyboard when an edit does not repeat it.
        markup = check_reply_markup(params.get_json("reply_markup"), inline_only=True)
        same_text = (parsed.text, parsed.entities) == (stored.api["text"], stored.api.get("entities", []))
        if same_text and markup == stored.api.get("reply_markup"):
            raise bad_request(_NOT_MODIFIED)
        record = self._record(
            "editMessageText", chat.id, stored.api["message_id"], params, text=text, plain=parsed.text,
            reply_markup=markup,
        )  # fmt: skip
        content: dict[str, Any] = {"text": parsed.text}
        if parsed.entities:
            content["entities"] = parsed.entities
        if markup is not None:
            content["reply_markup"] = markup
        changes = {key: record[key] for key in ("text", "plain", "parse_mode", "reply_markup")}
        return self._edited(stored, content, changes)

    def _edit_message_reply_markup(self, params: Params) -> dict[str, Any]:
        chat, stored = self._editable(params)
        markup = check_reply_markup(params.get_json("reply_markup"), inline_only=True)
        if markup == stored.api.get("reply_markup"):
            raise bad_request(_NOT_MODIFIED)
        shown = {key: stored.record.get(key) for key in ("text", "plain", "parse_mode", "caption")}
        self._record("editMessageReplyMarkup", chat.id, stored.api["message_id"], params, **shown,
                     reply_markup=markup)  # fmt: skip
        content: dict[str, Any] = {key: stored.api[key] for key in ("text", "entities") if key in stored.api}
        if markup is not None:
            content["reply_markup"] = markup
        return self._edited(stored, content, {"reply_markup": markup})

    def _delete_message(self, params: Params) -> bool:
        chat = self._target(params)
        message_id = params.get_int("message_id")
        stored = self._messages.get((chat.id, message_id or 0))
        if stored is None or stored.deleted:
            raise bad_request("message to delete not found")
        stored.deleted = True
        self._record("deleteMessage", chat.id, message_id or 0, params)
        return True

    def _answer_callback_query(self, params: Params) -> bool:
        query_id = params.get_str("callback_query_id") or ""
        query = self._callbacks.get(query_id)
        if query is None or query["answered"]:
            raise bad_request(_QUERY_INVALID)
        text = params.get_str("text")
        if text is not None and len(text) > CALLBACK_ANSWER_LIMIT:
            raise bad_request("MESSAGE_TOO_LONG")
        query["answered"] = True
        self._answers.append(
            {
                "callback_query_id": query_id,
                "data": query["data"],
                "user_id": query["user_id"],
                "text": text,
                "show_alert": params.get_bool("show_alert"),
                "url": params.get_str("url"),
                "time": time.monotonic(),
            }
        )
        self._cond.notify_all()
        return True

    def _get_chat_member(self, params: Params) -> dict[str, Any]:
        chat_id = params.chat_id()
        user_id = params.get_int("user_id")
        chat = self._chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        if user_id is None:
            raise bad_request("user not found")
        if user_id == self.bot_id:
            status = chat.bot_status if chat.is_group else ("kicked" if chat.blocked else "member")
            return member_json(self.bot_user(), status)
        status = self._members.get((chat_id, user_id), "member")
        return member_json(self._users.get(user_id) or user_json(user_id), status)

    def _send_chat_action(self, params: Params) -> bool:
        chat = self._target(params)
        action = params.get_str("action")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._actions.append({"chat_id": chat.id, "action": action, "time": time.monotonic()})
        return True
