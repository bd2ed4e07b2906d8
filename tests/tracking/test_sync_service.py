"""The sync service against the fake Binance (no Telegram), on SQLite and PostgreSQL: spacing, intervals,
caching, weights, a revoked key."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from bot.binance import generate_ed25519
from bot.service.store import StateStore
from bot.service.tracking import TrackingService
from domain.markets import load_catalog
from storage.tables import outbox
from storage.tracking import Link, SqlTracked
from tests.conftest import Postgres
from tests.fakes.binance import FakeBinance

NOW = datetime(2030, 1, 7, 10, 15, tzinfo=UTC)
FLEX = "/sapi/v2/loan/flexible/ongoing/orders"
VIP = "/sapi/v1/loan/vip/ongoing/orders"
THRESHOLDS = "/sapi/v2/loan/flexible/collateral/data"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TrackingService, FakeBinance, Clock]]:
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sync.db'}"
    else:
        server: Postgres = request.getfixturevalue("postgres")
        url, schema = server.url, server.new_schema()
    with FakeBinance({"BTC": "50000", "ETH": "3000"}) as fake:
        store = StateStore(url, schema=schema)
        clock = Clock()
        service = TrackingService(load_catalog(), store, fake.url, Fernet.generate_key().decode(), clock=clock,
                                  prices=lambda: {"BTC": Decimal(50000), "ETH": Decimal(3000)})
        with store.unit_of_work() as uow:
            for i, owner in enumerate(("7", "8")):
                pair, key = generate_ed25519(), f"syncTestKey{i}aaaaaaaaaaaaaaaaaaaa"
                fake.add_account(key, ed25519_public_key=pair.public_key_pem)
                fake.add_flexible_loan(key, "USDT", "10000", "BTC", "0.5", "0.4")
                SqlTracked(uow.session).save_link(Link(owner, "ed25519", "active",
                                                       service._lock(pair.private_key_pem.reveal()), NOW,
                                                       api_key=service._lock(key), next_sync_at=NOW))
            uow.commit()
        yield service, fake, clock
        store.close()
        if schema is not None:
            request.getfixturevalue("postgres").drop_schema(schema)
        assert fake.non_get_requests == 0


def test_syncs_are_spaced_cached_and_rescheduled_within_the_budget(
        setup: tuple[TrackingService, FakeBinance, Clock]) -> None:
    service, fake, clock = setup
    # share 0.5 → 6,000 a minute per endpoint; the VIP endpoint (400) binds: one sync every 60 × 400 / 6000 = 4 s
    assert service.spacing() == 4.0 and service.interval(2) == 60.0 and service.interval(30) == 120.0
    assert asyncio.run(service.sync_due()) == 1
    assert asyncio.run(service.sync_due()) == 0  # the second account waits for the spacing
    assert (fake.used_weight(FLEX), fake.used_weight(VIP), fake.used_weight(THRESHOLDS)) == (300, 400, 400)
    service._last_start -= 4.0  # 4 s later
    assert asyncio.run(service.sync_due()) == 1
    # thresholds and rates come from the cache: only the two ongoing-orders endpoints were charged again
    assert (fake.used_weight(FLEX), fake.used_weight(VIP), fake.used_weight(THRESHOLDS)) == (600, 800, 400)
    with service.store.unit_of_work() as uow:
        repo = SqlTracked(uow.session)
        assert [t.owner for t in repo.active_tracked()] == ["7", "8"]
        links = [repo.link("7"), repo.link("8")]
        assert [x.next_sync_at if x else None for x in links] == [NOW + timedelta(minutes=1)] * 2
    service._last_start -= 4.0
    assert asyncio.run(service.sync_due()) == 0  # nobody is due before 10:16
    clock.now = NOW + timedelta(minutes=1)
    assert asyncio.run(service.sync_due()) == 1


def test_a_revoked_key_is_told_once_and_never_synced_again(setup: tuple[TrackingService, FakeBinance, Clock]) -> None:
    service, fake, clock = setup
    fake.revoke("syncTestKey0aaaaaaaaaaaaaaaaaaaa")
    assert asyncio.run(service.sync_due()) == 1
    with service.store.unit_of_work() as uow:
        link = SqlTracked(uow.session).link("7")
        assert link is not None and link.state == "revoked" and link.next_sync_at is None
        told = uow.session.execute(select(outbox.c.type, outbox.c.account)).all()
        assert [tuple(r) for r in told] == [("link_revoked", "7")]
    hits = fake.owned_hits()
    for _ in range(3):
        service._last_start -= 4.0
        clock.now += timedelta(minutes=2)
        assert asyncio.run(service.sync_due()) == 1  # only account 8 is ever due
    # account 8: thresholds + rates (the cache was never filled: the revoked key failed on its first call) and the
    # two ongoing-orders pages, then the two pages alone twice: 4 + 2 + 2
    assert fake.owned_hits() - hits == 8
    with service.store.unit_of_work() as uow:
        told = uow.session.execute(select(outbox.c.type, outbox.c.account).order_by(outbox.c.id)).all()
        # told once; account 8's loan, first seen by a scheduled sync (not by /link), is announced
        assert [tuple(r) for r in told] == [("link_revoked", "7"), ("tracked_found", "8")]
