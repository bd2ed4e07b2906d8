"""Harness for tracking tests: the monitoring world (the real Application, scheduler and notifier against
FakeTelegram) with a FakeBinance as its exchange — the same fake serves the ticker the desk polls and the signed
loan endpoints a linked account is synced from — and a ``LOANDESK_SECRET_KEY``.

Scheduled syncs are an hour apart here (``LOANDESK_BINANCE_SYNC_SECONDS``), so a test syncs when it wants with
``sync(owner)``, on the bot's own loop, like the job does; the job itself is exercised by moving the clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bot.service.tracking import TrackingService
from storage.tracking import SqlTracked
from tests.fakes.binance import FakeBinance
from tests.fakes.telegram import FakeTelegram
from tests.monitoring.conftest import World

SECRET_KEY = Fernet.generate_key().decode("ascii")
ED_KEY = "4yNzx3yWC5bS6YTwEkSRaC0nRmSQIIStAUOh1b6kqaBrTLIhjCpI5lJH8q8R8WNO"
HMAC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
HMAC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
PEM = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


class TrackWorld(World):
    binance: FakeBinance

    @property
    def tracking(self) -> TrackingService:
        service: TrackingService = self.bots[-1].app.bot_data["desk"].tracking  # type: ignore[union-attr]
        return service

    def sync(self, owner: int) -> None:
        """One sync of ``owner``'s linked account now, on the bot's loop; then the notifier runs."""
        bot = self.bots[-1]

        async def run() -> None:
            with self.tracking.store.unit_of_work() as uow:
                link = SqlTracked(uow.session).link(str(owner))
            assert link is not None
            await self.tracking.sync(link)
            bot.monitor.wake_notifier()

        bot.run(run(), timeout=30)

    def public_key(self, owner: int) -> str:
        """``/link``: the bot answers with a public key; returns it as the borrower pastes it into Binance."""
        answer = self.say(owner, "/link")
        found = PEM.search(answer["plain"])
        assert found, answer["plain"]
        return found.group(0)

    def table(self, table: Any) -> list[Any]:
        from sqlalchemy import select
        return list(self.rows(lambda uow: uow.session.execute(select(table)).all()))


@pytest.fixture
def tw(tmp_path: Path) -> Iterator[TrackWorld]:
    with FakeTelegram() as tg, FakeBinance({"BTC": "50000", "ETH": "3000"}) as binance:
        w = TrackWorld(tg, binance, tmp_path / "track.db")
        w.binance = binance
        # Binance's clock shows the world's time (START, 2030): the client learns the offset from /api/v3/time
        binance.advance((w.clock() - datetime.now(UTC)).total_seconds())
        w.settings = w.settings.model_copy(update={"secret_key": SecretStr(SECRET_KEY),
                                                   "binance_sync_seconds": 3600.0})
        try:
            yield w
        finally:
            w.stop_bots()
        assert binance.non_get_requests == 0, "loandesk sent something other than GET to Binance"
