"""One path: the live scheduler and ``loandesk simulate`` run the same tick and the same price guard, built from the
same markets file. Driven with the same prices at the same instants, they emit the same events; editing
``price_jump`` in the markets file changes what the live bot liquidates on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.monitor.scheduler import Monitor, build_monitor
from bot.render.common import Reply
from bot.service.store import StateStore
from bot.settings import Settings
from domain.analysis.simulate import simulate
from domain.desk import Desk
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import SHIPPED, load_catalog
from storage.monitoring import Monitoring
from storage.tables import outbox

T0 = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
D = Decimal
# BTC: a 10-second wick to 32,000; back to 50,000; 40,000 (a −20% jump, held); 32,000 (the same move, persisted
# ten minutes: accepted, LTV 93.75% → liquidation); then 32,000 again.
PATH = [(0, "50000"), (600, "32000"), (610, "50000"), (1200, "40000"), (1800, "32000"), (1810, "32000")]
WATCHED = ("margin_call", "margin_call_cleared", "warning", "liquidated", "shortfall")


class Stepped:
    """A price source whose prices the test sets between polls."""

    def __init__(self) -> None:
        self.quotes: dict[str, Decimal] = {}

    async def prices(self) -> dict[str, Decimal]:
        return {"USDT": D(1), **self.quotes}


async def _nothing_sent(chat_id: int, reply: Reply) -> int:
    return 1


def live_monitor(tmp_path: Path, markets: Path | None = None) -> tuple[Monitor, StateStore, list[datetime]]:
    now = [T0]
    tmp_path.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp_path / 'live.db'}"
    settings = Settings(TELEGRAM_BOT_TOKEN="1:x", LOANDESK_DATABASE_URL=url,
                        LOANDESK_MARKETS_FILE=str(markets) if markets else None)
    catalog = load_catalog(markets)
    store = StateStore(url)
    with store.unit_of_work() as uow:  # the desk as the scenario starts it: alice's loan and the last price
        desk = Desk(catalog, uow.domain_book)
        desk.deposit("alice", "BTC", D(1), T0)
        borrow(desk, BorrowRequest("alice", "USDT", D(30000), {"BTC": D(1)}), {"USDT": D(1), "BTC": D(50000)},
               T0 + timedelta(minutes=5))
        Monitoring(uow.session).record_tick("BTC", D(50000), T0, "exchange", None)
        uow.commit()
    monitor = build_monitor(settings, catalog, store, _nothing_sent, lambda: now[0])
    monitor.feed.primary = Stepped()
    return monitor, store, now


def live_events(tmp_path: Path, path: list[tuple[int, str]], markets: Path | None = None) -> list[tuple[Any, ...]]:
    monitor, store, now = live_monitor(tmp_path, markets)
    source = monitor.feed.primary
    assert isinstance(source, Stepped)

    async def drive() -> None:
        for seconds, price in path:
            now[0] = T0 + timedelta(seconds=seconds)
            source.quotes = {"BTC": D(price)}
            await monitor.poll()
        await asyncio.sleep(0)

    try:
        asyncio.run(drive())
        with store.unit_of_work() as uow:
            rows = uow.session.connection().execute(outbox.select().order_by(outbox.c.id)).mappings().all()
            return [(r["type"], r["position"], r["at"].astimezone(UTC)) for r in rows if r["type"] in WATCHED]
    finally:
        store.close()


def simulated_events(path: list[tuple[int, str]], markets: Path | None = None) -> list[tuple[Any, ...]]:
    scenario = {
        "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:59:00Z", "price_guard": True,
        "prices": {"BTC": [[(T0 + timedelta(seconds=s)).isoformat().replace("+00:00", "Z"), p] for s, p in path]},
        "accounts": {"alice": {"spot": {"BTC": "1"}}},
        "steps": [{"at": "2026-01-01T00:05:00Z", "account": "alice", "do": "borrow", "id": "P1",
                   "loan": "USDT", "amount": "30000", "collateral": {"BTC": "1"}}],
    }
    report = simulate(scenario, load_catalog(markets))
    return [(e["type"], 1, datetime.fromisoformat(e["at"].replace("Z", "+00:00")))
            for e in report["events"] if e["type"] in WATCHED]


def test_live_and_simulated_runs_emit_the_same_events(tmp_path: Path) -> None:
    # the scenario's rate is the catalog's (utilisation model): the same accrual runs on both sides
    live = live_events(tmp_path, PATH)
    simulated = simulated_events(PATH)
    assert simulated == live
    assert [e[0] for e in live] == ["margin_call", "margin_call_cleared", "liquidated"]
    assert live[-1][2] == T0 + timedelta(seconds=1800)  # liquidated when the jump had persisted, not at 00:20


def test_editing_price_jump_in_the_markets_file_changes_what_the_live_bot_liquidates_on(tmp_path: Path) -> None:
    wick = [(0, "50000"), (600, "32000")]  # −36% in one observation
    shipped = live_events(tmp_path / "a", wick)
    assert [e[0] for e in shipped] == ["margin_call"]  # a 15% jump rule holds it: no liquidation
    edited = tmp_path / "markets.toml"
    edited.write_text(SHIPPED.read_text().replace('price_jump = "0.15"', 'price_jump = "0.40"'))
    loose = live_events(tmp_path / "b", wick, edited)
    assert [e[0] for e in loose] == ["liquidated"]  # within a 40% jump: accepted at once, liquidated
    assert simulated_events(wick, edited) == loose  # and simulate reads the same file the same way
