"""Streaming prices end to end (issue 12, items 3 and 7): the real Application subscribed to FakeExchange's
combined WebSocket stream on 127.0.0.1, its REST ticker as the fallback, FakeTelegram for the pushes, a 1-s
confirmation window. Every new stream price runs the sweep; a dropped stream falls back to polling and the bot
returns to the stream; a one-message wick never liquidates; a move that persists, or that the second source
confirms, does."""

from __future__ import annotations

import time

from tests.fakes.exchange import FakeExchange
from tests.monitoring.conftest import ANN, CONFIRM, Bot, World, wait

LOAN = "30000"  # against 1 BTC: 60% LTV at 50,000; warning 80%, margin call 85%, liquidation 91%


def streaming(world: World, **settings: object) -> None:
    world.settings = world.settings.model_copy(update={"binance_stream_url": world.exchange.stream_url, **settings})


def started(world: World) -> Bot:
    """A bot leading, subscribed to the stream, with a first price of every asset."""
    bot = world.start()
    world.exchange.wait_streams(1)
    wait(lambda: bot.monitor.leading and bot.monitor.feed.streaming and len(bot.monitor.feed.guard.newest_seen) == 2)
    return bot


def pushed(world: World, word: str, since: int = 0) -> dict[str, object]:
    return world.tg.wait_for(lambda r: r["chat_id"] == ANN and word in (r["plain"] or ""), timeout=15, since=since)


def test_a_dropped_stream_falls_back_to_polling_and_returns_to_the_stream(world: World) -> None:
    streaming(world)
    pid = world.borrow(ANN, "USDT", LOAN, "BTC", "1")
    world.seed_price("BTC", "50000")
    feed = started(world).monitor.feed
    world.polls(0)
    rest = world.exchange.hits
    world.exchange.set_price("BTC", "37000")  # 81%: a warning, seen on the stream
    pushed(world, "LTV warning")
    assert world.exchange.hits == rest, "the REST ticker was asked while the stream was up"

    world.exchange.refuse_streams()
    assert world.exchange.drop_streams() == 1
    wait(lambda: not feed.streaming)
    world.polls(3)  # the fallback: REST polling again
    since = len(world.tg.sent)
    world.exchange.set_price("BTC", "34500")  # 87%: a margin call, seen by polling (no stream to push it)
    pushed(world, "Margin call", since)
    assert world.exchange.stream_connections == 0

    world.exchange.refuse_streams(False)
    world.exchange.wait_streams(1, timeout=40)  # after the back-off
    wait(lambda: feed.streaming)
    world.polls(0)
    since, rest = len(world.tg.sent), world.exchange.hits
    world.exchange.set_price("BTC", "50000")  # 60%: cleared, seen on the stream again
    pushed(world, "Margin call cleared", since)
    world.polls(0)
    assert world.exchange.hits == rest, "the bot kept polling REST after the stream came back"
    assert world.exchange.stream_connects == 2 and world.position(pid).status.value == "open"


def test_a_one_message_wick_on_the_stream_never_liquidates(world: World) -> None:
    streaming(world)
    pid = world.borrow(ANN, "USDT", LOAN, "BTC", "1")
    world.seed_price("BTC", "50000")
    started(world)
    world.exchange.set_price("BTC", "30000")  # one print at −40%: 100% LTV, beyond liquidation
    pushed(world, "Margin call")  # the sweep saw it (margin calls may use the newest price) …
    world.exchange.set_price("BTC", "50000")  # … and the next message is back where it was
    for _ in range(int(3 * CONFIRM / 0.2)):  # three windows of ordinary messages, five a second
        world.exchange.push_prices()
        time.sleep(0.2)
    pushed(world, "Margin call cleared")
    assert world.position(pid).status.value == "open" and world.count("liquidated") == 0
    assert not world.pushes(ANN, "Liquidated")


def test_a_move_persisting_on_the_stream_liquidates_with_no_poll_at_all(world: World) -> None:
    streaming(world, price_poll_seconds=3600)  # one poll at start; from then on only the stream moves prices
    pid = world.borrow(ANN, "USDT", LOAN, "BTC", "1")
    world.seed_price("BTC", "50000")
    started(world)
    rest = world.exchange.hits
    world.exchange.set_price("BTC", "30000")  # −40%, held until it has persisted a second
    pushed(world, "Margin call")
    assert world.position(pid).status.value == "open"
    for _ in range(int(10 * CONFIRM / 0.2)):  # Binance repeats the price every second; five times a second here
        if world.position(pid).status.value != "open":
            break
        world.exchange.push_prices()
        time.sleep(0.2)
    pushed(world, "Liquidated")
    assert world.exchange.hits == rest, "a REST poll, not the stream, moved the price"


def test_a_move_the_second_source_confirms_liquidates_at_once(world: World) -> None:
    with FakeExchange({"BTC": "50000", "ETH": "3000"}) as second:
        world.desk_rules(price_confirm_seconds=3600)  # no move persists that long in a test
        streaming(world, second_price_url=second.url)
        pid = world.borrow(ANN, "USDT", LOAN, "BTC", "1")
        world.seed_price("BTC", "50000")
        started(world)
        second.set_price("BTC", "30100")  # the second source sees the crash …
        world.exchange.set_price("BTC", "30000")  # … and the stream's one message is confirmed by it
        pushed(world, "Liquidated")
        assert world.position(pid).status.value == "liquidated"
