"""The one Telegram budget (issue 12 item 4): when sends must wait, replies go first, then pushes by urgency; one
chat's sends keep their order; a reserve is kept for replies. Driven through ``process_request`` as PTB calls it,
with a callback that records what was sent (the Bot API itself is exercised in test_loop)."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.telegram.budget import TelegramBudget


def test_replies_go_first_then_pushes_by_urgency() -> None:
    sent: list[str] = []

    async def scenario() -> None:
        budget = TelegramBudget(per_second=1, reserve=0)

        def send(name: str, chat: int, args: dict[str, Any] | None) -> asyncio.Task[Any]:
            async def post() -> bool:
                sent.append(name)
                return True
            return asyncio.ensure_future(budget.process_request(post, (), {}, "sendMessage", {"chat_id": chat}, args))

        first = send("first", 1, None)
        await asyncio.sleep(0.05)  # the second's window is taken: everyone below waits
        queued = [send("warning", 2, {"priority": 6}), send("liquidation", 3, {"priority": 2}),
                  send("reply", 4, None), send("margin call", 5, {"priority": 4})]
        await asyncio.gather(first, *queued)

    asyncio.run(scenario())
    assert sent == ["first", "reply", "liquidation", "margin call", "warning"]


def test_one_chats_sends_keep_their_order_and_pushes_leave_room_for_replies() -> None:
    sent: list[str] = []

    async def scenario() -> None:
        budget = TelegramBudget(per_second=3, reserve=1, private_per_second=1)

        def send(name: str, chat: int, args: dict[str, Any] | None) -> asyncio.Task[Any]:
            async def post() -> bool:
                sent.append(name)
                return True
            return asyncio.ensure_future(budget.process_request(post, (), {}, "sendMessage", {"chat_id": chat}, args))

        pushes = [send(f"push {i}", 100 + i, {"priority": 2}) for i in range(3)]
        await asyncio.sleep(0.05)
        assert sent == ["push 0", "push 1"]  # the third second-slot is the replies'
        replies = [send("reply a", 7, None), send("reply b", 7, None)]
        await asyncio.sleep(0.05)
        assert sent == ["push 0", "push 1", "reply a"]  # b waits for its chat's second; a took the reserve
        await asyncio.gather(*pushes, *replies)

    asyncio.run(scenario())
    assert sent.index("reply a") < sent.index("reply b")


def test_people_chatting_through_a_crash_cannot_starve_its_pushes() -> None:
    """Replies go first, but while a push waits they leave it its floor in every second: with 3 sends a second and
    a floor of 1, a liquidation push queued behind six replies goes out in the next second, not after them all."""
    sent: list[str] = []

    async def scenario() -> None:
        budget = TelegramBudget(per_second=3, reserve=0, push_floor=1)

        def send(name: str, chat: int, args: dict[str, Any] | None) -> asyncio.Task[Any]:
            async def post() -> bool:
                sent.append(name)
                return True
            return asyncio.ensure_future(budget.process_request(post, (), {}, "sendMessage", {"chat_id": chat}, args))

        tasks = [send(f"early {i}", 10 + i, None) for i in range(3)]  # this second is taken
        await asyncio.sleep(0.05)
        tasks += [send(f"reply {i}", 20 + i, None) for i in range(6)]
        tasks.append(send("liquidation", 99, {"priority": 2}))
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert sent.index("liquidation") < 6, sent  # in the second second (without the floor: tenth, after every reply)
    assert sent[3:5] == ["reply 0", "reply 1"]  # replies still first within what is left to them


def test_without_a_waiting_push_replies_have_the_whole_second() -> None:
    sent: list[str] = []

    async def scenario() -> None:
        budget = TelegramBudget(per_second=3, reserve=0, push_floor=1)

        async def post() -> bool:
            sent.append("reply")
            return True

        tasks = [asyncio.ensure_future(budget.process_request(post, (), {}, "sendMessage", {"chat_id": 10 + i}, None))
                 for i in range(3)]
        await asyncio.sleep(0.05)
        assert len(sent) == 3
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
