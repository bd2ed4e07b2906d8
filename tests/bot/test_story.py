"""The Done-when story through the real Application: /start → credit → borrow → repay → add → close."""

from __future__ import annotations

from decimal import Decimal

from tests.bot.conftest import ANN, OPERATOR, Harness, confirm_data


def test_a_new_borrower_borrows_repays_adds_and_closes(bot: Harness) -> None:
    assert "Welcome" in bot.say(ANN, "/start")["plain"]
    assert any(c["command"] == "borrow" for c in bot.tg.commands())

    preview = bot.say(OPERATOR, f"/credit {ANN} 2 BTC")
    assert f"Credit 2 BTC to user {ANN}" in preview["plain"]
    assert "Credited 2 BTC" in bot.tap_and_reply(OPERATOR, preview, confirm_data(preview))["plain"]
    assert bot.state()["spot"][(str(ANN), "BTC")] == Decimal(2)

    preview = bot.say(ANN, "/borrow 30000 USDT with 1 BTC")
    assert "LTV after: 60.0%" in preview["plain"]
    assert "Margin call at BTC 35294.12" in preview["plain"]
    assert "USDT/hour" in preview["plain"] and "USDT/day" in preview["plain"]
    done = bot.tap_and_reply(ANN, preview, confirm_data(preview))
    assert "#1" in done["plain"] and "60.0%" in done["plain"]
    s = bot.state()
    assert s["spot"][(str(ANN), "USDT")] == Decimal(30000)
    assert s["spot"][(str(ANN), "BTC")] == Decimal(1)
    assert s["positions"][1].collateral["BTC"].spot == Decimal(1)

    preview = bot.say(ANN, "/repay 1 1000")
    assert "Debt: 29000 USDT" in preview["plain"]
    assert "58.0%" in bot.tap_and_reply(ANN, preview, confirm_data(preview))["plain"]
    assert bot.state()["spot"][(str(ANN), "USDT")] == Decimal(29000)

    preview = bot.say(ANN, "/add #1 0.1")
    assert "1.1 BTC" in preview["plain"]
    assert "52.7%" in bot.tap_and_reply(ANN, preview, confirm_data(preview))["plain"]
    assert bot.state()["spot"][(str(ANN), "BTC")] == Decimal("0.9")

    bot.say(OPERATOR, f"/credit {ANN} 1 USDT")  # a preview the operator leaves unconfirmed changes nothing
    preview = bot.say(ANN, "/close 1")
    assert "Close #1" in preview["plain"]
    assert "closed" in bot.tap_and_reply(ANN, preview, confirm_data(preview))["plain"]
    s = bot.state()
    assert s["spot"][(str(ANN), "BTC")] == Decimal(2)
    assert s["spot"][(str(ANN), "USDT")] == Decimal(0)
    assert s["positions"][1].status.value == "closed"
    assert "no open positions" in bot.say(ANN, "/positions")["plain"]
    assert "BTC: 2" in bot.say(ANN, "/wallet")["plain"]


def test_borrow_at_a_target_ltv_and_the_guided_flow(bot: Harness) -> None:
    bot.tap_and_reply(OPERATOR, p := bot.say(OPERATOR, f"/credit {ANN} 1 BTC"), confirm_data(p))
    preview = bot.say(ANN, "/borrow 500 USDT with BTC at 50%")
    assert "against 0.02 BTC" in preview["plain"] and "50.0%" in preview["plain"]

    ask = bot.say(ANN, "/borrow")
    assert "What do you want to borrow?" in ask["plain"]
    ask = bot.tap_and_reply(ANN, ask, "bl:USDT")
    assert "How do you want to borrow USDT?" in ask["plain"]
    ask = bot.tap_and_reply(ANN, ask, "bp:FLEX")
    ask = bot.tap_and_reply(ANN, ask, "bc:BTC")
    assert "How much USDT" in ask["plain"]
    ask = bot.say(ANN, "1000")
    preview = bot.tap_and_reply(ANN, ask, "bt:40")
    assert "LTV after: 40.0%" in preview["plain"]
    assert "Borrow 1000 USDT" in preview["plain"]
