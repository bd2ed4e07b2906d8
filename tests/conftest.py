"""Shared fixtures: a database on SQLite and on PostgreSQL, for every test that asks for one.

``db_engine`` is a migrated database, ``empty_db_engine`` an empty one; both are parametrised over
``sqlite`` (a file in ``tmp_path``) and ``postgresql`` (a fresh schema per test inside a schema prefix unique
to this session, all dropped at the end, so parallel runs never collide). PostgreSQL defaults to
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; set ``LOANDESK_TEST_POSTGRES_URL`` to use another.
Where PostgreSQL is not reachable its tests are skipped with the reason.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterator

import hypothesis  # noqa: F401  # imported up front: CPython 3.11.7 breaks compiling it late while bot threads compile
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from storage.engine import database_url, make_engine, migrate

# No test reaches Binance's real stream: a test that streams points LOANDESK_BINANCE_STREAM_URL at FakeExchange.
os.environ.setdefault("LOANDESK_BINANCE_STREAM_URL", "off")

POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DATABASES = ["sqlite", "postgresql"]


class Postgres:
    """The test server: an admin engine and this session's schema prefix."""

    def __init__(self, url: str, admin: Engine) -> None:
        self.url = url
        self.admin = admin
        self.prefix = f"loandesk_test_{uuid.uuid4().hex[:10]}"
        self._numbers = itertools.count(1)

    def new_schema(self) -> str:
        name = f"{self.prefix}_{next(self._numbers)}"
        with self.admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        return name

    def drop_schema(self, name: str) -> None:
        with self.admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))

    def drop_all(self) -> None:
        with self.admin.begin() as conn:
            names = conn.execute(text("SELECT schema_name FROM information_schema.schemata "
                                      "WHERE schema_name LIKE :p"), {"p": f"{self.prefix}%"}).scalars().all()
        for name in names:
            self.drop_schema(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    url = os.environ.get("LOANDESK_TEST_POSTGRES_URL", POSTGRES_DEFAULT)
    parsed = database_url(url)
    admin = create_engine(parsed, connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        admin.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        pytest.skip(f"PostgreSQL not reachable at {parsed.host}:{parsed.port or 5432} "
                    f"(set LOANDESK_TEST_POSTGRES_URL): {reason}")
    server = Postgres(url, admin)
    try:
        yield server
    finally:
        server.drop_all()
        admin.dispose()


@pytest.fixture(params=DATABASES)
def empty_db_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """An engine on an empty database: SQLite in a temporary file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'loandesk.db'}")
        yield engine
        engine.dispose()
        return
    server: Postgres = request.getfixturevalue("postgres")
    schema = server.new_schema()
    engine = make_engine(server.url, schema=schema)
    try:
        yield engine
    finally:
        engine.dispose()
        server.drop_schema(schema)


@pytest.fixture
def db_engine(empty_db_engine: Engine) -> Engine:
    """A migrated database (``alembic upgrade head``) on SQLite and on PostgreSQL."""
    migrate(empty_db_engine)
    return empty_db_engine


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """A stream for ``logs.configure``; the root logger and the excepthooks are put back afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    hooks = (sys.excepthook, threading.excepthook)
    try:
        yield stream
    finally:
        sys.excepthook, threading.excepthook = hooks
        logging.captureWarnings(False)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in before[0]:
            root.addHandler(handler)
        root.setLevel(before[1])
