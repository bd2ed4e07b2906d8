"""The price feed around the domain's guard: staleness told once and recovery once; pushes fit Telegram."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.monitor.feed import PriceFeed
from bot.monitor.prices import PricesUnavailable, StaticPrices
from bot.render import pushes
from domain.events import Event
from domain.markets import load_catalog
from domain.prices import GuardRules

T = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
D = Decimal


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


class Failing:
    async def prices(self) -> dict[str, Decimal]:
        raise PricesUnavailable("down")


def test_the_feed_goes_stale_once_and_recovers_once() -> None:
    asyncio.run(stale_then_recovered())


async def stale_then_recovered() -> None:
    now = [at(0)]
    feed = PriceFeed(StaticPrices({"BTC": D(50000)}), lambda: now[0], GuardRules.of(load_catalog().desk))
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


def test_a_margin_call_past_the_liquidation_level_says_so() -> None:
    data = {"ltv": "0.926", "debt": "500", "collateral": {"BTC": "0.01"}, "prices": {"BTC": "54000", "USDT": "1"},
            "margin_call_ltv": "0.85", "liquidation_ltv": "0.91"}
    past = pushes.push(Event(T, "margin_call", "42", 1, data))
    assert "past the liquidation level 91.0%" in past and "At 91.0% the position is liquidated" not in past
    below = pushes.push(Event(T, "margin_call", "42", 1, {**data, "ltv": "0.87"}))
    assert "At 91.0% the position is liquidated" in below
