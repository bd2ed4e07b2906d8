"""The REST price client against ``FakeExchange`` over HTTP: only our symbols, unlisted ones, two sources at once,
and the candles for charts."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from bot.monitor.prices import ExchangePrices, PricesUnavailable, fetch_all
from tests.fakes.exchange import FakeExchange

D = Decimal
T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
TICKER = "/api/v3/ticker/price"


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def prices_of(client: ExchangePrices) -> dict[str, Decimal]:
    async def ask() -> dict[str, Decimal]:
        try:
            return await client.prices()
        finally:
            await client.close()

    return asyncio.run(ask())


@pytest.fixture
def ex() -> Any:
    with FakeExchange({"BTC": "50000", "ETH": "3000.5", "SOL": "150", "DOGE": "0.1"}) as fake:
        yield fake


def test_the_ticker_is_asked_for_the_desks_symbols_only(ex: FakeExchange) -> None:
    client = ExchangePrices(ex.url, ["USDT", "eth", "BTC"])
    assert prices_of(client) == {"USDT": D(1), "BTC": D("50000"), "ETH": D("3000.5")}
    assert ex.requests == [TICKER + '?symbols=["BTCUSDT","ETHUSDT"]']
    assert ex.asked_symbols == [["BTCUSDT", "ETHUSDT"]]
    assert client.missing == frozenset()


def test_an_unlisted_asset_costs_one_full_ticker_and_is_left_out_until_the_recheck(ex: FakeExchange) -> None:
    ticks = Ticks()
    client = ExchangePrices(ex.url, ["BTC", "ETH", "XYZ"], cache_seconds=0, clock=ticks, recheck_seconds=600)

    async def scenario() -> list[dict[str, Decimal]]:
        seen = [await client.prices()]
        ticks.now += 10
        seen.append(await client.prices())
        ex.set_price("XYZ", "2")  # listed meanwhile: seen at the next recheck
        ticks.now += 600
        seen.append(await client.prices())
        await client.close()
        return seen

    first, second, third = asyncio.run(scenario())
    assert first == second == {"USDT": D(1), "BTC": D(50000), "ETH": D("3000.5")}  # no SOL, no DOGE
    assert third == {"USDT": D(1), "BTC": D(50000), "ETH": D("3000.5"), "XYZ": D(2)}
    assert ex.asked_symbols == [
        ["BTCUSDT", "ETHUSDT", "XYZUSDT"],  # -1121 Invalid symbol
        None,  # the whole ticker, once, to learn which of ours are listed
        ["BTCUSDT", "ETHUSDT"],
        ["BTCUSDT", "ETHUSDT", "XYZUSDT"],  # the recheck
    ]
    assert client.missing == frozenset()


def test_a_delisted_asset_is_reported_missing_and_the_others_still_priced(ex: FakeExchange) -> None:
    client = ExchangePrices(ex.url, ["BTC", "ETH"], cache_seconds=0)

    async def scenario() -> tuple[dict[str, Decimal], dict[str, Decimal]]:
        before = await client.prices()
        ex.remove_price("ETH")
        after = await client.prices()
        await client.close()
        return before, after

    before, after = asyncio.run(scenario())
    assert set(before) == {"USDT", "BTC", "ETH"}
    assert after == {"USDT": D(1), "BTC": D(50000)}
    assert client.missing == frozenset({"ETH"})
    assert ex.hits == 3


def test_failures_are_prices_unavailable_and_answers_are_cached(ex: FakeExchange) -> None:
    ticks = Ticks()
    client = ExchangePrices(ex.url, ["BTC"], cache_seconds=3, timeout=0.3, clock=ticks)

    async def scenario() -> list[str]:
        outcomes: list[str] = []
        for script in ("500", "garbage", "hang", "unlisted"):
            ticks.now += 10  # past the cache
            if script == "500":
                ex.fail(500)
            elif script == "garbage":
                ex.garbage()
            elif script == "hang":
                ex.hang(1.0, times=1)
            else:
                ex.remove_price("BTC")
            with pytest.raises(PricesUnavailable) as failed:
                await client.prices()
            outcomes.append(str(failed.value))
        ex.set_price("BTC", "1")
        ticks.now += 700  # past the recheck of the unlisted BTC
        assert await client.prices() == {"USDT": D(1), "BTC": D(1)}
        ex.set_price("BTC", "2")
        ticks.now += 1
        assert await client.prices() == {"USDT": D(1), "BTC": D(1)}  # from the cache
        await client.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert "500" in outcomes[0] and "listed none" in outcomes[3]
    assert ex.asked_symbols[-1] == ["BTCUSDT"]


def test_an_empty_desk_asks_nothing(ex: FakeExchange) -> None:
    assert prices_of(ExchangePrices(ex.url, ["USDT"])) == {"USDT": D(1)}
    assert ex.hits == 0


# ---------------------------------------------------------------------------------------------- two sources


class Timed(ExchangePrices):
    """The real client, noting when its answer (or failure) came back."""

    started = 0.0
    finished: float | None = None

    async def prices(self) -> dict[str, Decimal]:
        try:
            return await super().prices()
        finally:
            self.finished = time.monotonic() - self.started


def test_two_sources_are_fetched_at_once_and_a_slow_one_delays_only_itself() -> None:
    with FakeExchange({"BTC": "50000"}) as fast_ex, FakeExchange({"BTC": "50100"}) as slow_ex:
        slow_ex.hang(0.6)
        fast, slow = Timed(fast_ex.url, ["BTC"]), Timed(slow_ex.url, ["BTC"])

        async def scenario() -> tuple[list[Any], float]:
            await fast.start()  # opening a client loads certificates (~0.1 s): not part of a poll
            await slow.start()
            started = time.monotonic()
            fast.started = slow.started = started
            answers = await fetch_all(slow, fast)  # the slow one first: one after the other, fast would wait
            elapsed = time.monotonic() - started
            await fast.close()
            await slow.close()
            return answers, elapsed

        answers, elapsed = asyncio.run(scenario())
    assert answers == [{"USDT": D(1), "BTC": D(50100)}, {"USDT": D(1), "BTC": D(50000)}]
    assert fast.finished is not None and fast.finished < 0.45  # not behind the slow one's 0.6 s
    assert slow.finished is not None and slow.finished >= 0.6
    assert elapsed < 1.5


def test_a_failing_source_gives_its_error_beside_the_others_prices() -> None:
    with FakeExchange({"BTC": "50000"}) as good_ex, FakeExchange({"BTC": "50100"}) as bad_ex:
        bad_ex.hang(2.0)
        good, bad = ExchangePrices(good_ex.url, ["BTC"]), ExchangePrices(bad_ex.url, ["BTC"], timeout=0.3)

        async def scenario() -> tuple[list[Any], float]:
            await good.start()
            await bad.start()
            started = time.monotonic()
            answers = await fetch_all(good, bad)
            elapsed = time.monotonic() - started
            await good.close()
            await bad.close()
            return answers, elapsed

        answers, elapsed = asyncio.run(scenario())
    assert answers[0] == {"USDT": D(1), "BTC": D(50000)}
    assert isinstance(answers[1], PricesUnavailable)
    assert elapsed < 1.5  # the 0.3-s timeout, not the 2-s hang


# ---------------------------------------------------------------------------------------------- candles


def test_klines_are_close_prices_as_decimals_at_each_candles_close(ex: FakeExchange) -> None:
    for minutes, price in [(0, "100"), (20, "110.5"), (40, "105.25"), (70, "120"), (185, "90.12345678")]:
        ex.set_price("ETH", price, at=T0 + timedelta(minutes=minutes))
    client = ExchangePrices(ex.url, ["ETH"])
    end = T0 + timedelta(hours=3, minutes=30)

    async def ask() -> list[tuple[datetime, Decimal]]:
        try:
            return await client.klines("eth", "1h", T0, end)
        finally:
            await client.close()

    points = asyncio.run(ask())
    assert points == [
        (T0 + timedelta(hours=1), D("105.25")),
        (T0 + timedelta(hours=2), D("120")),  # no trade from 11:10 to 13:05: the close carries on
        (T0 + timedelta(hours=3), D("120")),
        (end, D("90.12345678")),  # the candle still open at ``end`` is pinned there
    ]
    assert all(type(p) is Decimal for _, p in points)
    start_ms, end_ms = 1894010400000, 1894023000000
    assert ex.requests == [f"/api/v3/klines?symbol=ETHUSDT&interval=1h&startTime={start_ms}&endTime={end_ms}"
                           "&limit=1000"]


def test_klines_page_through_more_than_a_thousand_candles(ex: FakeExchange) -> None:
    ex.set_price("SOL", "10", at=T0)
    ex.set_price("SOL", "11", at=T0 + timedelta(minutes=1499))
    client = ExchangePrices(ex.url, ["SOL"])

    async def ask() -> list[tuple[datetime, Decimal]]:
        try:
            return await client.klines("SOL", "1m", T0, T0 + timedelta(minutes=1499, seconds=30))
        finally:
            await client.close()

    points = asyncio.run(ask())
    assert len(points) == 1500 and ex.hits == 2
    assert [t for t, _ in points] == [T0 + timedelta(minutes=m + 1) for m in range(1499)] + [
        T0 + timedelta(minutes=1499, seconds=30)]
    assert {p for _, p in points[:-1]} == {D(10)} and points[-1][1] == D(11)


def test_klines_refuse_bad_arguments_and_unknown_symbols(ex: FakeExchange) -> None:
    client = ExchangePrices(ex.url, ["BTC"])

    async def scenario() -> None:
        with pytest.raises(ValueError, match="unknown kline interval"):
            await client.klines("BTC", "7m", T0, T0)
        with pytest.raises(ValueError, match="timezone-aware"):
            await client.klines("BTC", "1h", T0.replace(tzinfo=None), T0)
        with pytest.raises(ValueError, match="before start"):
            await client.klines("BTC", "1h", T0, T0 - timedelta(hours=1))
        with pytest.raises(PricesUnavailable, match="XYZUSDT is not listed"):
            await client.klines("XYZ", "1h", T0, T0 + timedelta(hours=1))
        await client.close()

    asyncio.run(scenario())
    assert ex.hits == 1
