"""The streaming price source over a real WebSocket: ``PriceStream`` against ``FakeExchange``'s combined stream.

Every test runs the client on its own event loop (``asyncio.run``) and the fake on its own thread, over
127.0.0.1; blocking fake controls (``wait_streams``, ``drop_streams``) are called through ``to_thread`` so the
client keeps reading meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bot.monitor.stream import (
    DEFAULT_STREAM_URL,
    Backoff,
    PriceStream,
    parse_message,
    stream_base_url,
    subscription_url,
)
from tests.fakes.exchange import FakeExchange

AT = datetime(2030, 1, 7, 10, 15, tzinfo=UTC)


class Recorder:
    """What the stream told its consumer: prices (asset, price, at) and up/down changes, in order."""

    def __init__(self) -> None:
        self.prices: list[tuple[str, Decimal, datetime]] = []
        self.status: list[bool] = []
        self.arrived: list[float] = []

    async def on_price(self, asset: str, price: Decimal, at: datetime) -> None:
        self.arrived.append(time.monotonic())
        self.prices.append((asset, price, at))

    def on_status(self, up: bool) -> None:
        self.status.append(up)


class RecordingBackoff(Backoff):
    """The real back-off, keeping every delay it chose."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delays: list[float] = []

    def next(self) -> float:
        delay = super().next()
        self.delays.append(delay)
        return delay


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


@asynccontextmanager
async def streaming(ex: FakeExchange, assets: list[str], rec: Recorder, connected: bool = True,
                    **kwargs: Any) -> AsyncIterator[PriceStream]:
    """A running PriceStream (connected as the fake sees it, unless not ``connected``), closed at the end."""
    kwargs.setdefault("backoff", Backoff(initial=0.05, maximum=0.2))
    stream = PriceStream(ex.stream_url, assets, rec.on_price, on_status=rec.on_status, clock=lambda: AT, **kwargs)
    task = asyncio.create_task(stream.run())
    try:
        if connected:  # both ends: the fake has registered the subscription, the client has seen the handshake
            await asyncio.to_thread(ex.wait_streams, 1)
            await until(lambda: stream.connected)
        yield stream
    finally:
        await stream.close()
        await asyncio.wait_for(task, 5)


@pytest.fixture
def ex() -> Any:
    with FakeExchange({"BTC": "50000", "ETH": "3000", "SOL": "150"}) as fake:
        yield fake


def test_a_price_change_reaches_the_consumer_within_100_ms_as_a_decimal(ex: FakeExchange) -> None:
    rec = Recorder()

    async def scenario() -> float:
        async with streaming(ex, ["USDT", "BTC", "ETH"], rec) as stream:
            assert stream.connected and rec.status == [True]
            sent = time.monotonic()
            ex.set_price("BTC", "51234.56789012")
            await until(lambda: len(rec.prices) == 1, timeout=1)
            return rec.arrived[0] - sent

    latency = asyncio.run(scenario())
    assert latency < 0.1
    assert rec.prices == [("BTC", Decimal("51234.56789012"), AT)]
    assert type(rec.prices[0][1]) is Decimal
    assert rec.status == [True, False]  # close() takes the stream down too


def test_only_the_subscribed_symbols_arrive(ex: FakeExchange) -> None:
    rec = Recorder()

    async def scenario() -> PriceStream:
        async with streaming(ex, ["eth", "BTC", "USDT"], rec) as stream:
            ex.set_price("SOL", "151")  # not ours: the fake does not even send it
            ex.set_price("ETH", "3001")
            ex.set_price("SOL", "152")
            ex.set_price("BTC", "50001")
            await until(lambda: len(rec.prices) == 2)
            await asyncio.sleep(0.05)  # time for anything else that might have been sent
            return stream

    stream = asyncio.run(scenario())
    assert ex.stream_subscriptions == [["BTCUSDT", "ETHUSDT"]]
    assert [(a, p) for a, p, _ in rec.prices] == [("ETH", Decimal("3001.00000000")), ("BTC", Decimal("50001.00000000"))]
    assert stream.stats.messages == 2 and stream.stats.unknown == 0


def test_malformed_zero_negative_and_unknown_frames_are_dropped_and_counted(ex: FakeExchange) -> None:
    malformed = [
        "not json",
        "[1,2]",
        '{"data":"BTCUSDT"}',
        '{"stream":"btcusdt@miniTicker"}',
        '{"stream":"btcusdt@miniTicker","data":{"e":"24hrMiniTicker","s":"BTCUSDT"}}',
        '{"data":{"s":"BTCUSDT","c":"12abc"}}',
        '{"data":{"s":"BTCUSDT","c":true}}',
    ]
    rejected = [
        '{"data":{"s":"BTCUSDT","c":"0.00000000"}}',
        '{"data":{"s":"BTCUSDT","c":"-5"}}',
        '{"data":{"s":"BTCUSDT","c":"NaN"}}',
        '{"data":{"s":"BTCUSDT","c":"Infinity"}}',
        '{"data":{"s":"BTCUSDT","c":NaN}}',
    ]
    unknown = ['{"stream":"dogeusdt@miniTicker","data":{"e":"24hrMiniTicker","s":"DOGEUSDT","c":"0.1"}}']
    rec = Recorder()

    async def scenario() -> PriceStream:
        async with streaming(ex, ["BTC"], rec) as stream:
            for frame in malformed + rejected + unknown:
                ex.send_raw(frame)
            ex.set_price("BTC", "49000")  # sent after the garbage on the same connection: arrives last
            await until(lambda: len(rec.prices) == 1)
            return stream

    stream = asyncio.run(scenario())
    assert rec.prices == [("BTC", Decimal("49000.00000000"), AT)]
    stats = stream.stats
    assert (stats.messages, stats.malformed, stats.rejected, stats.unknown, stats.prices) == (14, 7, 5, 1, 1)
    assert stats.failures == 0 and stream.last_message_at == AT


def test_a_dropped_stream_is_down_while_refused_reconnects_with_backoff_and_resumes(ex: FakeExchange) -> None:
    rec = Recorder()
    backoff = RecordingBackoff(initial=0.05, maximum=0.2, jitter=0)

    async def scenario() -> PriceStream:
        async with streaming(ex, ["BTC"], rec, backoff=backoff, healthy_seconds=0) as stream:
            ex.set_price("BTC", "50100")
            await until(lambda: len(rec.prices) == 1)
            ex.refuse_streams(True)
            assert await asyncio.to_thread(ex.drop_streams) == 1
            await until(lambda: ex.stream_refusals >= 4)  # retried at +0.05, +0.15, +0.35, +0.55 s
            assert rec.status == [True, False] and not stream.connected  # "down" once, not per attempt
            ex.refuse_streams(False)
            await asyncio.to_thread(ex.wait_streams, 1)
            await until(lambda: rec.status == [True, False, True])
            ex.set_price("BTC", "50200")
            await until(lambda: len(rec.prices) == 2)
            refused_delays = list(backoff.delays)

            assert await asyncio.to_thread(ex.drop_streams) == 1  # after a healthy connection: back to 0.05 s
            await asyncio.to_thread(ex.wait_streams, 1)
            ex.set_price("BTC", "50300")
            await until(lambda: len(rec.prices) == 3)
            assert backoff.delays[len(refused_delays):] == [0.05]
            assert refused_delays[:4] == [0.05, 0.1, 0.2, 0.2]  # doubling, capped
            assert all(d == 0.2 for d in refused_delays[3:])
            return stream

    stream = asyncio.run(scenario())
    assert [p for _, p, _ in rec.prices] == [Decimal("50100"), Decimal("50200"), Decimal("50300")]
    assert rec.status == [True, False, True, False, True, False]
    assert stream.stats.connects == 3 == ex.stream_connects
    assert ex.stream_refusals >= 4


def test_refused_from_the_start_the_stream_is_never_up_until_the_exchange_accepts(ex: FakeExchange) -> None:
    rec = Recorder()
    ex.refuse_streams(True)

    async def scenario() -> None:
        async with streaming(ex, ["BTC"], rec, connected=False) as stream:
            await until(lambda: ex.stream_refusals >= 2)
            assert rec.status == [] and not stream.connected
            ex.refuse_streams(False)
            await until(lambda: stream.connected)
            assert rec.status == [True]

    asyncio.run(scenario())


def test_a_normal_close_like_binances_24_hour_limit_is_followed_by_a_reconnect(ex: FakeExchange) -> None:
    rec = Recorder()

    async def scenario() -> PriceStream:
        async with streaming(ex, ["ETH"], rec) as stream:
            assert await asyncio.to_thread(ex.drop_streams, True) == 1
            await asyncio.to_thread(ex.wait_streams, 1)
            ex.set_price("ETH", "2999.5")
            await until(lambda: len(rec.prices) == 1)
            return stream

    stream = asyncio.run(scenario())
    assert rec.prices == [("ETH", Decimal("2999.50000000"), AT)]
    assert (stream.stats.connects, stream.stats.failures) == (2, 1)


def test_a_silent_connection_is_given_up_after_the_idle_timeout(ex: FakeExchange) -> None:
    rec = Recorder()

    async def scenario() -> None:
        async with streaming(ex, ["BTC"], rec, idle_timeout=0.2) as stream:
            started = time.monotonic()
            await until(lambda: stream.stats.connects == 2 and stream.connected, timeout=2)
            assert 0.2 <= time.monotonic() - started < 1.5
            assert stream.stats.failures == 1

    asyncio.run(scenario())
    assert rec.status[:3] == [True, False, True]
    assert ex.stream_connects >= 2


def test_close_returns_at_once_even_in_the_middle_of_a_long_backoff(ex: FakeExchange) -> None:
    rec = Recorder()

    async def scenario() -> float:
        stream = PriceStream(ex.stream_url, ["BTC"], rec.on_price, on_status=rec.on_status,
                             backoff=Backoff(initial=30, maximum=60))
        task = asyncio.create_task(stream.run())
        await asyncio.to_thread(ex.wait_streams, 1)
        ex.refuse_streams(True)
        await asyncio.to_thread(ex.drop_streams)
        await until(lambda: rec.status == [True, False])
        started = time.monotonic()
        await stream.close()
        assert task.done()
        await task
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 0.5
    assert ex.stream_refusals == 0  # it was waiting 15–30 s before trying again


def test_a_failing_consumer_is_counted_and_the_stream_goes_on(ex: FakeExchange) -> None:
    seen: list[Decimal] = []

    def on_price(asset: str, price: Decimal, at: datetime) -> None:
        seen.append(price)
        if len(seen) == 1:
            raise RuntimeError("a bug downstream")

    async def scenario() -> PriceStream:
        stream = PriceStream(ex.stream_url, ["BTC"], on_price)
        task = asyncio.create_task(stream.run())
        await asyncio.to_thread(ex.wait_streams, 1)
        ex.set_price("BTC", "1")
        ex.set_price("BTC", "2")
        await until(lambda: len(seen) == 2)
        await stream.close()
        await task
        return stream

    stream = asyncio.run(scenario())
    assert seen == [Decimal("1.00000000"), Decimal("2.00000000")]
    assert (stream.stats.callback_errors, stream.stats.connects, stream.stats.failures) == (1, 1, 0)


# ---------------------------------------------------------------------------------------------- pure parts


def test_the_stream_url_setting() -> None:
    assert stream_base_url(None) == stream_base_url("  ") == DEFAULT_STREAM_URL == "wss://data-stream.binance.vision"
    assert stream_base_url("off") is None and stream_base_url(" OFF ") is None
    assert stream_base_url("ws://127.0.0.1:9000/") == "ws://127.0.0.1:9000"
    with pytest.raises(ValueError, match="ws:// or wss://"):
        stream_base_url("https://api.binance.com")


def test_the_subscription_names_every_asset_but_the_quote_once_in_lowercase() -> None:
    assert subscription_url("wss://x.test/", ["eth", "USDT", "BTC", "ETH"]) == (
        "wss://x.test/stream?streams=btcusdt@miniTicker/ethusdt@miniTicker"
    )
    with pytest.raises(ValueError, match="at least one asset"):
        PriceStream("wss://x.test", ["USDT"], lambda a, p, t: None)


def test_a_binance_message_parses_to_an_exact_decimal() -> None:
    frame = ('{"stream":"btcusdt@miniTicker","data":{"e":"24hrMiniTicker","E":1672515782136,"s":"BTCUSDT",'
             '"c":"16500.10000000","o":"16400.00","h":"16600.00","l":"16300.00","v":"1.0","q":"16500.1"}}')
    assert parse_message(frame, {"BTCUSDT": "BTC"}) == ("BTC", Decimal("16500.10000000"))
    assert parse_message(frame.encode(), {"BTCUSDT": "BTC"}) == ("BTC", Decimal("16500.10000000"))
    assert parse_message(b"\xff", {"BTCUSDT": "BTC"}) == "malformed"


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter_and_resets() -> None:
    low = Backoff(initial=1, maximum=8, jitter=0.5, rand=lambda: 1.0)  # the most jitter takes off half
    assert [low.next() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    high = Backoff(initial=1, maximum=8, jitter=0.5, rand=lambda: 0.0)
    assert [high.next() for _ in range(5)] == [1, 2, 4, 8, 8]
    high.reset()
    assert high.next() == 1
    with pytest.raises(ValueError):
        Backoff(initial=0)


def test_the_fake_speaks_binances_combined_stream_format() -> None:
    with FakeExchange({"BTC": "50000"}, clock=lambda: AT) as fake:

        async def scenario() -> str | bytes:
            async with connect(f"{fake.stream_url}/stream?streams=btcusdt@miniTicker") as ws:
                await asyncio.to_thread(fake.wait_streams, 1)
                fake.set_price("BTC", "49000.5")
                return await asyncio.wait_for(ws.recv(), 2)

        frame = asyncio.run(scenario())
    assert frame == (
        '{"stream":"btcusdt@miniTicker","data":{"e":"24hrMiniTicker","E":1894011300000,"s":"BTCUSDT",'
        '"c":"49000.50000000","o":"50000.00000000","h":"50000.00000000","l":"49000.50000000",'
        '"v":"0.00000000","q":"0.00000000"}}'
    )
