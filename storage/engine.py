"""Engines and migrations: ``make_engine(url)`` for SQLite (default) or PostgreSQL, and ``migrate(engine)``.

SQLite runs in WAL mode with a busy timeout and foreign keys on, and every transaction starts with
``BEGIN IMMEDIATE``: a unit of work reads, then writes, and taking the write lock up front is what keeps two
of them from interleaving (a deferred transaction would fail with "database is locked" on its first write).
PostgreSQL units of work take a transaction-scoped advisory lock instead (see ``writer_lock``); both
databases therefore run one writing unit of work at a time, which the domain's read-modify-write of market
state needs. A connection with the execution option ``READ_ONLY`` (``engine.execution_options(**{READ_ONLY:
True})``, what a read-only unit of work uses) starts a plain ``BEGIN`` on SQLite (a WAL snapshot: it neither waits
for the writer nor blocks it) and takes no writer lock on PostgreSQL. PostgreSQL sessions run with a
``lock_timeout`` (``LOCK_TIMEOUT_MS``): a writer that cannot get a lock within it fails instead of waiting forever.

Migrations are Alembic scripts shipped inside this package; the Alembic config is built in code, so they
run from an installed package and from any working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 5000
# pg_advisory_xact_lock(key1, key2): key1 names loandesk, key2 the schema, so schemas in one database
# (parallel test runs, several desks) do not wait for each other.
LOCK_CLASS = 0x4C444B  # "LDK"
READ_ONLY = "loandesk_read_only"  # execution option: a read transaction (no write lock)
# PostgreSQL's lock_timeout: the longest a unit of work waits for the writer lock (a crash tick on a large book holds
# it for a few seconds) or any row lock, before failing with LockNotAvailable.
LOCK_TIMEOUT_MS = 15_000


def database_url(url: str | URL) -> URL:
    """``postgresql://`` and ``postgres://`` mean psycopg 3; everything else is taken as given."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, *, schema: str | None = None, echo: bool = False,
                lock_timeout_ms: int = LOCK_TIMEOUT_MS) -> Engine:
    """An engine for ``sqlite:///path`` (``sqlite://`` in memory) or ``postgresql+psycopg://…``.

    ``schema`` (PostgreSQL only) sets the ``search_path``: every table, and Alembic's version table, lives
    in that schema. ``lock_timeout_ms`` (PostgreSQL only): the session's ``lock_timeout`` (0: none).
    """
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo)
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "echo": echo}
    if schema is not None and parsed.get_backend_name() != "postgresql":
        raise ValueError("schema= is supported on PostgreSQL only")
    given = parsed.query.get("options")  # options in the URL (e.g. a search_path) are kept, not replaced
    options = [given] if isinstance(given, str) else list(given or [])
    if schema is not None:
        options.append(f"-c search_path={schema}")
    if parsed.get_backend_name() == "postgresql":
        options.append(f"-c lock_timeout={int(lock_timeout_ms)}")
        kwargs["pool_size"] = 20  # readers and writers on their thread pools (bot.service.store), besides the lease
    if options:
        kwargs["connect_args"] = {"options": " ".join(options)}
    return create_engine(parsed, **kwargs)


def _sqlite_engine(url: URL, echo: bool) -> Engine:
    memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"echo": echo, "connect_args": {"check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool  # one connection, or every checkout would see a new empty database
    else:
        kwargs["pool_size"] = 20  # the bot's readers and writers on their thread pools (bot.service.store)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 must not BEGIN on its own: we do, below
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


def writer_lock(conn: Connection) -> None:
    """On PostgreSQL, wait for the schema's writer lock (released at commit or rollback); no-op on SQLite and
    on a read-only connection."""
    if conn.dialect.name == "postgresql" and not conn.get_execution_options().get(READ_ONLY):
        conn.execute(text("SELECT pg_advisory_xact_lock(:cls, hashtext(current_schema()))"),
                     {"cls": LOCK_CLASS})


def alembic_config(url: str | URL | None = None) -> Config:
    """Alembic's config for the migrations in this package (``url`` only for running without a connection)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        rendered = database_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent; concurrent callers wait for each other)."""
    cfg = alembic_config()
    with engine.begin() as conn:
        writer_lock(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
