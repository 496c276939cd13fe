"""/api/v1/suppressions and /api/v1/erasures, and what a consent lookup says after each."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.consent import suppression
from tests.integration.web.support import Env, bearer, make_env


async def test_ops_list_add_and_clear_and_every_use_is_audited(env: Env) -> None:
    await suppression.suppress(env.store, "taro@example.com", suppression.HARD_BOUNCE,
                               "550 5.1.1 <taro@example.com>: User unknown", sender_id="sample")
    async with env.client(headers=bearer(await env.token("ops", "ops-suzuki"))) as c:
        r = await c.get("/api/v1/suppressions")
        assert r.status_code == 200
        [entry] = r.json()["suppressions"]
        # a list nobody asked about by address shows no address, nor the reply that names it
        assert entry["address_key"] == "t***@example.com"
        assert entry["detail"] == "550 5.1.1 <t***@example.com>: User unknown"
        assert entry["reason"] == "hard_bounce" and entry["active"] is True
        r = await c.get("/api/v1/suppressions", params={"address": "Taro@Example.com",
                                                         "reason": "bounce ticket 12"})
        assert r.json()["suppressions"][0]["address_key"] == "taro@example.com"

        r = await c.post("/api/v1/suppressions", json={"address": "hanako@example.com",
                                                       "note": "complaint by phone"})
        assert r.status_code == 201 and r.json() == {"address_key": "hanako@example.com",
                                                     "suppressed": True}
        r = await c.post("/api/v1/suppressions", json={"address": "hanako@example.com",
                                                       "note": "again"})
        assert r.status_code == 409 and r.json()["error"] == "refused"

        r = await c.post("/api/v1/suppressions/clear",
                         json={"address": "taro@example.com",
                               "reason": "mailbox restored, said Taro@Example.com"})
        assert r.status_code == 200 and r.json() == {"address_key": "taro@example.com",
                                                     "cleared": 1}
        r = await c.post("/api/v1/suppressions/clear",
                         json={"address": "taro@example.com", "reason": "again"})
        assert r.status_code == 404
        r = await c.get("/api/v1/suppressions", params={"all": "true"})
        assert [e["active"] for e in r.json()["suppressions"]] == [True, False]
        assert r.json()["suppressions"][1]["clear_reason"] == (
            "mailbox restored, said t***@example.com")

        for body, field in (({"address": "taro@example.com"}, "reason"),
                            ({"address": "nope", "reason": "x"}, "address"),
                            ({"address": "taro@example.com", "reason": " "}, "reason"),
                            ({"address": "a@example.com", "reason": "x", "extra": 1}, "extra")):
            r = await c.post("/api/v1/suppressions/clear", json=body)
            assert r.status_code == 422 and r.json()["field"] == field, (body, r.text)
    audit = await env.store.fetch("SELECT actor, action, subject, reason FROM audit_log "
                                  "ORDER BY id")
    assert [(a["actor"], a["action"], a["subject"]) for a in audit] == [
        ("ops-suzuki", "suppression.list", "(all)"),
        ("ops-suzuki", "suppression.list", "taro@example.com"),
        ("ops-suzuki", "suppression.add", "hanako@example.com"),
        ("ops-suzuki", "suppression.clear", "taro@example.com"),
        ("ops-suzuki", "suppression.list", "(all)"),
    ]
    assert audit[1]["reason"] == "bounce ticket 12"


async def test_a_marketers_lookup_says_the_address_is_suppressed(env: Env) -> None:
    async with env.client(headers=bearer(await env.token("marketer"))) as c:
        r = await c.get("/api/v1/consents/sample/taro@example.com")
        assert r.json()["suppression"] is None
        await suppression.suppress(env.store, "taro@example.com", suppression.HARD_BOUNCE,
                                   "550 5.1.1 unknown", sender_id="sample")
        r = await c.get("/api/v1/consents/sample/TARO@example.com")
        found = r.json()["suppression"]
        assert (found["reason"], found["detail"], found["active"]) == (
            "hard_bounce", "550 5.1.1 unknown", True)


async def test_erasure_needs_a_key_file(env: Env) -> None:
    async with env.client(headers=bearer(await env.token("auditor"))) as c:
        r = await c.post("/api/v1/erasures", json={"address": "a@example.com", "reason": "x"})
    assert r.status_code == 409 and "policy.erasure_key_file" in r.json()["detail"]


async def test_an_erasure_by_api_and_an_ingest_that_gets_the_refusal_back(
    tmp_path: Path,
) -> None:
    env = await make_env(tmp_path, erasure_key=True)
    try:
        async with env.client(headers=bearer(await env.token("auditor", "dpo-kimura"))) as c:
            r = await c.post("/api/v1/erasures", json={"address": "Hanako@Example.com",
                                                      "reason": "request #7"})
            assert r.status_code == 200 and r.json()["senders"] == ["other", "sample"]
            assert r.json()["address_hash"].startswith("hs1:")
            r = await c.post("/api/v1/erasures", json={"address": "x", "reason": "y"})
            assert r.status_code == 422 and r.json()["field"] == "address"
        async with env.client(headers=bearer(await env.token("marketer"))) as c:
            grant = {"sender": "sample", "address": "Hanako@Example.com", "status": "opted_in",
                     "method": "cmp", "occurred_at": datetime.now(UTC).isoformat(),
                     "source_system": "cmp-x", "source_ref": "evt-9"}
            assert (await c.post("/api/v1/consents", json=grant)).status_code == 201
            again = {**grant, "source_ref": "evt-10"}
            assert (await c.post("/api/v1/consents", json=again)).status_code == 201
            r = await c.get("/api/v1/consents/sample/hanako@example.com")
        assert r.json()["status"] == "opted_out"  # a CMP sync cannot lift a refusal
        refusals = [h for h in r.json()["history"] if h["status"] == "opted_out"]
        assert [h["source_system"] for h in refusals] == ["erasure"]  # given back once
    finally:
        await env.store.close()


async def test_ops_clear_every_hard_bounce_since_a_moment(env: Env) -> None:
    for address in ("taro@example.com", "hanako@example.com"):  # an upstream gone wrong
        await suppression.suppress(env.store, address, suppression.HARD_BOUNCE,
                                   "550 5.1.1 unknown", sender_id="sample")
    await suppression.suppress(env.store, "jiro@example.com", suppression.MANUAL, "by phone",
                               actor="ops-suzuki")
    async with env.client(headers=bearer(await env.token("ops", "ops-suzuki"))) as c:
        for body in ({"address": "taro@example.com", "since": "2026-11-24T09:00",
                      "reason": "x"}, {"reason": "x"}):
            r = await c.post("/api/v1/suppressions/clear", json=body)
            assert r.status_code == 422 and "address or since" in r.json()["detail"]
        r = await c.post("/api/v1/suppressions/clear", json={"since": "yesterday-ish",
                                                             "reason": "x"})
        assert r.status_code == 422 and r.json()["field"] == "since"
        r = await c.post("/api/v1/suppressions/clear",
                         json={"since": "2999-01-01T00:00", "reason": "none yet"})
        assert r.json()["cleared"] == 0
        an_hour_ago = datetime.now(UTC).timestamp() - 3600
        r = await c.post("/api/v1/suppressions/clear",
                         json={"since": str(an_hour_ago), "reason": "upstream fault #12"})
        assert r.status_code == 200 and r.json() == {"since": an_hour_ago, "cleared": 2}
        left = (await c.get("/api/v1/suppressions")).json()["suppressions"]
    assert [e["reason"] for e in left] == ["manual"]  # entered by hand: stays
    audited = await env.store.fetch(
        "SELECT actor, reason FROM audit_log WHERE action LIKE 'suppression.clear%' "
        "ORDER BY id DESC LIMIT 1")
    assert audited[0]["actor"] == "ops-suzuki" and "upstream fault #12" in audited[0]["reason"]
