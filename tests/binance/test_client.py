"""BinanceAccount against FakeBinance over real HTTP on 127.0.0.1: keys, clock, limits and weight.

Every number below is worked out by hand from the documented weights (ongoing orders 300, VIP orders and
collateral data 400, apiRestrictions 1) and from the fake's clock, which the clients read.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from bot.binance import (
    Banned,
    BinanceAccount,
    ClockOutOfSync,
    HmacSigner,
    KeyRejected,
    RateLimited,
    write_permissions,
)
from bot.binance.endpoints import API_POOL, FLEXIBLE_ONGOING_ORDERS, SERVER_TIME, VIP_ONGOING_ORDERS
from tests.binance.conftest import HMAC_KEY, Factory, run
from tests.fakes.binance import FakeBinance

FLEX = FLEXIBLE_ONGOING_ORDERS.path
VIP = VIP_ONGOING_ORDERS.path


def at_second(fake: FakeBinance, second: int) -> None:
    """Move the fake's clock forward to ``second`` seconds past a minute (so Retry-After is known)."""
    fake.advance(((second * 1000 - fake.now_ms() % 60_000) % 60_000) / 1000)


def answers(fake: FakeBinance) -> list[tuple[str, int, int | None]]:
    return [(c.path, c.status, c.code) for c in fake.calls]


def test_an_ed25519_key_reads_through_the_fake(fake: FakeBinance, ed_client: Factory) -> None:
    async def go() -> None:
        async with ed_client() as client:
            restrictions = await client.api_restrictions()
            assert restrictions.enabled("enableReading")
            assert write_permissions(restrictions) == []
            assert (await client.flexible_ongoing_orders()).total == 0

    run(go())
    assert answers(fake) == [("/sapi/v1/account/apiRestrictions", 200, None), (FLEX, 200, None)]


def test_flexible_loans_arrive_as_decimals_from_the_documented_strings(fake: FakeBinance, hmac_client: Factory) -> None:
    fake.add_flexible_loan(HMAC_KEY, "USDT", "15000.12345678", "BTC", "0.5", "0.6001")

    async def go() -> None:
        async with hmac_client() as client:
            (loan,) = await client.all_flexible_ongoing_orders()
            assert (loan.loan_coin, loan.collateral_coin) == ("USDT", "BTC")
            assert loan.total_debt == Decimal("15000.12345678") and type(loan.total_debt) is Decimal
            assert (loan.collateral_amount, loan.current_ltv) == (Decimal("0.5"), Decimal("0.6001"))
            (btc,) = await client.flexible_collateral_data("BTC")
            assert (btc.initial_ltv, btc.margin_call_ltv, btc.liquidation_ltv) == (
                Decimal("0.78"), Decimal("0.85"), Decimal("0.91"))

    run(go())


def test_a_key_with_trading_and_withdrawals_is_reported_by_name(fake: FakeBinance, hmac_client: Factory) -> None:
    fake.set_permissions(HMAC_KEY, enableSpotAndMarginTrading=True, enableWithdrawals=True)

    async def go() -> list[str]:
        async with hmac_client() as client:
            return write_permissions(await client.api_restrictions())

    assert run(go()) == ["Enable Withdrawals", "Enable Spot & Margin Trading"]


@pytest.mark.parametrize(("setup", "code"), [("wrong secret", -1022), ("revoked", -2015), ("unknown key", -2015)])
def test_binance_refusing_the_key_is_key_rejected(fake: FakeBinance, hmac_client: Factory, setup: str,
                                                  code: int) -> None:
    options = {"wrong secret": {"secret": "x" * 64}, "unknown key": {"api_key": "nobody"}}.get(setup, {})
    if setup == "revoked":
        fake.revoke(HMAC_KEY)

    async def go() -> None:
        async with hmac_client(**options) as client:
            await client.flexible_ongoing_orders()

    with pytest.raises(KeyRejected) as caught:
        run(go())
    assert caught.value.code == code and f"(code {code})" in str(caught.value)
    assert fake.owned_hits(FLEX) == 1  # not retried: retrying cannot help


def test_a_key_without_reading_may_ask_its_permissions_but_not_read_loans(fake: FakeBinance,
                                                                          hmac_client: Factory) -> None:
    fake.set_permissions(HMAC_KEY, enableReading=False)

    async def go() -> None:
        async with hmac_client() as client:
            assert not (await client.api_restrictions()).enabled("enableReading")
            await client.flexible_ongoing_orders()

    with pytest.raises(KeyRejected, match="code -2015"):
        run(go())


@pytest.mark.parametrize("skew_seconds", [30, -3])  # the client's clock 30 s behind, or 3 s ahead (> 1 s)
def test_a_stale_clock_is_resynced_once_and_the_call_succeeds(fake: FakeBinance, hmac_client: Factory,
                                                              skew_seconds: int) -> None:
    fake.advance(skew_seconds)

    async def go() -> int:
        async with hmac_client(clock=time.time) as client:
            await client.flexible_ongoing_orders()
            return client.clock_offset_ms

    offset = run(go())
    assert answers(fake) == [(FLEX, 400, -1021), (SERVER_TIME.path, 200, None), (FLEX, 200, None)]
    assert abs(offset - skew_seconds * 1000) < 500


def test_a_second_timestamp_refusal_after_resyncing_is_clock_out_of_sync(fake: FakeBinance,
                                                                         hmac_client: Factory) -> None:
    fake.script(400, -1021, "Timestamp for this request is outside of the recvWindow.", times=2, path=FLEX)

    async def go() -> None:
        async with hmac_client() as client:
            await client.flexible_ongoing_orders()

    with pytest.raises(ClockOutOfSync, match="outside of the recvWindow"):
        run(go())
    assert answers(fake) == [(FLEX, 400, -1021), (SERVER_TIME.path, 200, None), (FLEX, 400, -1021)]


def test_429_is_rate_limited_with_retry_after_and_nothing_more_is_sent(fake: FakeBinance,
                                                                       hmac_client: Factory) -> None:
    fake.sapi_limit = 700  # room for two calls of 300 a minute
    at_second(fake, 15)

    async def go() -> None:
        async with hmac_client() as client:
            await client.flexible_ongoing_orders()
            await client.flexible_ongoing_orders()
            assert client.used_weight == {FLEX: 600}
            with pytest.raises(RateLimited) as first:
                await client.flexible_ongoing_orders()
            assert (first.value.retry_after, first.value.local) == (45.0, False)
            with pytest.raises(RateLimited) as second:  # refused here: Binance would ban an IP that insists
                await client.flexible_ongoing_orders()
            assert second.value.local and 44 < second.value.retry_after <= 45
            assert (await client.vip_ongoing_orders()).total == 0  # another endpoint, its own 12,000
            fake.advance(45)  # the next minute
            await client.flexible_ongoing_orders()
            assert client.used_weight == {FLEX: 300}

    run(go())
    assert fake.owned_hits(FLEX) == 4  # 2 ok, 1 answered 429, 1 after the wait; the refused one never left


def test_418_is_banned_until_and_blocks_every_endpoint(fake: FakeBinance, hmac_client: Factory) -> None:
    fake.ban(90)

    async def go() -> None:
        async with hmac_client() as client:
            with pytest.raises(Banned) as caught:
                await client.flexible_ongoing_orders()
            assert caught.value.retry_after == 90.0 and not caught.value.local
            expected = dt.datetime.fromtimestamp(fake.now_ms() / 1000 + 90, tz=dt.UTC)
            assert abs((caught.value.until - expected).total_seconds()) < 1
            with pytest.raises(Banned) as again:
                await client.vip_ongoing_orders()
            assert again.value.local

    run(go())
    assert fake.owned_hits() == 1


def test_weight_comes_from_the_headers_which_count_every_process_on_the_ip(fake: FakeBinance,
                                                                           hmac_client: Factory,
                                                                           ed_client: Factory) -> None:
    async def go() -> None:
        async with hmac_client() as first, ed_client() as second:  # separate budgets, one IP
            await first.flexible_ongoing_orders()
            await second.flexible_ongoing_orders()
            assert second.used_weight == {FLEX: 600}  # 300 of its own + 300 the header says someone else spent
            assert first.used_weight == {FLEX: 300}
            await first.vip_ongoing_orders()
            await first.server_time()
            assert first.used_weight == {FLEX: 300, VIP: 400, API_POOL: 1}

    run(go())
    assert (fake.used_weight(FLEX), fake.used_weight(VIP), fake.used_weight(SERVER_TIME.path)) == (600, 400, 1)


def test_pages_are_read_until_the_total(fake: FakeBinance, hmac_client: Factory) -> None:
    pairs = [(loan, coll) for loan in ("USDT", "USDC", "FDUSD", "BTC", "ETH")
             for coll in ("BNB", "SOL", "XRP", "ADA", "DOGE")]
    for i, (loan, coll) in enumerate(pairs):
        fake.add_flexible_loan(HMAC_KEY, loan, 1000 + i, coll, 10, "0.5")

    async def go() -> None:
        async with hmac_client() as client:
            page = await client.flexible_ongoing_orders(current=2, limit=10)
            assert page.total == 25 and [loan.total_debt for loan in page.rows] == list(range(1010, 1020))
            loans = await client.all_flexible_ongoing_orders(page_size=10)
            assert [(x.loan_coin, x.collateral_coin) for x in loans] == pairs
            assert client.used_weight == {FLEX: 4 * 300}

    run(go())
    assert fake.owned_hits(FLEX) == 4


def test_page_arguments_outside_binances_range_are_refused_before_sending(hmac_client: Factory) -> None:
    async def go() -> None:
        async with hmac_client() as client:
            await client.flexible_ongoing_orders(limit=101)

    with pytest.raises(ValueError):
        run(go())


def test_only_get_is_ever_sent() -> None:
    """The package has one sending call, ``self._http.get(``, and no other HTTP verb."""
    import pathlib
    import re

    source = "\n".join(p.read_text() for p in pathlib.Path("bot/binance").glob("*.py"))
    assert source.count("self._http.get(") == 1
    assert not re.search(r"\.(post|put|patch|delete|request|stream|send)\(", source)
    assert HmacSigner.__name__ and BinanceAccount.__name__  # the modules imported cleanly
