"""Timeouts, refused connections and 5xx: retried with exponential back-off, then ``Unavailable``."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest

from bot.binance import BinanceAccount, BinanceApiError, HmacSigner, Unavailable
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


@pytest.mark.parametrize(("body", "message"), [
    (None, "the answer is not JSON"),
    ({"code": 0, "msg": ""}, "field 'total' is missing"),
    ({"rows": [{"loanCoin": "USDT", "totalDebt": "abc", "collateralCoin": "BTC", "collateralAmount": "1",
                "currentLTV": "0.5"}], "total": 1}, "field 'totalDebt' is not a decimal number"),
])
def test_an_answer_unlike_the_documentation_is_an_error_not_an_empty_book(
        fake: FakeBinance, hmac_client: Factory, body: object, message: str) -> None:
    fake.script(200, body=body, path=FLEX)

    async def go() -> None:
        async with hmac_client() as client:
            await client.flexible_ongoing_orders()

    with pytest.raises(BinanceApiError, match=message):
        run(go())


def test_a_bare_json_number_still_becomes_a_decimal_never_a_float(fake: FakeBinance, hmac_client: Factory) -> None:
    row = {"loanCoin": "USDT", "totalDebt": 0.1, "collateralCoin": "BTC", "collateralAmount": "1",
           "currentLTV": "0.5"}
    fake.script(200, body={"rows": [row], "total": 1}, path=FLEX)

    async def go() -> Decimal:
        async with hmac_client() as client:
            return (await client.flexible_ongoing_orders()).rows[0].total_debt

    debt = run(go())
    assert debt == Decimal("0.1") and type(debt) is Decimal
