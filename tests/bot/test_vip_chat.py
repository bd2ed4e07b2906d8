"""VIP term sheets in chat: operators issue (preview → Confirm) and show them, borrowers read theirs with
/terms (or /vip) and borrow under them with ``vip``; strangers and bad syntax change nothing."""

from __future__ import annotations

from tests.bot.conftest import ANN, BOB, OPERATOR, Harness, confirm_data

SHEET = "USDT fixed 5% ltv 80/88/93 collateral BTC:1,ETH:0.95 partial delay 10 min min 50000"


def test_an_operator_issues_versions_and_the_borrower_sees_and_uses_them(bot: Harness) -> None:
    assert "no VIP term sheet" in bot.say(ANN, "/terms")["plain"]
    assert "no VIP term sheet" in bot.say(ANN, "/vip")["plain"]

    preview = bot.say(OPERATOR, f"/vip {ANN} {SHEET}")["plain"]
    assert "VIP term sheet for user 42" in preview and "fixed 5% APR" in preview
    assert "initial 80.0% · margin call 88.0% · liquidation 93.0%" in preview
    assert "BTC 1, ETH 0.95" in preview and "partial, after a 10 min delay" in preview
    assert bot.state()["positions"] == {}
    record = bot.say(OPERATOR, f"/vip {ANN} {SHEET}")
    assert "issued to user 42" in bot.tap_and_reply(OPERATOR, record, confirm_data(record))["plain"]

    terms = bot.say(ANN, "/terms")["plain"]
    assert "VIP term sheet v1 for user 42" in terms and "Minimum first order: 50000 USDT" in terms
    assert "v1" in bot.say(OPERATOR, f"/vip {ANN}")["plain"]

    bot.tap_and_reply(OPERATOR, p := bot.say(OPERATOR, f"/credit {ANN} 2 BTC"), confirm_data(p))
    preview = bot.say(ANN, "/borrow 60000 USDT with 1.5 BTC vip")
    assert "LTV after: 80.0%" in preview["plain"]  # 60000 / (1.5 × 50000 × 1)
    assert "APR 5%, fixed" in preview["plain"] and "variable" not in preview["plain"]
    assert "#1" in bot.tap_and_reply(ANN, preview, confirm_data(preview))["plain"]
    position = bot.state()["positions"][1]
    assert position.product.value == "vip" and position.vip_sheet == 1

    record = bot.say(OPERATOR, f"/vip {ANN} USDT fixed 6% ltv 75/85/91 collateral BTC")
    bot.tap_and_reply(OPERATOR, record, confirm_data(record))
    assert "v2" in bot.say(ANN, "/vip")["plain"] and "fixed 6% APR" in bot.say(ANN, "/terms")["plain"]
    assert bot.state()["positions"][1].vip_sheet == 1  # the open loan keeps its version


def test_strangers_and_bad_term_sheets_change_nothing(bot: Harness) -> None:
    assert "for the desk's operators" in bot.say(BOB, f"/vip {ANN} {SHEET}")["plain"]
    assert "for the desk's operators" in bot.say(BOB, f"/vip {ANN}")["plain"]
    cases = {
        f"/vip {ANN} USDT fixed 5% ltv 80/88 collateral BTC": "ltv:",
        f"/vip {ANN} USDT fixed 5% ltv 80/88/93 collateral DOGE:2": "collateral:",
        f"/vip {ANN} XYZ fixed 5% ltv 80/88/93 collateral BTC": "loan:",
        f"/vip {ANN} USDT ltv 80/88/93 collateral BTC": "rate:",
        f"/vip {ANN} USDT fixed 5% ltv 80/88/93": "collateral:",
        f"/vip {ANN} USDT fixed 5% ltv 80/88/93 collateral BTC delay soon": "delay:",
        "/vip bob USDT fixed 5%": "user id:",
    }
    for text, field in cases.items():
        answer = bot.say(OPERATOR, text)["plain"]
        assert answer.startswith(field) and "Write it like: /vip" in answer, (text, answer)
    refused = bot.say(OPERATOR, f"/vip {ANN} USDT fixed 5% ltv 90/88/93 collateral BTC")["plain"]
    assert "initial LTV < margin-call LTV" in refused and "Nothing was changed" in refused
    assert "no VIP term sheet" in bot.say(ANN, "/terms")["plain"]
    assert "no VIP term sheet" in bot.say(OPERATOR, f"/vip {ANN}")["plain"]
    assert "Operators" in bot.say(OPERATOR, "/help")["plain"] and "Operators" not in bot.say(ANN, "/help")["plain"]
