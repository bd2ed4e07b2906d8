"""Flood control for the fake Bot API: scripted 429s and an optional realistic limiter.

Telegram's Bot FAQ: about 30 messages per second overall, about 1 per second to one chat, at most 20 per
minute to one group. :class:`RateLimiter` enforces exactly these (sliding windows, refused sends are not
counted); :class:`FloodRule` is the scripted form, "the next K sends to this chat are refused".
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class FloodRule:
    """Answer the next ``times`` sends to ``chat_id`` (every chat when ``None``) with 429."""

    chat_id: int | None
    retry_after: int
    times: int

    def applies(self, chat_id: int) -> bool:
        return self.times > 0 and (self.chat_id is None or self.chat_id == chat_id)


@dataclass
class RateLimiter:
    """Sliding-window limits; ``check`` returns the seconds to wait, or ``None`` and counts the send."""

    per_second: int = 30
    private_per_second: int = 1
    group_per_minute: int = 20
    _overall: deque[float] = field(default_factory=deque)
    _per_chat: dict[int, deque[float]] = field(default_factory=dict)

    @staticmethod
    def _wait(window: deque[float], limit: int, span: float, now: float) -> float | None:
        while window and now - window[0] >= span:
            window.popleft()
        if len(window) < limit:
            return None
        return span - (now - window[0])

    def check(self, chat_id: int, is_group: bool, now: float) -> int | None:
        chat_window = self._per_chat.setdefault(chat_id, deque())
        if is_group:
            chat_wait = self._wait(chat_window, self.group_per_minute, 60.0, now)
        else:
            chat_wait = self._wait(chat_window, self.private_per_second, 1.0, now)
        overall_wait = self._wait(self._overall, self.per_second, 1.0, now)
        waits = [w for w in (chat_wait, overall_wait) if w is not None]
        if waits:
            return max(1, math.ceil(max(waits)))
        self._overall.append(now)
        chat_window.append(now)
        return None
