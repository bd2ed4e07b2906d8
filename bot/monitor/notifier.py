"""The notifier: outbox events → per-chat ``deliveries`` rows → Telegram, most urgent first, paced, retried.

``dispatch()`` expands every new outbox event into one delivery row per recipient chat and marks the event
handed over (outbox ``sent_at``), all in one transaction: the borrower's private chat (the account id is the
Telegram user id), every active monitoring group sharing the position (or all of the owner's positions), the
desk risk channel for margin calls, liquidations and shortfalls, opted-in borrowers for rate changes, and
the operators for feed alerts. ``deliver()`` sends what is due: chats ordered by their most urgent delivery,
several events of one chat folded into one message, at most ``per_second`` messages overall, one per
``private_gap`` seconds per private chat and one per ``group_gap`` seconds per group (20/min).

Guarantees. Deliveries are rows, so a crash loses nothing. A delivery is marked sent in its own short
transaction right after Telegram accepts the message: a crash in between (or a timeout after Telegram
actually accepted) re-sends exactly that one message after restart — at-least-once, with a window of one
message per chat. 429 waits ``retry_after``; other failures back off exponentially; critical kinds
(``domain.events.CRITICAL``) are retried forever, others dropped after ``MAX_ATTEMPTS``. 403 deactivates the
chat: its critical deliveries are *held* (never dropped; new critical events for it are held too), the others
dropped. When the chat talks to the bot again (or a group re-adds it) ``bot.telegram.handlers`` reactivates it and
``flush(chat_id)`` sends the held pushes, most urgent first and folded, before the answer. A migrated group
moves its flags, shares and pending deliveries to the new id and is sent to there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy.exc import OperationalError
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import ChatMigrated, Forbidden, RetryAfter, TelegramError

from bot.render import pushes
from bot.render.common import Reply
from bot.service.store import StateStore
from domain.events import CRITICAL, Event
from storage.monitoring import Due, Monitoring

log = logging.getLogger("loandesk.notifier")
MAX_ATTEMPTS = 8
MAX_BACKOFF = 600.0
MAX_FOLD = 8
MARK_ATTEMPTS = 12  # about a minute of a locked database before a sent message may be sent again
FOLD_CHARS = 3800
PASS_SECONDS = 1.0
Send = Callable[[int, Reply], Awaitable[int]]


def telegram_sender(bot: Bot) -> Send:
    async def send(chat_id: int, reply: Reply) -> int:
        markup = None
        if reply.buttons:
            markup = InlineKeyboardMarkup([[InlineKeyboardButton(t, url=d) if d.startswith("https://")  # lender's page
                                            else InlineKeyboardButton(t, callback_data=d) for t, d in row]
                                           for row in reply.buttons])
        message = await bot.send_message(chat_id, reply.text, parse_mode=ParseMode.HTML, reply_markup=markup)
        return message.message_id
    return send


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)  # type: ignore[arg-type]


class Notifier:
    def __init__(self, store: StateStore, send: Send, operators: Collection[int], clock: Callable[[], datetime],
                 per_second: float = 29.0, private_gap: float = 1.0, group_gap: float = 3.0) -> None:
        self.store = store
        self.send = send
        self.operators = sorted(operators)
        self.clock = clock
        self.gap = 1.0 / per_second
        self.private_gap = private_gap
        self.group_gap = group_gap
        self.ready_at: dict[int, float] = {}  # monotonic time a chat may be sent to again
        self.last_send = 0.0
        self._lock = asyncio.Lock()

    async def run(self) -> int:
        """Dispatch new events and send what is due; a pass already running makes this one a no-op."""
        if self._lock.locked():
            return 0
        async with self._lock:
            self.dispatch()
            sent = total = await self.deliver()
            while sent:  # a backlog (a crash) drains at the overall pace, not one pass per scheduler run
                self.dispatch()
                sent = await self.deliver()
                total += sent
            return total

    # ----------------------------------------------------------------- outbox → deliveries

    def dispatch(self) -> int:
        with self.store.unit_of_work() as uow:
            m = Monitoring(uow.session)
            found = m.undispatched()
            for outbox_id, ev in found:
                chats, away = self.recipients(m, ev)
                urgency = 1 if ev.type in pushes.OPERATOR_KINDS else ev.urgency
                m.add_deliveries(outbox_id, chats, urgency)
                if away and ev.type in CRITICAL:  # held for chats that refuse the bot now, sent when they are back
                    m.add_deliveries(outbox_id, away, urgency, status="held")
            uow.outbox.mark_sent([i for i, _ in found], self.clock())
            uow.commit()
            return len(found)

    def recipients(self, m: Monitoring, ev: Event) -> tuple[list[int], list[int]]:
        """The chats to push ``ev`` to now, and those that refuse the bot now but may come back."""
        if ev.type in pushes.SILENT:
            return [], []
        if ev.type in pushes.OPERATOR_KINDS:
            chats = list(self.operators)
            if ev.type in pushes.BREAKER_KINDS:
                chats += m.desk_channels(inactive_too=True)
        elif ev.type == "rate_changed" and ev.account is None:
            market = ev.data.get("asset")
            chats = [int(o) for o in m.rate_watchers(str(market) if market else None) if o.isdigit()]
        else:
            chats = [int(ev.account)] if ev.account and ev.account.isdigit() else []
            if ev.account:
                chats += m.groups_watching(ev.account, ev.position, inactive_too=True)
            if ev.type in pushes.DESK_KINDS:
                chats += m.desk_channels(inactive_too=True)
        chats = list(dict.fromkeys(chats))
        gone, back_later = m.away(chats)
        return [c for c in chats if c not in gone], [c for c in chats if c in back_later]

    # ----------------------------------------------------------------- deliveries → Telegram

    async def flush(self, chat_id: int) -> int:
        """Send what is due for one chat now (its held pushes, just released), waiting for a pass in progress."""
        async with self._lock:
            self.dispatch()
            self.ready_at.pop(chat_id, None)
            return await self.deliver(chat_id)  # one folded message; any rest follows at the chat's pace

    async def deliver(self, chat_id: int | None = None) -> int:
        """One pass over what is due (for one chat, or all); returns how many messages Telegram accepted."""
        with self.store.unit_of_work() as uow:
            due = Monitoring(uow.session).due(self.clock(), chat_id=chat_id)
        by_chat: dict[int, list[Due]] = {}
        for d in due:  # ordered by urgency, so chats come in the order of their most urgent delivery
            by_chat.setdefault(d.chat_id, []).append(d)
        sent = 0
        started = time.monotonic()
        for chat_id, items in by_chat.items():
            if time.monotonic() - started >= PASS_SECONDS:
                break  # short passes: a chat whose pace has run out meanwhile is ranked again by urgency
            if self.ready_at.get(chat_id, 0.0) > time.monotonic():
                continue  # this chat's pace; the next pass takes it
            batch = self._batch(items)
            await self._pace()
            if await self._send(chat_id, batch):
                sent += 1
        return sent

    def _batch(self, items: list[Due]) -> list[Due]:
        batch: list[Due] = []
        size = 0
        for d in items[:MAX_FOLD]:
            size += len(pushes.push(d.event)) + 2
            if batch and size > FOLD_CHARS:
                break
            batch.append(d)
        return batch

    async def _pace(self) -> None:
        wait = self.last_send + self.gap - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.last_send = time.monotonic()

    async def _send(self, chat_id: int, batch: list[Due]) -> bool:
        ids = [d.id for d in batch]
        reply = pushes.fold([d.event for d in batch])
        self.ready_at[chat_id] = time.monotonic() + (self.private_gap if chat_id > 0 else self.group_gap)
        try:
            message_id = await self.send(chat_id, reply)
        except RetryAfter as exc:
            wait = _seconds(exc.retry_after)
            self.ready_at[chat_id] = time.monotonic() + wait
            self._update(lambda m: m.retry(ids, self.clock() + timedelta(seconds=wait), f"429 retry after {wait}"))
            return False
        except Forbidden as exc:
            error = f"403 {exc.message}"
            log.info("chat %s refuses the bot (%s): deactivated, critical pushes held", chat_id, error)
            self._update(lambda m: self._deactivate(m, chat_id, error))
            return False
        except ChatMigrated as exc:
            new = int(exc.new_chat_id)
            log.info("group %s migrated to %s", chat_id, new)
            self._update(lambda m: m.migrate_chat(chat_id, new, self.clock()))
            self.ready_at.pop(new, None)
            return False
        except TelegramError as exc:
            self._failed(batch, str(exc))
            return False
        # the chat's pace counts from acceptance too: a slow request never puts two sends in one window
        self.ready_at[chat_id] = time.monotonic() + (self.private_gap if chat_id > 0 else self.group_gap)
        # The at-least-once window: Telegram has the message, and this commit records it. A busy database (a long
        # catch-up tick holding the write lock) must not turn into a second copy of the message: keep trying.
        for attempt in range(MARK_ATTEMPTS):
            try:
                await asyncio.to_thread(self._update, lambda m: m.delivered(ids, message_id, self.clock()))
                break
            except OperationalError as exc:
                log.warning("could not record delivery %s yet (%s); retrying", ids, exc.orig)
                await asyncio.sleep(min(0.5 * 2 ** attempt, 5.0))
        return True

    def _deactivate(self, m: Monitoring, chat_id: int, error: str) -> None:
        m.save_chat(chat_id, "private" if chat_id > 0 else "group", self.clock(), active=False)
        m.hold_chat(chat_id, error)

    def _failed(self, batch: list[Due], error: str) -> None:
        attempts = max(d.attempts for d in batch) + 1
        critical = [d.id for d in batch if d.event.type in CRITICAL]
        others = [d.id for d in batch if d.event.type not in CRITICAL]
        at = self.clock() + timedelta(seconds=min(2.0 ** attempts, MAX_BACKOFF))
        log.warning("push to chat %s failed (attempt %s): %s", batch[0].chat_id, attempts, error)

        def record(m: Monitoring) -> None:
            m.retry(critical, at, error)
            if attempts >= MAX_ATTEMPTS:
                m.drop(others, error)
            else:
                m.retry(others, at, error)
        self._update(record)

    def _update(self, change: Callable[[Monitoring], object]) -> None:
        with self.store.unit_of_work() as uow:
            change(Monitoring(uow.session))
            uow.commit()
