"""Update keys (``StateStore.mark_seen``, issue 12 item 1): still insert-or-conflict between instances — of racing
instances exactly one wins each key — and recorded without waiting for the book's writer (a crash tick holding
the write lock), on SQLite (a file of their own) and on PostgreSQL (no writer lock)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.service.store import StateStore


@pytest.fixture(params=["sqlite", "postgresql"])
def two_instances(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[StateStore, StateStore]]:
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'keys.db'}"
    else:
        server = request.getfixturevalue("postgres")
        schema = server.new_schema()
        url = server.url
    a = StateStore(url, schema=schema)
    b = StateStore(url, schema=schema, migrate=False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()
        if schema is not None:
            server.drop_schema(schema)


def test_racing_instances_record_each_key_once(two_instances: tuple[StateStore, StateStore]) -> None:
    wins: list[str] = []
    lock = threading.Lock()
    keys = [f"m:1:{i}" for i in range(40)]

    def worker(store: StateStore) -> None:
        for key in keys:
            if store.mark_seen(key):
                with lock:
                    wins.append(key)

    threads = [threading.Thread(target=worker, args=(two_instances[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(wins) == sorted(keys)


def test_a_key_is_recorded_while_a_writer_holds_the_lock(two_instances: tuple[StateStore, StateStore]) -> None:
    a, b = two_instances
    answer: list[bool] = []
    with a.unit_of_work() as uow:
        uow.session.connection()  # the writer lock is taken (BEGIN IMMEDIATE; the advisory lock)
        recorder = threading.Thread(target=lambda: answer.append(b.mark_seen("q:1")))
        recorder.start()
        recorder.join(3)
        assert answer == [True]  # not held up by the writer
    assert b.mark_seen("q:1") is False and a.mark_seen("q:1") is False
