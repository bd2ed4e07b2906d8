"""Telegram's side of ``loandesk console``: the Bot API methods python-telegram-bot calls, answered in-process
(served on 127.0.0.1 by ``bot.entry.localhttp``), with one person — user 1, in a private chat — at a terminal.

Lines the person types become updates for ``getUpdates``; a number becomes the tap of that button of the last
message that has buttons (a callback query) — so ``1`` after a preview is always Confirm, and once a keyboard
is used up no number can reach an older one. What the bot sends is printed: text as a person reads it (HTML
dropped), buttons as numbered choices (``[1] Confirm   [2] Cancel``), photos written to PNG files whose path is
printed, toasts in parentheses. Messages the notifier sends (``expect_push``) are marked as
pushes with the time they arrived. Methods the bot does not use answer 404, as Telegram would for a typo.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from bot.entry.localhttp import ApiCall
from bot.render.common import Reply, plain

USER = 1
BOT_ID = 1000
TOKEN = f"{BOT_ID}:offline-console"
YOU = {"id": USER, "is_bot": False, "first_name": "You"}
BOT = {"id": BOT_ID, "is_bot": True, "first_name": "loandesk", "username": "loandesk_console_bot",
       "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
Json = dict[str, Any]


class Terminal:
    """The Bot API stand-in. ``call`` answers the bot; ``type_line`` is the person typing."""

    def __init__(self, out: TextIO, pictures: Path) -> None:
        self.out = out
        self.pictures = pictures
        self._updates: list[Json] = []
        self._arrived = asyncio.Event()
        self._next_update = 1
        self._next_message = 1
        self._next_query = 1
        self._messages: dict[tuple[int, int], Json] = {}
        self._buttons: dict[int, str] = {}  # number → callback data, of the last message with buttons
        self._latest: tuple[int, int] | None = None  # that message (chat, message id), while its buttons live
        self._pushes: list[tuple[int, str]] = []  # (chat, text) the notifier is about to send
        self._asked = False  # the last answer (not a push) had no buttons: a number typed next is a reply to it
        self._handled: dict[int, asyncio.Event] = {}
        self._api: dict[str, Callable[[Json, dict[str, bytes]], Awaitable[Any]]] = {
            "getme": self._get_me, "getupdates": self._get_updates, "sendmessage": self._send_message,
            "sendphoto": self._send_photo, "editmessagereplymarkup": self._edit_markup,
            "editmessagetext": self._edit_text, "deletemessage": self._delete,
            "answercallbackquery": self._answer, "getchatmember": self._chat_member,
            "sendchataction": self._true, "deletewebhook": self._true, "setmycommands": self._true,
            "deletemycommands": self._true, "getmycommands": self._no_commands, "close": self._true,
            "logout": self._true, "getwebhookinfo": self._webhook_info,
        }

    # ----------------------------------------------------------------- the person

    def type_line(self, text: str) -> int | None:
        """Queue what the person typed; returns the update id (``handled`` waits for the bot to finish it), or
        None when the console answered itself (the number of a button that is gone)."""
        text = text.strip()
        number = int(text) if text.isdigit() and len(text) < 4 else None
        if number is not None and number in self._buttons and self._latest is not None:
            chat, message_id = self._latest
            query = {"id": str(self._next_query), "from": YOU, "chat_instance": str(chat),
                     "data": self._buttons[number], "message": self._messages[(chat, message_id)]}
            self._next_query += 1
            return self._queue("callback_query", query)
        if number is not None and not self._asked:  # after a question without buttons ("How much?"): an answer
            shown = f"1 to {len(self._buttons)}" if self._buttons else "none now"
            self.print(f"(No button [{number}]: numbers tap the buttons of the last message that has some — {shown}.)")
            return None
        message: Json = {"message_id": self._message_id(), "from": YOU, "chat": _chat(USER),
                         "date": int(time.time()), "text": text}
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(command.encode("utf-16-le")) // 2}]
        return self._queue("message", message)

    def handled(self, update_id: int) -> None:
        """The bot finished an update (called from a last handler group)."""
        self._handled.setdefault(update_id, asyncio.Event()).set()

    async def wait_handled(self, update_id: int, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._handled.setdefault(update_id, asyncio.Event()).wait(), timeout)
        self._handled.pop(update_id, None)

    def expect_push(self, send: Callable[[int, Reply], Awaitable[int]]) -> Callable[[int, Reply], Awaitable[int]]:
        """Wrap the notifier's sender so that what it sends is printed as a push."""
        async def marked(chat_id: int, reply: Reply) -> int:
            self._pushes.append((chat_id, reply.text))
            try:
                return await send(chat_id, reply)
            finally:
                with contextlib.suppress(ValueError):
                    self._pushes.remove((chat_id, reply.text))
        return marked

    def note(self, text: str) -> None:
        """A line from the console itself (price replay progress)."""
        self.print(f"[prices] {text}")

    def print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # ----------------------------------------------------------------- the Bot API

    async def call(self, call: ApiCall) -> tuple[int, Json]:
        handler = self._api.get(call.method.lower())
        if handler is None:
            return 404, {"ok": False, "error_code": 404,
                         "description": f"Not Found: {call.method} is not served by the offline console"}
        params: Json = {}
        for key, value in call.params.items():
            params[key] = json.loads(value) if key in _JSON else value
        try:
            result = await handler(params, call.files)
        except KeyError as exc:
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {exc.args[0]} is missing"}
        return 200, {"ok": True, "result": result}

    async def _true(self, p: Json, files: dict[str, bytes]) -> bool:
        return True

    async def _no_commands(self, p: Json, files: dict[str, bytes]) -> list[Json]:
        return []

    async def _webhook_info(self, p: Json, files: dict[str, bytes]) -> Json:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    async def _get_me(self, p: Json, files: dict[str, bytes]) -> Json:
        return BOT

    async def _chat_member(self, p: Json, files: dict[str, bytes]) -> Json:
        return {"status": "member", "user": YOU if int(p["user_id"]) == USER else {**YOU, "id": int(p["user_id"])}}

    async def _get_updates(self, p: Json, files: dict[str, bytes]) -> list[Json]:
        offset = int(p.get("offset") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and float(p.get("timeout") or 0) > 0:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), float(p["timeout"]))
        return self._updates[:int(p.get("limit") or 100)]

    async def _send_message(self, p: Json, files: dict[str, bytes]) -> Json:
        chat = int(p["chat_id"])
        text = str(p["text"])
        message = self._store(chat, {"text": plain(text) if p.get("parse_mode") == "HTML" else text}, p)
        self._show(chat, message, text)
        return message

    async def _send_photo(self, p: Json, files: dict[str, bytes]) -> Json:
        chat = int(p["chat_id"])
        photo = str(p.get("photo", ""))
        data = files.get(photo.removeprefix("attach://")) or next(iter(files.values()), b"")
        caption = str(p.get("caption") or "")
        message = self._store(chat, {"photo": [{"file_id": f"photo{self._next_message}",
                                                "file_unique_id": f"u{self._next_message}", "width": 1,
                                                "height": 1}], "caption": plain(caption)}, p)
        self.pictures.mkdir(parents=True, exist_ok=True)
        path = (self.pictures / f"loandesk-{message['message_id']}.png").resolve()
        path.write_bytes(data)
        self._show(chat, message, f"{caption}\n" if caption else "", picture=path)
        return message

    def _editing(self, p: Json) -> tuple[tuple[int, int], Json] | None:
        """The message an edit names, its old buttons forgotten (None: not a message this terminal showed)."""
        key = (int(p["chat_id"]), int(p["message_id"]))
        message = self._messages.get(key)
        if message is None:
            return None
        self._forget_buttons(key)
        message.pop("reply_markup", None)
        return key, message

    async def _edit_markup(self, p: Json, files: dict[str, bytes]) -> Json | bool:
        edited = self._editing(p)
        if edited is None:
            return True
        key, message = edited
        if p.get("reply_markup"):
            message["reply_markup"] = p["reply_markup"]
            self.print("(the buttons changed) " + self._number(key, p["reply_markup"]))
        return message

    async def _edit_text(self, p: Json, files: dict[str, bytes]) -> Json | bool:
        edited = self._editing(p)
        if edited is None:
            return True
        key, message = edited
        text = str(p["text"])
        message["text"] = plain(text) if p.get("parse_mode") == "HTML" else text
        if p.get("reply_markup"):
            message["reply_markup"] = p["reply_markup"]
        self.print("(a message was edited)")
        self._show(key[0], message, text)
        return message

    async def _delete(self, p: Json, files: dict[str, bytes]) -> bool:
        key = (int(p["chat_id"]), int(p["message_id"]))
        if self._messages.pop(key, None) is not None:
            self._forget_buttons(key)
        return True

    async def _answer(self, p: Json, files: dict[str, bytes]) -> bool:
        if p.get("text") and str(p["text"]).rstrip(".") != "Done":  # "Done." follows as a message anyway
            self.print(f"({p['text']})")
        return True

    # ----------------------------------------------------------------- printing

    def _show(self, chat: int, message: Json, text: str, picture: Path | None = None) -> None:
        lines: list[str] = []
        if (chat, text) in self._pushes:
            self._pushes.remove((chat, text))
            lines.append(f"\n━━ push {datetime.now(UTC).strftime('%H:%M:%S')} UTC ━━")
        elif chat == USER:
            self._asked = not message.get("reply_markup")
        if chat != USER:
            lines.append(f"[to chat {chat}]")
        body = plain(text) if text else ""
        if body:
            lines.append(body.rstrip("\n"))
        if picture is not None:
            lines.append(f"Picture: {picture}")
        if message.get("reply_markup"):
            lines.append(self._number((chat, message["message_id"]), message["reply_markup"]))
        self.print("\n".join(lines))

    def _number(self, key: tuple[int, int], markup: Json) -> str:
        """Number this message's buttons from 1; they are now the ones a typed number taps."""
        self._buttons, self._latest = {}, key
        rows = []
        for row in markup.get("inline_keyboard", []):
            shown = []
            for button in row:
                if button.get("url"):  # a link (a loan held elsewhere: act at the lender), not a tap
                    shown.append(f"{button.get('text', '')}: {button['url']}")
                    continue
                self._buttons[len(self._buttons) + 1] = str(button.get("callback_data", ""))
                shown.append(f"[{len(self._buttons)}] {button.get('text', '')}")
            rows.append("   ".join(shown))
        return "\n".join("   " + r for r in rows)

    def _forget_buttons(self, key: tuple[int, int]) -> None:
        if self._latest == key:
            self._buttons, self._latest = {}, None

    # ----------------------------------------------------------------- bookkeeping

    def _queue(self, kind: str, payload: Json) -> int:
        update_id = self._next_update
        self._next_update += 1
        self._updates.append({"update_id": update_id, kind: payload})
        self._arrived.set()
        return update_id

    def _message_id(self) -> int:
        self._next_message += 1
        return self._next_message - 1

    def _store(self, chat: int, content: Json, p: Json) -> Json:
        message: Json = {"message_id": self._message_id(), "from": BOT, "chat": _chat(chat),
                         "date": int(time.time()), **content}
        if p.get("reply_markup"):
            message["reply_markup"] = p["reply_markup"]
        self._messages[(chat, message["message_id"])] = message
        return message


_JSON = frozenset({"reply_markup", "allowed_updates", "commands", "scope", "entities", "caption_entities",
                   "link_preview_options", "reply_parameters"})


def _chat(chat_id: int) -> Json:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "You" if chat_id == USER else str(chat_id)}
    return {"id": chat_id, "type": "group", "title": f"group {chat_id}"}
