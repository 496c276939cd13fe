"""The store interface every backend implements: lifecycle, migrations, the event log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.consent.model import ConsentEvent
from gateway.model import Event


@dataclass(frozen=True, slots=True)
class EventFilter:
    since: float | None = None
    until: float | None = None
    verdict: str | None = None
    phase: str | None = None  # mail | rcpt | data
    rule: str | None = None
    client: str | None = None
    sender_id: str | None = None
    recipient: str | None = None
    limit: int = 100
    before_id: int | None = None  # cursor: rows with a smaller id (newest first)


@dataclass(slots=True)
class PendingWrite:
    """One write waiting for the group commit; `done` resolves once it is committed."""

    sql: str
    params: Sequence[Any]
    also: tuple[tuple[str, Sequence[Any]], ...] = ()  # more statements in the same commit
    done: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


async def group_commit_loop(
    queue: asyncio.Queue[PendingWrite | None],
    max_batch: int,
    commit: Callable[[list[PendingWrite]], Awaitable[None]],
) -> None:
    """Commit what the queue holds in batches: each batch is the first waiting write plus
    whatever queued up meanwhile (up to `max_batch`); None ends the loop after the batch."""
    while True:
        first = await queue.get()
        if first is None:
            return
        batch = [first]
        closing = False
        while len(batch) < max_batch:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is None:
                closing = True
                break
            batch.append(item)
        await commit(batch)
        if closing:
            return


class Store(Protocol):
    """What the gateway needs from persistence; every method may raise StoreUnavailable."""

    applied: list[str]  # migrations applied by open()
    commits: int  # group commits so far, and the seconds they took (for /metrics)
    commit_seconds: float

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None:
        """Flush pending writes and disconnect."""

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""

    async def record_event(self, event: Event, sent_key: str = "") -> int:
        """Append one event; returns once it is durably committed (group commit).

        `sent_key` (an address key) also records "advertising mail went out" for the
        event's sender in the same commit (last-sent tracking for retention).
        """

    async def consent_history(self, sender_id: str, address_key: str) -> list[ConsentEvent]:
        """The effective consent events of one (sender, address): the hot-path lookup."""

    async def consent_records(self, sender_id: str, address_key: str) -> list[dict[str, Any]]:
        """Every stored consent row of one (sender, address), pending ones included."""

    async def last_sent(self, sender_id: str, address_key: str) -> float | None:
        """When advertising mail last went to this address under this sender."""

    async def active_suppression(self, address_key: str) -> dict[str, Any] | None:
        """The address's suppression in force (a hard bounce ...), if any."""

    async def recipient_state(
        self, sender_id: str, address_key: str
    ) -> tuple[list[ConsentEvent], dict[str, Any] | None]:
        """consent_history() and active_suppression() at once: the RCPT hot-path lookup."""

    async def append_consent(self, event: ConsentEvent, address: str) -> bool:
        """Record one live consent event; False if its source_ref was recorded already."""

    async def insert_consent_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Bulk insert of consent rows (imports), in one transaction."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in its own transaction; the number of rows changed."""

    async def execute_all(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Several statements in one transaction (all or nothing); rows changed by each."""

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read query."""

    async def query_events(self, flt: EventFilter) -> list[dict[str, Any]]:
        """Events matching the filter, newest first."""


MAX_PAGE = 10_000


def newest_first_page(
    select: str, where: list[str], params: list[Any], before_id: int | None, limit: int
) -> tuple[str, list[Any]]:
    """`select` with its filters, newest first, one keyset page (rows with id < before_id)."""
    where, params = list(where), list(params)
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    sql = select + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(max(1, min(limit, MAX_PAGE)))
    return sql, params
