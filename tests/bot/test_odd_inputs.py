"""Inputs that used to be answered "Something went wrong" (issue 15, items 10 and 11): each gets a specific
sentence and changes nothing, and no answer is refused by Telegram however long the input was."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.render.common import LIMIT, split
from bot.telegram.handlers import SORRY
from tests.bot.conftest import ANN, OPERATOR, Harness
from tests.fakes._tg_html import parse_html

GROUP = -300


@pytest.mark.parametrize(("user", "text", "expected"), [
    (ANN, "/notify digest on ²", "is not an hour of the day"),
    (OPERATOR, "/credit ²³ 1 BTC", "is not a Telegram user id"),
    (OPERATOR, "/vip ²", "is not a Telegram user id"),
    (ANN, "/repay 1 " + "9" * 65, "more than 15 digits"),
    (ANN, "/add 1 0." + "1" * 40, "more than 18 decimal places"),
    (ANN, "/position " + "1" * 25, "is not a position number"),
    (ANN, "/repay 1 100 " + "x" * 5000, "I did not understand"),
])
def test_odd_input_gets_a_specific_sentence(bot: Harness, user: int, text: str, expected: str) -> None:
    answer = bot.say(user, text)
    assert expected in answer["plain"] and SORRY not in answer["plain"]
    assert len(answer["text"]) <= 4096


def test_odd_taps_and_group_commands_get_a_specific_sentence(bot: Harness) -> None:
    bot.tg.add_bot_to_group(GROUP, ANN, title="room")
    bot.tg.set_member_status(GROUP, ANN, "administrator")
    assert "monitoring channel" in bot.say(ANN, "/monitor", GROUP)["plain"]
    assert "is not a position number" in bot.say(ANN, "/share abc", GROUP)["plain"]
    anchor = bot.say(ANN, "/help")
    for data in ("pr:²", "pv:²", "pa:" + "9" * 25, "pv:" + "1" * 20, "c:", "x:" + "é" * 10, "bt:99"):
        answer = bot.tap(ANN, anchor, data, check=False)
        assert "not valid" in (answer.get("text") or "") and SORRY not in (answer.get("text") or "")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["word ", "<b>", "</b>", "&amp;", "&lt;", "é", "😀", "x" * 900, "\n"]),
                max_size=60))
def test_split_parts_fit_and_are_valid_html(pieces: list[str]) -> None:
    text = "".join(pieces)
    balanced = text.count("<b>") == text.count("</b>") and all(
        text[:i].count("<b>") >= text[:i].count("</b>") for i in range(len(text)))
    parts = split(text)
    assert all(len(p) <= LIMIT for p in parts)
    if balanced and "<b><b>" not in text:
        for part in parts:
            parse_html(part)  # the fake Bot API's parser raises on a cut entity or an unbalanced tag


def test_one_huge_bold_line_is_cut_between_entities() -> None:
    rng = random.Random(7)
    text = "<b>" + "".join(rng.choice(["a", "&amp;", "&lt;", "é"]) for _ in range(9000)) + "</b>"
    parts = split(text)
    assert len(parts) >= 3 and all(len(p) <= LIMIT for p in parts)
    assert all(p.startswith("<b>") and p.endswith("</b>") for p in parts)
    for part in parts:
        parse_html(part)
