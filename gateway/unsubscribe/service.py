"""Recording an opt-out that arrived by one-click POST, the confirmation page or mailto.

Idempotency choice: before writing, the current decision for (sender, address) is read;
when an all-topic opt-out is already in force nothing new is written and False is
returned. Opt-outs of one store are serialised by a per-store lock, so 50 concurrent
one-click POSTs (mailbox providers retry, users double-click) write one row. Checking the
state rather than deduplicating by token keeps a later opt-out effective after the
recipient opted in again through a form, even when it comes from the same old mail. Two
gateway instances racing may both write a row: a duplicate refusal is harmless evidence.
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime

from gateway.consent.model import ConsentEvent, ConsentMethod, ConsentStatus, Law, Outcome, decide
from gateway.store.base import Store

__all__ = ["OPTOUT_METHODS", "record_optout"]

OPTOUT_METHODS = frozenset({ConsentMethod.ONE_CLICK, ConsentMethod.UNSUBSCRIBE_PAGE,
                            ConsentMethod.MAILTO})
SOURCE_SYSTEM = "gateway"
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
    """Record that the recipient refused all mail of this sender; False if already in force."""
    if method not in OPTOUT_METHODS:
        raise ValueError(f"{method.value} is not an opt-out channel")
    async with _lock(store):
        moment = now or datetime.now(UTC)
        history = await store.consent_history(sender_id, address_key)
        # law does not matter for opt-outs: decide() applies refusals the same way under both
        current = decide(history, None, Law.TOKUDEN, moment)
        if (current.outcome is Outcome.OPTED_OUT and current.event is not None
                and current.event.topic is None):
            return False
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
