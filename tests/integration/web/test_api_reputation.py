"""/api/v1/reputation: each sender's complaint rate and auth refusals, for marketers, ops and
the DPO."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tests.integration.web.support import Env, bearer


async def test_every_role_that_sends_or_watches_reads_the_rates(env: Env) -> None:
    today = int(time.time() // 86400)
    for day, sent, complaints, refusals in ((today, 800, 2, 0), (today - 1, 700, 3, 4),
                                            (today - 7, 10, 10, 10)):
        await env.store.execute(
            "INSERT INTO sender_volume (sender_id, day, sent, complaints, auth_refusals) "
            "VALUES (?, ?, ?, ?, ?)", ("sample", day, sent, complaints, refusals))
    # Gmail: 4,100 today (near the limit); the limit reached once, 40 days ago, is for good
    await env.store.execute("UPDATE sender_volume SET gmail_sent = 4100 WHERE day = ?", (today,))
    await env.store.execute("INSERT INTO sender_volume (sender_id, day, gmail_sent) "
                            "VALUES (?, ?, ?)", ("sample", today - 40, 5000))
    bulk_since = datetime.fromtimestamp((today - 40) * 86400, UTC).date().isoformat()
    for role in ("marketer", "ops", "auditor", "admin"):
        async with env.client(headers=bearer(await env.token(role, f"{role}-1"))) as c:
            r = await c.get("/api/v1/reputation")
        assert r.status_code == 200, role
        sample, other = r.json()["senders"]
        assert sample == {"sender_id": "sample", "rates": [{
            "rule": "sender.complaint_rate", "of": "complaints", "window_days": 7, "sent": 1500,
            "count": 5, "rate": 0.003333, "standing": "stop",
            "thresholds": {"min_sent": 1000, "warn": 0.001, "stop": 0.003}}, {
            "rule": "sender.bounce_rate", "of": "hard_bounces", "window_days": 2, "sent": 1500,
            "count": 0, "rate": 0.0, "standing": "ok",
            "thresholds": {"min_sent": 500, "warn": 0.02, "stop": 0.1}}],
            # yesterday's four are out of the one-day window
            "auth_refusals": {"window_days": 1, "count": 0, "at_least": 1, "flagged": False},
            # every requirement is enforced by the loaded packs: nothing flagged
            "gmail": {"today": 4100, "daily_limit": 5000, "near": 4000,
                      "bulk_since": bulk_since, "unmet": [], "flagged": False,
                      "counted_with": []}}
        assert (other["sender_id"], other["rates"][0]["standing"]) == ("other", "too_few")
        assert (other["gmail"]["today"], other["gmail"]["bulk_since"]) == (0, None)
    async with env.client(headers=bearer(await env.token("approver", "ap-1"))) as c:
        assert (await c.get("/api/v1/reputation")).status_code == 403
    async with env.client() as c:
        assert (await c.get("/api/v1/reputation")).status_code == 401
