"""The price guard of SPEC §5, without HTTP: what may liquidate and what may only warn."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot import pushes
from bot.feed import PriceFeed, PriceGuard
from bot.prices import PricesUnavailable, StaticPrices
from domain.events import Event

T = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
D = Decimal


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def test_a_small_move_is_confirmed_at_once() -> None:
    g = PriceGuard()
    g.observe({"BTC": D(50000)}, at(0))
    v = g.observe({"BTC": D(45000)}, at(10))  # -10%
    assert v.confirmed["BTC"] == D(45000) and v.newest["BTC"] == D(45000)


def test_a_big_move_warns_at_once_but_liquidates_only_when_seen_again() -> None:
    g = PriceGuard()
    g.observe({"BTC": D(50000)}, at(0))
    v = g.observe({"BTC": D(32000)}, at(10))
    assert v.newest["BTC"] == D(32000) and v.confirmed["BTC"] == D(50000) and v.held == {"BTC": D(32000)}
    v = g.observe({"BTC": D(31500)}, at(20))
    assert v.confirmed["BTC"] == D(31500)


def test_a_wick_never_becomes_confirmed() -> None:
    g = PriceGuard()
    g.observe({"BTC": D(50000)}, at(0))
    g.observe({"BTC": D(32000)}, at(10))
    v = g.observe({"BTC": D(50000)}, at(20))
    assert v.confirmed["BTC"] == D(50000) and not g.suspect


def test_the_second_source_confirms_a_big_move_on_the_same_poll() -> None:
    g = PriceGuard()
    g.observe({"BTC": D(50000)}, at(0))
    assert g.observe({"BTC": D(32000)}, at(10), {"BTC": D(32100)}).confirmed["BTC"] == D(32000)
    g2 = PriceGuard()
    g2.observe({"BTC": D(50000)}, at(0))
    assert g2.observe({"BTC": D(32000)}, at(10), {"BTC": D(49900)}).confirmed["BTC"] == D(50000)


def test_a_price_older_than_60_seconds_never_liquidates() -> None:
    g = PriceGuard()
    g.observe({"BTC": D(50000)}, at(0))
    assert "BTC" in g.confirmed(at(60)) and "BTC" not in g.confirmed(at(61))
    assert g.latest(at(61))["BTC"] == D(50000)  # warnings may still use it


def test_a_restart_measures_jumps_against_the_stored_price() -> None:
    g = PriceGuard()
    g.seed({"BTC": (D(50000), at(-3600))})
    assert g.observe({"BTC": D(32000)}, at(0)).confirmed.get("BTC") is None


class Failing:
    async def prices(self) -> dict[str, Decimal]:
        raise PricesUnavailable("down")


def test_the_feed_goes_stale_once_and_recovers_once() -> None:
    asyncio.run(stale_then_recovered())


async def stale_then_recovered() -> None:
    now = [at(0)]
    feed = PriceFeed(StaticPrices({"BTC": D(50000)}), lambda: now[0])
    assert await feed.poll() is not None
    feed.primary = Failing()  # type: ignore[assignment]
    now[0] = at(30)
    assert await feed.poll() is None and not feed.went_stale(now[0])
    now[0] = at(61)
    assert await feed.poll() is None and feed.went_stale(now[0]) and not feed.went_stale(now[0])
    feed.primary = StaticPrices({"BTC": D(50000)})
    now[0] = at(70)
    assert await feed.poll() is not None and feed.recovered() and not feed.recovered()


def test_every_push_fits_telegram_and_its_buttons_fit_64_bytes() -> None:
    data = {"ltv": "0.8571", "debt": "30000", "collateral": {"BTC": "1"}, "prices": {"BTC": "35000", "USDT": "1"},
            "margin_call_ltv": "0.85", "liquidation_ltv": "0.91"}
    events = [Event(T, kind, "42", 2**31 - 1, data) for kind in pushes.TITLES]
    reply = pushes.fold(events)
    assert "LTV <b>85.7%</b>" in reply.text and "Debt: 30000 USDT" in reply.text
    assert all(len(d.encode()) <= 64 for row in reply.buttons for _, d in row)
