"""Opt-in pushes (rate changes of what one borrows, the daily digest at one's hour) and the feed's stale /
recovered notices, end to end through the real Application, across restarts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.monitoring.conftest import ANN, BOB, OPERATOR, World, wait

CAROL = 55


def confirm(world: World, user: int, preview: dict[str, Any]) -> None:
    since = len(world.tg.sent)
    data = next(b["callback_data"] for row in preview["reply_markup"]["inline_keyboard"] for b in row
                if b["text"] == "Confirm")
    world.tg.tap(user, preview, data)
    world.tg.wait_for(lambda r: r["chat_id"] == user, since=since)


def test_notify_commands_and_rate_changes_reach_only_opted_in_borrowers_of_that_asset(world: World) -> None:
    world.tg.add_user(CAROL)
    world.borrow(ANN, "USDT", "30000", "BTC", "1")  # opts in, borrows USDT: told
    world.exchange.set_price("USDC", "1")
    world.borrow(BOB, "USDC", "1000", "BTC", "1",  # opts in, borrows USDC only: not told of USDT
                 prices={"USDT": Decimal(1), "USDC": Decimal(1), "BTC": Decimal(50000)})
    world.borrow(CAROL, "USDT", "1000", "BTC", "1")  # borrows USDT, never opts in: not told
    world.start()
    shown = world.say(ANN, "/notify")["plain"]
    assert "Rate changes of the assets you borrow: off" in shown and "Daily digest" in shown
    assert "Rate changes of the assets you borrow: on" in world.say(ANN, "/notify rates on")["plain"]
    world.say(BOB, "/notify rates on")
    assert "Write it like: /notify" in world.say(ANN, "/notify rates maybe")["plain"]
    assert "not an hour" in world.say(ANN, "/notify digest on 25")["plain"]
    assert "/notify rates on|off" in world.say(ANN, "/help")["plain"]

    confirm(world, OPERATOR, world.say(OPERATOR, "/setrate USDT 6.5%"))
    push = world.tg.wait_for(lambda r: r["chat_id"] == ANN and "flexible APR is now" in (r["plain"] or ""))
    assert "USDT flexible APR is now 6.5" in push["plain"]
    world.polls(5)
    assert len(world.pushes(ANN, "flexible APR is now")) == 1
    assert world.pushes(BOB, "flexible APR is now") == [] and world.pushes(CAROL, "flexible APR is now") == []

    world.say(ANN, "/notify rates off")
    confirm(world, OPERATOR, world.say(OPERATOR, "/setrate USDT 7%"))
    world.polls(5)
    assert len(world.pushes(ANN, "flexible APR is now")) == 1


def test_the_daily_digest_comes_once_a_day_at_the_borrowers_hour_even_across_a_restart(world: World) -> None:
    world.borrow(ANN, "USDT", "30000", "BTC", "1")  # 60.0% at 50,000
    world.borrow(BOB, "USDT", "10000", "BTC", "1")  # never opts in
    bot = world.start()
    assert "Daily digest (LTV, debt, distance to margin call): on, at 11:00 UTC" in world.say(
        ANN, "/notify digest on 11")["plain"]
    world.polls(2)
    bot.run(bot.monitor.digest())  # 10:15 UTC: before Ann's hour
    assert world.pushes(ANN, "📋 Daily digest") == []

    world.clock.advance(hours=1)  # 11:15 UTC
    world.polls(2)
    bot.run(bot.monitor.digest())
    digest = world.tg.wait_for(lambda r: r["chat_id"] == ANN and "📋 Daily digest" in (r["plain"] or ""))
    assert "#1: LTV 60.0% · debt 3000" in digest["plain"] and " USDT · 25.0 points to margin call (85.0%)" in \
        digest["plain"]
    bot.run(bot.monitor.digest())
    world.clock.advance(hours=3)
    world.polls(2)
    bot.run(bot.monitor.digest())
    bot.stop()

    again = world.start()  # a restart the same day sends nothing again
    world.polls(3)
    again.run(again.monitor.digest())
    world.polls(3)
    assert len(world.pushes(ANN, "📋 Daily digest")) == 1 and world.pushes(BOB, "📋 Daily digest") == []

    world.clock.advance(days=1)  # the next day, at or after 11:00 UTC: the next one
    world.exchange.set_price("BTC", "40000")
    world.polls(3)
    again.run(again.monitor.digest())
    wait(lambda: len(world.pushes(ANN, "📋 Daily digest")) == 2)
    assert "#1: LTV 75.0% · debt 300" in world.pushes(ANN, "📋 Daily digest")[-1]["plain"]
    assert "10.0 points to margin call" in world.pushes(ANN, "📋 Daily digest")[-1]["plain"]


def test_stale_and_recovered_notices_are_told_once_each_across_restarts(world: World) -> None:
    first = world.start()
    world.polls(2)
    world.exchange.fail(500, times=10**6)
    world.polls(3)  # no poll that began before the failure can end after the jump and count as fresh
    world.clock.advance(seconds=90)
    world.tg.wait_for(lambda r: r["chat_id"] == OPERATOR and "Prices are stale" in (r["plain"] or ""))
    first.stop()

    second = world.start()  # still down after the restart: not told again
    world.clock.advance(seconds=90)
    world.polls(5)
    second.stop()
    assert len(world.pushes(OPERATOR, "Prices are stale")) == 1

    world.exchange.reset()  # back while no bot runs: the next one tells the recovery
    third = world.start()
    world.tg.wait_for(lambda r: r["chat_id"] == OPERATOR and "Prices are back" in (r["plain"] or ""))
    world.polls(3)
    third.stop()
    world.start()
    world.polls(5)
    assert len(world.pushes(OPERATOR, "Prices are back")) == 1
    assert len(world.pushes(OPERATOR, "Prices are stale")) == 1
