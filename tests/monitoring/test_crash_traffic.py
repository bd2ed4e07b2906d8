"""Telegram's traffic in a crash (issue 12 item 4, issue 15 items 3 and 6): pushes and replies share Telegram's
limits and the fake (enforcing them) refuses nothing; polling goes on while a backlog of pushes drains; after an
outage every push goes out at once and none is dropped."""

from __future__ import annotations

from typing import Any

import pytest

from bot.monitor.notifier import MAX_ATTEMPTS
from bot.service.store import StateStore
from bot.telegram.budget import TelegramBudget
from storage.monitoring import Monitoring
from tests.monitoring.conftest import ANN, BOB, World, wait


def deliveries(world: World) -> list[dict[str, Any]]:
    return list(world.rows(lambda uow: Monitoring(uow.session).delivery_rows()))


def replies(world: World, chat: int, since: int) -> list[dict[str, Any]]:
    return [r for r in world.tg.sent[since:] if r["chat_id"] == chat and "Flexible" in (r["plain"] or "")]


def test_a_crash_drains_pushes_while_polls_go_on_and_replies_keep_within_telegrams_limits(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StateStore, "on_loop", "raise")
    world.desk_rules(breaker_share='"1"', breaker_asset_share='"1"')
    world.book(120, amount="41000", open_price="53000")  # 82% at 50,000: a warning each
    world.borrow(ANN, "USDT", "30000", "BTC", "1")  # 60%; 85.7% (a margin call) at 35,000
    world.seed_price("BTC", "50000")
    bot = world.start(budget=TelegramBudget())  # Telegram's own limits, replies and pushes together
    scheduler = bot.monitor.scheduler
    assert scheduler is not None
    scheduler.pause_job("deliver")  # only the polls wake the notifier here: they must not wait for it
    world.tg.rate_limits(True)
    wait(lambda: len(deliveries(world)) >= 120 and all(d["status"] == "sent" for d in deliveries(world)),
         timeout=30)  # the warnings are out: the crash's backlog is woken by a poll
    world.exchange.set_price("BTC", "47000")  # −6%: accepted at once; 87%: margin calls for the book
    world.tg.wait_for(lambda r: "Margin call" in (r["plain"] or ""), timeout=20)
    start = world.exchange.hits
    since = len(world.tg.sent)
    for _ in range(3):  # people chat while the backlog drains
        world.tg.send_text(ANN, "/markets")
        world.tg.send_text(BOB, "/markets")
    world.polls(5)  # polling goes on meanwhile …
    assert any(d["status"] == "pending" for d in deliveries(world)), "the backlog drained before five polls"
    assert world.exchange.hits >= start + 5  # … while pushes are still waiting to go out
    world.tg.wait_until(lambda: len(replies(world, ANN, since)) == 3 and len(replies(world, BOB, since)) == 3,
                        timeout=20)
    wait(lambda: all(d["status"] == "sent" for d in deliveries(world)), timeout=60)
    assert len(world.pushes(ANN, "Margin call")) == 0  # Ann's loan is at 63.8%: nothing for her
    assert [r for r in world.tg.requests if r["status"] == 429] == []  # the fake's limits were never exceeded


def test_after_an_outage_every_push_goes_out_at_once_and_none_is_dropped(world: World,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StateStore, "on_loop", "raise")
    world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.seed_price("BTC", "50000")
    world.start()
    world.tg.outage(True)
    world.exchange.set_price("BTC", "37000")  # 81%: a warning
    wait(lambda: any(d["attempts"] > 0 for d in deliveries(world)))
    world.exchange.set_price("BTC", "35000")  # 85.7%: a margin call
    wait(lambda: len(deliveries(world)) >= 2 and all(d["attempts"] > 0 for d in deliveries(world)))
    for _ in range(MAX_ATTEMPTS + 1):  # a long outage: every delivery fails more often than a refusal may
        tried = {d["id"]: d["attempts"] for d in deliveries(world)}
        world.clock.advance(seconds=700)  # past any back-off
        wait(lambda tried=tried: all(d["attempts"] > tried.get(d["id"], 0)  # type: ignore[misc]
                                     for d in deliveries(world) if d["status"] == "pending"))
    assert [d for d in deliveries(world) if d["status"] == "dropped"] == []
    world.tg.outage(False)
    world.clock.advance(seconds=11)  # the outage's longest wait: one push goes, the rest follow it at once
    wait(lambda: all(d["status"] == "sent" for d in deliveries(world)), timeout=10)
    assert world.pushes(ANN, "warning") and world.pushes(ANN, "Margin call")
