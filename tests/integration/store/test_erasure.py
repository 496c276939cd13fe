"""Erasure requests on every backend: the address leaves the store, the refusal stays."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.config import SenderConfig
from gateway.consent import erasure, service, suppression
from gateway.consent.address import address_hash
from gateway.consent.model import ConsentStatus, Law, Outcome, decide
from gateway.model import EventVerdict, Phase
from gateway.store import Store
from gateway.store.consent_rows import consent_row
from tests.integration.store.factories import consent, event

pytestmark = pytest.mark.integration
SENDER = SenderConfig(id="sample", domains=("example.jp",), law="tokuden")
KEYS = [secrets.token_bytes(32)]
TABLES = ("consent_events", "consent_last_sent", "suppressions", "events", "import_batches")


async def _anywhere(store: Store, needle: str) -> list[str]:
    """Every table row (but the audit trail's older entries) that still holds `needle`."""
    found = []
    for table in TABLES:
        for row in await store.fetch(f"SELECT * FROM {table}"):
            if needle in json.dumps(row, ensure_ascii=False, default=str).lower():
                found.append(f"{table}: {row}")
    return found


async def _seed(store: Store) -> None:
    await store.append_consent(consent("taro@example.com"), "Taro@Example.com")
    await store.append_consent(consent("taro@example.com", sender="other"), "taro@example.com")
    await store.append_consent(consent("hanako@example.com"), "hanako@example.com")
    await store.record_event(event(1, recipient="Taro@Example.COM", verdict=EventVerdict.REJECTED,
                                   phase=Phase.RCPT, reply="550 5.1.1 <Taro@Example.COM> unknown"),
                             sent_key="taro@example.com")
    await store.record_event(event(2, recipient="hanako@example.com"))
    await suppression.suppress(store, "taro@example.com", suppression.MANUAL,
                               "asked by taro@example.com", actor="ops")
    await suppression.clear(store, "taro@example.com", "ops", "taro@example.com said so")
    await suppression.suppress(store, "taro@example.com", suppression.HARD_BOUNCE,
                               "550 5.1.1 <taro@example.com>: unknown")


async def test_erasure_leaves_no_address_and_keeps_a_hashed_refusal(store: Store) -> None:
    await _seed(store)
    assert await _anywhere(store, "taro@example.com")  # the check can find it
    done = await erasure.erase(store, "TARO@example.com", senders=["sample", "third"],
                               keys=KEYS, actor="dpo-kimura", reason="request #7")
    assert await _anywhere(store, "taro@example.com") == []
    hashed = address_hash("taro@example.com", KEYS[0])
    assert done.address_hash == hashed
    assert done.senders == ("other", "sample", "third")  # configured and found in the store
    assert (done.consent_rows, done.last_sent_rows, done.suppressions, done.events) == (2, 1, 2, 1)
    # the other person is untouched
    assert len(await store.consent_history("sample", "hanako@example.com")) == 1
    assert len(await store.fetch("SELECT * FROM events WHERE recipient = ?",
                                 ("hanako@example.com",))) == 1
    # the refusal stays, under the hash, for every sender
    for sender in done.senders:
        [refusal] = await store.consent_history(sender, hashed)
        assert refusal.status is ConsentStatus.OPTED_OUT
        assert refusal.source_system == erasure.ERASURE_SOURCE
    # at RCPT the plain address finds nothing: no consent, no mail
    assert await store.consent_history("sample", "taro@example.com") == []
    [logged] = await store.fetch("SELECT recipient, reply FROM events WHERE id = 1")
    assert logged == {"recipient": hashed, "reply": f"550 5.1.1 <{hashed}> unknown"}
    audit = await store.fetch("SELECT actor, action, subject, reason FROM audit_log "
                              "WHERE action = 'consent.erase'")
    assert audit == [{"actor": "dpo-kimura", "action": "consent.erase", "subject": hashed,
                      "reason": "request #7"}]


async def test_erasing_an_address_leaves_one_that_ends_like_it(store: Store) -> None:
    await _seed(store)
    done = await erasure.erase(store, "aro@example.com", senders=["sample"], keys=KEYS,
                               actor="dpo", reason="another person")
    assert (done.consent_rows, done.events, done.suppressions) == (0, 0, 0)
    [logged] = await store.fetch("SELECT recipient, reply FROM events WHERE id = 1")
    assert logged == {"recipient": "Taro@Example.COM",
                      "reply": "550 5.1.1 <Taro@Example.COM> unknown"}


async def test_a_later_import_cannot_undo_the_refusal_but_the_person_can(
    store: Store, tmp_path: Path
) -> None:
    await _seed(store)
    done = await erasure.erase(store, "taro@example.com", senders=["sample"], keys=KEYS,
                               actor="dpo", reason="request")
    erased_at = datetime.fromtimestamp(
        (await store.consent_history("sample", done.address_hash))[0].occurred_at.timestamp(),
        UTC)
    listing = tmp_path / "old-list.csv"
    later = datetime.now(UTC).isoformat()  # consent dated after the erasure, still refused
    listing.write_text(
        "email,status,method,consented_at\n"
        f"Taro@Example.com,opted_in,web_form,{later}\n"
        "jiro@example.com,opted_in,web_form,2026-01-10T10:00:00+09:00\n", encoding="utf-8")
    result = await service.import_file(store, sender=SENDER, path=listing, recorded_by="mk",
                                       approval_required=False, erasure_keys=KEYS)
    assert (result.state, result.grants) == ("approved", 2)
    events = await store.consent_history("sample", "taro@example.com")
    refusals = [e for e in events if e.status is ConsentStatus.OPTED_OUT]
    # re-attached, at the time of the erasure: an imported consent, even a later one, loses
    assert len(refusals) == 1 and refusals[0].occurred_at == erased_at
    now = datetime.now(UTC) + timedelta(hours=1)
    assert decide(events, None, Law.TOKUDEN, now).outcome is Outcome.OPTED_OUT
    jiro = await store.consent_history("sample", "jiro@example.com")
    assert decide(jiro, None, Law.TOKUDEN, now).allowed
    # the person subscribes again, live: that lifts the refusal
    await store.append_consent(consent("taro@example.com", when=now.timestamp() - 60),
                               "taro@example.com")
    events = await store.consent_history("sample", "taro@example.com")
    assert decide(events, None, Law.TOKUDEN, now).allowed
    assert await erasure.erased_refusal(store, "sample", "taro@example.com", KEYS) == (
        erased_at.timestamp())
    assert await erasure.erased_refusal(store, "sample", "jiro@example.com", KEYS) is None


async def test_an_erased_address_among_import_rows_gets_one_refusal_back(store: Store) -> None:
    assert await erasure.erased_refusals(store, "sample") == {}  # nothing erased: no hashing
    await erasure.erase(store, "taro@example.com", senders=["sample"], keys=KEYS, actor="dpo",
                        reason="request")
    erased = await erasure.erased_refusals(store, "sample")
    assert list(erased) == [address_hash("taro@example.com", KEYS[0])]
    assert await erasure.erased_refusals(store, "other") == {}  # only the senders it names
    rows = [(*consent_row(consent(key), key, 1.0e9, False)[:13], "batch-1", 0)
            for key in ("taro@example.com", "jiro@example.com", "taro@example.com")]
    seen: set[str] = set()
    [back] = erasure.refusal_rows(rows, erased, KEYS, seen)
    assert back[:5] == ("sample", "taro@example.com", "taro@example.com", "opted_out", "manual")
    assert (back[6], back[8], back[13]) == (next(iter(erased.values())), "erasure", "batch-1")
    assert erasure.refusal_rows(rows, erased, KEYS, seen) == []  # once per import
    # a hash made with another key names no one
    assert erasure.refusal_rows(rows, erased, [b"k" * 32], set()) == []


async def test_an_idn_address_is_erased_in_both_of_its_forms(store: Store) -> None:
    """The key holds the A-label; a client with SMTPUTF8 wrote the U-label in the log."""
    ulabel, alabel = "hanako@例え.jp", "hanako@xn--r8jz45g.jp"
    await store.append_consent(consent(alabel), ulabel)
    await store.record_event(event(1, recipient=ulabel, verdict=EventVerdict.REJECTED,
                                   phase=Phase.RCPT, reply=f"550 5.7.1 <{ulabel}> refused"))
    await store.record_event(event(2, recipient=alabel))
    await store.record_event(event(3, recipient="hanako@例え.jpn"))  # another domain
    done = await erasure.erase(store, ulabel, senders=["sample"], keys=KEYS, actor="dpo",
                               reason="request #9")
    assert done.events == 2 and done.consent_rows == 1
    assert await _anywhere(store, alabel) == []
    [other] = await _anywhere(store, ulabel)  # only as the start of the other domain's address
    assert other.startswith("events: {'id': 3,")
    rows = await store.fetch("SELECT recipient, reply FROM events ORDER BY id")
    assert [r["recipient"] for r in rows] == [done.address_hash, done.address_hash,
                                              "hanako@例え.jpn"]
    assert rows[0]["reply"] == f"550 5.7.1 <{done.address_hash}> refused"
