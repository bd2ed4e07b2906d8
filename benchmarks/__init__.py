"""Benchmarks (not tests): ``python -m benchmarks.sweep|notify|chat``; see README "Performance"."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine

from storage import make_engine
from storage.engine import database_url


def report(result: Mapping[str, Any], as_json: bool) -> None:
    """Print a benchmark's figures: one JSON object (``--json``), or one aligned line per figure."""
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result), default=0)
    for k, v in result.items():
        print(f"{k:>{width}}: {v}")


@dataclass(frozen=True)
class Database:
    url: str
    schema: str | None  # the throw-away schema on PostgreSQL (None on SQLite)
    engine: Engine


@contextmanager
def throwaway_database(postgresql: str | None, folder: Path, name: str) -> Iterator[Database]:
    """A benchmark's database: a fresh schema on ``postgresql`` (``--database``), dropped at the end, or
    ``<folder>/<name>.db`` on SQLite."""
    if not postgresql:
        url = f"sqlite:///{folder / f'{name}.db'}"
        engine = make_engine(url)
        try:
            yield Database(url, None, engine)
        finally:
            engine.dispose()
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(database_url(postgresql))
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine = make_engine(postgresql, schema=schema)
    try:
        yield Database(postgresql, schema, engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
