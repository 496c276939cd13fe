"""The store interface every backend implements: lifecycle, migrations, the event log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.model import Event


@dataclass(frozen=True, slots=True)
class EventFilter:
    since: float | None = None
    until: float | None = None
    verdict: str | None = None
    rule: str | None = None
    client: str | None = None
    sender_id: str | None = None
    recipient: str | None = None
    limit: int = 100
    before_id: int | None = None  # cursor: rows with a smaller id (newest first)


class Store(Protocol):
    """What the gateway needs from persistence; every method may raise StoreUnavailable."""

    applied: list[str]  # migrations applied by open()

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None:
        """Flush pending writes and disconnect."""

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""

    async def record_event(self, event: Event) -> int:
        """Append one event; returns once it is durably committed (group commit)."""

    async def query_events(self, flt: EventFilter) -> list[dict[str, Any]]:
        """Events matching the filter, newest first."""
