"""Protection and risk tools through the real Application: /protect, /alert price, /alerts, /stress,
/estimate, /backtest (with its chart as a photo) and /chart, with bad inputs answered by usage.

The loan of every test: 30,000 USDT on 1 BTC at BTC 50,000 (LTV 60.0%; margin call 85% at BTC 35,294.12)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from bot.service.store import StateStore
from storage.tables import price_ticks
from tests.bot.conftest import ANN, BOB, OPERATOR, Harness, confirm_data


def open_loan(bot: Harness) -> None:
    bot.tap_and_reply(OPERATOR, p := bot.say(OPERATOR, f"/credit {ANN} 3 BTC"), confirm_data(p))
    preview = bot.say(ANN, "/borrow 30000 USDT with 1 BTC")
    assert "#1" in bot.tap_and_reply(ANN, preview, confirm_data(preview))["plain"]


def photo_after(bot: Harness, user: int, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    since = len(bot.tg.sent)
    bot.tg.send_text(user, text)
    message = bot.tg.wait_for(lambda r: r["chat_id"] == user and r["method"] == "sendMessage", since=since)
    photo = bot.tg.wait_for(lambda r: r["chat_id"] == user and r["method"] == "sendPhoto", since=since)
    return message, photo


def test_protect_and_price_alerts_are_set_listed_and_refused_when_wrong(bot: Harness) -> None:
    open_loan(bot)
    done = bot.say(ANN, "/protect #1 80% 65% topup")["plain"]
    assert "at 80.0% LTV top up collateral from Spot, then Earn back to 65.0%" in done
    assert "3 of 3 actions left today" in done
    assert "below the trigger" in bot.say(ANN, "/protect 1 80% 90% repay")["plain"]
    assert "/protect 12 80% 65% topup" in bot.say(ANN, "/protect 1 80% 65% sell")["plain"]
    assert "not a percentage" in bot.say(ANN, "/protect 1 eighty 65% topup")["plain"]
    assert "no position #1" in bot.say(BOB, "/protect 1 80% 65% topup")["plain"]

    done = bot.say(ANN, "/alert price 1 10%")["plain"]
    assert "within 10.0% of its margin-call price" in done
    assert "BTC 50000 is 29.4% above the margin-call price 35294.12" in done  # 1 − 35294.12 / 50000
    assert "/alert price 12 10%" in bot.say(ANN, "/alert price 1")["plain"]
    assert "at most 90%" in bot.say(ANN, "/alert price 1 95%")["plain"]

    listing = bot.say(ANN, "/alerts")["plain"]
    assert "LTV warning at 80.0% (the default)" in listing
    assert "#1: within 10.0% of the margin-call price" in listing
    assert "#1: at 80.0% LTV top up collateral" in listing

    assert "is off" in bot.say(ANN, "/protect 1 off")["plain"]
    assert "is off" in bot.say(ANN, "/alert price 1 off")["plain"]
    listing = bot.say(ANN, "/alerts")["plain"]
    assert "none — add one with /protect" in listing and "none — add one with /alert price" in listing


def test_stress_and_estimate_answer_with_the_right_numbers(bot: Harness) -> None:
    open_loan(bot)
    stressed = bot.say(ANN, "/stress 1 -30%")["plain"]
    assert "#1 if BTC -30.0%: LTV 60.0% → 85.7% (margin call)" in stressed  # 30000 / 35000
    assert "margin call at 35294.12, liquidation at 32967.03" in stressed  # 30000/0.85, 30000/0.91
    # back to 78%: 30000/0.78/35000 − 1 = 0.0989011 BTC, or repay 30000 − 0.78 × 35000 = 2700
    assert "add 0.0989011 BTC, or repay 2700 USDT" in stressed
    assert "LTV 60.0% → 60.0%" in bot.say(ANN, "/stress 1 BTC +0%")["plain"]
    assert "has no ETH" in bot.say(ANN, "/stress 1 ETH -30%")["plain"]
    assert "needs a direction: -30% for a fall, +30% for a rise" in bot.say(ANN, "/stress 1 30%")["plain"]
    assert "A price cannot fall by 100% or more; try -90%." in bot.say(ANN, "/stress 1 -100%")["plain"]

    est = bot.say(ANN, "/estimate 1,000 usdt 30d")["plain"]
    assert "Borrowing 1000 USDT for 30 days" in est and "Cheaper:" in est
    assert "not a loan asset" in bot.say(ANN, "/estimate 1000 XYZ 30d")["plain"]
    assert "not a number of days" in bot.say(ANN, "/estimate 1000 USDT soon")["plain"]
    s = bot.state()
    assert s["spot"][(str(ANN), "BTC")] == Decimal(2) and s["positions"][1].collateral["BTC"].spot == 1


def test_backtest_replays_march_2020_and_sends_the_chart(bot: Harness) -> None:
    open_loan(bot)
    message, photo = photo_after(bot, ANN, "/backtest 1 march2020")
    text = message["plain"]
    assert "#1 through March 2020" in text
    # BTC path scaled to 50,000: margin call from 2020-03-12T10:00 (87.7%), liquidated at 20:00 (91.8%)
    assert "2020-03-12 10:00 UTC at BTC 34232.25 (LTV 87.7%)" in text
    assert "Liquidation:       2020-03-12 20:00 UTC" in text and "Liquidated." in text
    assert photo["photo_size"] is not None and "liquidated" in photo["plain"]
    assert "march2020, may2021" in bot.say(ANN, "/backtest 1 june2022")["plain"]
    assert "no position #9" in bot.say(ANN, "/backtest 9 may2021")["plain"]


def test_chart_right_after_opening_is_a_picture_from_the_exchanges_candles(bot: Harness) -> None:
    now = datetime.now(UTC)
    for minutes, price in ((50, "48000"), (40, "52000"), (30, "47000"), (20, "51000"), (10, "49000")):
        bot.exchange.set_price("BTC", price, at=now - timedelta(minutes=minutes))  # the market before we opened
    bot.exchange.set_price("BTC", "50000")
    open_loan(bot)
    bot.exchange.reset()
    message, photo = photo_after(bot, ANN, "/chart 1")
    assert "LTV: 60.0%" in message["plain"] and "prices recorded" not in message["plain"]
    assert photo["photo_size"] is not None
    counts = re.search(r"\((\d+) prices, (\d+) of them the exchange's candles\)", photo["plain"])
    assert counts is not None, photo["plain"]
    assert int(counts[2]) >= 50 and int(counts[1]) >= int(counts[2])  # a minute candle since 50 minutes ago
    assert "since it opened at" in photo["plain"] and "with the hour before" in photo["plain"]
    asked = [r for r in bot.exchange.requests if r.startswith("/api/v3/klines")]
    assert asked and all("symbol=BTCUSDT&interval=1m&" in r for r in asked)


def test_chart_uses_recorded_prices_and_candles_only_before_them(bot: Harness) -> None:
    open_loan(bot)
    store = StateStore(f"sqlite:///{bot.db}")
    try:
        with store.unit_of_work() as uow:
            now = datetime.now(UTC)
            uow.session.connection().execute(insert(price_ticks), [
                {"asset": "BTC", "at": now + timedelta(seconds=i), "price": Decimal(p), "source": "test"}
                for i, p in enumerate(("50000", "45000", "47000"))])
            uow.commit()
    finally:
        store.close()
    message, photo = photo_after(bot, ANN, "/chart #1")
    assert "LTV: 60.0%" in message["plain"]
    counts = re.search(r"\((\d+) prices(, (\d+) of them the exchange's candles)?\)", photo["plain"])
    assert counts is not None, photo["plain"]
    assert int(counts[1]) - int(counts[3] or 0) == 3  # the three recorded, after the candles before them
    assert "/chart 12" in bot.say(ANN, "/chart one")["plain"]
