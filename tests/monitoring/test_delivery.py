"""Delivery under Telegram's refusals (429 storms, 403, group migration), the leader lock, group commands and
the buttons under a push."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.monitor.scheduler import build_monitor
from bot.render.answers import Reply
from bot.service.store import StateStore
from storage.leases import RowLease
from storage.monitoring import Monitoring
from tests.monitoring.conftest import ANN, BOB, CONFIRM, GROUP, World, wait


def deliveries(world: World) -> list[dict[str, object]]:
    return list(world.rows(lambda uow: Monitoring(uow.session).delivery_rows()))


def test_a_429_storm_delays_pushes_without_losing_them(world: World) -> None:
    world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.start()
    world.monitoring_group()
    world.tg.flood(None, retry_after=1, times=4)
    world.exchange.set_price("BTC", "35000")
    world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Margin call" in (r["plain"] or ""), timeout=10)
    world.tg.wait_for(lambda r: r["chat_id"] == GROUP and "Margin call" in (r["plain"] or ""), timeout=10)
    assert sum(1 for r in world.tg.requests if r["status"] == 429) == 4
    assert len(world.pushes(ANN, "Margin call")) == 1 and len(world.pushes(GROUP, "Margin call")) == 1
    wait(lambda: all(d["status"] == "sent" for d in deliveries(world)))


def test_a_blocked_bot_deactivates_the_chat_and_the_group_still_hears(world: World) -> None:
    world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.start()
    world.monitoring_group()
    world.tg.block(ANN)
    world.exchange.set_price("BTC", "35000")
    world.tg.wait_for(lambda r: r["chat_id"] == GROUP and "Margin call" in (r["plain"] or ""))
    wait(lambda: any(d["chat_id"] == ANN and d["status"] == "held" for d in deliveries(world)))
    chat = world.rows(lambda uow: Monitoring(uow.session).chat(ANN))
    assert chat is not None and chat["active"] is False
    world.exchange.set_price("BTC", "32000")  # the group hears the liquidation now; the dead chat's push waits
    world.tg.wait_for(lambda r: r["chat_id"] == GROUP and "Liquidated" in (r["plain"] or ""))
    wait(lambda: [d["status"] for d in deliveries(world) if d["chat_id"] == ANN] == ["held", "held"])
    assert world.pushes(ANN, "Margin call") == [] and world.pushes(ANN, "Liquidated") == []


def test_a_migrated_group_keeps_its_subscriptions(world: World) -> None:
    world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.start()
    world.monitoring_group()
    world.tg.migrate(GROUP, -1001234)
    world.exchange.set_price("BTC", "35000")
    world.tg.wait_for(lambda r: r["chat_id"] == -1001234 and "Margin call" in (r["plain"] or ""))
    shares = world.rows(lambda uow: Monitoring(uow.session).shares_in(-1001234))
    assert shares == [(str(ANN), None)]
    old = world.rows(lambda uow: Monitoring(uow.session).chat(GROUP))
    assert old["migrated_to"] == -1001234 and old["active"] is False
    assert "#1 user 42: LTV 85.7%" in world.say(ANN, "/board", -1001234)["plain"]


def test_only_the_leader_acts_and_a_passive_scheduler_takes_over_when_the_lock_expires(world: World) -> None:
    pid = world.borrow(ANN, "USDT", "30000", "BTC", "1")
    store = StateStore(world.url)
    sent: dict[str, list[int]] = {"a": [], "b": []}

    def sender(name: str):  # type: ignore[no-untyped-def]
        async def send(chat_id: int, reply: Reply) -> int:
            sent[name].append(chat_id)
            return len(sent[name])
        return send

    a = build_monitor(world.settings, world.catalog, store, sender("a"), world.clock)
    b = build_monitor(world.settings, world.catalog, store, sender("b"), world.clock)

    async def both() -> None:
        # a fresh desk: the first price is held for the confirmation window, then a −36% jump is held too
        for price in ("50000", "50000", "32000", "32000"):
            world.exchange.set_price("BTC", price)
            await asyncio.gather(a.poll(), b.poll())
            world.clock.advance(seconds=CONFIRM + 0.1)
        for m in (a, b):  # the pushes the polls woke, to the end
            if m._delivering is not None:
                await m._delivering
        await a.feed_close()
        await b.feed_close()

    try:
        asyncio.run(both())
        assert world.position(pid).status.value == "liquidated"
        assert sent["a"] == [ANN] and sent["b"] == []
        assert a.leader() and not b.leader()
        # the leader hangs without letting go (alive, so its pid is no proof): the lease runs out on the wall clock
        lease = b.lease
        assert isinstance(lease, RowLease)
        lease.clock = lambda: datetime.now(UTC) + timedelta(seconds=lease.ttl.total_seconds() + 1)
        assert b.leader()
        with store.engine.begin() as conn:  # what a tick checks before it commits: a's ticks roll back now
            assert b.lease.still_held(conn) and not a.lease.still_held(conn)
    finally:
        store.close()


def test_group_commands_are_for_admins_and_own_positions(world: World) -> None:
    world.borrow(ANN, "USDT", "30000", "BTC", "1")
    bob = world.borrow(BOB, "USDT", "10000", "BTC", "1")
    world.start()
    world.tg.add_bot_to_group(GROUP, BOB, title="room")
    assert "not a monitoring channel" in world.say(BOB, "/share", GROUP)["plain"]
    assert "Only a group admin" in world.say(BOB, "/monitor", GROUP)["plain"]
    assert "operators" in world.say(BOB, "/monitor desk", GROUP)["plain"]
    world.monitoring_group(ANN, share="1")
    assert "no position #1" in world.say(BOB, "/share 1", GROUP)["plain"]
    assert "private chat" in world.say(BOB, "/positions", GROUP)["plain"]
    assert "Shared" in world.say(BOB, f"/share #{bob}", GROUP)["plain"]
    board = world.say(BOB, "/board", GROUP)["plain"]
    assert "#1 user 42: LTV 60.0% · 25.0 points to margin call (BTC −29.4%, at 35294.12)" in board
    assert f"#{bob} user 77: LTV 20.0%" in board
    assert "Stopped" in world.say(BOB, "/unshare", GROUP)["plain"]
    assert "user 77" not in world.say(ANN, "/board", GROUP)["plain"]
    wait(lambda: (world.rows(lambda uow: Monitoring(uow.session).chat(GROUP)) or {}).get("title") is not None)


def test_the_buttons_under_a_push_start_the_add_repay_and_view_flows(world: World) -> None:
    pid = world.borrow(ANN, "USDT", "30000", "BTC", "2", spare="1")
    world.start()
    world.exchange.set_price("BTC", "17500")  # 30,000 / 35,000 = 85.7%
    push = world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Margin call" in (r["plain"] or ""))
    since = len(world.tg.sent)
    world.tg.tap(ANN, push, f"pa:{pid}")
    add = world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Add collateral" in (r["plain"] or ""), since=since)
    assert "0.19780220 BTC" in add["plain"] or "0.1978022 BTC" in add["plain"]  # back to 78%
    world.tg.tap(ANN, push, f"pr:{pid}")
    repay = world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Repay #" in (r["plain"] or ""), since=since)
    assert "Repay #1: 2700" in repay["plain"]
    world.tg.tap(ANN, push, f"pv:{pid}")
    world.tg.wait_for(lambda r: r["chat_id"] == ANN and "LTV: 85.7%" in (r["plain"] or ""), since=since)
    world.tg.tap(BOB, push, f"pv:{pid}", check=False)
    world.tg.wait_for(lambda r: r["chat_id"] == ANN and "no position" in (r["plain"] or ""), since=since)
