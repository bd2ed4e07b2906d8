"""A newcomer's first hour (issue 11): each numbered finding, with the answer the bot gives now, through the real
Application against the fake Bot API (prices BTC 50,000, ETH 3,000, BNB 600). Findings 1, 2 and the console's
own parts of 11 are in ``test_console.py`` (the offline console as a subprocess)."""

from __future__ import annotations

import re
from decimal import Decimal

from tests.bot.conftest import ANN, OPERATOR, Harness, confirm_data


def say(bot: Harness, user: int, text: str) -> str:
    return str(bot.say(user, text)["plain"])


def confirm(bot: Harness, user: int, text: str) -> str:
    preview = bot.say(user, text)
    assert preview["reply_markup"], preview["plain"]
    return str(bot.tap_and_reply(user, preview, confirm_data(preview))["plain"])


def test_3_missing_answers_name_only_what_is_missing(bot: Harness) -> None:
    assert say(bot, ANN, "/repay 1").startswith("Missing the amount (a number, or all).")
    assert say(bot, ANN, "/add 3").startswith("Missing the amount.")
    assert say(bot, ANN, "/stress 4").startswith("Missing the price move.")
    assert say(bot, ANN, "/estimate 1000 USDT").startswith("Missing the days.")
    assert say(bot, ANN, "/protect 4 80% 65%").startswith("Missing topup or repay.")
    assert say(bot, ANN, "/backtest 4").startswith("Missing the crash (march2020")
    answer = say(bot, ANN, "/repay")
    assert answer.startswith("Missing the position number and the amount (a number, or all).")
    assert "Write it like: /repay 12 100" in answer


def test_4_fixed_loans_are_found_in_start_help_markets_and_the_guided_borrow(bot: Harness) -> None:
    start = say(bot, ANN, "/start")
    assert "Fixed: a term (7d, 14d, 30d, 60d, 90d, 180d)" in start
    assert "LTV up to 72.0%, margin call at 77.0%, liquidation at 91.0%" in start
    lines = [line for line in start.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), "/start repeats itself"
    assert start != say(bot, ANN, "/help")
    assert "fixed 30d" in say(bot, ANN, "/help")

    markets = say(bot, ANN, "/markets")
    assert "Fixed (APR for 7d · 14d · 30d · 60d · 90d · 180d; interest taken up front)" in markets
    assert "USDT: 6.2% · 6.3% · 6.5% · 6.8% · 7% · 7.5%" in markets
    assert "Fixed loans, any collateral: 72.0% · 77.0% · 91.0%" in markets

    bot.say(ANN, "/faucet")
    ask = bot.say(ANN, "/borrow")
    ask = bot.tap_and_reply(ANN, ask, "bl:USDT")
    assert "How do you want to borrow USDT?" in ask["plain"]
    assert "Fixed: one APR for the whole term" in ask["plain"] and "30d 6.5%" in ask["plain"]
    labels = [b["text"] for row in ask["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["Flexible 5%", "Fixed 7d 6.2%", "Fixed 14d 6.3%", "Fixed 30d 6.5%", "Fixed 60d 6.8%",
                      "Fixed 90d 7%", "Fixed 180d 7.5%"]
    ask = bot.tap_and_reply(ANN, ask, "bp:30")
    ask = bot.tap_and_reply(ANN, ask, "bc:BTC")
    assert "against BTC (Fixed 30d)?" in ask["plain"] and "fixed 30d" in ask["plain"]
    # 12: a too small amount is refused at once, before the LTV step
    assert "The smallest USDT loan is 10." in say(bot, ANN, "5")
    ask = bot.say(ANN, "1000")
    targets = [b["text"] for row in ask["reply_markup"]["inline_keyboard"] for b in row]
    assert targets == ["30% LTV", "40% LTV", "50% LTV", "60% LTV"] and "the limit is 72.0%" in ask["plain"]
    preview = bot.tap_and_reply(ANN, ask, "bt:50")["plain"]
    assert "Borrow 1000 USDT against 0.04 BTC" in preview and "LTV after: 50.0% (limit 72.0%" in preview
    assert "Fixed interest: 5.35 USDT, taken up front (APR 6.5%)" in preview  # 1000 × 6.5% × 30 / 365, up
    assert preview.count("not refunded") == 1  # 12: said once


def test_5_and_6_previews_say_what_will_actually_move(bot: Harness) -> None:
    bot.tap_and_reply(OPERATOR, p := bot.say(OPERATOR, f"/credit {ANN} 3 BTC"), confirm_data(p))
    confirm(bot, ANN, "/borrow 20000 USDT with 1 BTC")  # 40.0%
    preview = say(bot, ANN, "/borrow 10000 USDT with BTC at 50%")
    # the whole position (30,000 USDT) at 50% needs 1.2 BTC: 0.2 BTC more
    assert "Borrow 10000 USDT against 0.2 BTC" in preview
    assert "together 30000 USDT against 1.2 BTC" in preview
    assert "Collateral sized for 50.0% LTV on the whole position." in preview and "LTV after: 50.0%" in preview

    capped = say(bot, ANN, "/repay 1 100000")
    assert capped.startswith("Repay #1: 20000 USDT (you asked for 100000; 20000 is everything owed)")
    assert "After: position #1 is closed; 1 BTC returns to your wallet." in capped
    everything = say(bot, ANN, "/repay #1 all")
    assert everything.startswith("Repay #1: 20000 USDT") and "everything USDT" not in everything
    assert "1 BTC returns to your wallet" in say(bot, ANN, "/close 1")


def test_7_readme_promises_hold(bot: Harness) -> None:
    bot.say(ANN, "/faucet")
    confirm(bot, ANN, "/borrow 500 USDT against .02 BTC")  # 8: against, .02
    assert "#1 flexible · open" in say(bot, ANN, "#1")  # 7: #12 alone
    vip = say(bot, ANN, "/vip")  # 7: /vip alone is /terms, for everyone
    assert vip == say(bot, ANN, "/terms") and "user id" not in vip
    for name in ("monitor", "share", "board"):
        assert f"/{name} works in a group" in say(bot, ANN, f"/{name}")
    assert "Did you mean /position?" in say(bot, ANN, "/positon 1")
    assert "/price works only in the offline console (loandesk console)" in say(bot, ANN, "/price BTC 1")
    assert "/price" not in say(bot, ANN, "/help")  # listed in the console only


def test_8_natural_phrasing_is_understood(bot: Harness) -> None:
    bot.say(ANN, "/faucet")

    preview = say(bot, ANN, "/borrow 5000 USDT with 0.1 BTC, 2 ETH fixed 30d")
    assert "against 0.1 BTC + 2 ETH" in preview and "Fixed interest" in preview
    assert "against 0.1 BTC + 2 ETH" in say(bot, ANN, "/borrow 5000 USDT with 0.1 BTC,2 ETH fixed 30d")
    assert "against 0.1 BTC + 2 ETH" in say(bot, ANN, "/borrow 5000 USDT against 0.1 BTC & 2 ETH fixed 30d")
    assert "against 1,000 ETH" not in say(bot, ANN, "/borrow 1,000 USDT with 1 ETH")  # thousands stay one amount
    # 12: "an asset", with the right article
    assert "XYZ is not an asset of this desk" in say(bot, ANN, "/earn 1 XYZ")
    assert "XYZ is not a collateral asset" in say(bot, ANN, "/add 1 1 XYZ")


def test_9_one_rule_for_percentages(bot: Harness) -> None:
    assert "USDT flexible APR 6.5%," in say(bot, OPERATOR, "/setrate USDT 6.5")
    assert "USDT flexible APR 6.5%," in say(bot, OPERATOR, "/setrate USDT 6.5%")
    ambiguous = say(bot, OPERATOR, "/setrate USDT 0.065")
    assert "'0.065' is ambiguous" in ambiguous and "Write 6.5% if you mean 6.5 percent" in ambiguous
    assert "APR 0.065%," in say(bot, OPERATOR, "/setrate USDT 0.065%")
    high = say(bot, OPERATOR, "/setrate USDT 600%")
    assert "That is 600% a year — far above any market rate" in high
    assert "far above" not in say(bot, OPERATOR, "/setrate USDT 12%")

    bot.say(ANN, "/faucet")
    confirm(bot, ANN, "/borrow 500 USDT with 0.02 BTC")  # 50.0%
    assert "LTV after: 40.0%" in say(bot, ANN, "/borrow 500 USDT with BTC at 40")  # a bare number is percent
    assert "ambiguous" in say(bot, ANN, "/borrow 500 USDT with BTC at 0.4")
    for move in ("-20", "-20%"):
        assert "62.5%" in say(bot, ANN, f"/stress 1 {move}")  # 500 / (0.02 × 40,000)
    assert "'20' needs a direction: -20% for a fall, +20% for a rise." in say(bot, ANN, "/stress 1 20")
    assert "ambiguous" in say(bot, ANN, "/alert ltv 0.7") and "70.0%" in say(bot, ANN, "/alert ltv 70")


def test_10_history_reads_like_sentences_and_amounts_use_display_precision(bot: Harness) -> None:
    bot.tap_and_reply(OPERATOR, p := bot.say(OPERATOR, f"/credit {ANN} 2 BTC"), confirm_data(p))
    bot.tap_and_reply(OPERATOR, p := bot.say(OPERATOR, f"/credit {ANN} 1000 USDT"), confirm_data(p))
    preview = bot.say(ANN, "/borrow 30000 USDT with 1 BTC")
    text = preview["plain"]
    assert re.findall(r"\d\.\d{3,} USDT", text) == [], text  # USDT to 2 decimals
    assert "Interest: 0.18 USDT/hour" in text  # 30,000 × 5% / 8,760 = 0.1712…, shown rounded up
    assert "Debt: 30000 USDT" in bot.tap_and_reply(ANN, preview, confirm_data(preview))["plain"]
    confirm(bot, ANN, "/repay 1 1000.123456")
    assert bot.state()["spot"][(str(ANN), "USDT")] == Decimal("29999.876544")  # the ledger stays exact
    debt = bot.state()["positions"][1]
    assert debt.status.value == "open"
    assert re.search(r"Debt: 28999\.(88|9\d) USDT", say(bot, ANN, "/position 1"))  # rounded up: what is owed
    confirm(bot, ANN, "/close 1")

    history = say(bot, ANN, "/history")
    assert "(UTC)" in history
    assert re.search(r"\n\d\d:\d\d #1 Borrowed 30000 USDT against 1 BTC \(LTV 60\.0%\)\.", history), history
    assert re.search(r"#1 Repaid 1000\.12 USDT; 28999\.\d\d USDT still owed\.", history), history
    assert re.search(r"#1 Closed; 1 BTC back in your wallet\.", history), history
    for raw in ("ltv 0.", "expires_at", "source spot", "closed #1:", "_", "0.6 "):
        assert raw not in history, (raw, history)


def test_13_funds_move_between_spot_and_earn(bot: Harness) -> None:
    bot.say(ANN, "/faucet")
    earn = bot.say(ANN, "/earn 100 USDT")
    assert "Move 100 USDT Spot → Earn" in earn["plain"]
    assert "Moved 100 USDT to Earn" in bot.tap_and_reply(ANN, earn, confirm_data(earn))["plain"]
    assert "USDT: 9900 · 100\n" in say(bot, ANN, "/wallet") + "\n"
    assert "Moved 40 USDT to Spot" in confirm(bot, ANN, "/redeem 40 USDT")
    assert "USDT: 9940 · 60\n" in say(bot, ANN, "/wallet") + "\n"
    assert "Moved 40 USDT to Spot." in say(bot, ANN, "/history")
    assert "less than 100" in say(bot, ANN, "/redeem 100 USDT")
    assert not [r for r in bot.tg.sent if "Transferred" in str(r.get("plain"))]  # one's own move: no push
