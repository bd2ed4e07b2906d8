"""No bad price can liquidate (issue 15, items 1–4), end to end: the real Application polling FakeExchange every
0.2 s with a 1-s confirmation window, FakeTelegram for the pushes."""

from __future__ import annotations

import time
from decimal import Decimal as D

from domain.markets import load_catalog
from tests.fakes.exchange import FakeExchange
from tests.monitoring.conftest import ANN, CONFIRM, OPERATOR, POLL, World, wait


def test_a_garbage_price_repeated_liquidates_nothing_and_pages_the_operators(world: World) -> None:
    ids = world.book(100, amount="30000", open_price="50000")  # 60% LTV at 50,000
    world.seed_price("BTC", "50000")
    world.exchange.set_price("BTC", "50000")
    world.start()
    world.polls(3)
    world.exchange.set_price("BTC", "0.00000001")  # a broken feed: five billion times too cheap
    page = world.tg.wait_for(lambda r: r["chat_id"] == OPERATOR and "cannot be used" in (r["plain"] or ""),
                             timeout=10)
    assert "BTC" in page["plain"] and "rejected" in page["plain"]
    world.polls(int(3 / POLL))  # three seconds of garbage: fifteen polls
    assert world.count("liquidated") == 0 and world.count("open") == len(ids)
    assert world.tg.sent and not [r for r in world.tg.sent if "Margin call" in (r["plain"] or "")]
    world.exchange.set_price("BTC", "50010")
    world.tg.wait_for(lambda r: r["chat_id"] == OPERATOR and "usable again" in (r["plain"] or ""), timeout=10)
    assert len(world.pushes(OPERATOR, "cannot be used")) == 1  # told once, and once when it is back


def test_a_second_source_that_disagrees_stops_a_liquidation(world: World) -> None:
    with FakeExchange({"BTC": "50000"}) as second:
        world.settings = world.settings.model_copy(update={"second_price_url": second.url})
        pid = world.borrow(ANN, "USDT", "30000", "BTC", "1")
        world.seed_price("BTC", "50000")
        world.start()
        world.polls(3)
        world.exchange.set_price("BTC", "32000")  # −36%, held, then persisting: 93.75% LTV
        world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Margin call" in (r["plain"] or ""))
        world.polls(int(3 * CONFIRM / POLL))  # persisted three times the window: accepted …
        assert world.position(pid).status.value == "open"  # … but the second source says 50,000
        second.set_price("BTC", "32100")  # now both agree
        world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Liquidated" in (r["plain"] or ""))


def test_a_cold_start_trusts_no_first_price(world: World) -> None:
    ids = world.book(100, amount="30000", open_price="50000")  # no stored price: a fresh deployment
    world.exchange.set_price("BTC", "20000")  # the first print is −60%
    world.start()
    world.polls(1)
    world.exchange.set_price("BTC", "50000")
    world.polls(int(3 * CONFIRM / POLL))
    assert world.count("liquidated") == 0 and world.count("open") == len(ids)


def test_a_crash_of_a_thousand_positions_liquidates_within_two_polls(world: World) -> None:
    world.desk_rules(breaker_share='"1"', breaker_asset_share='"1"')  # a real crash: nothing to pause here
    doomed = world.book(1000, amount="41000", open_price="53000")  # 82% at 50,000; 91.1% at 45,000
    world.seed_price("BTC", "50000")
    world.exchange.set_price("BTC", "50000")
    world.start()
    world.polls(3)
    world.exchange.set_price("BTC", "45000")  # −10%: not a jump, accepted at once
    asked = world.exchange.hits
    moved = time.monotonic()
    wait(lambda: world.count("liquidated") > 0, timeout=30)
    polls = world.exchange.hits - asked
    assert polls <= 2, f"the first liquidation came {polls} polls ({time.monotonic() - moved:.1f} s) after the move"
    wait(lambda: world.count("liquidated") == len(doomed), timeout=60)


def test_a_price_that_vanishes_is_told_once_and_once_when_it_is_back(world: World) -> None:
    for asset in load_catalog().assets:  # every other price is there the whole time: only BTC's goes
        if asset not in ("USDT", "BTC", "ETH"):
            world.exchange.set_price(asset, "1")
    world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.seed_price("BTC", "50000")
    world.start()
    world.polls(3)
    world.exchange.remove_price("BTC")
    world.polls(3)
    world.clock.advance(seconds=61)  # no BTC price for over a minute
    page = world.tg.wait_for(lambda r: r["chat_id"] == OPERATOR and "cannot be used" in (r["plain"] or ""))
    assert "no BTC price since" in page["plain"]
    world.polls(5)
    world.exchange.set_price("BTC", "50000")
    world.tg.wait_for(lambda r: r["chat_id"] == OPERATOR and "usable again" in (r["plain"] or ""))
    assert len(world.pushes(OPERATOR, "cannot be used")) == 1


def test_the_circuit_breaker_pauses_a_wave_and_an_operator_resumes_it(world: World) -> None:
    world.desk_rules(breaker_min_positions=5)
    ids = world.book(10, amount="41000", open_price="53000")
    pid = world.borrow(ANN, "USDT", "41000", "BTC", "1", prices={"USDT": D(1), "BTC": D(53000)})  # Ann's
    world.seed_price("BTC", "53000")
    world.start()
    world.polls(3)
    world.exchange.set_price("BTC", "45000")  # every position at 91.1%: the whole book at once
    page = world.tg.wait_for(lambda r: r["chat_id"] == OPERATOR and "Liquidations paused" in (r["plain"] or ""),
                             timeout=10)
    assert "11 of 11" in page["plain"]
    world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Margin call" in (r["plain"] or ""))  # margin calls go on
    world.polls(10)
    assert world.count("liquidated") == 0 and world.position(pid).status.value == "open"
    preview = world.say(OPERATOR, "/resume")
    assert "Resume liquidations" in preview["plain"]
    confirm = preview["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    world.tg.tap(OPERATOR, preview, confirm)
    wait(lambda: world.count("liquidated") == len(ids) + 1, timeout=20)
