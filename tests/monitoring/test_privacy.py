"""Privacy and permissions in groups, tried as an attacker would (issue 15, items 7–9): another bot's commands are
not ours, a member who leaves takes their shares along, the desk risk channel is the operators', and a forged
View shows nothing the group may not see."""

from __future__ import annotations

from storage.monitoring import Monitoring
from tests.fakes.telegram import BOT_USERNAME
from tests.monitoring.conftest import ANN, BOB, GROUP, OPERATOR, World, wait

DESK = -200


def test_commands_addressed_to_another_bot_are_ignored(world: World) -> None:
    world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.start()
    world.monitoring_group(share="all")
    since = len(world.tg.sent)
    world.tg.send_text(ANN, "/unshare@some_other_bot", chat_id=GROUP)
    world.tg.send_text(ANN, "/monitor@some_other_bot off", chat_id=GROUP)
    world.tg.send_text(ANN, "/help@some_other_bot", chat_id=GROUP)
    world.tg.send_text(ANN, "/frobnicate", chat_id=GROUP)  # unknown and bare in a group: maybe another bot's
    # the bot still answers its own name, and only then
    answer = world.say(ANN, f"/board@{BOT_USERNAME}", GROUP)
    assert "#1 user 42" in answer["plain"]
    assert [r for r in world.tg.sent[since:] if r["method"] == "sendMessage"] == [answer]
    assert world.rows(lambda uow: Monitoring(uow.session)
                      .shares_in(GROUP)) == [(str(ANN), None)]
    assert world.rows(lambda uow: Monitoring(uow.session)
                      .chat(GROUP))["monitoring"] is True


def test_a_member_who_leaves_takes_their_shares_and_pending_pushes_along(world: World) -> None:
    world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.start()
    world.monitoring_group(share="all")
    world.tg.member_leaves(GROUP, ANN)
    wait(lambda: world.rows(lambda uow: Monitoring(uow.session)
                            .shares_in(GROUP)) == [])
    world.exchange.set_price("BTC", "35000")  # 85.7%: a margin call with Ann's debt and collateral
    world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Margin call" in (r["plain"] or ""))
    world.polls(5)
    assert world.pushes(GROUP, "Margin call") == []  # the group she left hears nothing of it


def test_only_operators_turn_the_desk_risk_channel_off_and_a_forged_view_shows_nothing(world: World) -> None:
    mine = world.borrow(ANN, "USDT", "30000", "BTC", "1")
    quiet = world.borrow(BOB, "USDT", "10000", "BTC", "1")  # 20%: never pushed anywhere
    world.start()
    world.tg.add_bot_to_group(DESK, OPERATOR, title="desk risk")
    world.tg.set_member_status(DESK, OPERATOR, "administrator")
    world.tg.set_member_status(DESK, BOB, "administrator")  # a group admin who is not an operator
    assert "desk risk channel" in world.say(OPERATOR, "/monitor desk", DESK)["plain"]
    assert "only the desk's operators" in world.say(BOB, "/monitor off", DESK)["plain"]
    world.exchange.set_price("BTC", "35000")
    call = world.tg.wait_for(lambda r: r["chat_id"] == DESK and "Margin call" in (r["plain"] or ""))
    assert f"position #{mine}" in call["plain"]
    answered = len(world.tg.answers)
    world.tg.tap(BOB, call, f"pv:{quiet}", check=False)  # forged: that position was never pushed here
    wait(lambda: len(world.tg.answers) > answered)
    assert "not shared with this group" in (world.tg.answers[answered].get("text") or "")
    answered = len(world.tg.answers)
    since = len(world.tg.sent)
    world.tg.tap(BOB, call, f"pv:{mine}")  # the margin call pushed here: its View answers in the channel
    board = world.tg.wait_for(lambda r: r["chat_id"] == DESK and "Board" in (r["plain"] or ""), since=since)
    assert f"#{mine} user 42" in board["plain"] and f"#{quiet}" not in board["plain"]
