"""/api/v1/reputation: each sender's complaint rate and auth refusals, for marketers, ops and
the DPO."""

from __future__ import annotations

import time

from tests.integration.web.support import Env, bearer


async def test_every_role_that_sends_or_watches_reads_the_rates(env: Env) -> None:
    today = int(time.time() // 86400)
    for day, sent, complaints, refusals in ((today, 800, 2, 0), (today - 1, 700, 3, 4),
                                            (today - 7, 10, 10, 10)):
        await env.store.execute(
            "INSERT INTO sender_volume (sender_id, day, sent, complaints, auth_refusals) "
            "VALUES (?, ?, ?, ?, ?)", ("sample", day, sent, complaints, refusals))
    for role in ("marketer", "ops", "auditor", "admin"):
        async with env.client(headers=bearer(await env.token(role, f"{role}-1"))) as c:
            r = await c.get("/api/v1/reputation")
        assert r.status_code == 200, role
        sample, other = r.json()["senders"]
        assert sample == {"sender_id": "sample", "complaints": {
            "window_days": 7, "sent": 1500, "complaints": 5, "rate": 0.003333, "standing": "stop",
            "thresholds": {"window_days": 7, "min_sent": 1000, "warn": 0.001, "stop": 0.003}},
            # yesterday's four are out of the one-day window
            "auth_refusals": {"window_days": 1, "count": 0, "at_least": 1, "flagged": False}}
        assert (other["sender_id"], other["complaints"]["standing"]) == ("other", "too_few")
    async with env.client(headers=bearer(await env.token("approver", "ap-1"))) as c:
        assert (await c.get("/api/v1/reputation")).status_code == 403
    async with env.client() as c:
        assert (await c.get("/api/v1/reputation")).status_code == 401
