"""The Bot API objects the fake Telegram keeps: chats, stored messages, chat members, inline keyboards.

This module owns the JSON shapes (what PTB parses) and the checks Telegram makes on reply markup; it holds
no locks and does no I/O. Everything here is mutated only under ``FakeTelegram``'s lock.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from tests.fakes._tg_request import ApiError, bad_request

MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted", "left", "kicked"})
_ADMIN_RIGHTS = [
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_pin_messages",
]
_RESTRICTED_RIGHTS = [
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
    "can_edit_tag",
]
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def user_json(user_id: int, first_name: str | None = None, username: str | None = None) -> dict[str, Any]:
    """A person (``is_bot`` false) as the Bot API shows them."""
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name or f"User {user_id}"}
    if username:
        user["username"] = username
    return user


def member_json(user: dict[str, Any], status: str) -> dict[str, Any]:
    """A ``ChatMember`` of the right subclass with every field PTB requires for it."""
    if status not in MEMBER_STATUSES:
        raise ValueError(f"unknown chat member status {status!r}; use one of {sorted(MEMBER_STATUSES)}")
    member: dict[str, Any] = {"user": user, "status": status}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update({"can_be_edited": False, "is_anonymous": False})
        member.update(dict.fromkeys(_ADMIN_RIGHTS, True))
    elif status == "restricted":
        member.update({"is_member": True, "until_date": 0})
        member.update(dict.fromkeys(_RESTRICTED_RIGHTS, False))
    elif status == "kicked":
        member["until_date"] = 0
    return member


@dataclass
class Chat:
    """A chat the fake knows: a private chat with one person, or a group the bot was added to."""

    id: int
    type: str
    title: str | None = None
    user: dict[str, Any] | None = None
    blocked: bool = False
    bot_status: str = "member"
    migrated_to: int | None = None
    last_message_id: int = 0

    @property
    def is_group(self) -> bool:
        return self.type in {"group", "supergroup"}

    def api(self) -> dict[str, Any]:
        if self.type == "private":
            chat: dict[str, Any] = {"id": self.id, "type": "private"}
            if self.user is not None:
                chat["first_name"] = self.user["first_name"]
                if "username" in self.user:
                    chat["username"] = self.user["username"]
            return chat
        return {"id": self.id, "type": self.type, "title": self.title or f"Group {self.id}"}

    def next_message_id(self) -> int:
        self.last_message_id += 1
        return self.last_message_id


@dataclass
class Stored:
    """One message in a chat: its Bot API JSON now, and (for the bot's own) its record as tests see it."""

    api: dict[str, Any]
    from_bot: bool
    record: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False


def inline_buttons(markup: dict[str, Any] | None) -> list[dict[str, Any]]:
    """All buttons of an inline keyboard, row by row (empty for no or another kind of markup)."""
    if not markup:
        return []
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def check_reply_markup(markup: Any, *, inline_only: bool = False) -> dict[str, Any] | None:
    """Refuse markup that Telegram refuses; returns it (a dict) or ``None``."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if inline_only:
            raise bad_request("inline keyboard expected")
        return markup
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('can\'t parse inline keyboard button: field "inline_keyboard" must be an Array')
    for button in (button for row in rows for button in row):
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            raise bad_request('can\'t parse inline keyboard button: Field "text" must be of type String')
        if "callback_data" in button:
            data = button["callback_data"]
            if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                raise bad_request("BUTTON_DATA_INVALID")
        elif "url" in button:
            if not str(button["url"]).startswith(("http://", "https://", "tg://")):
                raise bad_request("BUTTON_URL_INVALID")
        elif not set(button) - {"text"}:
            raise bad_request(
                "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
            )
    return markup


def check_image(data: bytes) -> tuple[int, int]:
    """Refuse bytes that are not an image (``IMAGE_PROCESS_FAILED``); returns (width, height) if known."""
    is_webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    if not (data.startswith(_IMAGE_MAGIC) or is_webp):
        raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
    if data.startswith(_IMAGE_MAGIC[0]) and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return 1, 1
