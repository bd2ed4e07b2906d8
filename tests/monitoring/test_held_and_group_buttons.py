"""Critical pushes to a chat that refuses the bot are held, never dropped, and sent once when it is back; the
buttons under a push in a group (View for everyone who sees the position, Add collateral / Repay for its owner
only, and only in private)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bot.chat.groups import NOT_HERE, OWNER_ONLY
from storage.monitoring import Monitoring
from storage.tables import bot_previews
from tests.monitoring.conftest import ANN, BOB, GROUP, World, wait


def deliveries(world: World, chat_id: int) -> list[str]:
    return [str(d["status"]) for d in world.rows(lambda uow: Monitoring(uow.session).delivery_rows())
            if d["chat_id"] == chat_id]


def answer(world: World, user: int, data: str, since: int) -> dict[str, Any]:
    world.tg.wait_until(lambda: any(a["user_id"] == user and a["data"] == data for a in world.tg.answers[since:]))
    return next(a for a in world.tg.answers[since:] if a["user_id"] == user and a["data"] == data)


def previews(world: World) -> int:
    return int(world.rows(lambda uow: uow.session.execute(select(func.count()).select_from(bot_previews))
                          .scalar_one()))


def test_a_blocked_borrower_loses_no_critical_push_and_gets_them_once_on_return(world: World) -> None:
    pid = world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.start()
    world.polls(2)
    world.tg.block(ANN)
    world.exchange.set_price("BTC", "35000")  # 85.7%: a margin call, refused with 403
    wait(lambda: deliveries(world, ANN) == ["held"])
    assert world.rows(lambda uow: Monitoring(uow.session).chat(ANN))["active"] is False
    world.exchange.set_price("BTC", "32000")  # 93.75%: liquidated while the chat is still blocked
    wait(lambda: world.position(pid).status.value == "liquidated")
    wait(lambda: deliveries(world, ANN) == ["held", "held"])
    world.polls(3)
    assert [r for r in world.tg.sent if r["chat_id"] == ANN] == []

    since = len(world.tg.sent)
    world.tg.send_text(ANN, "/start")  # unblocks on Telegram's side, and tells us the chat is back
    welcome = world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Welcome" in (r["plain"] or ""), since=since)
    to_ann = [r for r in world.tg.sent[since:] if r["chat_id"] == ANN]
    held = to_ann[0]
    assert held["time"] <= welcome["time"] and "Welcome" not in held["plain"]
    text = held["plain"]
    assert text.index("Liquidated") < text.index("Margin call")  # most urgent first, folded into one message
    assert "LTV 93.8%" in text and "LTV 85.7%" in text
    assert [b["callback_data"] for row in held["reply_markup"]["inline_keyboard"] for b in row] == [f"pv:{pid}"]
    wait(lambda: deliveries(world, ANN) == ["sent", "sent"])
    assert world.rows(lambda uow: Monitoring(uow.session).chat(ANN))["active"] is True
    world.say(ANN, "/help")
    world.polls(3)
    assert len(world.pushes(ANN, "Liquidated")) == 1 and len(world.pushes(ANN, "Margin call")) == 1


def test_a_group_that_removed_the_bot_gets_the_held_pushes_when_it_is_added_again(world: World) -> None:
    world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.start()
    world.monitoring_group()
    world.tg.remove_bot_from_group(GROUP, ANN)
    wait(lambda: world.rows(lambda uow: Monitoring(uow.session).chat(GROUP))["active"] is False)
    world.exchange.set_price("BTC", "35000")
    world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Margin call" in (r["plain"] or ""))
    wait(lambda: deliveries(world, GROUP) == ["held"])
    assert world.pushes(GROUP, "Margin call") == []

    world.tg.add_bot_to_group(GROUP, ANN, title="Ann's risk room")
    world.tg.wait_for(lambda r: r["chat_id"] == GROUP and "Margin call" in (r["plain"] or ""))
    wait(lambda: deliveries(world, GROUP) == ["sent"])
    world.polls(3)
    assert len(world.pushes(GROUP, "Margin call")) == 1 and len(world.pushes(ANN, "Margin call")) == 1


def test_push_buttons_in_a_group_view_for_members_act_only_for_the_owner_in_private(world: World) -> None:
    pid = world.borrow(ANN, "USDT", "30000", "BTC", "2", spare="1")
    bob = world.borrow(BOB, "USDT", "1000", "BTC", "1")  # not shared with the group
    world.start()
    world.monitoring_group()
    world.exchange.set_price("BTC", "17500")  # Ann: 30,000 / 35,000 = 85.7%
    push = world.tg.wait_for(lambda r: r["chat_id"] == GROUP and "Margin call" in (r["plain"] or ""))
    keys = [b["callback_data"] for row in push["reply_markup"]["inline_keyboard"] for b in row]
    assert keys == [f"pa:{pid}", f"pr:{pid}", f"pv:{pid}"] and all(len(k.encode()) <= 64 for k in keys)

    sent, answers = len(world.tg.sent), len(world.tg.answers)
    world.tg.tap(BOB, push, f"pv:{pid}")  # a member: the board line, in the group, nothing done
    view = world.tg.wait_for(lambda r: r["chat_id"] == GROUP and "Board" in (r["plain"] or ""), since=sent)
    assert f"#{pid} user {ANN}: LTV 85.7% · in margin call · debt 30000 USDT" in view["plain"]
    assert view["reply_markup"] is None

    before = previews(world)
    for data in (f"pa:{pid}", f"pr:{pid}"):  # a member cannot act on Ann's position, here or anywhere
        world.tg.tap(BOB, push, data)
        assert answer(world, BOB, data, answers)["text"] == OWNER_ONLY
    world.tg.tap(BOB, push, f"pv:{bob}", check=False)  # forged: Bob's position is not shared here
    assert answer(world, BOB, f"pv:{bob}", answers)["text"] == NOT_HERE
    assert previews(world) == before
    assert [r for r in world.tg.sent[sent:] if r["chat_id"] == BOB] == []
    assert len([r for r in world.tg.sent[sent:] if r["chat_id"] == GROUP]) == 1

    world.tg.tap(ANN, push, f"pa:{pid}")  # the owner: the preview comes in the private chat
    add = world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Add collateral" in (r["plain"] or ""), since=sent)
    assert "0.1978022" in add["plain"]
    assert answer(world, ANN, f"pa:{pid}", answers)["text"] == "Sent to our private chat."
    assert previews(world) == before + 1
    assert len([r for r in world.tg.sent[sent:] if r["chat_id"] == GROUP]) == 1


def test_a_returning_borrower_gets_the_margin_call_and_only_the_newest_reminder(world: World) -> None:
    pid = world.borrow(ANN, "USDT", "30000", "BTC", "1")
    world.start()
    world.polls(2)
    world.tg.block(ANN)
    world.exchange.set_price("BTC", "35000")  # 85.7%: a margin call, held
    wait(lambda: deliveries(world, ANN) == ["held"])
    for _ in range(3):  # three hours away: three hourly reminders, all held
        world.clock.advance(hours=1)
        world.polls(2)
    wait(lambda: deliveries(world, ANN) == ["held"] * 4)

    since = len(world.tg.sent)
    world.tg.send_text(ANN, "/start")
    world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Welcome" in (r["plain"] or ""), since=since)
    wait(lambda: sorted(deliveries(world, ANN)) == ["sent", "sent", "superseded", "superseded"])
    text = "\n".join(r["plain"] or "" for r in world.tg.sent[since:] if r["chat_id"] == ANN)
    assert text.count("Margin call (still)") == 1 and text.count("Margin call · ") == 1 and f"position #{pid}" in text
    assert world.position(pid).status.value == "open"
