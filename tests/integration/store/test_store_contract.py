"""The store contract, run against every backend (SQLite and PostgreSQL) with the same asserts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import types
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.access.report import compliance_report
from gateway.config import Config, SenderConfig
from gateway.consent import service, suppression
from gateway.consent.model import ConsentStatus
from gateway.consent.suppression_import import import_suppressions
from gateway.errors import StoreUnavailable
from gateway.eventlog import events_before, prune_events
from gateway.model import Event, EventVerdict, Outcome, Phase, RuleResult
from gateway.store import EventFilter, Store, open_store
from gateway.store.consent_rows import consent_row
from gateway.store.migrations import migrations
from gateway.volume import DAY, SenderVolume, Tally
from tests.integration.store.factories import T0, consent, event

pytestmark = pytest.mark.integration

def backend(store: Store) -> str:
    return str(store.backend)  # type: ignore[attr-defined]


# -- migrations -------------------------------------------------------------------------------


async def test_fresh_store_applies_every_migration_once(store: Store, store_url: str) -> None:
    names = [name for name, _ in migrations(backend(store))]
    assert names == [name for name, _ in migrations("sqlite")]  # same numbering on both
    assert store.applied == names
    assert await store.migrate() == []
    recorded = await store.fetch("SELECT name FROM schema_migrations ORDER BY name")
    assert [r["name"] for r in recorded] == names
    again = open_store(store_url)
    await again.open()
    try:
        assert again.applied == []
    finally:
        await again.close()


# -- events -----------------------------------------------------------------------------------


async def _seed_events(store: Store) -> list[Event]:
    made = [
        event(1),
        event(2, verdict=EventVerdict.REJECTED, rule_ids=("footer.contact",), reply="550 5.7.1 [footer.contact] x"),
        event(3, verdict=EventVerdict.REJECTED, rule_ids=("optin.missing", "footer.contact"), phase=Phase.RCPT),
        event(4, monitored=("align.dkim",), client="receipts", client_class="transactional"),
        event(5, verdict=EventVerdict.TEMPFAILED, sender_id="other", reply="451 4.3.0 store"),
        event(6, recipient="user1@example.com", rule_ids=("a_b",), verdict=EventVerdict.REJECTED),
    ]
    for item in made:
        await store.record_event(item)
    return made


async def test_events_round_trip_in_the_stable_shape(store: Store) -> None:
    await _seed_events(store)
    [row] = await store.query_events(EventFilter(recipient="user3@example.com"))
    assert row["event_id"] == "e000003"
    assert row["verdict"] == "rejected"
    assert row["phase"] == "rcpt"
    assert row["rule_ids"] == ["optin.missing", "footer.contact"]
    assert row["results"] == [{"rule": "auth.from_invalid", "outcome": "pass"}]
    assert row["timings"] == {"total": 0.01}
    assert row["size"] == 1003
    assert row["created_at"] == pytest.approx(T0 + 3)
    assert isinstance(row["id"], int)


async def test_rule_results_are_stored_as_arrays_and_read_back_as_objects(store: Store) -> None:
    results = (
        RuleResult("optin.missing", Outcome.PASS, "opted_in via web_form"),
        RuleResult("footer.contact", Outcome.FAIL, "no contact", {"part": "1", "n": 2}),
        RuleResult("align.dkim", Outcome.SKIP, "", {"why": "none"}),
        RuleResult("address.invalid", Outcome.PASS),
    )
    await store.record_event(event(1, results=results))
    stored = await store.fetch("SELECT results FROM events")
    assert json.loads(stored[0]["results"]) == [
        ["optin.missing", "pass", "opted_in via web_form"],
        ["footer.contact", "fail", "no contact", {"part": "1", "n": 2}],
        ["align.dkim", "skip", "", {"why": "none"}],
        ["address.invalid", "pass"],
    ]
    [row] = await store.query_events(EventFilter())
    assert row["results"] == [r.to_dict() for r in results]  # the shape the API always had


async def test_rows_stored_with_result_objects_still_read(store: Store) -> None:
    # rows written before the array form hold one JSON object per result
    await store.record_event(event(1))
    old = [{"rule": "optin.missing", "outcome": "pass", "detail": "opted_in"},
           {"rule": "footer.contact", "outcome": "fail", "data": {"part": "2"}}]
    await store.execute("UPDATE events SET results = ?", (json.dumps(old),))
    [row] = await store.query_events(EventFilter())
    assert row["results"] == old


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (EventFilter(), ["e000006", "e000005", "e000004", "e000003", "e000002", "e000001"]),
        (EventFilter(since=T0 + 4), ["e000006", "e000005", "e000004"]),
        (EventFilter(until=T0 + 3), ["e000002", "e000001"]),
        (EventFilter(since=T0 + 2, until=T0 + 4), ["e000003", "e000002"]),
        (EventFilter(verdict="rejected"), ["e000006", "e000003", "e000002"]),
        (EventFilter(verdict="tempfailed"), ["e000005"]),
        (EventFilter(rule="footer.contact"), ["e000003", "e000002"]),
        (EventFilter(rule="optin.missing"), ["e000003"]),
        (EventFilter(rule="align.dkim"), ["e000004"]),  # a monitored rule counts
        (EventFilter(rule="footer"), []),  # whole rule ids only
        (EventFilter(rule="a_b"), ["e000006"]),
        (EventFilter(rule="axb"), []),  # `_` is not a wildcard
        (EventFilter(client="receipts"), ["e000004"]),
        (EventFilter(sender_id="other"), ["e000005"]),
        (EventFilter(recipient="user1@example.com"), ["e000006", "e000001"]),
        (EventFilter(verdict="rejected", rule="footer.contact", since=T0 + 3), ["e000003"]),
        (EventFilter(limit=2), ["e000006", "e000005"]),
    ],
)
async def test_every_event_filter(store: Store, flt: EventFilter, expected: list[str]) -> None:
    await _seed_events(store)
    assert [r["event_id"] for r in await store.query_events(flt)] == expected


async def test_cursor_walks_every_event_once_newest_first(store: Store) -> None:
    for n in range(1, 24):
        await store.record_event(event(n))
    seen: list[str] = []
    cursor: int | None = None
    while True:
        page = await store.query_events(EventFilter(limit=5, before_id=cursor))
        if not page:
            break
        assert len(page) <= 5
        seen.extend(r["event_id"] for r in page)
        cursor = page[-1]["id"]
    assert seen == [f"e{n:06d}" for n in range(23, 0, -1)]


async def test_concurrent_events_share_commits(store: Store) -> None:
    before = store.commits  # type: ignore[attr-defined]
    ids = await asyncio.gather(*(store.record_event(event(n)) for n in range(300)))
    commits = store.commits - before  # type: ignore[attr-defined]
    assert len(set(ids)) == 300 and all(i > 0 for i in ids)
    assert 1 <= commits < 300 / 4, f"{commits} commits for 300 events: no group commit"
    rows = await store.fetch("SELECT count(*) AS n FROM events")
    assert rows[0]["n"] == 300


async def test_a_duplicate_event_id_is_refused_without_losing_others(store: Store) -> None:
    await store.record_event(event(1))
    with pytest.raises(StoreUnavailable):
        await store.record_event(event(1))
    assert len(await store.query_events(EventFilter())) == 1


async def test_prune_deletes_old_events_oldest_first_in_batches(store: Store) -> None:
    # created_at T0+1 .. T0+12, stored out of order: the batches still go oldest first
    for n in (7, 3, 12, 1, 9, 5, 11, 2, 8, 4, 10, 6):
        await store.record_event(event(n), sent_key=f"key{n}")
    await store.append_consent(consent("key1"), "user1@example.com")
    await service.audit(store, "ops", "consent.lookup", "sample/key1")
    cutoff = T0 + 8  # events 1..7 are older
    assert await events_before(store, cutoff) == 7
    sizes: list[int] = []
    async for n in prune_events(store, cutoff, batch=3):
        left = await store.fetch("SELECT min(created_at) AS oldest FROM events")
        sizes.append(n)
        assert left[0]["oldest"] == T0 + 1 + sum(sizes)  # each batch took the oldest
    assert sizes == [3, 3, 1]
    kept = await store.query_events(EventFilter())
    assert sorted(e["event_id"] for e in kept) == [f"e{n:06d}" for n in range(8, 13)]
    assert await events_before(store, cutoff) == 0
    assert [x async for x in prune_events(store, cutoff)] == []  # nothing left: no batch
    # other tables are not the event log's
    for table, count in (("consent_events", 1), ("audit_log", 1), ("consent_last_sent", 12)):
        rows = await store.fetch(f"SELECT count(*) AS n FROM {table}")
        assert rows[0]["n"] == count, table


async def test_prune_with_an_exact_batch_ends_after_an_empty_one(store: Store) -> None:
    for n in range(1, 5):
        await store.record_event(event(n))
    assert [x async for x in prune_events(store, T0 + 100, batch=2)] == [2, 2]
    assert await events_before(store, T0 + 100) == 0
    with pytest.raises(ValueError, match="at least 1"):
        await anext(prune_events(store, T0, batch=0))


# -- consent ----------------------------------------------------------------------------------


async def test_append_consent_and_history(store: Store) -> None:
    assert await store.append_consent(consent("taro@example.com"), "Taro@example.com")
    assert await store.append_consent(
        consent("taro@example.com", ConsentStatus.OPTED_OUT, when=T0 + 60), "taro@example.com"
    )
    await store.append_consent(consent("hanako@example.com"), "hanako@example.com")
    await store.append_consent(consent("taro@example.com", sender="other"), "taro@example.com")
    history = await store.consent_history("sample", "taro@example.com")
    assert sorted(e.status for e in history) == [ConsentStatus.OPTED_IN, ConsentStatus.OPTED_OUT]
    first = next(e for e in history if e.status is ConsentStatus.OPTED_IN)
    assert first == consent("taro@example.com")  # every field survives the round trip
    assert first.occurred_at.tzinfo is not None
    records = await store.consent_records("sample", "taro@example.com")
    assert [r["status"] for r in records] == ["opted_in", "opted_out"]  # oldest first
    assert records[0]["address"] == "Taro@example.com"
    assert records[0]["effective"] == 1
    assert await store.consent_history("sample", "nobody@example.com") == []


async def test_the_monthly_report_counts_suppressions_on_every_backend(store: Store) -> None:
    for key in ("a@example.com", "b@example.com"):
        await suppression.suppress(store, key, suppression.HARD_BOUNCE, "550 5.1.1")
    await suppression.clear(store, "a@example.com", "ops", "back")
    month = time.strftime("%Y-%m", time.gmtime(time.time() + 9 * 3600))  # Japan time
    report = await compliance_report(store, month)
    assert report["suppressions"] == {"added": {"hard_bounce": 2}, "cleared": 1,
                                      "in_force_at_end": 1}


async def test_recipient_state_is_both_lookups_in_one(store: Store) -> None:
    async def both(sender: str, key: str) -> tuple[list[Any], dict[str, Any] | None]:
        return await store.consent_history(sender, key), await store.active_suppression(key)

    assert await store.recipient_state("sample", "taro@example.com") == ([], None)
    await store.append_consent(consent("taro@example.com"), "taro@example.com")
    await store.append_consent(consent("taro@example.com", ConsentStatus.OPTED_OUT,
                                       when=T0 + 60), "taro@example.com")
    events, found = await store.recipient_state("sample", "taro@example.com")
    assert found is None and len(events) == 2
    assert (events, found) == await both("sample", "taro@example.com")
    await suppression.suppress(store, "taro@example.com", suppression.HARD_BOUNCE, "550 5.1.1")
    await suppression.suppress(store, "hanako@example.com", suppression.MANUAL, "by hand",
                               actor="ops")
    for sender, key in (("sample", "taro@example.com"), ("sample", "hanako@example.com"),
                        ("other", "taro@example.com")):
        state = await store.recipient_state(sender, key)
        assert state == await both(sender, key)
        assert state[1] is not None and state[1]["address_key"] == key


async def test_an_imported_rows_effect_follows_its_batch_state(store: Store) -> None:
    grant = consent_row(consent("u1@example.com"), "u1@example.com", T0, False)
    optout = consent_row(consent("u2@example.com", ConsentStatus.OPTED_OUT), "u2@example.com", T0, False)
    await store.insert_consent_rows([(*row[:-2], "b1", 0) for row in (grant, optout)])

    async def in_effect() -> tuple[int, int]:
        history = [await store.consent_history("sample", f"u{n}@example.com") for n in (1, 2)]
        records = [await store.consent_records("sample", f"u{n}@example.com") for n in (1, 2)]
        assert [[r["effective"] for r in rs] for rs in records] == [[len(h)] for h in history]
        return len(history[0]), len(history[1])

    assert await in_effect() == (0, 0)  # no batch row (yet): nothing in effect
    await store.execute(
        "INSERT INTO import_batches (id, sender_id, created_at, created_by, source_name, grants, "
        "optouts, status) VALUES (?, ?, ?, ?, ?, 1, 1, 'loading')",
        ("b1", "sample", T0, "alice", "list.csv"),
    )
    expected = {"loading": (0, 0), "pending": (0, 1), "approved": (1, 1), "failed": (0, 0)}
    for status, grant_optout in expected.items():
        assert await store.execute("UPDATE import_batches SET status = ? WHERE id = ?", (status, "b1")) == 1
        assert await in_effect() == grant_optout, status
    await store.execute("UPDATE import_batches SET status = 'approved' WHERE id = ?", ("b1",))
    [visible] = await store.consent_history("sample", "u1@example.com")
    assert visible.batch_id == "b1"
async def test_bulk_insert_is_one_transaction_of_many_rows(store: Store) -> None:
    rows = [consent_row(consent(f"bulk{n}@example.com"), f"bulk{n}@example.com", T0, True) for n in range(5000)]
    await store.insert_consent_rows(rows)
    [count] = await store.fetch("SELECT count(*) AS n FROM consent_events")
    assert count["n"] == 5000
    assert len(await store.consent_history("sample", "bulk4999@example.com")) == 1


async def test_last_sent_keeps_the_latest(store: Store) -> None:
    assert await store.last_sent("sample", "taro@example.com") is None
    await store.record_event(event(1, created_at=T0 + 200), "taro@example.com")
    await store.record_event(event(2, created_at=T0 + 100), "taro@example.com")  # late arrival
    assert await store.last_sent("sample", "taro@example.com") == pytest.approx(T0 + 200)
    # many in one batch, in any order: the maximum wins
    await asyncio.gather(
        *(store.record_event(event(10 + n, created_at=T0 + 300 + (n * 7) % 50), "taro@example.com") for n in range(50))
    )
    assert await store.last_sent("sample", "taro@example.com") == pytest.approx(T0 + 349)
    assert await store.last_sent("other", "taro@example.com") is None


async def test_consent_evidence_is_append_only(store: Store) -> None:
    await store.append_consent(consent("taro@example.com", ref="r1"), "taro@example.com")
    with pytest.raises(StoreUnavailable, match="append-only"):
        await store.execute("UPDATE consent_events SET status = 'opted_out'")
    with pytest.raises(StoreUnavailable, match="append-only"):
        await store.execute("UPDATE consent_events SET occurred_at = occurred_at + 1")
    # purge deletes (retention is enforced by the service, not the trigger)
    assert await store.execute("DELETE FROM consent_events") == 1


async def test_audit_log_refuses_update_and_delete(store: Store) -> None:
    await service.audit(store, "alice", "consent.lookup", "sample:taro@example.com", "ticket 1")
    with pytest.raises(StoreUnavailable, match="append-only"):
        await store.execute("UPDATE audit_log SET actor = 'mallory'")
    with pytest.raises(StoreUnavailable, match="append-only"):
        await store.execute("DELETE FROM audit_log")
    [row] = await store.fetch("SELECT actor, action, subject, reason FROM audit_log")
    assert row == {"actor": "alice", "action": "consent.lookup", "subject": "sample:taro@example.com", "reason": "ticket 1"}


async def test_source_ref_is_recorded_once(store: Store) -> None:
    first = consent("taro@example.com", ConsentStatus.OPTED_OUT, ref="cmp-42")
    assert await store.append_consent(first, "taro@example.com") is True
    assert await store.append_consent(first, "taro@example.com") is False
    # the same ref from another sender identity is another event
    other = consent("taro@example.com", ConsentStatus.OPTED_OUT, ref="cmp-42", sender="other")
    assert await store.append_consent(other, "taro@example.com") is True
    assert len(await store.consent_records("sample", "taro@example.com")) == 1


async def test_another_event_under_a_used_ref_is_told_from_a_resend(store: Store) -> None:
    grant = consent("taro@example.com", ref="sub-9", when=T0 + 0.25)
    assert await store.append_consent(grant, "taro@example.com")
    assert await service.other_event_under_ref(store, grant) == ""  # a resend
    refusal = consent("taro@example.com", ConsentStatus.OPTED_OUT, ref="sub-9", when=T0 + 60)
    assert await store.append_consent(refusal, "taro@example.com") is False
    clash = await service.other_event_under_ref(store, refusal)
    assert "(status, method, occurred_at differ)" in clash and "NOT recorded" in clash
    other_person = consent("hanako@example.com", ref="sub-9", when=T0 + 0.25)
    assert "(address differ)" in await service.other_event_under_ref(store, other_person)
    same_but_topic = consent("taro@example.com", ref="sub-9", when=T0 + 0.25, topic="news")
    assert "(topic differ)" in await service.other_event_under_ref(store, same_but_topic)


async def test_a_duplicate_does_not_fail_the_events_that_share_its_commit(store: Store) -> None:
    dup = consent("taro@example.com", ConsentStatus.OPTED_OUT, ref="cmp-7")
    assert await store.append_consent(dup, "taro@example.com")
    results = await asyncio.gather(
        *(store.record_event(event(n)) for n in range(20)),
        store.append_consent(dup, "taro@example.com"),
        *(store.record_event(event(n)) for n in range(20, 40)),
        return_exceptions=True,
    )
    assert results[20] is False
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    assert len(await store.query_events(EventFilter(limit=1000))) == 40


async def test_a_suppression_holds_until_cleared_and_the_people_are_audited(store: Store) -> None:
    key = "taro@example.com"
    assert await store.active_suppression(key) is None
    assert await suppression.suppress(store, key, suppression.HARD_BOUNCE, "550 5.1.1 unknown",
                                      sender_id="sample")
    # one entry in force at a time: a second bounce adds nothing
    assert not await suppression.suppress(store, key, suppression.HARD_BOUNCE, "550 5.1.1 again")
    found = await store.active_suppression(key)
    assert found is not None and found["reason"] == "hard_bounce"
    assert (found["sender_id"], found["created_by"]) == ("sample", "gateway")
    assert await store.active_suppression("hanako@example.com") is None
    assert await suppression.clear(store, key, "ops-suzuki", "mailbox restored") == 1
    assert await suppression.clear(store, key, "ops-suzuki", "again") == 0
    assert await store.active_suppression(key) is None
    assert await suppression.suppress(store, key, suppression.MANUAL, "complaint by phone",
                                      actor="ops-sato")
    active = await suppression.listing(store)
    assert [(e.reason, e.created_by) for e in active] == [("manual", "ops-sato")]
    every = await suppression.listing(store, address_key=key, include_cleared=True)
    assert [(e.reason, e.cleared_by, e.clear_reason) for e in every] == [
        ("manual", None, None), ("hard_bounce", "ops-suzuki", "mailbox restored")]
    # every hard bounce since a moment, at once; the manual entry stays
    for other in ("b@example.com", "c@example.com"):
        await suppression.suppress(store, other, suppression.HARD_BOUNCE, "550 5.1.1")
    assert await suppression.clear_hard_bounces_since(store, time.time() + 60, "ops", "x") == 0
    assert await suppression.clear_hard_bounces_since(store, time.time() - 60, "ops",
                                                      "upstream fault") == 2
    assert [e.reason for e in await suppression.listing(store)] == ["manual"]
    [bulk] = await store.fetch("SELECT subject, reason FROM audit_log WHERE actor = 'ops'")
    assert bulk["subject"].endswith(": 2)") and bulk["reason"] == "upstream fault"
    audit = await store.fetch("SELECT actor, action, subject, reason FROM audit_log "
                              "WHERE actor != 'ops' ORDER BY id")
    # the gateway's own entries are events; each person's change is audited, once
    assert audit == [
        {"actor": "ops-suzuki", "action": "suppression.clear", "subject": key,
         "reason": "mailbox restored"},
        {"actor": "ops-sato", "action": "suppression.add", "subject": key,
         "reason": "complaint by phone"},
    ]


async def test_execute_counts_rows_and_fetch_returns_dicts(store: Store) -> None:
    for n in range(3):
        await store.execute(
            "INSERT INTO import_batches (id, sender_id, created_at, created_by, source_name, grants, "
            "optouts, status) VALUES (?, ?, ?, ?, ?, 0, 0, 'pending')",
            (f"b{n}", "sample", T0 + n, "alice", "it's a ? file.csv"),
        )
    assert await store.execute("UPDATE import_batches SET status = 'approved' WHERE id != ?", ("b0",)) == 2
    assert await store.execute("UPDATE import_batches SET status = 'x' WHERE id = ?", ("nope",)) == 0
    rows = await store.fetch(
        "SELECT id, status, source_name FROM import_batches WHERE status = ? ORDER BY id", ("approved",)
    )
    assert rows == [
        {"id": "b1", "status": "approved", "source_name": "it's a ? file.csv"},
        {"id": "b2", "status": "approved", "source_name": "it's a ? file.csv"},
    ]


# -- the consent service's SQL on every backend -------------------------------------------------


SENDER = SenderConfig(id="sample", domains=("example.jp",), law="tokuden")


async def test_import_approve_lookup_export_purge(store: Store, tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text(
        "email,status,method,consented_at,source_system,source_ref\n"
        "taro@example.com,opted_in,double_opt_in,2026-01-10T10:00:00+09:00,crm,1\n"
        "hanako@example.com,opted_out,manual,2026-01-11T10:00:00+09:00,crm,2\n",
        encoding="utf-8",
    )
    result = await service.import_file(store, sender=SENDER, path=csv, recorded_by="alice")
    assert (result.state, result.grants, result.optouts) == ("pending", 1, 1)
    assert [e.status for e in await store.consent_history("sample", "hanako@example.com")] == [ConsentStatus.OPTED_OUT]
    assert await store.consent_history("sample", "taro@example.com") == []
    [pending] = await service.list_batches(store, "pending")
    assert pending["id"] == result.batch_id
    with pytest.raises(service.ApprovalRefused):
        await service.approve_batch(store, result.batch_id, "alice")  # four eyes
    batch = await service.approve_batch(store, result.batch_id, "bob")
    assert (batch["status"], batch["decided_by"]) == ("approved", "bob")
    with pytest.raises(service.ApprovalRefused, match="not pending"):
        await service.approve_batch(store, result.batch_id, "carol")
    found = await service.lookup(store, SENDER, "Taro@Example.com", actor="carol", reason="ticket")
    assert found.to_dict()["status"] == "allowed"
    assert [h["status"] for h in found.history] == ["opted_in"]
    exported = await service.export_records(store, SENDER, actor="carol")
    assert sorted(r["email"] for r in exported) == ["hanako@example.com", "taro@example.com"]
    audit = await store.fetch("SELECT action FROM audit_log ORDER BY id")
    assert [a["action"] for a in audit] == ["consent.lookup", "consent.export"]
    config = Config(senders=(SENDER,))
    items = [i async for i in service.plan_purge(store, config, datetime.now(UTC))]
    assert sorted(i.address_key for i in items) == ["hanako@example.com", "taro@example.com"]
    assert all(i.rows == 1 for i in items)


async def test_concurrent_approvals_of_one_batch_let_exactly_one_win(store: Store, tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text(
        "email,status,method,consented_at\ntaro@example.com,opted_in,double_opt_in,2026-01-10T10:00:00+09:00\n",
        encoding="utf-8",
    )
    result = await service.import_file(store, sender=SENDER, path=csv, recorded_by="alice")
    outcomes = await asyncio.gather(
        *(service.approve_batch(store, result.batch_id, f"approver{n}") for n in range(8)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, dict)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, service.ApprovalRefused) for o in outcomes if not isinstance(o, dict))
    [batch] = await store.fetch("SELECT decided_by FROM import_batches WHERE id = ?", (result.batch_id,))
    assert batch["decided_by"] == winners[0]["decided_by"]


async def test_an_invalid_row_stops_the_storing_and_a_failed_import_leaves_no_rows(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "CHUNK", 10)
    good = "u{}@example.com,opted_in,web_form,2026-01-10T10:00:00+09:00\n"
    csv = tmp_path / "list.csv"
    csv.write_text(
        "email,status,method,consented_at\n"
        + "".join(good.format(n) for n in range(25))
        + "broken@,opted_in,web_form,2026-01-10T10:00:00+09:00\n"  # line 27
        + "".join(good.format(n) for n in range(100, 130))
        + "also-broken@,opted_in,web_form,2026-01-10T10:00:00+09:00\n",  # line 58
        encoding="utf-8",
    )
    stored: list[int] = []
    insert = store.insert_consent_rows

    async def counting_insert(rows: Sequence[tuple[Any, ...]]) -> None:
        stored.append(len(rows))
        await insert(rows)

    monkeypatch.setattr(store, "insert_consent_rows", counting_insert)
    result = await service.import_file(store, sender=SENDER, path=csv, recorded_by="alice")
    assert (result.state, result.imported) == ("failed", 0)
    assert [e.line_number for e in result.report.errors] == [27, 58]  # every error is still reported
    assert stored == [10, 10]  # the chunks complete before line 27, nothing after it
    [batch] = await store.fetch("SELECT status FROM import_batches WHERE id = ?", (result.batch_id,))
    assert batch["status"] == "failed"
    [left] = await store.fetch("SELECT count(*) AS n FROM consent_events")
    assert left["n"] == 0


async def test_discard_and_finishing_cut_short_discards_on_both_backends(
    store: Store, tmp_path: Path
) -> None:
    # A batch left `loading` with rows (its import was killed) and a `failed` one whose rows
    # were not all removed: the states an interrupted clean-up leaves, set up directly.
    rows = [
        ("kill@example.com", "loading-1", "loading"),
        ("cut@example.com", "failed-1", "failed"),
    ]
    for address, batch_id, status in rows:
        await store.execute(
            "INSERT INTO import_batches (id, sender_id, created_at, created_by, source_name, "
            "grants, optouts, status) VALUES (?, 'sample', ?, 'alice', 'x.csv', 0, 0, ?)",
            (batch_id, T0, status))
        row = consent_row(consent(address), address, T0, False)
        await store.insert_consent_rows([(*row[:-2], batch_id, 0)])
    assert await service.finish_discards(store) == ["failed-1"]
    assert await service.discard_batch(store, "loading-1", "ops") == 1
    [left] = await store.fetch("SELECT count(*) AS n FROM consent_events")
    assert left["n"] == 0
    states = await store.fetch("SELECT id, status FROM import_batches ORDER BY id")
    assert [(b["id"], b["status"]) for b in states] == [("failed-1", "failed"),
                                                        ("loading-1", "failed")]
    csv = tmp_path / "list.csv"
    csv.write_text("email,status,method,consented_at\nkeep@example.com,opted_out,web_form,"
                   "2026-01-10T10:00:00+09:00\n", encoding="utf-8")
    done = await service.import_file(store, sender=SENDER, path=csv, recorded_by="alice")
    assert done.state == "approved", done.report.summary()
    with pytest.raises(service.DiscardRefused, match="approved"):
        await service.discard_batch(store, done.batch_id, "ops")


async def test_an_import_that_died_is_swept_and_a_running_one_is_left_alone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    beats = {"dead": now - service.ABANDONED_AFTER - 5, "alive": now - 1}
    for batch_id, beat in beats.items():
        await store.execute(
            "INSERT INTO import_batches (id, sender_id, created_at, created_by, source_name, "
            "grants, optouts, status, heartbeat_at) VALUES (?, 'sample', ?, 'alice', 'x.csv', "
            "0, 0, 'loading', ?)", (batch_id, beat - 60, beat))
        row = consent_row(consent(f"{batch_id}@example.com"), f"{batch_id}@example.com", T0, False)
        await store.insert_consent_rows([(*row[:-2], batch_id, 0)])
    listed = {b["id"]: b["abandoned"] for b in await service.list_batches(store)}
    assert listed == {"dead": True, "alive": False}
    with pytest.raises(service.DiscardRefused, match="still running"):
        await service.discard_batch(store, "alive", "ops")
    assert await service.sweep_abandoned(store, "bob") == ["dead"]
    left = await store.fetch("SELECT batch_id FROM consent_events")
    assert [r["batch_id"] for r in left] == ["alive"]
    [entry] = await store.fetch("SELECT actor, subject, reason FROM audit_log "
                                "WHERE action = 'consent.discard'")
    assert (entry["actor"], entry["subject"]) == ("bob", "dead")
    assert "abandoned import" in entry["reason"] and "1 rows removed" in entry["reason"]

    # The running import's heartbeat keeps its batch out of reach; a finished batch is not
    # touched by a late beat.
    monkeypatch.setattr(service, "HEARTBEAT_SECONDS", 0.05)
    await store.execute("UPDATE import_batches SET heartbeat_at = 0 WHERE id = 'alive'")
    beat = asyncio.create_task(service._heartbeat(store, "alive"))
    late = asyncio.create_task(service._heartbeat(store, "dead"))
    await asyncio.sleep(0.3)
    for task in (beat, late):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    [alive] = await store.fetch("SELECT heartbeat_at FROM import_batches WHERE id = 'alive'")
    assert alive["heartbeat_at"] > now - 1
    assert await service.sweep_abandoned(store, "bob") == []
    [dead] = await store.fetch("SELECT status, heartbeat_at FROM import_batches WHERE id = 'dead'")
    assert dead["status"] == "failed" and dead["heartbeat_at"] == beats["dead"]
    assert await service.discard_batch(store, "alive", "ops", force=True) == 1


async def test_heartbeats_are_judged_by_the_database_clock(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An import run on a host whose clock is an hour ahead must not take a running import
    # (elsewhere) for a dead one: beats are written and compared on the database's clock.
    await store.execute(
        "INSERT INTO import_batches (id, sender_id, created_at, created_by, source_name, "
        "grants, optouts, status, heartbeat_at) VALUES ('alive', 'sample', ?, 'alice', "
        "'x.csv', 0, 0, 'loading', ?)", (time.time(), time.time()))
    ahead = types.SimpleNamespace(time=lambda: time.time() + 3600, gmtime=time.gmtime,
                                  strftime=time.strftime)
    monkeypatch.setattr(service, "time", ahead)
    assert await service.sweep_abandoned(store, "bob") == []
    with pytest.raises(service.DiscardRefused, match="still running"):
        await service.discard_batch(store, "alive", "ops")
    assert [b["abandoned"] for b in await service.list_batches(store)] == [False]


# -- the store going away -----------------------------------------------------------------------


async def test_store_down_is_store_unavailable(store_url: str, tmp_path: Path) -> None:
    if store_url.startswith("sqlite"):
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("a file where a directory should be")
        down = f"sqlite:///{blocker / 'store.sqlite3'}"
    else:
        from tests.integration.store.pgserver import free_port

        down = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/gateway"
    dead = open_store(down)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await dead.open()
    assert time.monotonic() - started < 10
    assert "secret" not in str(caught.value)
    if store_url.startswith("postgres"):
        assert "connection refused" in str(caught.value)


# -- sender volume (rule sender.complaint_rate) ------------------------------------------------


async def test_sender_volume_sums_every_process_counts_per_day(store: Store) -> None:
    clock = [T0]
    first, second = (SenderVolume(store, window_days=7, clock=lambda: clock[0])
                     for _ in range(2))
    assert first.days("sample") is None  # nothing read yet: the check answers 451
    first.note_sent("sample", 1)
    first.note_sent("sample", 1)
    first.note_complaint("sample")
    second.note_auth_refusal("sample")
    second.note_hard_bounce("other")
    second.note_sent("sample", 3)
    second.note_sent("other", 1)
    await first.sync()
    await second.sync()
    await first.sync()
    assert first.tallies(["sample", "other", "idle"], 7) == {
        "sample": Tally(5, 1, 1), "other": Tally(1, 0, 0, 1), "idle": Tally(0, 0)}
    assert second.tallies(["sample"], 7) == {"sample": Tally(5, 1, 1)}
    assert await first.store.fetch("SELECT count(*) AS n FROM sender_volume") == [{"n": 2}]

    # Counts not yet synced are part of this process's answer already.
    clock[0] = T0 + 3 * DAY
    first.note_sent("sample", 2)
    assert first.tallies(["sample"], 7)["sample"] == Tally(7, 1, 1)
    assert first.tallies(["sample"], 3)["sample"] == Tally(2, 0)  # the first day left it
    await first.sync()
    await second.sync()
    assert second.tallies(["sample"], 7)["sample"] == Tally(7, 1, 1)
    # A week later the first day's counts are out of the window, and out of the read.
    clock[0] = T0 + 7 * DAY
    await second.sync()
    assert second.tallies(["sample"], 7)["sample"] == Tally(2, 0)


async def test_gmail_bulk_status_is_shared_and_outlives_the_window(store: Store) -> None:
    clock = [T0]
    first, second = (SenderVolume(store, window_days=7, gmail_limit=100, clock=lambda: clock[0])
                     for _ in range(2))
    await first.sync()
    first.note_gmail("sample", 60)
    second.note_gmail("sample", 39)
    second.note_gmail("other", 0)  # a message with no Gmail recipient adds no row
    await first.sync()
    await second.sync()
    days = second.days("sample")
    assert days is not None and (days.over(1).gmail_sent, days.gmail_bulk_since) == (99, None)
    second.note_gmail("sample", 1)  # the 100th: bulk at once for this process ...
    assert second.days("sample").gmail_bulk_since == T0 // DAY  # type: ignore[union-attr]
    await second.sync()
    await first.sync()  # ... and for every other once synced
    assert first.days("sample").gmail_bulk_since == T0 // DAY  # type: ignore[union-attr]
    assert first.days("other").gmail_bulk_since is None  # type: ignore[union-attr]
    # Long after, out of every window: bulk for good, and today's count starts at 0.
    clock[0] = T0 + 400 * DAY
    late = SenderVolume(store, window_days=7, gmail_limit=100, clock=lambda: clock[0])
    await late.sync()
    days = late.days("sample")
    assert days is not None and (days.over(1).gmail_sent, days.gmail_bulk_since) == (
        0, T0 // DAY)
    assert await store.fetch("SELECT count(*) AS n FROM sender_volume") == [{"n": 1}]


async def test_gmail_counts_of_one_organisational_domain_are_summed(store: Store) -> None:
    """Gmail counts per primary domain: each sender of a group reads the group's sum and
    status; its other counts stay its own."""
    groups = {"news": ("news", "shop"), "shop": ("news", "shop")}
    first, second = (SenderVolume(store, window_days=7, gmail_limit=100, gmail_groups=groups,
                                  clock=lambda: T0) for _ in range(2))
    await first.sync()
    await second.sync()
    first.note_gmail("news", 50)
    first.note_sent("news", 50)
    second.note_gmail("shop", 30)
    second.note_gmail("other", 70)  # not in the group
    await first.sync()
    await second.sync()
    await first.sync()  # now each has read the other's counts
    for volume in (first, second):
        news, shop, other = (volume.days(s) for s in ("news", "shop", "other"))
        assert news is not None and shop is not None and other is not None
        assert [d.over(1).gmail_sent for d in (news, shop, other)] == [80, 80, 70]
        assert (news.over(1).sent, shop.over(1).sent) == (50, 0)
        assert news.gmail_bulk_since is None and shop.gmail_bulk_since is None
    second.note_gmail("shop", 20)  # the group's 100th: bulk at once for both senders here
    assert second.days("news").gmail_bulk_since == T0 // DAY  # type: ignore[union-attr]
    await second.sync()
    await first.sync()
    assert first.days("news").gmail_bulk_since == T0 // DAY  # type: ignore[union-attr]
    assert first.days("other").gmail_bulk_since is None  # type: ignore[union-attr]
    # Long after, out of every window: the group's day stands for good, though neither
    # sender reached the limit alone; counted alone, neither would be bulk.
    late, alone = (SenderVolume(store, window_days=7, gmail_limit=100, gmail_groups=g,
                                clock=lambda: T0 + 400 * DAY) for g in (groups, None))
    await late.sync()
    await alone.sync()
    assert [late.days(s).gmail_bulk_since for s in ("news", "shop", "other")] == [  # type: ignore[union-attr]
        T0 // DAY, T0 // DAY, None]
    assert alone.days("news").gmail_bulk_since is None  # type: ignore[union-attr]


async def test_sender_volume_keeps_its_counts_when_the_store_fails(store: Store) -> None:
    volume = SenderVolume(store, clock=lambda: T0)
    await volume.sync()
    volume.note_sent("sample", 4)
    volume.note_complaint("sample")
    await store.execute("DROP TABLE sender_volume")
    with pytest.raises(StoreUnavailable):
        await volume.sync()
    assert volume.tallies(["sample"], 7)["sample"] == Tally(4, 1)  # kept for the next sync
    await store.execute(
        "CREATE TABLE sender_volume (sender_id TEXT NOT NULL, day BIGINT NOT NULL, "
        "sent BIGINT NOT NULL DEFAULT 0, complaints BIGINT NOT NULL DEFAULT 0, "
        "auth_refusals BIGINT NOT NULL DEFAULT 0, hard_bounces BIGINT NOT NULL DEFAULT 0, "
        "gmail_sent BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (sender_id, day))")
    await volume.sync()
    rows = await store.fetch("SELECT sender_id, sent, complaints FROM sender_volume")
    assert rows == [{"sender_id": "sample", "sent": 4, "complaints": 1}]  # once, not twice


class _ReadsFail:
    """The real store, whose next reads raise the given errors (its writes go through)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failures: list[Exception] = []

    async def execute_all(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        return await self.store.execute_all(statements)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if self.failures:
            raise self.failures.pop(0)
        return await self.store.fetch(sql, params)


async def test_sender_volume_counts_what_it_added_when_the_read_back_fails(store: Store) -> None:
    flaky = _ReadsFail(store)
    volume = SenderVolume(flaky, clock=lambda: T0, interval=0.01)  # type: ignore[arg-type]
    await volume.sync()
    volume.note_sent("sample", 3)
    volume.note_complaint("sample")
    flaky.failures.append(StoreUnavailable("query failed: connection reset"))
    with pytest.raises(StoreUnavailable):
        await volume.sync()
    assert volume.tallies(["sample"], 7)["sample"] == Tally(3, 1)  # added, and still seen
    await volume.sync()
    assert volume.tallies(["sample"], 7)["sample"] == Tally(3, 1)  # once, not twice
    assert await store.fetch("SELECT sent, complaints FROM sender_volume") == [
        {"sent": 3, "complaints": 1}]

    # An error nobody foresaw is logged; the background task goes on and syncs again.
    flaky.failures.append(RuntimeError("a bug"))
    await volume.start()
    assert volume.last_error == "a bug"
    volume.note_sent("sample", 2)
    deadline = time.monotonic() + 5
    while volume.last_error or volume.tallies(["sample"], 7)["sample"].sent != 5:
        assert time.monotonic() < deadline, volume.last_error
        await asyncio.sleep(0.01)
    await volume.close()
    assert await store.fetch("SELECT sent FROM sender_volume") == [{"sent": 5}]


async def test_a_suppression_list_goes_in_whole_in_chunks(store: Store) -> None:
    keys = [f"user{i}@example.jp" for i in range(2500)]  # three statements of CHUNK or less
    await suppression.suppress(store, keys[1700], suppression.HARD_BOUNCE, "550 5.1.1")
    added = await import_suppressions(store, keys, "go-live", "ops-suzuki", "bounces.csv")
    assert added == 2499  # one was suppressed already and stays as it was
    rows = await store.fetch("SELECT reason, created_by, detail, count(*) AS n FROM suppressions "
                             "GROUP BY reason, created_by, detail ORDER BY reason")
    assert rows == [
        {"reason": "hard_bounce", "created_by": "gateway", "detail": "550 5.1.1", "n": 1},
        {"reason": "manual", "created_by": "ops-suzuki",
         "detail": "import bounces.csv: go-live", "n": 2499}]
    assert await import_suppressions(store, keys, "again", "ops-suzuki", "bounces.csv") == 0
    audited = await store.fetch("SELECT subject, reason FROM audit_log "
                                "WHERE action = 'suppression.import' ORDER BY id")
    assert [a["reason"] for a in audited] == ["go-live (2500 addresses in the file)",
                                              "again (2500 addresses in the file)"]
