"""``python -m benchmarks.tracking [--accounts N] [--seconds S] [--rounds R] [--json]``: tracked loans (SPEC §9).

1. **The Binance budget, computed** from the documented weights (``bot.binance.endpoints``) and the configured
   share (default half of each SAPI endpoint's 12,000 a minute): how many linked accounts one IP keeps synced at
   a given interval, and the interval N accounts need (``bot.binance.budget``).
2. **The budget, exercised**: N linked accounts (Ed25519 keys, one Flexible and one VIP loan each) on the fake
   Binance, synced for S seconds by the real ``TrackingService.sync_due`` as fast as it lets itself (the
   scheduler's job runs it every second; here it is called every 50 ms). Measured at the fake: the most weight
   any SAPI endpoint used in one calendar minute, as a share of Binance's limit, the 429s and the non-GETs.
3. **Price move → push**: the real Application (scheduler, tick, notifier) against FakeTelegram and the fake
   Binance, with one desk position and one Binance-synced position on the same collateral at the same LTV. Each
   round moves BTC into both margin calls and back; the latency is from the price change at the exchange to each
   push accepted by the fake Bot API. Both pushes come from the same tick and the same notifier pass. Moves are
   1.5 s apart, so neither chat still waits out Telegram's one-message-a-second pace from the previous push.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import SecretStr

from benchmarks import report
from bot.binance import generate_ed25519, max_accounts, plan_syncs
from bot.binance.endpoints import FLEXIBLE_ONGOING_ORDERS, SAPI_IP_LIMIT_PER_MINUTE, SYNC_ENDPOINTS, VIP_ONGOING_ORDERS
from bot.entry.compose import build_application
from bot.entry.run import run_app
from bot.service.store import StateStore
from bot.service.tracking import TrackingService
from bot.settings import Settings
from domain.desk import Desk
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import load_catalog
from storage.tracking import Link, SqlTracked
from tests.fakes.binance import FakeBinance
from tests.fakes.telegram import FakeTelegram

TOKEN = "123:ABC"
DESK_OWNER, TRACK_OWNER = 501, 502
POLL = 0.5
SETTLE = 1.5  # seconds between moves: longer than a private chat's pace, so no push waits for the previous one


def computed(share: float) -> dict[str, Any]:
    per_sync = {e.path: e.weight for e in SYNC_ENDPOINTS}
    out: dict[str, Any] = {"share": share, "weight_per_sync": per_sync,
                           "allowed_per_endpoint_per_minute": int(SAPI_IP_LIMIT_PER_MINUTE * share)}
    for interval in (60, 300, 900, 3600):
        out[f"accounts_at_{interval}s"] = max_accounts(interval, share=share)
    plan = plan_syncs(100, share=share)
    out["interval_for_100_accounts_s"] = plan.interval_seconds
    out["spacing_s"] = plan.spacing_seconds
    out["binding_endpoint"] = plan.binding_endpoint
    return out


def exercised(accounts: int, seconds: float, share: float, db: Path) -> dict[str, Any]:
    """N linked accounts synced for ``seconds`` by the service at its own pace; weights read at the fake."""
    catalog = load_catalog()
    url = f"sqlite:///{db}"
    key = Fernet.generate_key().decode("ascii")
    with FakeBinance({"BTC": "50000", "ETH": "3000"}, ban_after=None) as fake:
        store = StateStore(url)
        service = TrackingService(catalog, store, fake.url, key, share=share, min_interval=1.0,
                                  prices=lambda: {"BTC": Decimal(50000), "ETH": Decimal(3000)})
        now = datetime.now(UTC)
        with store.unit_of_work() as uow:
            repo = SqlTracked(uow.session)
            for i in range(accounts):
                pair, api_key = generate_ed25519(), f"benchKey{i:08d}xxxxxxxxxxxxxxxx"
                fake.add_account(api_key, ed25519_public_key=pair.public_key_pem)
                fake.add_flexible_loan(api_key, "USDT", "10000", "BTC", "0.5", "0.4")
                fake.add_vip_loan(api_key, 9000 + i, "USDT", "100000", ["BTC", "ETH"], "200000", "0.5",
                                  loan_rate="0.05")
                repo.save_link(Link(str(10_000 + i), "ed25519", "active", service._lock(pair.private_key_pem.reveal()),
                                    now, api_key=service._lock(api_key), next_sync_at=now))
            uow.commit()
        peaks: dict[str, int] = {}
        synced = 0
        paths = [FLEXIBLE_ONGOING_ORDERS.path, VIP_ONGOING_ORDERS.path, "/sapi/v2/loan/flexible/collateral/data",
                 "/sapi/v2/loan/flexible/loanable/data"]

        async def drive() -> None:
            nonlocal synced
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                synced += await service.sync_due()
                for path in paths:
                    peaks[path] = max(peaks.get(path, 0), fake.used_weight(path))
                await asyncio.sleep(0.05)

        started = time.monotonic()
        asyncio.run(drive())
        took = time.monotonic() - started
        refused = sum(1 for c in fake.calls if c.status == 429)
        with store.unit_of_work() as uow:
            tracked = len(SqlTracked(uow.session).active_tracked())
        store.close()
        return {"accounts": accounts, "seconds": round(took, 1), "syncs": synced,
                "syncs_per_minute": round(synced * 60 / took, 1), "positions_tracked": tracked,
                "peak_weight_per_minute": peaks,
                "peak_share_of_limit": round(max(peaks.values()) / SAPI_IP_LIMIT_PER_MINUTE, 3),
                "http_429": refused, "non_get_requests": fake.non_get_requests}


def latency(rounds: int, db: Path) -> dict[str, Any]:
    """Desk vs tracked: price change at the exchange → margin-call push accepted by the fake Bot API."""
    catalog = load_catalog()
    url = f"sqlite:///{db}"
    key = Fernet.generate_key().decode("ascii")
    with FakeTelegram() as tg, FakeBinance({"BTC": "50000", "ETH": "3000"}) as fake:
        for user in (DESK_OWNER, TRACK_OWNER):
            tg.add_user(user)
        store = StateStore(url)
        with store.unit_of_work() as uow:  # the desk's borrower: 30,000 USDT against 1 BTC (60%)
            desk = Desk(catalog, uow.domain_book)
            now = datetime.now(UTC)
            desk.deposit(str(DESK_OWNER), "BTC", Decimal(1), now)
            borrow(desk, BorrowRequest(str(DESK_OWNER), "USDT", Decimal(30000), {"BTC": Decimal(1)}),
                   {"USDT": Decimal(1), "BTC": Decimal(50000)}, now)
            uow.commit()
        store.close()
        settings = Settings(TELEGRAM_BOT_TOKEN=TOKEN, LOANDESK_TELEGRAM_BASE_URL=tg.base_url,
                            LOANDESK_BINANCE_URL=fake.url, LOANDESK_BINANCE_STREAM_URL="off", LOANDESK_DATABASE_URL=url,
                            LOANDESK_PRICE_POLL_SECONDS=POLL)
        settings = settings.model_copy(update={"secret_key": SecretStr(key), "binance_sync_seconds": 3600.0})
        loop = asyncio.new_event_loop()
        ready, stop_box = threading.Event(), {}
        app_box: dict[str, Any] = {}

        async def main() -> None:
            stop_box["stop"] = asyncio.Event()
            app = app_box["app"] = build_application(settings, get_updates_read_timeout=3, read_timeout=3)
            await run_app(app, stop_box["stop"], started=ready.set, poll_interval=0, timeout=1)

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        assert ready.wait(15), "the bot did not start"

        def say(text: str) -> dict[str, Any]:
            since = len(tg.sent)
            tg.send_text(TRACK_OWNER, text)
            return tg.wait_for(lambda r: r["chat_id"] == TRACK_OWNER and r["method"] == "sendMessage", since=since,
                               timeout=30)

        pem = say("/link")["plain"]
        public = pem[pem.index("-----BEGIN PUBLIC KEY-----"):pem.index("-----END PUBLIC KEY-----") + 24]
        fake.add_account("benchLatencyKey0000000000000000", ed25519_public_key=public)
        fake.add_flexible_loan("benchLatencyKey0000000000000000", "USDT", "30000", "BTC", "1", "0.6")
        assert "Linked" in say("/link benchLatencyKey0000000000000000")["plain"]
        desk_ms: list[float] = []
        held_ms: list[float] = []
        gaps: list[float] = []
        try:
            for _ in range(rounds):
                for price, word in (("35000", "🚨 Margin call"), ("50000", "Margin call cleared")):
                    time.sleep(SETTLE)  # each chat's 1 message/s pace (Telegram's limit) has run out
                    since = len(tg.sent)
                    fake.set_price("BTC", price)
                    moved = time.monotonic()
                    a = tg.wait_for(push_to(DESK_OWNER, word), since=since, timeout=30)
                    b = tg.wait_for(push_to(TRACK_OWNER, word), since=since, timeout=30)
                    if word.startswith("🚨"):
                        desk_ms.append((a["time"] - moved) * 1000)
                        held_ms.append((b["time"] - moved) * 1000)
                        gaps.append(abs(a["time"] - b["time"]) * 1000)
        finally:
            loop.call_soon_threadsafe(stop_box["stop"].set)
            thread.join(20)
        return {"rounds": rounds, "poll_seconds": POLL,
                "desk_push_ms_p50": round(statistics.median(desk_ms), 1), "desk_push_ms_max": round(max(desk_ms), 1),
                "tracked_push_ms_p50": round(statistics.median(held_ms), 1),
                "tracked_push_ms_max": round(max(held_ms), 1),
                "desk_vs_tracked_gap_ms_max": round(max(gaps), 1), "non_get_requests": fake.non_get_requests}


def push_to(chat: int, word: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: bool(r["chat_id"] == chat and word in (r["plain"] or ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tracking", description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=75.0, help="how long the syncs are driven")
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"computed": computed(args.share)}
    with tempfile.TemporaryDirectory() as tmp:
        result["exercised"] = exercised(args.accounts, args.seconds, args.share, Path(tmp) / "sync.db")
        result["latency"] = latency(args.rounds, Path(tmp) / "latency.db")
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
