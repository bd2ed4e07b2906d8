"""Operators are told: an uncaught error in a handler or a job is one log line with an id, one short alert to the
operators (rate limited), and the person gets a true sentence with the same id — not "nothing was changed"."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bot.ops.incidents import Incidents
from bot.telegram.handlers import App
from tests.monitoring.conftest import ANN, BOB, OPERATOR, World


def test_a_failing_command_gives_a_true_sentence_and_one_alert_with_the_id(world: World,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    def break_positions(app: App) -> None:
        desk = app.bot_data["desk"]
        real = desk.command

        async def command(user: int, private: bool, name: str, args: list[str]) -> Any:
            if name == "positions":
                raise RuntimeError("the database went away mid-answer")
            return await real(user, private, name, args)
        desk.command = command

    world.start(break_positions)
    with caplog.at_level(logging.ERROR, logger="loandesk.incident"):
        answer = world.say(ANN, "/positions")["plain"]
        alert = world.tg.wait_for(lambda r: r["chat_id"] == OPERATOR and "Error E" in (r["plain"] or ""))
        world.say(BOB, "/positions")  # a second failure within the minute: logged, answered, not alerted
    error_id = answer.split("(error ")[1].split(")")[0]
    assert answer == (f"Something went wrong on our side (error {error_id}), and your request may or may not have "
                      "gone through. Please check /positions or /wallet before trying again. The operators have "
                      "been told.")
    assert "nothing was changed" not in answer
    assert alert["plain"].startswith(f"⚠️ Error {error_id}: a chat update failed (RuntimeError).")
    assert f"grep {error_id}" in alert["plain"] and "database went away" not in alert["plain"]
    logged = [r for r in caplog.records if getattr(r, "error_id", None) == error_id]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert len([r for r in caplog.records if r.name == "loandesk.incident"]) == 2
    world.polls(3)  # time for a second alert, were there one
    assert len([r for r in world.tg.sent if r["chat_id"] == OPERATOR]) == 1


def test_alerts_are_rate_limited_and_the_next_one_counts_the_errors_in_between() -> None:
    sent: list[tuple[int, str]] = []

    async def send(chat: int, text: str) -> None:
        sent.append((chat, text))

    async def main() -> list[str]:
        incidents = Incidents([1, 2], send, interval=0.2, instance="host:1:abc")
        ids = [incidents.report("job poll", ValueError("x")) for _ in range(3)]
        await asyncio.sleep(0.25)
        ids.append(incidents.report("job poll", ValueError("y")))
        await asyncio.sleep(0.05)
        return ids

    ids = asyncio.run(main())
    assert len(set(ids)) == 4
    assert [c for c, _ in sent] == [1, 2, 1, 2]
    assert sent[0][1] == (f"⚠️ Error {ids[0]}: job poll failed (ValueError). Instance host:1:abc. "
                          f"Details: grep {ids[0]} in the logs.")
    assert sent[2][1].endswith("2 more errors since the last alert (not alerted).") and ids[3] in sent[2][1]
