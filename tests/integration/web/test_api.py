"""API tests through the ASGI app: role boundaries, tokens, events, consent, imports, audit."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from datetime import datetime, timedelta
from pathlib import Path

from gateway.access.throttle import FailureThrottle
from gateway.access.tokens import create_token, revoke_token
from gateway.consent import suppression
from gateway.store.consent_rows import consent_row
from gateway.web.app import create_app
from tests.integration.store.factories import T0, consent
from tests.integration.web.support import (
    CSV_GRANTS,
    Env,
    add_event,
    bearer,
    eml,
    make_env,
)

# (method, path, roles that may) -- every other role must get 403
BOUNDARIES = [
    ("GET", "/api/v1/events", {"ops", "auditor", "admin"}),
    ("GET", "/api/v1/events/1", {"ops", "auditor", "admin"}),
    ("GET", "/api/v1/consents/sample/taro@example.com", {"marketer", "admin"}),
    ("GET", "/api/v1/exports/consents/sample", {"auditor", "admin"}),
    ("GET", "/api/v1/imports", {"marketer", "approver", "admin"}),
    ("POST", "/api/v1/imports/nope/approve", {"approver", "admin"}),
    ("POST", "/api/v1/imports/nope/discard", {"marketer", "admin"}),
    ("POST", "/api/v1/preflight?sender=sample", {"marketer", "admin"}),
    ("GET", "/api/v1/audit", {"auditor", "admin"}),
    ("GET", "/api/v1/reports/2026-05", {"auditor", "admin"}),
    ("GET", "/api/v1/tokens", {"admin"}),
    ("POST", "/api/v1/consents", {"marketer", "admin"}),
    ("POST", "/api/v1/erasures", {"auditor", "admin"}),
    ("GET", "/api/v1/suppressions", {"ops", "admin"}),
    ("POST", "/api/v1/suppressions", {"ops", "admin"}),
    ("POST", "/api/v1/suppressions/clear", {"ops", "admin"}),
]
ROLES = ("marketer", "ops", "approver", "auditor", "admin")


async def test_every_role_boundary(env: Env) -> None:
    await add_event(env.store, rules=("optin.missing",))
    secrets = {role: await env.token(role) for role in ROLES}
    async with env.client() as c:
        for method, path, allowed in BOUNDARIES:
            for role in ROLES:
                r = await c.request(method, path, headers=bearer(secrets[role]),
                                    content=eml() if "preflight" in path else b"{}")
                if role in allowed:
                    assert r.status_code not in (401, 403), (method, path, role, r.text)
                else:
                    assert r.status_code == 403, (method, path, role, r.status_code)
                    assert r.json()["error"] == "forbidden"


async def test_marketer_cannot_read_events_and_ops_cannot_export(env: Env) -> None:
    async with env.client() as c:
        r = await c.get("/api/v1/events", headers=bearer(await env.token("marketer")))
        assert r.status_code == 403
        assert "events.read" in r.json()["detail"]
        r = await c.get("/api/v1/exports/consents/sample", headers=bearer(await env.token("ops")))
        assert r.status_code == 403
        assert "consent.export" in r.json()["detail"]


async def test_no_token_bad_token_expired_revoked(env: Env) -> None:
    async with env.client() as c:
        r = await c.get("/api/v1/events")
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert (await c.get("/api/v1/events", headers={"Authorization": "Basic eDp5"})
                ).status_code == 401
        assert (await c.get("/api/v1/events", headers=bearer("tkd_wrong"))).status_code == 401
        expired = await create_token(env.store, "ops", "old", expires_in=60,
                                     now=time.time() - 120)
        r = await c.get("/api/v1/events", headers=bearer(expired.secret))
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        live = await create_token(env.store, "ops", "leaver")
        assert (await c.get("/api/v1/events", headers=bearer(live.secret))).status_code == 200
        await revoke_token(env.store, live.id)
        assert (await c.get("/api/v1/events", headers=bearer(live.secret))).status_code == 401
        # the hash, never the secret, is stored
        rows = await env.store.fetch("SELECT hash FROM api_tokens WHERE id = ?", (live.id,))
        assert live.secret not in json.dumps(rows) and len(rows[0]["hash"]) == 64


async def test_failed_bearer_attempts_are_throttled_per_ip(tmp_path: Path) -> None:
    env = await make_env(tmp_path, throttle=FailureThrottle(limit=3, window=60))
    try:
        good = await env.token("ops")
        async with env.client(ip="192.0.2.66") as c, env.client(ip="192.0.2.77") as other:
            for _ in range(3):
                assert (await c.get("/api/v1/events", headers=bearer("tkd_guess"))
                        ).status_code == 401
            r = await c.get("/api/v1/events", headers=bearer(good))
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
            # another address is not affected
            assert (await other.get("/api/v1/events", headers=bearer(good))).status_code == 200
    finally:
        await env.store.close()


async def test_events_filters_pagination_and_masking(env: Env) -> None:
    now = time.time()
    await add_event(env.store, verdict="accepted", recipient="ok@example.com", at=now - 50)
    for i in range(5):
        await add_event(env.store, rules=("optin.missing",), recipient=f"user{i}@example.com",
                        at=now - 40 + i)
    await add_event(env.store, rules=("footer.postal_address",), recipient="taro@example.jp",
                    client="other-brand", at=now - 10, phase="data")
    await add_event(env.store, rules=("optin.opted_out",), at=now - 86400 * 3)
    async with env.client(headers=bearer(await env.token("ops"))) as c:
        r = await c.get("/api/v1/events", params={"verdict": "rejected", "limit": 2,
                                                   "since": str(now - 3600)})
        page = r.json()
        assert r.status_code == 200 and page["masked"] is True
        assert [e["rule_ids"] for e in page["events"]] == [["footer.postal_address"],
                                                           ["optin.missing"]]
        assert page["events"][0]["recipient"] == "t***@example.jp"
        assert "taro@example.jp" not in r.text
        seen = [e["id"] for e in page["events"]]
        while page["next_before_id"] is not None:
            page = (await c.get("/api/v1/events", params={
                "verdict": "rejected", "limit": 2, "since": str(now - 3600),
                "before_id": page["next_before_id"]})).json()
            seen += [e["id"] for e in page["events"]]
        assert len(seen) == 6 and seen == sorted(seen, reverse=True)
        rule = (await c.get("/api/v1/events", params={"rule": "footer.postal_address"})).json()
        assert len(rule["events"]) == 1
        assert len((await c.get("/api/v1/events", params={"client": "other-brand"})
                    ).json()["events"]) == 1
        assert len((await c.get("/api/v1/events", params={"sender": "sample"})
                    ).json()["events"]) == 8
        assert len((await c.get("/api/v1/events", params={"recipient": "user3@example.com"})
                    ).json()["events"]) == 1
        assert len((await c.get("/api/v1/events", params={"until": str(now - 3600)})
                    ).json()["events"]) == 1
        bad = await c.get("/api/v1/events", params={"since": "yesterday"})
        assert bad.status_code == 422 and bad.json()["field"] == "since"
        data = (await c.get("/api/v1/events", params={"phase": "data"})).json()
        assert [e["rule_ids"] for e in data["events"]] == [["footer.postal_address"]]
        bad = await c.get("/api/v1/events", params={"phase": "delivery"})
        assert bad.status_code == 422 and bad.json()["field"] == "phase"
        # ops may not reveal
        r = await c.get("/api/v1/events", params={"reveal": "1", "reason": "x"})
        assert r.status_code == 403


async def test_reveal_needs_role_and_reason_and_is_audited(env: Env) -> None:
    event_id = await add_event(env.store, rules=("optin.missing",), recipient="taro@example.jp")
    async with env.client(headers=bearer(await env.token("auditor", "dpo-suzuki"))) as c:
        masked = (await c.get(f"/api/v1/events/{event_id}")).json()
        assert masked["recipient"] == "t***@example.jp"
        assert "taro@example.jp" not in json.dumps(masked)  # also masked inside reply/details
        r = await c.get(f"/api/v1/events/{event_id}", params={"reveal": "1"})
        assert r.status_code == 422 and r.json()["field"] == "reason"
        r = await c.get(f"/api/v1/events/{event_id}",
                        params={"reveal": "1", "reason": "complaint #42"})
        assert r.status_code == 200 and r.json()["recipient"] == "taro@example.jp"
        assert (await c.get("/api/v1/events/999999")).status_code == 404
    rows = await env.store.fetch("SELECT actor, action, subject, reason FROM audit_log")
    assert rows == [{"actor": "dpo-suzuki", "action": "events.reveal",
                     "subject": f"event {event_id}", "reason": "complaint #42"}]


async def test_events_csv_export(env: Env) -> None:
    for i in range(3):
        await add_event(env.store, rules=("optin.missing",), recipient=f"u{i}@example.com")
    async with env.client(headers=bearer(await env.token("ops", "ops-tanaka"))) as c:
        r = await c.get("/api/v1/events", params={"format": "csv", "verdict": "rejected"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 3
    assert {row["recipient"] for row in rows} == {"u***@example.com"}
    assert rows[0]["rule_ids"] == "optin.missing"
    when = datetime.fromisoformat(rows[0]["created_at_iso"])  # readable beside the epoch
    assert when.utcoffset() == timedelta(0)
    assert abs(when.timestamp() - float(rows[0]["created_at"])) < 0.001
    audit = await env.store.fetch("SELECT actor, action FROM audit_log")
    assert audit == [{"actor": "ops-tanaka", "action": "events.export"}]


async def test_events_csv_export_keeps_every_filter(env: Env) -> None:
    # The export pages through the log: each page keeps the caller's filters, phase too.
    await add_event(env.store, rules=("address.sender_invalid",), recipient="", phase="mail")
    for i in range(2):
        await add_event(env.store, rules=("optin.missing",), recipient=f"u{i}@example.com")
    async with env.client(headers=bearer(await env.token("ops", "ops-tanaka"))) as c:
        for phase, expected in (("mail", ["address.sender_invalid"]),
                                ("rcpt", ["optin.missing"] * 2)):
            r = await c.get("/api/v1/events", params={"format": "csv", "phase": phase})
            rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
            assert [row["rule_ids"] for row in rows] == expected
            assert {row["phase"] for row in rows} == {phase}


async def test_consent_lookup_is_audited_with_token_name(env: Env) -> None:
    async with env.client(headers=bearer(await env.token("marketer", "mk-sato"))) as c:
        r = await c.get("/api/v1/consents/sample/Taro@Example.com",
                        params={"reason": "customer call"})
        assert r.status_code == 200
        assert r.json()["status"] == "missing" and r.json()["history"] == []
        assert (await c.get("/api/v1/consents/nobody/taro@example.com")).status_code == 404
        r = await c.get("/api/v1/consents/sample/not-an-address")
        assert r.status_code == 422 and r.json()["field"] == "address"
    rows = await env.store.fetch("SELECT actor, action, subject, reason FROM audit_log")
    assert rows[0] == {"actor": "mk-sato", "action": "consent.lookup",
                       "subject": "sample:taro@example.com", "reason": "customer call"}


GOOD_CONSENT = {
    "sender": "sample", "address": "Hanako@Example.com", "status": "opted_in",
    "method": "double_opt_in", "occurred_at": "2026-03-01T09:00:00+09:00",
    "source_system": "cmp-x", "source_ref": "evt-1001", "client_ip": "198.51.100.7",
    "user_agent": "Mozilla/5.0",
}


async def test_consent_ingest_idempotent_and_validated(env: Env) -> None:
    async with env.client(headers=bearer(await env.token("marketer", "cmp-sync"))) as c:
        r = await c.post("/api/v1/consents", json=GOOD_CONSENT)
        assert r.status_code == 201 and r.json()["recorded"] is True
        r = await c.post("/api/v1/consents", json=GOOD_CONSENT)
        assert r.status_code == 200 and r.json() == {**r.json(), "recorded": False,
                                                     "duplicate": True}
        lookup = (await c.get("/api/v1/consents/sample/hanako@example.com")).json()
        assert lookup["status"] == "allowed"
        assert len(lookup["history"]) == 1 and lookup["history"][0]["recorded_by"] == "cmp-sync"
        cases = [
            ({"address": None}, "address"),
            ({"address": "nope"}, "address"),
            ({"status": "maybe"}, "status"),
            ({"method": "telepathy"}, "method"),
            ({"method": "one_click"}, "method"),  # cannot record a consent
            ({"occurred_at": "2026-03-01 09:00"}, "occurred_at"),  # no offset
            ({"occurred_at": "2999-01-01T00:00:00+00:00"}, "occurred_at"),
            ({"source_ref": None}, "source_ref"),
            ({"source_system": ""}, "source_system"),
            ({"sender": "ghost"}, "sender"),
            ({"colour": "red"}, "colour"),
        ]
        for change, field in cases:
            body = {k: v for k, v in {**GOOD_CONSENT, **change}.items() if v is not None}
            r = await c.post("/api/v1/consents", json=body)
            assert r.status_code == 422, (change, r.text)
            assert r.json()["field"] == field, (change, r.json())
        r = await c.post("/api/v1/consents", content=b"not json")
        assert r.status_code == 422 and r.json()["field"] == "body"


async def test_another_event_under_a_used_source_ref_is_refused_not_taken_for_a_resend(
    env: Env,
) -> None:
    """A CMP reusing its subscription id as source_ref for the opt-in and the opt-out: the
    opt-out was answered 200 "already recorded" and silently not stored."""
    optout = {**GOOD_CONSENT, "status": "opted_out", "method": "cmp",
              "occurred_at": "2026-03-05T09:00:00+09:00"}
    async with env.client(headers=bearer(await env.token("marketer", "cmp-sync"))) as c:
        assert (await c.post("/api/v1/consents", json=GOOD_CONSENT)).status_code == 201
        r = await c.post("/api/v1/consents", json=optout)
        assert r.status_code == 409, r.text
        error = r.json()
        assert error["field"] == "source_ref"
        assert "status, method, occurred_at differ" in error["detail"]
        assert "opted_out event was NOT recorded" in error["detail"]
        lookup = (await c.get("/api/v1/consents/sample/hanako@example.com")).json()
        assert lookup["status"] == "allowed"  # what the store holds, and the caller knows it
        # the same ref for another person is another event too (the address is not named)
        other = {**GOOD_CONSENT, "address": "jiro@example.com"}
        r = await c.post("/api/v1/consents", json=other)
        assert r.status_code == 409 and "(address differ)" in r.json()["detail"], r.text
        assert "jiro" not in r.text and "hanako" not in r.text
        # with a ref of its own the refusal is recorded and in force at once
        r = await c.post("/api/v1/consents", json={**optout, "source_ref": "evt-1002"})
        assert r.status_code == 201, r.text
        lookup = (await c.get("/api/v1/consents/sample/hanako@example.com")).json()
        assert lookup["status"] == "opted_out"


async def test_import_then_four_eyes_approval(env: Env) -> None:
    marketer = await env.token("marketer", "mk-sato")
    async with env.client() as c:
        r = await c.post("/api/v1/imports", headers=bearer(marketer),
                         data={"sender": "sample"},
                         files={"file": ("grants.csv", CSV_GRANTS.encode(), "text/csv")})
        assert r.status_code == 201, r.text
        batch = r.json()
        assert batch["state"] == "pending" and batch["grants"] == 2
        listed = (await c.get("/api/v1/imports", params={"status": "pending"},
                              headers=bearer(marketer))).json()["batches"]
        assert [b["id"] for b in listed] == [batch["batch_id"]]
        # the importer's name on an approver token: still the same person
        same = await env.token("approver", "mk-sato")
        r = await c.post(f"/api/v1/imports/{batch['batch_id']}/approve", headers=bearer(same))
        assert r.status_code == 403 and r.json()["error"] == "same_person"
        other = await env.token("approver", "ap-kato")
        r = await c.post(f"/api/v1/imports/{batch['batch_id']}/approve", headers=bearer(other))
        assert r.status_code == 200 and r.json()["status"] == "approved"
        assert r.json()["decided_by"] == "ap-kato"
        r = await c.post(f"/api/v1/imports/{batch['batch_id']}/approve", headers=bearer(other))
        assert r.status_code == 409
        r = await c.post("/api/v1/imports/b-nope/approve", headers=bearer(other))
        assert r.status_code == 404
        lookup = (await c.get("/api/v1/consents/sample/jiro@example.com",
                              headers=bearer(marketer))).json()
        assert lookup["status"] == "allowed"
        # an approved batch is evidence: it cannot be discarded
        r = await c.post(f"/api/v1/imports/{batch['batch_id']}/discard", headers=bearer(marketer))
        assert r.status_code == 409 and "approved" in r.json()["detail"]
        assert (await c.post("/api/v1/imports/b-nope/discard",
                             headers=bearer(marketer))).status_code == 404


async def test_discard_removes_an_import_that_died_and_is_audited(env: Env) -> None:
    await env.store.execute(
        "INSERT INTO import_batches (id, sender_id, created_at, created_by, source_name, grants, "
        "optouts, status) VALUES ('b-dead', 'sample', 0, 'mk-sato', 'x.csv', 0, 0, 'loading')")
    row = consent_row(consent("dead@example.com"), "dead@example.com", T0, False)
    await env.store.insert_consent_rows([(*row[:-2], "b-dead", 0)])
    marketer = await env.token("marketer", "mk-sato")
    async with env.client() as c:
        r = await c.post("/api/v1/imports/b-dead/discard", headers=bearer(marketer))
    assert r.status_code == 200, r.text
    assert r.json() == {"batch_id": "b-dead", "status": "failed", "removed": 1}
    assert await env.store.fetch("SELECT id FROM consent_events WHERE batch_id = 'b-dead'") == []
    [entry] = await env.store.fetch("SELECT actor, subject FROM audit_log "
                                    "WHERE action = 'consent.discard'")
    assert entry["subject"] == "b-dead" and "mk-sato" in entry["actor"]


async def test_discarding_a_running_import_needs_force(env: Env) -> None:
    await env.store.execute(
        "INSERT INTO import_batches (id, sender_id, created_at, created_by, source_name, grants, "
        "optouts, status, heartbeat_at) VALUES ('b-live', 'sample', ?, 'mk-sato', 'x.csv', 0, 0, "
        "'loading', ?)", (time.time(), time.time()))
    marketer = await env.token("marketer", "mk-sato")
    async with env.client(headers=bearer(marketer)) as c:
        r = await c.post("/api/v1/imports/b-live/discard")
        assert r.status_code == 409 and "still running" in r.json()["detail"]
        r = await c.post("/api/v1/imports/b-live/discard", params={"force": "yes"})
        assert r.status_code == 400 and "force" in r.json()["detail"]
        r = await c.post("/api/v1/imports/b-live/discard", params={"force": "true"})
        assert r.status_code == 200 and r.json()["status"] == "failed"


async def test_consent_export_auditor_only_and_audited(env: Env) -> None:
    async with env.client(headers=bearer(await env.token("marketer"))) as c:
        await c.post("/api/v1/consents", json=GOOD_CONSENT)
    async with env.client(headers=bearer(await env.token("auditor", "dpo"))) as c:
        r = await c.get("/api/v1/exports/consents/sample", params={"reason": "ISMS audit"})
        assert r.status_code == 200
        text = r.content.decode("utf-8-sig")
        assert "Hanako@example.com" in text and "double_opt_in" in text
        r = await c.get("/api/v1/exports/consents/sample", params={"format": "jsonl"})
        assert json.loads(r.text.splitlines()[0])["status"] == "opted_in"
    rows = await env.store.fetch("SELECT actor, action, reason FROM audit_log WHERE "
                                 "action = 'consent.export' ORDER BY id")
    assert rows[0] == {"actor": "dpo", "action": "consent.export", "reason": "ISMS audit"}


async def test_preflight_reports_footer(env: Env) -> None:
    async with env.client(headers=bearer(await env.token("marketer"))) as c:
        r = await c.post("/api/v1/preflight", params={"sender": "sample"}, content=eml(),
                         headers={"content-type": "message/rfc822"})
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True and r.json()["footer"]["missing"] == []
        draft = eml("配信停止は https://example.jp/unsubscribe から。\n株式会社サンプル\n")
        r = await c.post("/api/v1/preflight", data={"sender": "sample"},
                         files={"file": ("draft.eml", draft, "message/rfc822")})
        assert r.status_code == 200
        assert "footer.postal_address" in r.json()["footer"]["missing"]
        assert r.json()["ok"] is False
        r = await c.post("/api/v1/preflight", params={"sender": "ghost"}, content=eml())
        assert r.status_code == 422 and r.json()["field"] == "sender"


async def test_audit_trail_and_report(env: Env) -> None:
    marketer = await env.token("marketer", "mk")
    async with env.client(headers=bearer(marketer)) as c:
        await c.get("/api/v1/consents/sample/a@example.com")
        await c.get("/api/v1/consents/sample/b@example.com")
    month = time.strftime("%Y-%m", time.localtime())
    await add_event(env.store, rules=("optin.missing",))
    await add_event(env.store, verdict="accepted")
    for address in ("x@example.com", "y@example.com"):
        await suppression.suppress(env.store, address, suppression.HARD_BOUNCE, "550 5.1.1")
    await suppression.suppress(env.store, "z@example.com", suppression.MANUAL, "n", actor="ops")
    await suppression.clear(env.store, "y@example.com", "ops", "mailbox back")
    async with env.client(headers=bearer(await env.token("auditor", "dpo"))) as c:
        r = await c.get("/api/v1/audit", params={"action": "consent.lookup", "limit": 1})
        body = r.json()
        assert r.status_code == 200 and len(body["entries"]) == 1
        assert body["entries"][0]["subject"] == "sample:b@example.com"
        older = (await c.get("/api/v1/audit", params={
            "action": "consent.lookup", "before_id": body["next_before_id"]})).json()
        assert [e["subject"] for e in older["entries"]] == ["sample:a@example.com"]
        jst_month = time.strftime("%Y-%m", time.gmtime(time.time() + 9 * 3600))
        report = (await c.get(f"/api/v1/reports/{jst_month}")).json()
        assert report["mail"]["accepted"] == 1 and report["mail"]["rejected"] == 1
        assert report["mail"]["refused_by_rule"] == {"optin.missing": 1}
        assert report["personal_data_access"]["consent.lookup"] == 2
        assert report["suppressions"] == {"added": {"hard_bounce": 2, "manual": 1},
                                          "cleared": 1, "in_force_at_end": 2}
        r = await c.get(f"/api/v1/reports/{jst_month}", params={"format": "csv"})
        assert r.headers["content-type"].startswith("text/csv")
        assert "refused_by_rule,optin.missing,1" in r.content.decode("utf-8-sig")
        assert "suppressions,in_force_at_end,2" in r.content.decode("utf-8-sig")
        assert (await c.get("/api/v1/reports/2026-13")).status_code == 422
    assert month  # local month computed only to show the JST month may differ


async def test_tokens_admin_api(env: Env) -> None:
    async with env.client(headers=bearer(await env.token("admin", "root"))) as c:
        r = await c.post("/api/v1/tokens", json={"role": "ops", "name": "ops-1",
                                                  "expires": "30d"})
        assert r.status_code == 201
        new = r.json()
        assert new["secret"].startswith("tkd_") and new["expires_at"] > time.time() + 29 * 86400
        listed = (await c.get("/api/v1/tokens")).json()["tokens"]
        assert {"ops-1", "root"} <= {t["name"] for t in listed}
        assert all("hash" not in t and "secret" not in t for t in listed)
        bad = await c.post("/api/v1/tokens", json={"role": "god", "name": "x"})
        assert bad.status_code == 422 and bad.json()["field"] == "role"
        bad = await c.post("/api/v1/tokens", json={"role": "ops", "name": "x", "expires": "soon"})
        assert bad.status_code == 422 and bad.json()["field"] == "expires"
        me = (await c.get("/api/v1/me", headers=bearer(new["secret"]))).json()
        assert me["role"] == "ops" and "events.read" in me["permissions"]
        assert (await c.delete(f"/api/v1/tokens/{new['id']}")).status_code == 204
        assert (await c.get("/api/v1/me", headers=bearer(new["secret"]))).status_code == 401
        assert (await c.delete(f"/api/v1/tokens/{new['id']}")).status_code == 409
        assert (await c.delete("/api/v1/tokens/tk_nope")).status_code == 404


async def test_openapi_matches_routes(env: Env) -> None:
    from starlette.routing import Route

    async with env.client() as c:
        doc = (await c.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for route in env.app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/v1"):
            path = route.path.replace(":int", "")
            for method in route.methods or ():  # one route may serve several methods
                if method != "HEAD":
                    served.add((path, method))
    assert documented == served


async def test_unknown_or_repeated_query_parameters_and_bad_values_are_refused(env: Env) -> None:
    # Found with schemathesis (tests/security/test_api_schema.py): a misspelt filter was ignored
    # and the answer looked filtered; a repeated one silently used its last value.
    token = await env.token("admin")
    async with env.client() as c:
        r = await c.get("/api/v1/events", params={"verdcit": "rejected"}, headers=bearer(token))
        assert r.status_code == 422 and r.json()["field"] == "verdcit"
        assert "verdict" in r.json()["detail"]  # the message lists what the operation takes
        r = await c.get("/api/v1/audit?limit=5&limit=500", headers=bearer(token))
        assert r.status_code == 422 and r.json()["field"] == "limit"
        r = await c.get("/api/v1/imports", params={"status": "done"}, headers=bearer(token))
        assert r.status_code == 422 and r.json()["field"] == "status"
        r = await c.get("/api/v1/reports/2026-04", params={"format": "xml"}, headers=bearer(token))
        assert r.status_code == 422 and r.json()["field"] == "format"
        # an empty value is as if left out (what an HTML form sends for "any")
        r = await c.get("/api/v1/events?verdict=&limit=", headers=bearer(token))
        assert r.status_code == 200
        # unauthenticated callers learn nothing about parameters: 401 comes first
        assert (await c.get("/api/v1/events", params={"verdcit": "x"})).status_code == 401


async def test_method_not_allowed_lists_every_method_of_the_path(env: Env) -> None:
    token = await env.token("admin")
    async with env.client() as c:
        for path, methods in (("/api/v1/imports", {"GET", "HEAD", "POST"}),
                              ("/api/v1/tokens", {"GET", "HEAD", "POST"}),
                              ("/api/v1/me", {"GET", "HEAD"})):
            r = await c.put(path, headers=bearer(token))
            assert r.status_code == 405, path
            assert {m.strip() for m in r.headers["allow"].split(",")} == methods, path


async def test_healthz_and_metrics(env: Env) -> None:
    env.metrics.decision("rejected", ["optin.missing"])
    env.metrics.stage("rcpt", 0.002)
    env.metrics.upstream_error("timeout")
    async with env.client() as c:
        r = await c.get("/healthz")
        assert r.status_code == 200 and r.json()["status"] == "ok"
        text = (await c.get("/metrics")).text
        assert 'tokuden_messages_total{rule="optin.missing",verdict="rejected"} 1.0' in text
        assert 'tokuden_stage_seconds_count{stage="rcpt"} 1.0' in text
        assert 'tokuden_upstream_errors_total{kind="timeout"} 1.0' in text
        await env.store.close()
        r = await c.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"
    await env.store.open()  # the fixture closes it again


async def test_security_headers(env: Env) -> None:
    async with env.client() as c:
        r = await c.get("/healthz")
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


async def test_create_app_without_secret_file_serves_503_for_unsubscribe(env: Env) -> None:
    import dataclasses

    env.gateway.config = dataclasses.replace(
        env.gateway.config, policy=dataclasses.replace(env.gateway.config.policy,
                                                       unsubscribe_secret_file=None))
    app = create_app(env.gateway)
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        r = await c.post("/u/" + env.codec.encode("sample", "a@example.com"),
                         data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 503
    await asyncio.sleep(0)
