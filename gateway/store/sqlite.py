"""SQLite store (embedded default): WAL, one writer with group commit, aiosqlite for async I/O.

Writes never sit on the request path one by one: callers enqueue a write and
await its commit; a single writer task drains everything that queued up while
the previous commit ran and commits it as one transaction (group commit), so
concurrent sessions share fsyncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite

from gateway.consent.model import ConsentEvent
from gateway.errors import StoreUnavailable
from gateway.model import Event
from gateway.store.base import EventFilter, PendingWrite, group_commit_loop
from gateway.store.consent_rows import (
    ACTIVE_SUPPRESSION,
    CONSENT_COLUMNS,
    INSERT_CONSENT,
    SELECT_CONSENT,
    SUPPRESSION_COLUMNS,
    consent_row,
    row_event,
)
from gateway.store.events import EVENT_COLUMNS, event_row, events_query, row_dict
from gateway.store.migrations import migrations
from gateway.store.writelock import WriteLock

log = logging.getLogger(__name__)

_INSERT_CONSENT = INSERT_CONSENT
_UPSERT_LAST_SENT = (
    "INSERT INTO consent_last_sent (sender_id, address_key, last_sent_at) VALUES (?, ?, ?) "
    "ON CONFLICT (sender_id, address_key) DO UPDATE SET last_sent_at = "
    "max(last_sent_at, excluded.last_sent_at)"
)
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)


BUSY_TIMEOUT = 5.0  # seconds a write waits for another writer before failing (451)


class SqliteStore:
    """The Store protocol on one SQLite file."""

    backend = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        commit_interval: float = 0.002,
        commit_max_batch: int = 512,
        synchronous: str = "FULL",
    ) -> None:
        self.path = path
        self.commit_interval = commit_interval
        self.commit_max_batch = commit_max_batch
        self.synchronous = synchronous
        self._db: aiosqlite.Connection | None = None
        self._write_lock = WriteLock(path)
        self._reader: sqlite3.Connection | None = None
        self._queue: asyncio.Queue[PendingWrite | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.commits = 0
        self.commit_seconds = 0.0
        self.applied: list[str] = []  # migrations applied by open()

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            # startup only, before any session exists
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)  # noqa: ASYNC240
            self._write_lock.open()
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            self._db.row_factory = aiosqlite.Row
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute(f"PRAGMA synchronous={self.synchronous}")
            await self._db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
            await self._db.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from exc
        self.applied = await self.migrate()
        try:
            # Point lookups on the hot path read inline on this connection: an indexed
            # lookup costs ~5 µs, the aiosqlite thread hop ~230 µs (performance.md), and
            # WAL readers never wait for the writer.
            self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._reader.execute("PRAGMA query_only=1")
            # No memory map: under load the event log commits between nearly every two
            # lookups, and after a commit by another connection a mapped reader paid ~2x
            # for the same lookup (1,000,000 records, bench/consent.py: p50 88 -> 45 us,
            # p99 160 -> 75 us); with nothing written in between, ~15 us either way.
            self._reader.execute("PRAGMA mmap_size=0")
            self._reader.execute("PRAGMA busy_timeout=100")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from exc
        self._writer = asyncio.create_task(self._write_loop(), name="sqlite-group-commit")

    async def close(self) -> None:
        if self._writer is not None:
            # A sentinel, not cancel(): a batch being committed finishes and its
            # callers get their answers; everything queued before close is committed.
            await self._queue.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._db is not None:
            await self._db.close()
            self._db = None
        self._write_lock.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreUnavailable("store is not open")
        return self._db

    async def migrate(self) -> list[str]:
        db = self.db
        try:
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            rows = await db.execute_fetchall("SELECT name FROM schema_migrations")
            done = {row[0] for row in rows}
            applied: list[str] = []
            for name, sql in migrations("sqlite"):
                if name in done:
                    continue
                # executescript commits first; wrap the migration in its own transaction
                await db.executescript(
                    "BEGIN IMMEDIATE;\n" + sql + "\nINSERT INTO schema_migrations VALUES "
                    f"('{name}', strftime('%s','now'));\nCOMMIT;"
                )
                applied.append(name)
            return applied
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"migration failed: {exc}") from exc

    # -- group commit ----------------------------------------------------------------------

    async def write(
        self, sql: str, params: Sequence[Any], also: tuple[tuple[str, Sequence[Any]], ...] = ()
    ) -> int:
        """Enqueue one write and wait until the batch holding it is committed."""
        if self._writer is None or self._writer.done():
            raise StoreUnavailable("store writer is not running")
        item = PendingWrite(sql, params, also)
        await self._queue.put(item)
        return await item.done

    async def _write_loop(self) -> None:
        await group_commit_loop(self._queue, self.commit_max_batch, self._commit)

    async def _commit(self, batch: list[PendingWrite]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            ids = await self._run_batch(batch)
        except sqlite3.IntegrityError as exc:
            if len(batch) > 1:
                # One write broke a constraint (e.g. a resent source_ref): commit the
                # others without it instead of failing every session of the batch.
                for item in batch:
                    await self._commit([item])
                return
            # SQLite's own words ("NOT NULL constraint failed: events.recipient") name the
            # column; append_consent looks for "UNIQUE constraint failed" in them.
            self._fail(batch, str(exc))
            return
        except (sqlite3.Error, ValueError) as exc:
            log.error("group commit of %d writes failed: %s", len(batch), exc)
            self._fail(batch, str(exc))
            return
        except Exception as exc:
            # Anything else (a parameter that raises while SQLite binds it) must not end
            # the writer task: its callers would wait forever and every later write fail.
            log.exception("group commit of %d writes failed", len(batch))
            self._fail(batch, str(exc))
            return
        self.commits += 1
        self.commit_seconds += loop.time() - started
        for item, rowid in zip(batch, ids, strict=True):
            if not item.done.done():
                item.done.set_result(rowid)

    @staticmethod
    def _fail(batch: list[PendingWrite], why: str) -> None:
        failure = StoreUnavailable(f"commit failed: {why}")
        for item in batch:
            if not item.done.done():
                item.done.set_exception(failure)

    async def _run_batch(self, batch: list[PendingWrite]) -> list[int]:
        # One thread hop for the whole batch: the statements run back to back on the
        # writer thread inside one transaction, then one commit (one fsync).
        def body(conn: sqlite3.Connection) -> list[int]:
            ids: list[int] = []
            with self._write_lock.held(BUSY_TIMEOUT):
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

        db = self.db
        result: list[int] = await db._execute(body, db._conn)  # type: ignore[no-untyped-call]
        return result

    async def run_in_transaction(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run a synchronous function on the writer's connection inside one transaction.

        For multi-statement changes that must be all-or-nothing (imports, approvals).
        """
        db = self.db

        def body(conn: sqlite3.Connection) -> Any:
            with self._write_lock.held(BUSY_TIMEOUT):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise

        try:
            return await db._execute(body, db._conn)  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"transaction failed: {exc}") from exc

    # -- events -----------------------------------------------------------------------------

    async def record_event(self, event: Event, sent_key: str = "") -> int:
        also: tuple[tuple[str, Sequence[Any]], ...] = ()
        if sent_key:  # last-sent tracking rides in the same commit as the event
            also = ((_UPSERT_LAST_SENT, (event.sender_id, sent_key, event.created_at)),)
        return await self.write(_INSERT_EVENT, event_row(event), also)

    async def query_events(self, flt: EventFilter) -> list[dict[str, Any]]:
        sql, params = events_query(flt)
        try:
            rows = await self.db.execute_fetchall(sql, params)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"query failed: {exc}") from exc
        return [row_dict(dict(row)) for row in rows]

    # -- consent ------------------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self._reader is None:
            raise StoreUnavailable("store is not open")
        try:
            return self._reader.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"consent lookup failed: {exc}") from exc

    async def consent_history(self, sender_id: str, address_key: str) -> list[ConsentEvent]:
        """The effective consent events of one (sender, address): the hot-path lookup."""
        rows = self._read(
            SELECT_CONSENT + " WHERE sender_id = ? AND address_key = ? AND effective = 1",
            (sender_id, address_key),
        )
        return [row_event(row) for row in rows]

    async def consent_records(self, sender_id: str, address_key: str) -> list[dict[str, Any]]:
        """Every stored event of one (sender, address), pending ones included, oldest first."""
        rows = await self.db.execute_fetchall(
            f"SELECT id, {', '.join(CONSENT_COLUMNS)} FROM consent_records "
            "WHERE sender_id = ? AND address_key = ? ORDER BY occurred_at, id",
            (sender_id, address_key),
        )
        return [dict(row) for row in rows]

    async def last_sent(self, sender_id: str, address_key: str) -> float | None:
        rows = self._read(
            "SELECT last_sent_at FROM consent_last_sent WHERE sender_id = ? AND address_key = ?",
            (sender_id, address_key),
        )
        return float(rows[0][0]) if rows else None

    async def active_suppression(self, address_key: str) -> dict[str, Any] | None:
        rows = self._read(ACTIVE_SUPPRESSION, (address_key,))
        return dict(zip(SUPPRESSION_COLUMNS, rows[0], strict=True)) if rows else None

    async def recipient_state(
        self, sender_id: str, address_key: str
    ) -> tuple[list[ConsentEvent], dict[str, Any] | None]:
        return (await self.consent_history(sender_id, address_key),
                await self.active_suppression(address_key))

    async def append_consent(self, event: ConsentEvent, address: str) -> bool:
        """Record one live consent event; False when its source_ref was recorded already."""
        try:
            await self.write(_INSERT_CONSENT, consent_row(event, address, time.time(), True))
        except StoreUnavailable as exc:
            if "UNIQUE constraint failed" in str(exc):
                return False
            raise
        return True

    async def insert_consent_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Bulk insert (imports): one short transaction per chunk, off the group-commit queue."""
        await self.run_in_transaction(lambda conn: conn.executemany(_INSERT_CONSENT, rows))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in its own transaction; returns the number of rows changed."""
        result: int = await self.run_in_transaction(lambda conn: conn.execute(sql, params).rowcount)
        return result

    async def execute_all(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Several statements in one transaction (all or nothing); rows changed by each."""

        def body(conn: sqlite3.Connection) -> list[int]:
            return [conn.execute(sql, params).rowcount for sql, params in statements]

        result: list[int] = await self.run_in_transaction(body)
        return result

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            rows = await self.db.execute_fetchall(sql, params)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"query failed: {exc}") from exc
        return [dict(row) for row in rows]
