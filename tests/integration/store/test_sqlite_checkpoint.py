"""WAL checkpoints of the SQLite store run on their own thread, not inside a group commit."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from gateway.store.checkpoint import WalCheckpointer
from gateway.store.sqlite import SqliteStore
from tests.integration.store.factories import event

pytestmark = pytest.mark.integration

# SQLite's own default: a commit that takes the WAL past 1,000 pages checkpoints it
SQLITE_AUTOCHECKPOINT_PAGES = 1000


def _wal_pages(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    with sqlite3.connect(db) as conn:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return wal.stat().st_size // page_size if wal.exists() else 0


async def _record(store: SqliteStore, first: int, count: int) -> None:
    for n in range(first, first + count):  # one group commit each: the most WAL frames
        await store.record_event(event(n))


async def _count_in_file(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


async def test_commits_leave_the_wal_to_the_checkpointer(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    store = SqliteStore(str(db), checkpoint_interval=3600)  # runs only when asked here
    await store.open()
    try:
        await _record(store, 0, 400)
        # with SQLite's default one of these commits would have copied the WAL back
        assert _wal_pages(db) > SQLITE_AUTOCHECKPOINT_PAGES
        result = await store.checkpointer.run()
        assert result is not None and result.complete
        assert result.wal_frames > SQLITE_AUTOCHECKPOINT_PAGES
        # the next commit starts the WAL over: the checkpoint after it copies a few frames
        await _record(store, 400, 1)
        again = await store.checkpointer.run()
        assert again is not None and again.complete and again.wal_frames < 50
        assert store.checkpointer.checkpoints == 2
    finally:
        await store.close()
    assert await _count_in_file(db) == 401


async def test_the_checkpointer_keeps_the_wal_short_by_itself(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    store = SqliteStore(str(db), checkpoint_interval=0.02)
    await store.open()
    try:
        seen: list[int] = []
        for first in range(0, 600, 50):
            await _record(store, first, 50)
            await asyncio.sleep(0.05)  # a checkpoint or two ran meanwhile
            last = store.checkpointer.last
            assert last is not None and not last.busy
            seen.append(last.wal_frames)
        # 600 commits wrote thousands of frames; the WAL never held more than ~100 commits'
        assert sum(seen) > SQLITE_AUTOCHECKPOINT_PAGES
        assert max(seen) < SQLITE_AUTOCHECKPOINT_PAGES
        assert store.checkpointer.checkpoints >= len(seen)
    finally:
        await store.close()
    assert await _count_in_file(db) == 600


async def test_a_checkpoint_that_fails_is_logged_and_the_next_one_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "s.sqlite3"
    store = SqliteStore(str(db), checkpoint_interval=0.02)
    await store.open()
    failures = [sqlite3.OperationalError("disk I/O error"), RuntimeError("unforeseen")]
    real = WalCheckpointer._checkpoint

    def flaky(conn: sqlite3.Connection):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop(0)
        return real(conn)

    store.checkpointer._checkpoint = flaky  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.store.checkpoint"):
            await _record(store, 0, 20)
            for _ in range(200):
                if store.checkpointer.checkpoints:
                    break
                await asyncio.sleep(0.02)
        assert store.checkpointer.last is not None and store.checkpointer.last.complete
        messages = [r.getMessage() for r in caplog.records]
        assert any("disk I/O error" in m for m in messages)
        assert any(r.exc_info and "unforeseen" in str(r.exc_info[1]) for r in caplog.records)
    finally:
        await store.close()


async def test_interval_zero_leaves_checkpoints_to_the_commits(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    store = SqliteStore(str(db), checkpoint_interval=0)
    await store.open()
    try:
        await _record(store, 0, 400)
        # SQLite's own checkpoints ran inside the commits and started the WAL over
        assert await store.checkpointer.run() is None
        with sqlite3.connect(db) as conn:
            _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames < SQLITE_AUTOCHECKPOINT_PAGES + 50
    finally:
        await store.close()
