"""A crash with kill -9 restarts (issue 15): the real ``loandesk run`` process is killed at random moments while
BTC falls and the book is margin-called and liquidated, and started again. Afterwards: every position that
must be liquidated was liquidated exactly once, every liquidation reached its borrower (at least once;
duplicates counted and bounded by the kills), and the ledger balances — on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.service.store import StateStore
from domain.checks import ledger_problems
from domain.desk import Desk
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import SHIPPED, load_catalog
from storage.monitoring import Monitoring
from storage.tables import deliveries, journal_entries, outbox, positions
from tests.conftest import Postgres
from tests.fakes.exchange import FakeExchange
from tests.fakes.telegram import FakeTelegram

TOKEN = "123:KILL"
OPERATOR = 1
BORROWERS = 40
ROOT = Path(__file__).resolve().parents[2]
D = Decimal


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kill9.db'}"
        return
    server: Postgres = request.getfixturevalue("postgres")
    schema = server.new_schema()
    try:
        yield f"{server.url}?options=-csearch_path%3D{schema}"
    finally:
        server.drop_schema(schema)


class Process:
    """``loandesk run`` in a child process, killed with SIGKILL and started again at will."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.child: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        out = self.log.open("ab")
        self.child = subprocess.Popen([sys.executable, "-m", "bot.entry.cli", "run"], env=self.env, cwd=ROOT,
                                      stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.child is not None
        self.child.send_signal(signal.SIGKILL)
        self.child.wait(10)
        self.kills += 1

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                self.child.wait(20)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait(5)


def open_book(url: str, markets: Path) -> list[int]:
    """Forty borrowers at LTVs spread from 60% to 80% at 52,000 (so a fall liquidates them one after another)."""
    catalog = load_catalog(markets)
    store = StateStore(url)
    try:
        with store.unit_of_work() as uow:
            desk = Desk(catalog, uow.domain_book)
            ids = []
            for i in range(BORROWERS):
                owner = str(1000 + i)
                desk.deposit(owner, "BTC", D(1), _now())
                amount = D(31200) + D(260) * i  # 31,200 … 41,340 USDT on 1 BTC
                p, _ = borrow(desk, BorrowRequest(owner, "USDT", amount, {"BTC": D(1)}),
                              {"USDT": D(1), "BTC": D(53000)}, _now())
                ids.append(p.id)
            Monitoring(uow.session).record_tick("BTC", D(52000), _now(), "exchange", None)
            uow.commit()
            return ids
    finally:
        store.close()


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def state(url: str, markets: Path) -> dict[str, Any]:
    catalog = load_catalog(markets)
    store = StateStore(url)
    try:
        with store.unit_of_work() as uow:
            db = uow.session.connection()
            liquidations = Counter(r[0] for r in db.execute(
                select(journal_entries.c.position).where(journal_entries.c.kind == "liquidation")))
            statuses = dict(db.execute(select(positions.c.id, positions.c.status)).all())
            liquidated_events = dict(db.execute(select(outbox.c.position, outbox.c.id)
                                                .where(outbox.c.type == "liquidated")).all())
            undelivered = db.execute(select(func.count()).select_from(deliveries).where(
                deliveries.c.status.in_(("pending", "held")))).scalar_one()
            desk = Desk(catalog, uow.domain_book)
            book = uow.book
            problems = ledger_problems(desk, book.all_balances(), book.all_earn_shares(),
                                       book.all_positions(), _now())
            return {"liquidations": liquidations, "statuses": statuses, "events": liquidated_events,
                    "undelivered": undelivered, "problems": problems}
    finally:
        store.close()


def test_kill_9_during_a_crash_loses_and_doubles_nothing(database: str, tmp_path: Path) -> None:
    markets = tmp_path / "markets.toml"
    markets.write_text(SHIPPED.read_text().replace("price_confirm_seconds = 10", "price_confirm_seconds = 1")
                       .replace('breaker_share = "0.5"', 'breaker_share = "1"')
                       .replace('breaker_asset_share = "0.9"', 'breaker_asset_share = "1"'))
    ids = open_book(database, markets)
    rng = random.Random(9)
    with FakeTelegram() as tg, FakeExchange({"BTC": "52000", "ETH": "3000"}) as exchange:
        for i in range(BORROWERS):
            tg.add_user(1000 + i)
        tg.add_user(OPERATOR)
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "LOANDESK_TELEGRAM_BASE_URL": tg.base_url,
               "LOANDESK_BINANCE_URL": exchange.url, "LOANDESK_DATABASE_URL": database,
               "LOANDESK_ADMIN_IDS": str(OPERATOR), "LOANDESK_PRICE_POLL_SECONDS": "0.2",
               "LOANDESK_MARKETS_FILE": str(markets), "LOANDESK_BINANCE_STREAM_URL": "off"}
        bot = Process(env, tmp_path / "bot.log")
        bot.start()
        try:
            for price in ("50000", "48000", "46500", "45500", "44500", "43000"):  # 62% … 96% LTV
                exchange.set_price("BTC", price)
                time.sleep(rng.uniform(0.5, 2.5))
                bot.kill()
                bot.start()
            # at 43,000 every loan of 39,130 USDT or more is at or above 91%: the last nine
            must = [pid for i, pid in enumerate(ids) if D(31200) + D(260) * i >= D("0.91") * 43000]
            deadline = time.monotonic() + 120
            while True:
                now = state(database, markets)
                done = sum(1 for s in now["statuses"].values() if s.startswith("liquidated"))
                if done == len(now["events"]) and now["undelivered"] == 0 and done >= len(must):
                    break
                assert time.monotonic() < deadline, f"not settled: {done} liquidated, {now['undelivered']} pending"
                time.sleep(0.5)
        finally:
            bot.stop()
        final = state(database, markets)
        assert len(must) == 9 and all(final["statuses"][pid].startswith("liquidated") for pid in must)
        assert all(n == 1 for n in final["liquidations"].values()), final["liquidations"]
        assert final["problems"] == []
        told = Counter(r["chat_id"] for r in tg.sent if "Liquidated" in (r.get("plain") or ""))
        for pid in final["events"]:
            owner = 1000 + ids.index(pid)
            assert told[owner] >= 1, f"the liquidation of #{pid} never reached its borrower"
        duplicates = sum(n - 1 for n in told.values())
        assert duplicates <= bot.kills  # at-least-once: at most one message per crash is sent again
