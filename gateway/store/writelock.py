"""One writer at a time across the gateway's processes sharing a SQLite file.

SQLite's busy handler retries a locked write after sleeping 1, 2, 5, 10, 15, 20 ms...,
so when two worker processes commit at the same moment the loser often waits tens of
milliseconds for a lock that was free again after one: that was most of the added
p99 latency with two workers. A file lock beside the database hands over at once; it
is polled every 0.2 ms (flock has no timeout) so a wait stays bounded by the store's
busy timeout. Other programs writing the file (the CLI) still meet SQLite's own lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator

POLL_SECONDS = 0.0002


class WriteLock:
    def __init__(self, db_path: str) -> None:
        self.path = None if db_path == ":memory:" else db_path + "-writelock"
        self._fd: int | None = None

    def open(self) -> None:
        if self.path is not None and self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @contextlib.contextmanager
    def held(self, timeout: float) -> Iterator[None]:
        """Hold the lock for one write transaction (called on the writer thread)."""
        fd = self._fd
        if fd is None:
            yield
            return
        deadline = time.monotonic() + timeout
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
