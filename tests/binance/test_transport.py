"""Timeouts, refused connections and 5xx: retried with exponential back-off, then ``Unavailable``."""

from __future__ import annotations

import socket

import pytest

from bot.binance import BinanceAccount, HmacSigner, Unavailable
from bot.binance.endpoints import FLEXIBLE_ONGOING_ORDERS
from tests.binance.conftest import HMAC_KEY, HMAC_SECRET, Factory, run
from tests.fakes.binance import FakeBinance

FLEX = FLEXIBLE_ONGOING_ORDERS.path


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_timeouts_are_retried_with_back_off_then_unavailable(fake: FakeBinance, hmac_client: Factory) -> None:
    fake.stall(2.0, times=3)
    sleeps = Sleeps()

    async def go() -> None:
        async with hmac_client(timeout=0.2, retries=2, backoff=0.5, sleep=sleeps) as client:
            await client.flexible_ongoing_orders()

    with pytest.raises(Unavailable) as caught:
        run(go())
    assert caught.value.attempts == 3 and "timed out (3 attempts)" in str(caught.value)
    assert sleeps.delays == [0.5, 1.0]
    assert fake.owned_hits(FLEX) == 3


def test_a_5xx_is_retried_and_the_retry_succeeds(fake: FakeBinance, hmac_client: Factory) -> None:
    fake.script(503, times=1, path=FLEX)
    sleeps = Sleeps()

    async def go() -> int:
        async with hmac_client(sleep=sleeps) as client:
            return (await client.flexible_ongoing_orders()).total

    assert run(go()) == 0
    assert sleeps.delays == [0.5]
    assert [(c.status) for c in fake.calls] == [503, 200]


def test_nothing_listening_is_unavailable_after_the_retries() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()

    async def go() -> None:
        async with BinanceAccount(f"http://127.0.0.1:{port}", HMAC_KEY, HmacSigner(HMAC_SECRET), retries=1,
                                  sleep=sleeps) as client:
            await client.flexible_ongoing_orders()

    with pytest.raises(Unavailable, match=r"connection failed \(ConnectError\) \(2 attempts\)"):
        run(go())
    assert sleeps.delays == [0.5]
