"""The shipped migration builds exactly the schema of ``storage.tables`` on an empty database, from any
working directory, and running it again changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, inspect, select
from sqlmodel import SQLModel

import storage
from storage import UnitOfWork, make_engine, migrate
from storage.engine import alembic_config, current_revision
from storage.tables import POSITION_COUNTER, TABLES, counters

# The newest revision file in the package; every migrated database must end there.
HEAD = "0008"


def test_migrate_creates_every_table_of_tables_py(empty_db_engine: Engine, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert inspect(empty_db_engine).get_table_names() == []
    monkeypatch.chdir(tmp_path)  # the Alembic config is built in code: the working directory does not matter
    migrate(empty_db_engine)
    names = set(inspect(empty_db_engine).get_table_names())
    assert names == {t.name for t in TABLES} | {"alembic_version"}
    assert current_revision(empty_db_engine) == HEAD


def test_the_migrated_schema_matches_the_models(db_engine: Engine) -> None:
    ours = MetaData()
    for table in TABLES:
        table.to_metadata(ours)
    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), ours)
    assert diff == []
    # and nothing outside storage.tables claims a place in the shared metadata by accident
    assert {t.name for t in TABLES} <= set(SQLModel.metadata.tables)


def test_indexes_that_queries_rely_on_exist(db_engine: Engine) -> None:
    insp = inspect(db_engine)

    def columns(table: str) -> set[tuple[str, ...]]:
        return {tuple(c for c in ix["column_names"] if c is not None) for ix in insp.get_indexes(table)}

    assert {("owner",), ("status",), ("owner", "product", "loan_asset")} <= columns("positions")
    assert ("account", "asset") in columns("postings")
    assert ("sent_at", "urgency") in columns("outbox")


def test_migrating_twice_is_harmless_and_keeps_data(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow:
        assert uow.book.new_position_id() == 1
        uow.commit()
    migrate(db_engine)
    migrate(db_engine)
    assert current_revision(db_engine) == HEAD
    with db_engine.connect() as conn:
        assert conn.execute(select(counters.c.value).where(counters.c.name == POSITION_COUNTER)).scalar_one() == 1


def test_the_alembic_config_points_into_the_package() -> None:
    location = alembic_config().get_main_option("script_location")
    assert location is not None
    assert (Path(location) / "env.py").is_file()
    assert (Path(location) / "versions" / "0001_initial.py").is_file()


def test_the_alembic_command_line_works_with_the_shipped_ini(tmp_path: Path) -> None:
    root = Path(storage.__file__).resolve().parent
    db = tmp_path / "cli.db"
    done = subprocess.run([sys.executable, "-m", "alembic", "-c", str(root / "alembic.ini"), "-x",
                           f"url=sqlite:///{db}", "upgrade", "head"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    engine = make_engine(f"sqlite:///{db}")
    try:
        assert current_revision(engine) == HEAD
        assert set(inspect(engine).get_table_names()) == {t.name for t in TABLES} | {"alembic_version"}
    finally:
        engine.dispose()
