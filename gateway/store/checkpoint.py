"""WAL checkpoints off the commit path, for the SQLite store.

By default the connection whose commit pushes the WAL past 1,000 pages copies the WAL
into the database file then and there, inside that commit: with synchronous=FULL that is
megabytes written and an fsync while the write lock is held, so every session waiting for
a group commit, in every worker process, waited 3-20 ms once every few seconds (the
tail of the added latency at half of peak). The writer now never checkpoints; this
checkpointer does, on a connection and thread of its own, every `interval` seconds.
PASSIVE mode never waits for readers or writers: commits go on appending to the WAL while
it copies, and the next commit after a complete checkpoint starts the WAL over.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

# After a burst the WAL file is cut back to this size when it starts over (bytes).
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    busy: bool  # another process was checkpointing: nothing done this time
    wal_frames: int  # frames in the WAL
    copied_frames: int  # frames now in the database file (== wal_frames: complete)

    @property
    def complete(self) -> bool:
        return not self.busy and self.copied_frames == self.wal_frames


class WalCheckpointer:
    def __init__(self, path: str, interval: float) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0  # runs, and the seconds they took (for /metrics)
        self.seconds = 0.0
        self.last: CheckpointResult | None = None
        self._conn: sqlite3.Connection | None = None
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.path != ":memory:" and self.interval > 0

    def start(self) -> None:
        """Open the checkpoint connection and start the periodic task (after migrations)."""
        if not self.enabled:
            return
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sqlite-checkpoint"
        )
        self._task = asyncio.create_task(self._loop(), name="sqlite-checkpoint")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        pool, self._thread = self._thread, None
        if pool is not None:
            pool.shutdown(wait=True)  # a checkpoint under way finishes first
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def run(self) -> CheckpointResult | None:
        """One PASSIVE checkpoint on the checkpoint thread; None if SQLite refused it."""
        if self._conn is None or self._thread is None:
            return None
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            result = await loop.run_in_executor(self._thread, self._checkpoint, self._conn)
        except sqlite3.Error as exc:
            # A later run copies what this one could not; the WAL only grows meanwhile.
            log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
            return None
        self.checkpoints += 1
        self.seconds += time.perf_counter() - started
        self.last = result
        return result

    @staticmethod
    def _checkpoint(conn: sqlite3.Connection) -> CheckpointResult:
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return CheckpointResult(bool(busy), frames, copied)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run()
            except Exception:
                # the task must outlive any one failure, or the WAL would grow for good
                log.exception("WAL checkpoint of %s failed", self.path)
