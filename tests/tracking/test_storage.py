"""Tracked positions and linked accounts round-trip exactly on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, select

from domain.tracking.position import Alarm, Kind, Lender, Levels, Tracked
from storage.tables import journal_entries, linked_accounts, positions, tracked_positions
from storage.tracking import Link, SqlTracked
from storage.uow import UnitOfWork

T0 = datetime(2030, 1, 7, 10, 15, tzinfo=UTC)
D = Decimal


def sample(pid: int, owner: str = "7", lender: Lender = Lender.BINANCE) -> Tracked:
    return Tracked(pid, owner, lender, Kind.FLEXIBLE if lender is Lender.BINANCE else Kind.MANUAL, "USDT",
                   D("15000.308221289177272458"), T0, D("0.0613200000000000001"), {"BTC": D("0.123456789012345678")},
                   Levels(D("0.85"), D("0.91"), D("0.78")), T0, ref=f"flexible:USDT:BTC{pid}",
                   calibration=D("1.020000000000000000000000001"), synced_at=T0, synced_ltv=D("0.34"),
                   expires_at=T0 + timedelta(days=30), reminders_sent=["72h", "24h"],
                   alarm=Alarm(True, True, T0, False))


def test_a_tracked_position_comes_back_digit_for_digit(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow:
        pid = uow.book.new_position_id()  # the desk's counter: one id space with desk positions
        SqlTracked(uow.session).save_tracked(sample(pid))
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        repo = SqlTracked(uow.session)
        assert repo.get_tracked(pid) == sample(pid)
        t = sample(pid)
        t.debt, t.alarm = D("14000.5"), Alarm()
        repo.save_tracked(t)  # an update, not a second row
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        repo = SqlTracked(uow.session)
        assert [x.debt for x in repo.tracked_of("7")] == [D("14000.5")]
        assert repo.get_tracked(pid).alarm == Alarm()  # type: ignore[union-attr]
        # nothing of the desk's own was written
        for table in (positions, journal_entries):
            assert uow.session.execute(select(func.count()).select_from(table)).scalar_one() == 0


def test_unlinking_deletes_the_key_and_the_synced_positions_but_not_the_manual_ones(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow:
        repo = SqlTracked(uow.session)
        repo.save_tracked(sample(1))
        repo.save_tracked(sample(2, lender=Lender.MANUAL))
        repo.save_tracked(sample(3, owner="8"))
        repo.save_link(Link("7", "ed25519", "active", "gAAAA-cipher", T0, api_key="gAAAA-key", next_sync_at=T0))
        repo.save_link(Link("8", "hmac", "active", "gAAAA-cipher2", T0, api_key="gAAAA-key2",
                            next_sync_at=T0 + timedelta(minutes=5)))
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        repo = SqlTracked(uow.session)
        assert [x.owner for x in repo.due_links(T0 + timedelta(minutes=1))] == ["7"]
        assert repo.delete_link("7") and repo.delete_synced("7") == [1]
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        repo = SqlTracked(uow.session)
        assert [(t.id, t.owner) for t in repo.active_tracked()] == [(2, "7"), (3, "8")]
        assert repo.link("7") is None and repo.link("8") is not None
        assert uow.session.execute(select(func.count()).select_from(linked_accounts)).scalar_one() == 1
        assert uow.session.execute(select(func.count()).select_from(tracked_positions)).scalar_one() == 2
