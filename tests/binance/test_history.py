"""Vanished loans explained from the histories, VIP loans, and rates, parsed from the fake's documented JSON.

The liquidation, worked by hand: 15,000 USDT owed against 0.5 BTC, liquidated at 32,000 USDT/BTC.
Collateral sold for the debt: 15000 / 32000 = 0.46875 BTC; fee 2 % of that: 0.009375 BTC;
taken 0.478125 BTC; returned 0.5 − 0.478125 = 0.021875 BTC.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tests.binance.conftest import ED_KEY, HMAC_KEY, Factory, run
from tests.fakes.binance import FakeBinance


def test_a_liquidated_loan_disappears_and_the_history_says_what_came_back(fake: FakeBinance,
                                                                           hmac_client: Factory) -> None:
    fake.add_flexible_loan(HMAC_KEY, "USDT", "15000", "BTC", "0.5", "0.6")
    fake.liquidate(HMAC_KEY, "USDT", "BTC", price="32000")
    now = dt.datetime.fromtimestamp(fake.now_ms() / 1000, tz=dt.UTC)

    async def go() -> None:
        async with hmac_client() as client:
            assert await client.all_flexible_ongoing_orders() == []
            page = await client.flexible_liquidation_history(loan_coin="USDT")
            (record,) = page.rows
            assert (record.loan_coin, record.collateral_coin, record.status) == ("USDT", "BTC", "Liquidated")
            assert record.liquidation_debt == Decimal("15000")
            assert record.liquidation_collateral_amount == Decimal("0.478125")
            assert record.liquidation_fee == Decimal("0.009375")
            assert record.return_collateral_amount == Decimal("0.021875")
            assert record.liquidation_starting_price == Decimal("32000")
            assert abs((record.liquidation_starting_time - now).total_seconds()) < 2
            assert (await client.flexible_liquidation_history(loan_coin="BTC")).total == 0

    run(go())


def test_repayments_newest_first_partial_then_full(fake: FakeBinance, hmac_client: Factory) -> None:
    fake.add_flexible_loan(HMAC_KEY, "USDT", "15000", "BTC", "0.5", "0.6")
    fake.repay(HMAC_KEY, "USDT", "BTC", "5000")
    fake.advance(60)
    fake.repay(HMAC_KEY, "USDT", "BTC")

    async def go() -> None:
        async with hmac_client() as client:
            full, partial = (await client.flexible_repay_history()).rows
            assert (full.repay_amount, full.collateral_return, full.status) == (
                Decimal("10000"), Decimal("0.5"), "REPAID")
            assert (partial.repay_amount, partial.collateral_return) == (Decimal("5000"), Decimal("0"))
            assert (full.repay_time - partial.repay_time).total_seconds() >= 60
            assert await client.all_flexible_ongoing_orders() == []

    run(go())


def test_histories_default_to_the_last_90_days(fake: FakeBinance, hmac_client: Factory) -> None:
    fake.add_flexible_loan(HMAC_KEY, "USDT", "100", "BTC", "0.01", "0.2")
    fake.repay(HMAC_KEY, "USDT", "BTC")
    fake.advance(91 * 86_400)

    async def go() -> None:
        async with hmac_client() as client:
            assert (await client.flexible_repay_history()).total == 0
            start = dt.datetime.fromtimestamp(fake.now_ms() / 1000, tz=dt.UTC) - dt.timedelta(days=92)
            assert (await client.flexible_repay_history(start_time=start)).total == 1

    run(go())


def test_vip_loans_open_term_and_fixed_term(fake: FakeBinance, ed_client: Factory) -> None:
    expiry = 1_900_000_000_000
    fake.add_vip_loan(ED_KEY, 101, "USDT", "100000", ["BNB", "BTC", "ETH"], "180000.5", "0.5556")
    fake.add_vip_loan(ED_KEY, 102, "USDC", "50000", ["BTC"], "90000", "0.5556", loan_rate="0.0123",
                      residual_interest="10.27687923", expiration_time=expiry, loan_term="30days")

    async def go() -> None:
        async with ed_client() as client:
            open_term, fixed = await client.all_vip_ongoing_orders()
            assert (open_term.order_id, open_term.collateral_coins, open_term.loan_term) == (
                101, ("BNB", "BTC", "ETH"), "open term")
            assert open_term.expiration_time is None and open_term.loan_rate is None
            assert open_term.collateral_value_after_haircut == Decimal("180000.5")
            assert open_term.current_ltv == Decimal("0.5556")
            assert fixed.loan_rate == Decimal("0.0123") and fixed.residual_interest == Decimal("10.27687923")
            assert fixed.expiration_time == dt.datetime.fromtimestamp(expiry / 1000, tz=dt.UTC)
            assert len(fixed.collateral_account_ids) == 1
            assert (await client.vip_ongoing_orders(collateral_coin="ETH")).total == 1

    run(go())


def test_a_repaid_vip_loan_is_in_the_vip_repay_history(fake: FakeBinance, ed_client: Factory) -> None:
    fake.add_vip_loan(ED_KEY, 7, "USDT", "20000", ["BTC", "ETH"], "40000", "0.5")
    fake.repay_vip(ED_KEY, 7)

    async def go() -> None:
        async with ed_client() as client:
            assert await client.all_vip_ongoing_orders() == []
            (record,) = (await client.vip_repay_history()).rows
            assert (record.order_id, record.repay_amount, record.collateral_coins, record.status) == (
                7, Decimal("20000"), ("BTC", "ETH"), "Repaid")

    run(go())


def test_a_rate_change_shows_in_the_history_and_the_hourly_loanable_rate(fake: FakeBinance,
                                                                         hmac_client: Factory) -> None:
    fake.set_rate("USDT", "0.0876")  # 8.76 % a year = 0.00001 an hour

    async def go() -> None:
        async with hmac_client() as client:
            (rate,) = (await client.interest_rate_history("USDT")).rows
            assert (rate.coin, rate.annualized_rate) == ("USDT", Decimal("0.0876"))
            (usdt,) = await client.flexible_loanable_data("USDT")
            assert usdt.flexible_interest_rate == Decimal("0.00001")
            assert (usdt.min_limit, usdt.max_limit) == (Decimal("10"), Decimal("3000000"))

    run(go())
