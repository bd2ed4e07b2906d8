"""``python -m benchmarks.notify --pushes N [--json]``: a crash's pushes delivered by the real notifier through the
real Application against the fake Bot API with Telegram's limits on (30/s overall, 1/s per private chat,
20/min per group: anything over answers 429).

The book is real: N flexible positions opened through the engine (``borrow``) by about 0.8 N
borrowers (every fifth one has a second position on the other collateral, so some private chats fold two
events), with initial LTVs placed so that a 30% fall of BTC and ETH liquidates about a quarter of them, puts
about 30% in margin call and warns the rest. A few monitoring groups share all positions of some borrowers.
The crash itself is one ``domain.watch.sweep.sweep`` in one unit of work at the fallen prices (the scheduler's
tick does the same in parts), so the outbox holds N real events written with the state changes. Then the bot starts
(``bot.entry.compose.build_application``: PTB, the scheduler, the notifier) and delivers; the benchmark waits until
every delivery row is sent.

Measured at the fake: messages accepted and events they carried, the sustained rate (messages from the first
push to the last), the 429s, and the order. Order is judged twice: by message (each message ranked by its
most urgent event: strict when no message is followed by a more urgent one) and by event (an event is early
when a more urgent event of any chat goes out in a later message: a borrower's warning folded into their
liquidation message is early, since other borrowers' liquidations still follow).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from benchmarks import report
from bot.entry.compose import build_application
from bot.entry.run import run_app
from bot.monitor.notifier import Notifier
from bot.service.store import StateStore
from bot.settings import Settings
from domain.desk import Desk
from domain.events import URGENCY
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import load_catalog
from domain.watch.sweep import sweep
from storage.monitoring import Monitoring
from storage.tables import deliveries, outbox
from tests.fakes.exchange import FakeExchange
from tests.fakes.telegram import FakeTelegram

TOKEN = "123:ABC"
OPERATOR = 1
FIRST_OWNER = 10_000
START = {"BTC": Decimal(50000), "ETH": Decimal(3000), "USDT": Decimal(1)}
CRASH = Decimal("0.70")
# initial LTV bands → after a 30% fall: ≥ 0.91 liquidated, [0.85, 0.91) margin call, [0.80, 0.85) warning
BANDS = (("liquidated", Decimal("0.645"), Decimal("0.670")), ("margin_call", Decimal("0.600"), Decimal("0.630")),
         ("warning", Decimal("0.565"), Decimal("0.590")))
MIX = ("liquidated",) * 5 + ("margin_call",) * 6 + ("warning",) * 9  # 25% / 30% / 45%
LOAN = Decimal(1000)


def kind_of(i: int) -> str:
    return MIX[(i * 7 + i // 100) % len(MIX)]  # a borrower's two positions usually land in different bands


def ltv_of(i: int, kind: str) -> Decimal:
    _, low, high = next(b for b in BANDS if b[0] == kind)
    return low + (high - low) * Decimal((i * 37) % 100) / 100


def build(store: StateStore, tg: FakeTelegram, n: int, groups: int, per_group: int) -> dict[str, Any]:
    """N positions, their owners known to the fake, monitoring groups sharing some owners, then the crash."""
    catalog = load_catalog()
    now = datetime.now(UTC)
    owners = max(1, n * 4 // 5)
    tg.add_user(OPERATOR)
    for o in range(owners):
        tg.add_user(FIRST_OWNER + o)
    made = 0
    while made < n:
        with store.unit_of_work() as uow:
            desk = Desk(catalog, uow.domain_book)
            for i in range(made, min(n, made + 200)):
                owner, coll = FIRST_OWNER + i % owners, ("BTC", "ETH")[(i // owners) % 2]
                qty = (LOAN / (ltv_of(i, kind_of(i)) * START[coll])).quantize(Decimal("0.00000001"))
                desk.deposit(str(owner), coll, qty, now)
                borrow(desk, BorrowRequest(str(owner), "USDT", LOAN, {coll: qty}), START, now)
            uow.commit()
        made = min(n, made + 200)
    with store.unit_of_work() as uow:  # what was pushed before the crash (the borrow receipts) is done
        uow.session.execute(update(outbox).where(outbox.c.sent_at.is_(None)).values(sent_at=now))
        m = Monitoring(uow.session)
        for g in range(groups):
            chat = -1000 - g
            first = FIRST_OWNER + g * per_group * 3  # spread over the book: groups see every kind
            tg.add_bot_to_group(chat, first, title=f"risk room {g}")
            m.save_chat(chat, "group", now, title=f"risk room {g}", active=True, monitoring=True)
            for o in range(per_group):
                m.share(chat, str(first + o * 3), None, now)
        uow.commit()
    crash = {a: (p * CRASH if a != "USDT" else p) for a, p in START.items()}
    later = now + timedelta(seconds=10)
    with store.unit_of_work() as uow:
        events = sweep(Desk(catalog, uow.domain_book), crash, later)
        uow.commit()
    kinds: dict[str, int] = {}
    for ev in events:
        kinds[ev.type] = kinds.get(ev.type, 0) + 1
    return {"events": len(events), "kinds": kinds, "owners": owners,
            "prices": {a: str(p) for a, p in crash.items()}}


def deliver(url: str, tg: FakeTelegram, exchange: FakeExchange, timeout: float) -> float:
    """Start the real bot (scheduler + notifier) and wait until no delivery is pending; returns seconds taken."""
    env: dict[str, Any] = {"LOANDESK_ADMIN_IDS": str(OPERATOR)}  # as the environment gives it
    settings = Settings(TELEGRAM_BOT_TOKEN=TOKEN, LOANDESK_TELEGRAM_BASE_URL=tg.base_url,
                        LOANDESK_BINANCE_URL=exchange.url,
                        LOANDESK_BINANCE_STREAM_URL=exchange.stream_url, LOANDESK_DATABASE_URL=url,
                        LOANDESK_PRICE_POLL_SECONDS=1, **env)
    store = StateStore(url)
    done = threading.Event()
    loop = asyncio.new_event_loop()
    started = time.monotonic()

    def pending() -> int:
        with store.unit_of_work() as uow:
            undispatched = uow.outbox.pending_count()
            waiting = len(uow.session.execute(select(deliveries.c.id)
                                              .where(deliveries.c.status == "pending")).all())
            return undispatched + waiting

    async def main() -> None:
        app = build_application(settings, get_updates_read_timeout=3, read_timeout=3)
        stop = asyncio.Event()

        async def until_delivered() -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                if await asyncio.to_thread(pending) == 0:
                    break
            done.set()
            stop.set()

        watcher = asyncio.create_task(until_delivered())
        await run_app(app, stop, poll_interval=0, timeout=1)
        await watcher

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        store.close()
    return time.monotonic() - started


def measure(url: str, tg: FakeTelegram) -> dict[str, Any]:
    store = StateStore(url)
    try:
        with store.unit_of_work() as uow:
            rows = uow.session.execute(
                select(deliveries.c.chat_id, deliveries.c.message_id, deliveries.c.status, outbox.c.type)
                .join(outbox, outbox.c.id == deliveries.c.outbox_id)).all()
    finally:
        store.close()
    by_message: dict[tuple[int, int], list[str]] = {}
    for row in rows:
        if row.status == "sent":
            by_message.setdefault((row.chat_id, row.message_id), []).append(row.type)
    sends = [r for r in tg.sent if r["method"] == "sendMessage" and (r["chat_id"], r["message_id"]) in by_message]
    sends.sort(key=lambda r: r["time"])
    ranks = [min(URGENCY.get(t, 9) for t in by_message[(r["chat_id"], r["message_id"])]) for r in sends]
    late = [i for i in range(1, len(ranks)) if ranks[i] < max(ranks[:i])]
    message_inversions = len(late)
    examples = [{"at_s": round(sends[i]["time"] - sends[0]["time"], 2), "chat": "group" if sends[i]["chat_id"] < 0
                 else "private", "events": by_message[(sends[i]["chat_id"], sends[i]["message_id"])]}
                for i in late[:5]]
    # event level: an event is early when a more urgent event (of any chat) goes out in a later message: in
    # practice a warning or margin call folded into its chat's liquidation message
    event_inversions, best_after = 0, 99
    for r in reversed(sends):
        kinds = [URGENCY.get(t, 9) for t in by_message[(r["chat_id"], r["message_id"])]]
        event_inversions += sum(1 for u in kinds if u > best_after)
        best_after = min(best_after, *kinds)
    times = [r["time"] for r in sends]
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    by_kind: dict[str, list[float]] = {}
    for r in sends:
        for t in by_message[(r["chat_id"], r["message_id"])]:
            by_kind.setdefault(t, []).append(r["time"] - times[0])
    rate_limited = [q for q in tg.requests if q["status"] == 429]
    return {
        "messages": len(sends), "events_delivered": sum(len(v) for v in by_message.values()),
        "deliveries": len(rows), "undelivered": sum(1 for row in rows if row.status != "sent"),
        "group_messages": sum(1 for r in sends if r["chat_id"] < 0),
        "folded_messages": sum(1 for v in by_message.values() if len(v) > 1),
        "span_s": round(span, 2), "rate_msg_s": round((len(sends) - 1) / span, 2) if span else 0.0,
        "rate_events_s": round((sum(len(v) for v in by_message.values()) - 1) / span, 2) if span else 0.0,
        "http_429": len(rate_limited),
        "strict_order_by_message": message_inversions == 0, "message_inversions": message_inversions,
        "late_messages": examples,
        "strict_order_by_event": event_inversions == 0, "event_inversions": event_inversions,
        "last_sent_s": {k: round(max(v), 2) for k, v in sorted(by_kind.items())},
        "first_sent_s": {k: round(min(v), 2) for k, v in sorted(by_kind.items())},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="loandesk-notify-") as tmp, \
            FakeTelegram(rate_limits=True) as tg, \
            FakeExchange({a: str(p * CRASH) for a, p in START.items() if a != "USDT"}) as exchange:
        url = f"sqlite:///{Path(tmp) / 'notify.db'}"
        store = StateStore(url)
        try:
            t = time.perf_counter()
            book = build(store, tg, args.pushes, args.groups, args.per_group)
            build_s = time.perf_counter() - t
        finally:
            store.close()
        wall = deliver(url, tg, exchange, args.timeout)
        result = measure(url, tg)
    defaults = Notifier.__init__.__defaults__ or ()
    return {"pushes": args.pushes, **{k: book[k] for k in ("events", "kinds", "owners")}, "groups": args.groups,
            **result, "wall_s": round(wall, 1), "build_s": round(build_s, 1),
            "notifier_per_second": defaults[0] if defaults else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.notify", description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=1000, help="positions caught by the crash (one event each)")
    parser.add_argument("--groups", type=int, default=4, help="monitoring groups")
    parser.add_argument("--per-group", type=int, default=6, help="borrowers each group watches")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up delivering after this many seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args)
    report(result, args.json)
    return 0 if result["undelivered"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
