"""SQLite group commit on a thread of its own.

Callers put their writes straight into a thread-safe queue; the thread takes everything
that queued while its previous commit ran, writes it in one transaction (one fsync) and
wakes the callers with one call into their event loop.

Why not a writer task handing each batch to aiosqlite's thread: every commit then waited
three times for the event loop to come round (to start the task, to take the thread's
answer, to wake the callers), and under load the loop is busy with other sessions'
parsing and signing. At 190 msgs/s on the bench's two workers those waits were ~2 ms of
the commit stage's ~6 ms mean, and the commit is the longest stage of DATA.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable

from gateway.errors import StoreUnavailable
from gateway.store.base import PendingWrite
from gateway.store.writelock import WriteLock

log = logging.getLogger(__name__)


class GroupCommitter:
    """Owns one write connection and the thread that commits on it."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        write_lock: WriteLock,
        *,
        max_batch: int,
        busy_timeout: float,
    ) -> None:
        self._connect = connect
        self._write_lock = write_lock
        self._max_batch = max(1, max_batch)
        self._busy_timeout = busy_timeout
        self._queue: queue.SimpleQueue[PendingWrite | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self.commits = 0
        self.commit_seconds = 0.0

    def start(self) -> None:
        """Open the write connection and start the thread (on the event loop's thread)."""
        self._loop = asyncio.get_running_loop()
        conn = self._connect()
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="sqlite-group-commit", daemon=True
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        return not self._closing and self._thread is not None and self._thread.is_alive()

    def submit(self, item: PendingWrite) -> None:
        if not self.running:
            raise StoreUnavailable("store writer is not running")
        self._queue.put(item)

    async def stop(self) -> None:
        """Commit everything submitted so far, then end the thread and close its connection."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._closing = True  # submit() refuses from now on: nothing queues behind the end
        self._queue.put(None)
        await asyncio.to_thread(thread.join)

    # -- the thread ------------------------------------------------------------------------

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                closing = False
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        closing = True
                        break
                    batch.append(item)
                try:
                    self._commit(conn, batch)
                except Exception as exc:  # never leave a caller waiting on a dead thread
                    log.exception("group commit of %d writes failed", len(batch))
                    self._answer(batch, error=StoreUnavailable(f"commit failed: {exc}"))
                if closing:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[PendingWrite]) -> None:
        started = time.perf_counter()
        try:
            ids = self._transaction(conn, batch)
        except sqlite3.IntegrityError:
            if len(batch) > 1:
                # One write broke a constraint (e.g. a resent source_ref): commit the
                # others without it instead of failing every session of the batch.
                for item in batch:
                    self._commit(conn, [item])
                return
            self._answer(batch, error=StoreUnavailable("UNIQUE constraint failed"))
            return
        except (sqlite3.Error, ValueError) as exc:
            log.error("group commit of %d writes failed: %s", len(batch), exc)
            self._answer(batch, error=StoreUnavailable(f"commit failed: {exc}"))
            return
        self.commits += 1
        self.commit_seconds += time.perf_counter() - started
        self._answer(batch, ids=ids)

    def _transaction(self, conn: sqlite3.Connection, batch: list[PendingWrite]) -> list[int]:
        ids: list[int] = []
        with self._write_lock.held(self._busy_timeout):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for item in batch:
                    cursor = conn.execute(item.sql, item.params)
                    ids.append(cursor.lastrowid or 0)
                    for sql, params in item.also:
                        conn.execute(sql, params)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        return ids

    def _answer(
        self,
        batch: list[PendingWrite],
        ids: list[int] | None = None,
        error: StoreUnavailable | None = None,
    ) -> None:
        def settle() -> None:
            for i, item in enumerate(batch):
                if item.done.done():  # the caller gave up (its session ended)
                    continue
                if error is not None:
                    item.done.set_exception(error)
                else:
                    assert ids is not None
                    item.done.set_result(ids[i])

        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(settle)
