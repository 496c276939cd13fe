"""Erasure requests: a person's address leaves the store, and a keyed hash keeps the refusal.

A person may ask for their personal data to be deleted (個人情報保護法), and their refusal
must still hold (特定電子メール法 Art. 3(3)): a list imported later that still holds the
address must not mail them again. legal.md §5.2: keep opt-outs indefinitely, hashed.

Erasing deletes every consent row, last-send record and suppression of the address,
writes it out of the event log, and records one opt-out per sender identity under the
address's keyed hash. The RCPT hot path never computes a hash: with the plain rows gone,
consent is missing and mail is refused. The hash is looked for only where the plain
address comes back — a consent import or ingest — and the refusal is then re-attached to
the plain address as an opt-out at the time of the erasure, which no import can lift and
only the person's own later live opt-in can.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.consent.address import (
    HASH_PREFIX,
    address_hash,
    normalize_address,
    suppression_key,
)
from gateway.consent.model import ConsentEvent, ConsentMethod, ConsentStatus
from gateway.store.base import Store
from gateway.store.consent_rows import INSERT_CONSENT, consent_row
from gateway.unsubscribe.tokens import parse_secret

__all__ = ["ERASURE_SOURCE", "Erasure", "configured_keys", "erase", "erased_refusal",
           "erased_refusals", "load_keys", "reattach", "refusal_rows"]

ERASURE_SOURCE = "erasure"  # source_system of the hashed opt-outs and of their re-attached copies
_ERASED = "(erased)"
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~.-"  # what may stand next to an address's first char


def configured_keys(config: Config) -> tuple[bytes, ...]:
    """policy.erasure_key_file's keys, read once per process; () when none is configured."""
    path = config.policy.erasure_key_file
    return _keys_of(str(path)) if path else ()


@functools.lru_cache(maxsize=4)
def _keys_of(path: str) -> tuple[bytes, ...]:
    return tuple(load_keys(path))


def load_keys(path: str | Path) -> list[bytes]:
    """The keys of policy.erasure_key_file: the first hashes new erasures, all are matched.

    The file has the format `tokuden secret generate` writes. Unlike the unsubscribe key, it
    is never rotated away: a hash made with a key that is gone can no longer be matched.
    """
    return [key for _kid, key in parse_secret(Path(path).read_text(encoding="ascii"), str(path))]


@dataclass(frozen=True, slots=True)
class Erasure:
    """What one erasure changed (the address itself is nowhere in it)."""

    address_hash: str
    senders: tuple[str, ...]
    consent_rows: int
    last_sent_rows: int
    suppressions: int
    events: int

    def to_dict(self) -> dict[str, Any]:
        return {"address_hash": self.address_hash, "senders": list(self.senders),
                "consent_rows_deleted": self.consent_rows,
                "last_sent_deleted": self.last_sent_rows,
                "suppressions_rewritten": self.suppressions, "events_rewritten": self.events}


def _like(text: str) -> str:
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


async def erase(store: Store, address: str, *, senders: Iterable[str], keys: Sequence[bytes],
                actor: str, reason: str) -> Erasure:
    """Erase `address` (InvalidAddress if it is none) in one transaction; audited."""
    normalized = normalize_address(address)
    key = suppression_key(normalized)
    hashed = address_hash(key, keys[0])
    now = time.time()
    known = await store.fetch(
        "SELECT DISTINCT sender_id FROM consent_events WHERE address_key = ?", (key,))
    every = sorted({*senders, *(r["sender_id"] for r in known)})
    # The event log keeps addresses as the client wrote them: an IDN domain may be there as
    # U-labels (例え.jp) as well as A-labels (xn--r8jz45g.jp), the key's form.
    forms = sorted({key, f"{normalized.local.lower()}@{normalized.domain_unicode.lower()}"})
    # The whole address, not a part of another: "aro@example.com" is not in "taro@...".
    either = "|".join(map(re.escape, forms))
    pattern = re.compile(rf"(?<![{_ATEXT}])(?:{either})(?![\w-]|\.\w)", re.IGNORECASE)
    candidates = await store.fetch(  # LIKE narrows the scan; the pattern decides
        "SELECT id, recipient, reply, upstream_reply, results FROM events WHERE "
        + " OR ".join(["lower(recipient) LIKE ? ESCAPE '\\'"] * len(forms)),
        tuple(map(_like, forms)))
    logged = [r for r in candidates if pattern.search(str(r["recipient"]))]
    statements: list[tuple[str, Sequence[Any]]] = [
        ("DELETE FROM consent_events WHERE address_key = ?", (key,)),
        ("DELETE FROM consent_last_sent WHERE address_key = ?", (key,)),
        ("UPDATE suppressions SET address_key = ?, detail = ?, clear_reason = "
         "CASE WHEN clear_reason IS NULL THEN NULL ELSE ? END WHERE address_key = ?",
         (hashed, _ERASED, _ERASED, key)),
    ]
    for sender_id in every:
        refusal = ConsentEvent(
            sender_id=sender_id, address_key=hashed, status=ConsentStatus.OPTED_OUT,
            method=ConsentMethod.MANUAL, occurred_at=datetime.fromtimestamp(now, UTC),
            source_system=ERASURE_SOURCE, recorded_by=actor)
        statements.append((INSERT_CONSENT, consent_row(refusal, hashed, now, True)))
    for row in logged:
        statements.append((
            "UPDATE events SET recipient = ?, reply = ?, upstream_reply = ?, results = ? "
            "WHERE id = ?",
            (*(pattern.sub(hashed, str(row[c]))
               for c in ("recipient", "reply", "upstream_reply", "results")), row["id"])))
    statements.append((
        "INSERT INTO audit_log (at, actor, action, subject, reason) VALUES (?, ?, ?, ?, ?)",
        (now, actor, "consent.erase", hashed, reason)))
    counts = await store.execute_all(statements)
    return Erasure(hashed, tuple(every), counts[0], counts[1], counts[2], len(logged))




async def erased_refusals(store: Store, sender_id: str) -> dict[str, float]:
    """Hash → time of every erasure refusal of one sender (loaded once per import)."""
    # A range of address_key, so the (sender_id, address_key) index finds the hashed rows
    # without reading the sender's other millions.
    end = HASH_PREFIX[:-1] + chr(ord(HASH_PREFIX[-1]) + 1)
    rows = await store.fetch(
        "SELECT address_key, min(occurred_at) AS at FROM consent_events WHERE sender_id = ? "
        "AND address_key >= ? AND address_key < ? AND source_system = ? "
        "AND status = 'opted_out' GROUP BY address_key",
        (sender_id, HASH_PREFIX, end, ERASURE_SOURCE))
    return {r["address_key"]: float(r["at"]) for r in rows}


async def erased_refusal(store: Store, sender_id: str, key: str,
                         keys: Sequence[bytes]) -> float | None:
    """When the address with this suppression key was erased for the sender, if it was."""
    hashes = [address_hash(key, k) for k in keys]
    marks = ", ".join("?" for _ in hashes)
    rows = await store.fetch(
        "SELECT min(occurred_at) AS at FROM consent_events WHERE sender_id = ? AND "
        f"source_system = ? AND status = 'opted_out' AND address_key IN ({marks})",
        (sender_id, ERASURE_SOURCE, *hashes))
    at = rows[0]["at"] if rows else None
    return float(at) if at is not None else None


async def reattach(store: Store, grant: ConsentEvent, address: str,
                   keys: Sequence[bytes]) -> bool:
    """Before a grant for an erased address is recorded, give its refusal back; True if so."""
    at = await erased_refusal(store, grant.sender_id, grant.address_key, keys)
    if at is None:
        return False
    history = await store.consent_history(grant.sender_id, grant.address_key)
    if any(e.source_system == ERASURE_SOURCE for e in history):
        return False  # given back already
    refusal = ConsentEvent(
        sender_id=grant.sender_id, address_key=grant.address_key,
        status=ConsentStatus.OPTED_OUT, method=ConsentMethod.MANUAL,
        occurred_at=datetime.fromtimestamp(at, UTC), source_system=ERASURE_SOURCE,
        recorded_by=grant.recorded_by)
    return await store.append_consent(refusal, address)


def refusal_rows(rows: Iterable[Sequence[Any]], erased: dict[str, float], keys: Sequence[bytes],
                 seen: set[str]) -> list[tuple[Any, ...]]:
    """Opt-out rows that re-attach an erased refusal to the plain addresses among `rows`.

    `rows` are consent row tuples (consent_row's columns); `seen` collects the keys already
    re-attached, so a file that lists an address twice re-attaches it once.
    """
    if not erased:
        return []
    out: list[tuple[Any, ...]] = []
    for row in rows:
        key = row[1]
        if key in seen:
            continue
        at = next((erased[h] for h in (address_hash(key, k) for k in keys) if h in erased), None)
        if at is None:
            continue
        seen.add(key)
        out.append((row[0], key, row[2], ConsentStatus.OPTED_OUT.value,
                    ConsentMethod.MANUAL.value, None, at, row[7], ERASURE_SOURCE, None, None,
                    None, row[12], row[13], row[14]))
    return out
