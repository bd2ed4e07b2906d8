"""A fuzz run of chat messages and taps, as an attacker or a clumsy person would send them (issue 15): every one
gets a specific answer — never the generic "something went wrong" — and Telegram refuses nothing the bot sends
(no over-long message, no broken HTML entity, no oversized button data)."""

from __future__ import annotations

import random
import time

from bot.chat import registry
from bot.telegram.handlers import SORRY
from tests.bot.conftest import ANN, BOB, OPERATOR, Harness, confirm_data

GROUP = -400
WORDS = ["1", "#1", "#2", "0", "-5", "1,000.50", ".02", "1e9", "NaN", "all", "with", "against", "and", "at",
         "50%", "0.065", "600%", "-30%", "+10%", "30d", "400d", "fixed", "vip", "collateral", "BTC", "btc", "ETH",
         "USDT", "DOGGO", "on", "off", "digest", "rates", "price", "ltv", "topup", "repay", "march2020", "²", "٣",
         "𝟙", "<b>", "</i>", "&amp;", "&", "<", ">", '"', "'", "😀", "\u200b", "x" * 300, "9" * 70,
         "123456789012345678901234", "@loandesk_test_bot"]
TAPS = ["c:", "c:" + "A" * 12, "x:" + "A" * 12, "pa:1", "pr:1", "pv:1", "pv:²", "pr:²", "pa:" + "9" * 25,
        "bl:USDT", "bl:<b>", "bc:BTC", "bt:50", "bt:99", "zz", "", ":", "c:<script>", "pv:-1", "pa:0"]


def random_message(rng: random.Random) -> str:
    names = [c.name for c in registry.COMMANDS] + ["positon", "frobnicate", "BORROW", "help@loandesk_test_bot"]
    if rng.random() < 0.1:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))  # plain text
    words = [rng.choice(WORDS) for _ in range(rng.randint(0, 6))]
    return " ".join([f"/{rng.choice(names)}", *words])


def test_a_fuzz_run_gets_no_generic_answer_and_no_refusal(bot: Harness) -> None:
    rng = random.Random(20261130)
    bot.tap_and_reply(OPERATOR, p := bot.say(OPERATOR, f"/credit {ANN} 2 BTC"), confirm_data(p))
    bot.tap_and_reply(ANN, p := bot.say(ANN, "/borrow 30000 USDT with 1 BTC"), confirm_data(p))
    bot.tg.add_bot_to_group(GROUP, ANN, title="fuzz room")
    bot.tg.set_member_status(GROUP, ANN, "administrator")
    anchor = bot.say(ANN, "/positions")
    for i in range(400):
        user = rng.choice([ANN, BOB, OPERATOR])
        if rng.random() < 0.2:
            bot.tg.tap(user, anchor, rng.choice(TAPS), check=False)
        else:
            chat = GROUP if rng.random() < 0.2 else None
            bot.tg.send_text(user, random_message(rng), chat_id=chat)
        if i % 20 == 19:
            time.sleep(1.2)  # stay under the flood limiter (15 a burst, 1 a second per person)
    deadline = time.monotonic() + 60
    while bot.tg.pending_updates and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    refused = [(r["method"], r["description"]) for r in bot.tg.requests if r["status"] != 200]
    assert refused == [], sorted(set(refused))
    generic = [r for r in bot.tg.sent if SORRY in (r.get("plain") or "")]
    generic += [a for a in bot.tg.answers if SORRY in (a.get("text") or "")]
    assert generic == [], generic[:3]
    assert len(bot.tg.sent) > 100  # the run was answered, not silently dropped
