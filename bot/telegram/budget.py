"""One budget for everything the bot sends to Telegram: replies and pushes share Telegram's limits.

``TelegramBudget`` is PTB's rate limiter (``ApplicationBuilder().rate_limiter(…)``), so every Bot API call of the
Application passes through it — the chat's replies, the notifier's pushes, the operators' incident alerts. Sends
(``sendMessage``, ``sendPhoto``…) are counted against Telegram's limits: ``per_second`` overall (30), one per
second per private chat and ``group_per_minute`` per group (20). Other calls (``answerCallbackQuery``, edits,
``getChatMember``…) are not held up.

Who goes first when the budget is short: the lowest ``priority`` (a request's ``rate_limit_args={"priority": n}``);
replies have none (0) and go first, pushes pass 1 + their urgency (``bot.monitor.notifier``), so a margin call goes
before a warning. Pushes never take the last ``reserve`` sends of a second: a reply always finds room. Replies
never starve the pushes either: while a push waits, replies leave room for ``push_floor`` pushes a second (10 of
30), so fifty people chatting through a crash cannot hold back its liquidation messages. A waiting send for one
chat never holds up sends to other chats; one chat's sends keep their order.

A 429 (``RetryAfter``) pauses that chat for ``retry_after`` seconds and the request is sent again, up to
``retries`` times (``rate_limit_args={"retries": 0}``: the caller retries itself, as the notifier does with its
delivery rows). Windows count from the moment Telegram answered, so latency never squeezes two sends into one
of Telegram's windows.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger("loandesk.telegram")
COUNTED = frozenset({"sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "sendAnimation", "sendVideo",
                     "sendAudio", "sendVoice", "sendSticker", "sendLocation", "copyMessage", "forwardMessage"})
MARGIN = 0.05  # seconds added to every window: clocks and the network never make two sends look one window apart


@dataclass
class _Slot:
    """One send in a window: in flight (``done`` is None, it counts as now) or answered at ``done``."""

    done: float | None = None
    push: bool = False

    def ends(self, now: float, span: float) -> float:
        return (now if self.done is None else self.done) + span


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    chat: int | str = field(compare=False)
    future: asyncio.Future[_Slot] = field(compare=False)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramBudget(BaseRateLimiter[dict[str, Any]]):
    def __init__(self, per_second: int = 30, private_per_second: int = 1, group_per_minute: int = 20,
                 reserve: int = 2, retries: int = 3, clock: Callable[[], float] = time.monotonic,
                 push_floor: int = 10) -> None:
        self.per_second = per_second
        self.private_per_second = private_per_second
        self.group_per_minute = group_per_minute
        self.reserve = min(reserve, per_second - 1)
        self.push_floor = max(0, min(push_floor, per_second - self.reserve - 1))
        self.retries = retries
        self.clock = clock
        self._overall: list[_Slot] = []
        self._chats: dict[int | str, list[_Slot]] = {}
        self._paused: dict[int | str, float] = {}
        self._waiting: list[_Waiter] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self.sent = 0  # sends granted (for tests and benchmarks)
        self.retried = 0  # 429s answered by a retry

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def process_request(self, callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any]
                                                                       | list[dict[str, Any]]]],
                              args: Any, kwargs: dict[str, Any], endpoint: str, data: dict[str, Any],
                              rate_limit_args: dict[str, Any] | None) -> bool | dict[str, Any] | list[dict[str, Any]]:
        if endpoint not in COUNTED or "chat_id" not in data:
            return await callback(*args, **kwargs)
        options = rate_limit_args or {}
        priority = int(options.get("priority", 0))
        retries = int(options.get("retries", self.retries))
        chat = data["chat_id"]
        attempt = 0
        while True:
            slot = await self._acquire(chat, priority)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = _seconds(exc.retry_after)
                self._paused[chat] = max(self._paused.get(chat, 0.0), self.clock() + wait)
                if attempt >= retries:
                    raise
                attempt += 1
                self.retried += 1
                log.info("Telegram asked to wait %s s before sending to chat %s again; retrying", wait, chat)
            finally:
                slot.done = self.clock()
                self._pump()

    # ----------------------------------------------------------------- the queue

    def ready_in(self, chat: int | str) -> float:
        """Seconds until ``chat``'s own limit (or a 429's pause) lets a message go to it (0: now); the overall
        budget is not counted (it frees within a second whoever waits)."""
        now = self.clock()
        self._expire(now)
        return max(0.0, self._chat_ready_at(chat, now) - now)

    async def _acquire(self, chat: int | str, priority: int) -> _Slot:
        waiter = _Waiter(priority, next(self._seq), chat, asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiting, waiter)
        self._pump()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                waiter.future.result().done = self.clock()  # granted, then cancelled: the slot counts as used
            waiter.future.cancel()
            self._pump()
            raise

    def _pump(self) -> None:
        """Grant every waiter that may send now, most urgent first; wake up again when the next one may."""
        now = self.clock()
        self._expire(now)
        self._waiting = [w for w in self._waiting if not w.future.done()]
        heapq.heapify(self._waiting)
        later: list[_Waiter] = []
        held: set[int | str] = set()  # chats with an earlier waiter still waiting: keep their order
        wake = math.inf
        pushes_wait = any(w.priority > 0 for w in self._waiting)
        for waiter in sorted(self._waiting):
            at = now if waiter.chat not in held else math.inf
            if waiter.chat not in held:
                at = self._ready_at(waiter.chat, waiter.priority, now, pushes_wait)
            if at <= now:
                slot = _Slot(push=waiter.priority > 0)
                self._overall.append(slot)
                self._chats.setdefault(waiter.chat, []).append(slot)
                self.sent += 1
                waiter.future.set_result(slot)
                continue
            held.add(waiter.chat)
            later.append(waiter)
            wake = min(wake, at)
        self._waiting = later
        heapq.heapify(self._waiting)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if later and wake < math.inf:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, wake - now) + 0.001, self._pump)

    def _limits(self, chat: int | str) -> tuple[int, float]:
        group = chat < 0 if isinstance(chat, int) else str(chat).startswith(("@", "-"))
        return (self.group_per_minute, 60.0) if group else (self.private_per_second, 1.0)

    def _ready_at(self, chat: int | str, priority: int, now: float, pushes_wait: bool = False) -> float:
        if priority > 0:
            overall = self.per_second - self.reserve
        elif pushes_wait:  # leave the pushes their floor in this second
            pushed = sum(1 for s in self._overall if s.push)
            overall = self.per_second - max(0, self.push_floor - pushed)
        else:
            overall = self.per_second
        return max(_window_free(self._overall, overall, 1.0 + MARGIN, now), self._chat_ready_at(chat, now))

    def _chat_ready_at(self, chat: int | str, now: float) -> float:
        limit, span = self._limits(chat)
        return max(_window_free(self._chats.get(chat, []), limit, span + MARGIN, now), self._paused.get(chat, 0.0))

    def _expire(self, now: float) -> None:
        self._overall = [s for s in self._overall if s.ends(now, 1.0 + MARGIN) > now]
        for chat in list(self._chats):
            span = self._limits(chat)[1] + MARGIN
            kept = [s for s in self._chats[chat] if s.ends(now, span) > now]
            if kept:
                self._chats[chat] = kept
            else:
                del self._chats[chat]
        for chat in [c for c, until in self._paused.items() if until <= now]:
            del self._paused[chat]


def _window_free(slots: list[_Slot], limit: int, span: float, now: float) -> float:
    """When a window holding ``slots`` has room for one more send under ``limit`` (now, or a later time)."""
    if len(slots) < limit:
        return now
    ends = sorted(s.ends(now, span) for s in slots)
    return ends[len(slots) - limit]
