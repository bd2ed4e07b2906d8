"""The issue's Done-when, end to end: the real Application with its scheduler, FakeExchange, FakeTelegram."""

from __future__ import annotations

import time
from decimal import Decimal

from sqlalchemy import func, select

from domain.desk import Desk
from storage.tables import journal_entries
from tests.monitoring.conftest import ANN, GROUP, OPERATOR, POLL, World, wait


def liquidations(world: World) -> int:
    return int(world.rows(lambda uow: uow.session.execute(
        select(func.count()).select_from(journal_entries).where(journal_entries.c.kind == "liquidation"))
        .scalar_one()))


def test_a_margin_call_reaches_the_borrower_and_the_group_within_one_poll_then_liquidation(world: World) -> None:
    pid = world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.start()
    world.monitoring_group()
    world.polls(2)
    assert world.pushes(ANN, "Margin call") == []

    world.exchange.set_price("BTC", "35000")  # 30,000 / 35,000 = 85.7%
    moved = time.monotonic()
    call = world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Margin call" in (r["plain"] or ""))
    group = world.tg.wait_for(lambda r: r["chat_id"] == GROUP and "Margin call" in (r["plain"] or ""))
    assert call["time"] - moved < POLL + 1.0 and group["time"] - moved < POLL + 1.0
    for text in (call["plain"], group["plain"]):
        assert f"position #{pid}" in text and "LTV 85.7%" in text and "30000 USDT" in text
        assert "1 BTC" in text and "BTC 35000" in text and "Add collateral or repay" in text
    keys = [b["callback_data"] for b in call["reply_markup"]["inline_keyboard"][0]]
    assert keys == [f"pa:{pid}", f"pr:{pid}", f"pv:{pid}"]

    world.exchange.set_price("BTC", "32000")  # 93.75%: over the 91% liquidation LTV
    done = world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Liquidated" in (r["plain"] or ""))
    world.tg.wait_for(lambda r: r["chat_id"] == GROUP and "Liquidated" in (r["plain"] or ""))
    assert "LTV 93.8%" in done["plain"] and "Sold 0.9375 BTC to repay 30000 USDT" in done["plain"]
    assert "fee 0.01875 BTC" in done["plain"] and "Returned to your Spot wallet: 0.04375 BTC" in done["plain"]
    world.polls(3)
    p = world.position(pid)
    assert p.status.value == "liquidated" and liquidations(world) == 1
    assert len(world.pushes(ANN, "Margin call")) == 1 and len(world.pushes(ANN, "Liquidated")) == 1


def test_a_single_poll_wick_liquidates_nothing(world: World) -> None:
    pid = world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.start()
    world.polls(2)
    world.exchange.set_price("BTC", "32000")  # -36% in one poll: margin call yes, liquidation no
    world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Margin call" in (r["plain"] or ""))
    world.exchange.set_price("BTC", "50000")
    world.polls(4)
    world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Margin call cleared" in (r["plain"] or ""))
    assert world.position(pid).status.value == "open" and liquidations(world) == 0
    assert world.pushes(ANN, "Liquidated") == []


def test_a_stale_feed_liquidates_nothing_and_operators_are_told(world: World) -> None:
    pid = world.borrow(ANN, "USDT", "30000", "BTC", "1")
    bot = world.start()
    world.exchange.set_price("BTC", "33000")  # 90.9%: a margin call, not yet a liquidation
    world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Margin call" in (r["plain"] or ""))
    world.polls(2)

    world.exchange.fail(500, times=10**6)  # the exchange goes down …
    world.polls(3)  # a poll already in flight must not land after the clock jump as a "fresh" price
    world.clock.advance(days=30)  # … for a month: interest alone now puts the position over 91% at 33,000
    stale = world.tg.wait_for(lambda r: r["chat_id"] == OPERATOR and "Prices are stale" in (r["plain"] or ""))
    assert "nothing is liquidated" in stale["plain"]
    bot.run(bot.monitor.hourly(), timeout=60)  # accrues the missed 720 hours from the stored markers
    assert bot.monitor.feed.guard.confirmed(world.clock()) == {"USDT": Decimal(1)}
    debt = world.rows(lambda uow: Desk(world.catalog, uow.domain_book).debt(uow.book.get_position(pid),
                                                                          world.clock()))
    assert debt / 33000 > Decimal("0.91")  # over the liquidation LTV at the stale price
    assert world.position(pid).status.value == "open" and liquidations(world) == 0
    assert len(world.pushes(OPERATOR, "Prices are stale")) == 1

    world.exchange.reset()  # back: a fresh price at 33,000 may liquidate now
    world.tg.wait_for(lambda r: r["chat_id"] == OPERATOR and "Prices are back" in (r["plain"] or ""))
    world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Liquidated" in (r["plain"] or ""))
    assert liquidations(world) == 1 and len(world.pushes(OPERATOR, "Prices are stale")) == 1


def test_a_crash_between_the_sweep_and_delivery_loses_and_repeats_nothing(world: World) -> None:
    pid = world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.exchange.set_price("BTC", "32000")

    def crash_before_sending(app: object) -> None:
        async def boom() -> int:
            raise RuntimeError("killed after the sweep's commit, before any push")
        app.bot_data["monitor"].notifier.run = boom  # type: ignore[attr-defined]

    first = world.start(crash_before_sending)
    wait(lambda: world.position(pid).status.value == "liquidated")
    world.polls(3)
    first.stop()
    assert world.pushes(ANN, "Liquidated") == [] and liquidations(world) == 1

    second = world.start()
    world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Liquidated" in (r["plain"] or ""))
    world.polls(3)
    second.stop()
    third = world.start()
    world.polls(5)
    third.stop()
    # A fresh desk holds its first price for the confirmation window (a cold start is a jump), so the margin
    # call on the newest price comes first; it is folded into the one liquidation message, never sent again.
    assert len(world.pushes(ANN, "Liquidated")) == 1
    assert [r for r in world.pushes(ANN, "Margin call") if "Liquidated" not in r["plain"]] == []
    assert liquidations(world) == 1
