"""The bot's own tables: previews are remembered for a day after they expire, then purged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.service.store import Preview, StateStore
from bot.service.usecases import Repay

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def preview(token: str, created: datetime) -> Preview:
    return Preview(token, "42", Repay(1, None), created, created + timedelta(minutes=5))


def test_old_previews_are_purged_and_recent_ones_kept(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with store.unit_of_work() as uow:
            uow.bot.add_preview(preview("old", T0))
            uow.bot.add_preview(preview("recent", T0 + timedelta(hours=20)))
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.bot.preview("old") is not None  # 20 h later it still answers "already done"/"expired"
            uow.bot.add_preview(preview("new", T0 + timedelta(days=1, minutes=6)))  # old expired > 1 day ago
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.bot.preview("old") is None
            assert uow.bot.preview("recent") is not None and uow.bot.preview("new") is not None
    finally:
        store.close()
