"""/api/v1/complaints: each sender's complaint rate, for marketers, ops and the DPO."""

from __future__ import annotations

import time

from tests.integration.web.support import Env, bearer


async def test_every_role_that_sends_or_watches_reads_the_rates(env: Env) -> None:
    today = int(time.time() // 86400)
    for day, sent, complaints in ((today, 800, 2), (today - 6, 700, 3), (today - 7, 10, 10)):
        await env.store.execute(
            "INSERT INTO sender_volume (sender_id, day, sent, complaints) VALUES (?, ?, ?, ?)",
            ("sample", day, sent, complaints))
    for role in ("marketer", "ops", "auditor", "admin"):
        async with env.client(headers=bearer(await env.token(role, f"{role}-1"))) as c:
            r = await c.get("/api/v1/complaints")
        assert r.status_code == 200, role
        sample, other = r.json()["senders"]
        assert sample == {
            "sender_id": "sample", "window_days": 7, "sent": 1500, "complaints": 5,
            "rate": 0.003333, "standing": "stop",
            "thresholds": {"window_days": 7, "min_sent": 1000, "warn": 0.001, "stop": 0.003}}
        assert (other["sender_id"], other["sent"], other["standing"]) == ("other", 0, "too_few")
    async with env.client(headers=bearer(await env.token("approver", "ap-1"))) as c:
        assert (await c.get("/api/v1/complaints")).status_code == 403
    async with env.client() as c:
        assert (await c.get("/api/v1/complaints")).status_code == 401
