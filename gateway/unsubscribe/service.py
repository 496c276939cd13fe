"""Recording an opt-out that arrived by one-click POST, the confirmation page or mailto.

Idempotency choice: before writing, the (sender, address) history is read; a replay is not
written again (False is returned): the newest event is an all-topic opt-out that this
gateway recorded less than REPLAY_SECONDS ago. (The newest event, not the refusal in
force for mail without a topic: a form opt-in to one topic since lifts it for that topic,
and a click after it must be written.) Opt-outs of one store are serialised by a
per-store lock, so 50 concurrent one-click POSTs (mailbox providers retry, users
double-click) write one row. Any other refusal in force does not make a new one redundant:
consent can be reported later with an earlier time (a CMP sync, an import), and a form
opt-in dated after that older refusal lifts it, while the person's click came after both.
(Writing only when no refusal was in force lost such clicks.) Checking the state rather
than deduplicating by token keeps a later opt-out effective after the recipient opted in
again through a form, even when it comes from the same old mail. Two gateway instances
racing may both write a row: a duplicate refusal is harmless evidence.
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime

from gateway.consent.model import ConsentEvent, ConsentMethod, ConsentStatus
from gateway.store.base import Store

__all__ = ["OPTOUT_METHODS", "record_optout"]

OPTOUT_METHODS = frozenset({ConsentMethod.ONE_CLICK, ConsentMethod.UNSUBSCRIBE_PAGE,
                            ConsentMethod.MAILTO, ConsentMethod.COMPLAINT})
SOURCE_SYSTEM = "gateway"
REPLAY_SECONDS = 10.0
_MAX_UA = 512

_locks: weakref.WeakKeyDictionary[object, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock(store: Store) -> asyncio.Lock:
    lock = _locks.get(store)
    if lock is None:
        lock = _locks[store] = asyncio.Lock()
    return lock


async def record_optout(
    store: Store,
    sender_id: str,
    address_key: str,
    method: ConsentMethod,
    client_ip: str | None,
    user_agent: str | None,
    *,
    now: datetime | None = None,
) -> bool:
    """Record that the recipient refused all mail of this sender; False for a replay."""
    if method not in OPTOUT_METHODS:
        raise ValueError(f"{method.value} is not an opt-out channel")
    async with _lock(store):
        moment = now or datetime.now(UTC)
        history = await store.consent_history(sender_id, address_key)
        newest = max(history, key=lambda e: e.occurred_at, default=None)
        if (newest is not None and newest.status is ConsentStatus.OPTED_OUT
                and newest.topic is None and newest.source_system == SOURCE_SYSTEM
                and (moment - newest.occurred_at).total_seconds() < REPLAY_SECONDS):
            return False  # a replay: nothing was recorded since this gateway's opt-out
        event = ConsentEvent(
            sender_id=sender_id,
            address_key=address_key,
            status=ConsentStatus.OPTED_OUT,
            method=method,
            occurred_at=moment,
            source_system=SOURCE_SYSTEM,
            source_ref=None,
            client_ip=client_ip,
            user_agent=(user_agent or None) and user_agent[:_MAX_UA],
            recorded_by=SOURCE_SYSTEM,
        )
        return await store.append_consent(event, address_key)
