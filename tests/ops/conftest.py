"""A cluster of real ``loandesk run`` processes on a fresh PostgreSQL schema (or a SQLite file), with the fakes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Postgres
from tests.fakes.exchange import FakeExchange
from tests.fakes.telegram import FakeTelegram
from tests.ops.cluster import Cluster


@pytest.fixture
def pg_cluster(postgres: Postgres, tmp_path: Path) -> Iterator[Cluster]:
    schema = postgres.new_schema()
    with FakeTelegram() as tg, FakeExchange({"BTC": "50000", "ETH": "3000"}) as exchange:
        cluster = Cluster(tg, exchange, tmp_path, postgres.url, schema)
        try:
            yield cluster
        finally:
            cluster.stop_all()
            postgres.drop_schema(schema)


@pytest.fixture
def sqlite_cluster(tmp_path: Path) -> Iterator[Cluster]:
    with FakeTelegram() as tg, FakeExchange({"BTC": "50000", "ETH": "3000"}) as exchange:
        cluster = Cluster(tg, exchange, tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", None)
        try:
            yield cluster
        finally:
            cluster.stop_all()
