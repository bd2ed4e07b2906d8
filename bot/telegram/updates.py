"""Updates of different chats are handled at once; one chat's updates are handled one after the other, in order.

``PerChatUpdates`` is PTB's update processor (``ApplicationBuilder().concurrent_updates(PerChatUpdates())``): up to
``max_concurrent_updates`` updates are in progress together, and an update waits only for the earlier updates of
its own chat (the person's, for an update without a chat). So a slow answer for one person (a database busy with
a crash tick, a chart being drawn) never holds up the others, and "/repay …" then "Confirm" from one person are
never reordered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor


def chat_key(update: object) -> int | str:
    """What orders ``update`` with others: its chat, else its sender, else nothing in particular."""
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return update.effective_chat.id
        if update.effective_user is not None:
            return f"user:{update.effective_user.id}"
    return "other"


class PerChatUpdates(BaseUpdateProcessor):
    def __init__(self, max_concurrent_updates: int = 256) -> None:
        super().__init__(max_concurrent_updates)
        self._chats: dict[int | str, asyncio.Lock] = {}
        self._waiting: dict[int | str, int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = chat_key(update)
        lock = self._chats.setdefault(key, asyncio.Lock())  # asyncio.Lock wakes its waiters in FIFO order
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                await coroutine
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]
                del self._chats[key]

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
