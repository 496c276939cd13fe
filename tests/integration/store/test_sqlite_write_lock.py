"""The SQLite write lock shared by the gateway's processes: exclusive, bounded, and
two processes committing at once into one file lose nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gateway.store.sqlite import SqliteStore
from gateway.store.writelock import WriteLock

pytestmark = pytest.mark.integration


def test_lock_is_exclusive_and_bounded(tmp_path: Path) -> None:
    db = str(tmp_path / "s.sqlite3")
    first, second = WriteLock(db), WriteLock(db)
    first.open()
    second.open()
    try:
        with first.held(1.0):
            started = time.monotonic()
            with pytest.raises(sqlite3.OperationalError, match="another gateway process"):
                with second.held(0.05):
                    pass
            waited = time.monotonic() - started
            assert 0.05 <= waited < 0.5, waited
        with second.held(0.05):  # released: taken at once
            pass
    finally:
        first.close()
        second.close()


_WRITER = textwrap.dedent("""
    import asyncio, sys
    from gateway.store.sqlite import SqliteStore
    from tests.integration.store.factories import event

    async def main() -> None:
        store = SqliteStore(sys.argv[1])
        await store.open()
        tag = int(sys.argv[2])
        await asyncio.gather(*(store.record_event(event(tag * 1000 + n)) for n in range(300)))
        await store.close()

    asyncio.run(main())
""")


def test_two_processes_commit_together(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.sqlite3")

    async def migrate() -> None:
        store = SqliteStore(db)
        await store.open()
        await store.close()

    asyncio.run(migrate())
    root = Path(__file__).resolve().parents[3]
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, db, str(tag)], cwd=root,
                         stderr=subprocess.PIPE, text=True)
        for tag in (1, 2)
    ]
    for proc in writers:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 600
