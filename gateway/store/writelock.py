"""One writer at a time across the gateway's processes sharing a SQLite file.

SQLite's busy handler retries a locked write after sleeping 1, 2, 5, 10, 15, 20 ms...,
so when two worker processes commit at the same moment the loser often waits tens of
milliseconds for a lock that was free again after one: that was most of the added
p99 latency with two workers. A file lock beside the database hands over at once; it
is polled every 0.2 ms (flock has no timeout) so a wait stays bounded by the store's
busy timeout. Other programs writing the file (the CLI) still meet SQLite's own lock.

Inside one process two threads write (the group commit's, aiosqlite's for imports and
approvals) through one descriptor, and flock() by a second thread on the same open file
succeeds at once: a thread lock taken first keeps them apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator

POLL_SECONDS = 0.0002


class WriteLock:
    def __init__(self, db_path: str) -> None:
        self.path = None if db_path == ":memory:" else db_path + "-writelock"
        self._fd: int | None = None
        self._threads = threading.Lock()

    def open(self) -> None:
        if self.path is not None and self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @contextlib.contextmanager
    def held(self, timeout: float) -> Iterator[None]:
        """Hold the lock for one write transaction (called on a writing thread)."""
        fd = self._fd
        if fd is None:
            yield
            return
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            raise sqlite3.OperationalError("database is locked (this process kept writing)")
        try:
            with self._flocked(fd, deadline):
                yield
        finally:
            self._threads.release()

    @staticmethod
    @contextlib.contextmanager
    def _flocked(fd: int, deadline: float) -> Iterator[None]:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError(
                        "database is locked (another gateway process kept writing)"
                    ) from None
                time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
