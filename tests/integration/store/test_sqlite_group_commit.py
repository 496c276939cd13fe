"""The SQLite group commit: it answers every caller, survives a bad write, and commits
everything submitted before close."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.errors import StoreUnavailable
from gateway.store.sqlite import SqliteStore
from tests.integration.store.factories import event

pytestmark = pytest.mark.integration


class _ExplodingParams:
    """Parameters that raise a non-SQLite error while SQLite binds them."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> object:
        raise RuntimeError("cannot produce a parameter")


async def _count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


async def test_a_write_that_raises_fails_alone_and_the_writer_goes_on(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    await store.open()
    try:
        bad = store.write("INSERT INTO schema_migrations (name) VALUES (?)", _ExplodingParams())
        with pytest.raises(StoreUnavailable, match="cannot produce a parameter"):
            await asyncio.wait_for(bad, 10)
        assert await asyncio.wait_for(store.record_event(event(1)), 10) > 0
    finally:
        await store.close()
    assert await _count(tmp_path / "s.sqlite3") == 1


async def test_close_commits_what_was_submitted_and_later_writes_are_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    store = SqliteStore(str(path))
    await store.open()
    tasks = [asyncio.create_task(store.record_event(event(n))) for n in range(200)]
    await asyncio.sleep(0)  # every task has queued its write; close() must commit them all
    await store.close()
    ids = [task.result() for task in tasks]  # all answered by the time close() returns
    assert len(set(ids)) == 200
    assert await _count(path) == 200
    with pytest.raises(StoreUnavailable, match="not running"):
        await asyncio.wait_for(store.record_event(event(999)), 5)


async def test_imports_and_group_commits_of_one_process_take_turns(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    await store.open()
    try:
        inside = asyncio.Event()
        loop = asyncio.get_running_loop()

        def long_transaction(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO schema_migrations VALUES ('probe', 0)")
            loop.call_soon_threadsafe(inside.set)
            time.sleep(0.3)  # a chunk of an import, holding the write lock

        running = asyncio.create_task(store.run_in_transaction(long_transaction))
        await inside.wait()
        ids = await asyncio.wait_for(
            asyncio.gather(*(store.record_event(event(n)) for n in range(20))), 10
        )
        await running
        assert len(set(ids)) == 20
    finally:
        await store.close()
