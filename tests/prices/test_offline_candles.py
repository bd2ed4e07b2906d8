"""The console has no exchange: ``OfflinePrices.klines`` gives /chart the prices it served itself — set by hand,
or a replay's path at the wall-clock time each was in force (issue 12, item 5)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from bot.monitor.offline import OfflinePrices
from bot.monitor.prices import chart_candles, chart_interval
from domain.prices import PriceSeries

T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)


class Clocks:
    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.seconds)


def test_prices_set_by_hand_are_the_candles_at_the_time_they_were_set() -> None:
    clocks = Clocks()
    offline = OfflinePrices(["BTC", "ETH", "USDT"], start={"BTC": D(50000)}, clock=clocks.monotonic,
                            wall=clocks.wall)
    clocks.seconds = 600
    offline.set("BTC", D(45000))
    clocks.seconds = 1200
    points = asyncio.run(offline.klines("BTC", "5m", T0 - timedelta(minutes=10), clocks.wall()))
    assert [(int((t - T0).total_seconds()) // 60, p) for t, p in points] == [
        (-10, D(50000)), (-5, D(50000)), (0, D(50000)), (5, D(50000)), (10, D(45000)), (15, D(45000)),
        (20, D(45000))]
    assert all(isinstance(p, D) for _, p in points)


def test_a_replay_is_the_candles_along_its_path_at_its_speed() -> None:
    clocks = Clocks()
    offline = OfflinePrices(["BTC", "USDT"], start={"BTC": D(100)}, clock=clocks.monotonic, wall=clocks.wall)
    history = PriceSeries([T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)], [D(10), D(5), D(8)])
    offline.start_replay("crash", "A crash", {"BTC": history}, speed=60)  # an hour of history a minute
    clocks.seconds = 150
    points = asyncio.run(offline.klines("BTC", "1m", T0 - timedelta(minutes=1), clocks.wall()))
    assert [p for _, p in points] == [D(100), D(100), D(50), D(80)]  # ends at the path's last price


def test_a_chart_asks_every_asset_at_an_interval_that_suits_its_span() -> None:
    assert chart_interval(timedelta(hours=1)) == "1m"
    assert chart_interval(timedelta(days=1)) == "5m"
    assert chart_interval(timedelta(days=30)) == "4h"
    assert chart_interval(timedelta(days=3650)) == "1w"
    clocks = Clocks()
    offline = OfflinePrices(["BTC", "ETH", "USDT"], clock=clocks.monotonic, wall=clocks.wall)
    clocks.seconds = 3600
    got = asyncio.run(chart_candles(offline, ["BTC", "ETH"], T0, clocks.wall()))
    assert sorted(got) == ["BTC", "ETH"] and len(got["BTC"]) == 61 and got["ETH"][-1][1] == D(3500)
    assert asyncio.run(chart_candles(object(), ["BTC"], T0, clocks.wall())) == {}
    with pytest.raises(ValueError):
        asyncio.run(offline.klines("BTC", "7m", T0, clocks.wall()))
