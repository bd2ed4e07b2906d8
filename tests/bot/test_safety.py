"""Bad input, strangers, double taps, redelivery, groups, floods and a dead exchange: nothing changes twice."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.bot.conftest import ANN, BOB, OPERATOR, Harness, cancel_data, confirm_data


def _fund_and_borrow(bot: Harness) -> None:
    bot.tap_and_reply(OPERATOR, p := bot.say(OPERATOR, f"/credit {ANN} 2 BTC"), confirm_data(p))
    bot.tap_and_reply(ANN, p := bot.say(ANN, "/borrow 30000 USDT with 1 BTC"), confirm_data(p))


@pytest.mark.parametrize(("text", "expected"), [
    ("/repay 1 1.2.3", "'1.2.3' is not an amount"),
    ("/repay 1 -5", "'-5' is not an amount"),
    ("/add 1 0.1 XYZ", "XYZ is not a collateral asset"),
    ("/borrow 500 DOGGO with 0.01 BTC", "DOGGO is not a loan asset"),
    ("/repay", "Missing the position number"),
    ("/add #abc 0.1", "'#abc' is not a position number"),
    ("/withdraw 1", "Missing the amount."),  # the position number was given
    ("/close 2", "You have no position #2"),
])
def test_bad_input_gets_a_specific_answer_and_changes_nothing(bot: Harness, text: str, expected: str) -> None:
    _fund_and_borrow(bot)
    before = bot.state()
    answer = bot.say(ANN, text)
    assert expected in answer["plain"]
    assert answer["reply_markup"] is None
    assert bot.state()["spot"] == before["spot"]


def test_someone_elses_position_is_not_found_and_their_taps_are_refused(bot: Harness) -> None:
    _fund_and_borrow(bot)
    assert "You have no position #1" in bot.say(BOB, "/close 1")["plain"]
    assert "You have no position #1" in bot.say(BOB, "/position #1")["plain"]
    preview = bot.say(ANN, "/repay 1 1000")
    before = bot.state()
    assert bot.tap(BOB, preview, confirm_data(preview))["text"] == "That button is not for you."
    assert bot.tap(BOB, preview, cancel_data(preview))["text"] == "That button is not for you."
    assert bot.state()["spot"] == before["spot"]


def test_double_tap_and_redelivery_act_once(bot: Harness) -> None:
    _fund_and_borrow(bot)
    preview = bot.say(ANN, "/repay 1 1000")
    bot.tap_and_reply(ANN, preview, confirm_data(preview))
    assert bot.tap(ANN, preview, confirm_data(preview), check=False)["text"] == "Already done."
    assert bot.state()["spot"][(str(ANN), "USDT")] == Decimal(29000)

    since = len(bot.tg.sent)
    update = bot.tg.send_text(OPERATOR, f"/credit {ANN} 5 ETH")
    bot.tg.redeliver(update)
    bot.say(OPERATOR, "/wallet")  # handled after both copies (one chat's updates are handled in order)
    credits = [r for r in bot.tg.sent[since:] if r["chat_id"] == OPERATOR and "Credit 5 ETH" in (r["plain"] or "")]
    assert len(credits) == 1


def test_cancel_changes_nothing(bot: Harness) -> None:
    _fund_and_borrow(bot)
    preview = bot.say(ANN, "/add 1 0.5")
    assert "Cancelled" in bot.tap(ANN, preview, cancel_data(preview))["text"]
    assert bot.state()["spot"][(str(ANN), "BTC")] == Decimal(1)


def test_operator_commands_need_an_operator(bot: Harness) -> None:
    assert bot.say(ANN, f"/credit {ANN} 100 BTC")["plain"] == "That command is for the desk's operators."
    assert bot.say(ANN, "/book")["plain"] == "That command is for the desk's operators."
    assert bot.state()["spot"][(str(ANN), "BTC")] == 0


def test_borrower_commands_in_a_group_point_to_the_private_chat(bot: Harness) -> None:
    answer = bot.say(ANN, "/borrow 500 USDT with 0.01 BTC", chat_id=-100, chat_type="group")
    assert answer["plain"] == "Please use a private chat with me for that."


def test_prices_unavailable_is_a_clear_answer_and_changes_nothing(bot: Harness) -> None:
    bot.exchange.fail(500, times=50)
    bot.tap_and_reply(OPERATOR, p := bot.say(OPERATOR, f"/credit {ANN} 2 BTC"), confirm_data(p))
    answer = bot.say(ANN, "/borrow 30000 USDT with 1 BTC")
    assert answer["plain"] == "Prices are unavailable right now; nothing was changed. Try again in a minute."
    assert bot.state()["positions"] == {}


def test_a_flood_is_slowed_down_not_served_twice(bot: Harness) -> None:
    for _ in range(25):
        bot.tg.send_text(ANN, "/wallet")
    bot.tg.wait_for(lambda r: "Slow down" in (r["plain"] or ""))
    answers = [r for r in bot.tg.sent if r["chat_id"] == ANN]
    assert sum("Slow down" in r["plain"] for r in answers) == 1
    assert len(answers) < 25
