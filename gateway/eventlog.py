"""Recording decisions: the event row (committed before the reply) and its JSON log line;
and pruning old events."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from gateway.errors import StoreUnavailable
from gateway.model import Event
from gateway.store.base import Store

if TYPE_CHECKING:
    from gateway.web.metrics import Metrics

log = logging.getLogger("gateway.decision")


# Event, session and error-reference ids name log lines and rows; they grant nothing, so
# they need uniqueness, not secrecy: 64 bits from a generator seeded from os.urandom (again
# in a forked child), without secrets.token_hex's getrandom() call, three times a message.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_id() -> str:
    return f"{_ids.getrandbits(64):016x}"


class EventLog:
    def __init__(self, store: Store, metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self.failures = 0

    async def record(self, event: Event, sent_key: str = "") -> None:
        """Commit the event (group commit) and write its log line; raise StoreUnavailable."""
        if not event.event_id:
            event.event_id = new_id()
        if not event.created_at:
            event.created_at = time.time()
        fields = {
            "event_id": event.event_id,
            "verdict": event.verdict.value,
            "phase": event.phase.value,
            "rules": list(event.rule_ids),
            "monitored": list(event.monitored),
            "client": event.client,
            "client_ip": event.client_ip,
            "sender_id": event.sender_id,
            "mail_from": event.mail_from,
            "recipient": event.recipient,
            "message_id": event.message_id,
            "size": event.size,
            "reply": event.reply,
            "upstream_reply": event.upstream_reply,
            "session": event.session_id,
        }
        try:
            await self.store.record_event(event, sent_key)
        except StoreUnavailable as exc:
            self.failures += 1
            fields["store_error"] = str(exc)
            log.error("decision not stored", extra={"fields": fields})
            raise
        log.info("decision", extra={"fields": fields})
        if self.metrics is not None:
            self.metrics.decision(event.verdict.value, event.rule_ids or event.monitored)
            for stage, seconds in event.timings.items():
                self.metrics.stage(stage, seconds)


# -- pruning ------------------------------------------------------------------------------------
# The event log is the operational record (consent evidence, the audit trail and last-sent
# dates live in their own tables and are not touched). It grows by ~2 KB a message with its
# indexes, so a long-running gateway needs it trimmed: oldest first, a bounded batch a
# transaction, so the gateway's own group commits get the write lock between two batches.

PRUNE_BATCH = 1_000
_OLDEST_BEFORE = "SELECT id FROM events WHERE created_at < ? ORDER BY created_at LIMIT ?"
_PRUNE = f"DELETE FROM events WHERE id IN ({_OLDEST_BEFORE})"


async def events_before(store: Store, before: float) -> int:
    """How many events were created before `before` (epoch seconds)."""
    rows = await store.fetch("SELECT COUNT(*) AS n FROM events WHERE created_at < ?", (before,))
    return int(rows[0]["n"])


async def prune_events(
    store: Store, before: float, batch: int = PRUNE_BATCH
) -> AsyncIterator[int]:
    """Delete the events created before `before`, oldest first, `batch` rows a transaction;
    yield each batch's count. Stopping early leaves whole batches deleted, never half of one."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    while True:
        deleted = await store.execute(_PRUNE, (before, batch))
        if deleted:
            yield deleted
        if deleted < batch:
            return
