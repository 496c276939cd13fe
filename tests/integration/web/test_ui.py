"""Web UI tests through the ASGI app: login, cookie flags, CSRF, pages per role."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from gateway.consent import suppression
from tests.integration.web.support import Env, add_event, eml, make_env

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
LOGIN_CSRF = re.compile(r'name="login_csrf" value="([^"]+)"')


async def login(c: httpx.AsyncClient, secret: str, next_: str = "/ui/") -> httpx.Response:
    page = await c.get("/ui/login", params={"next": next_})
    token = LOGIN_CSRF.search(page.text)
    assert token is not None
    return await c.post("/ui/login", data={"token": secret, "login_csrf": token.group(1),
                                            "next": next_})


async def test_unauthenticated_goes_to_login(env: Env) -> None:
    async with env.client() as c:
        r = await c.get("/ui/events?verdict=rejected")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/ui/login?next=%2Fui%2Fevents")


async def test_login_cookie_flags_http_and_https(env: Env) -> None:
    secret = await env.token("ops")
    async with env.client() as c:
        r = await login(c, secret)
        assert r.status_code == 303 and r.headers["location"] == "/ui/"
        cookie = next(v for k, v in r.headers.multi_items()
                      if k == "set-cookie" and v.startswith("tokuden_session="))
        low = cookie.lower()
        assert "httponly" in low and "samesite=lax" in low and "path=/ui/" in low
        assert "secure" not in low
        home = await c.get("/ui/")
        assert home.status_code == 303 and home.headers["location"] == "/ui/dashboard"
    async with env.client(base_url="https://testserver") as c:
        r = await login(c, secret)
        cookie = next(v for k, v in r.headers.multi_items()
                      if k == "set-cookie" and v.startswith("tokuden_session="))
        assert "secure" in cookie.lower()
    # only the hash of the session cookie is stored
    rows = await env.store.fetch("SELECT id_hash FROM web_sessions")
    value = cookie.split(";")[0].split("=", 1)[1]
    assert rows and all(r["id_hash"] != value for r in rows)


async def test_bad_token_and_login_csrf(env: Env) -> None:
    async with env.client() as c:
        r = await login(c, "tkd_wrong")
        assert r.status_code == 401 and "無効" in r.text
        r = await c.post("/ui/login", data={"token": await env.token("ops"),
                                            "login_csrf": "forged"})
        assert r.status_code == 403
        r = await login(c, "tkd_x", next_="https://evil.example/")
        assert r.status_code == 401


async def test_csrf_is_required_on_every_form(env: Env) -> None:
    async with env.client() as c:
        await login(c, await env.token("marketer", "mk"))
        form = await c.get("/ui/consents")
        token = CSRF.search(form.text)
        assert token is not None
        body = {"sender": "sample", "address": "taro@example.com", "reason": "test"}
        r = await c.post("/ui/consents", data=body)
        assert r.status_code == 403 and "CSRF" in r.text
        r = await c.post("/ui/consents", data={**body, "csrf": "forged"})
        assert r.status_code == 403
        assert await env.store.fetch("SELECT * FROM audit_log") == []
        r = await c.post("/ui/consents", data={**body, "csrf": token.group(1)})
        assert r.status_code == 200 and 'id="consent-status">missing' in r.text
        assert len(await env.store.fetch("SELECT * FROM audit_log")) == 1
        r = await c.post("/ui/logout", data={})
        assert r.status_code == 403  # logout is a form too
        r = await c.post("/ui/logout", data={"csrf": token.group(1)})
        assert r.status_code == 303
        assert (await c.get("/ui/consents")).status_code == 303  # session gone


async def test_role_limits_in_ui(env: Env) -> None:
    async with env.client() as c:
        await login(c, await env.token("marketer"))
        assert (await c.get("/ui/events")).status_code == 403
        page = await c.get("/ui/consents")
        assert "拒否ログ" not in page.text  # no link to what the role cannot see


async def test_ops_pages_render_masked(env: Env) -> None:
    event_id = await add_event(env.store, rules=("footer.postal_address",),
                               recipient="taro@example.jp", phase="data",
                               reply="550 5.7.1 [footer.postal_address] 住所がありません")
    await add_event(env.store, verdict="accepted")
    async with env.client() as c:
        await login(c, await env.token("ops"))
        r = await c.get("/ui/events", params={"rule": "footer.postal_address"})
        assert r.status_code == 200 and "t***@example.jp" in r.text
        assert "taro@example.jp" not in r.text
        detail = await c.get(f"/ui/events/{event_id}")
        assert "550 5.7.1 [footer.postal_address] 住所がありません" in detail.text
        assert "address.invalid" in detail.text  # every rule's result, not only the failing one
        assert "Reveal" not in detail.text  # ops may not reveal
        dash = await c.get("/ui/dashboard")
        assert dash.status_code == 200 and "<svg" in dash.text and "footer.postal_address" in dash.text
        assert (await c.get("/ui/events/424242")).status_code == 404


async def test_dashboard_names_the_senders_counted_together_at_gmail(tmp_path: Path) -> None:
    shop = {"id": "shop", "domains": ["shop.example.jp"], "name": "株式会社サンプル ショップ"}
    env = await make_env(tmp_path, more_senders=(shop,))
    try:
        await env.store.execute("INSERT INTO sender_volume (sender_id, day, gmail_sent) "
                                "VALUES (?, ?, ?)", ("shop", int(time.time() // 86400), 1234))
        async with env.client() as c:
            await login(c, await env.token("ops"))
            dash = (await c.get("/ui/dashboard")).text
        rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr><td>(\w+)</td>.*?</tr>", dash, re.S)}
        assert "1,234" in rows["sample"] and "合算: shop" in rows["sample"]
        assert "1,234" in rows["shop"] and "with sample" in rows["shop"]
        assert "合算" not in rows["other"]
    finally:
        await env.store.close()


async def test_ui_log_filters_by_phase_and_exports_what_it_shows(env: Env) -> None:
    await add_event(env.store, rules=("address.sender_invalid",), recipient="", phase="mail",
                    reply="553 5.1.7 [address.sender_invalid] bad sender")
    await add_event(env.store, rules=("optin.missing",), recipient="hanako@example.jp")
    async with env.client() as c:
        await login(c, await env.token("ops", "ops-ui"))
        page = await c.get("/ui/events", params={"phase": "mail"})
        assert page.status_code == 200
        assert "553 5.1.7 [address.sender_invalid]" in page.text
        assert "h***@example.jp" not in page.text
        assert '<option value="mail" selected' in page.text
        link = re.search(r'href="(/ui/events\.csv\?[^"]*)"', page.text)
        assert link is not None and "phase=mail" in link.group(1)
        export = await c.get(link.group(1).replace("&amp;", "&"))
        assert export.status_code == 200
        assert "address.sender_invalid" in export.text and "optin.missing" not in export.text
        bad = await c.get("/ui/events", params={"phase": "delivery"})
        assert bad.status_code == 422 and "phase is mail, rcpt or data" in bad.text


async def test_auditor_reveal_report_audit_pages(env: Env) -> None:
    event_id = await add_event(env.store, rules=("optin.missing",), recipient="taro@example.jp")
    async with env.client() as c:
        await login(c, await env.token("auditor", "dpo"))
        detail = await c.get(f"/ui/events/{event_id}")
        token = CSRF.search(detail.text)
        assert token is not None
        r = await c.post(f"/ui/events/{event_id}/reveal", data={"csrf": token.group(1),
                                                                "reason": "ticket 7"})
        assert r.status_code == 200 and "taro@example.jp" in r.text
        report = await c.get("/ui/report")
        assert report.status_code == 200 and "月次" in report.text
        csv_ = await c.get("/ui/report.csv", params={"month": "2026-05"})
        assert csv_.headers["content-type"].startswith("text/csv")
        audit = await c.get("/ui/audit")
        assert "events.reveal" in audit.text and "ticket 7" in audit.text


async def test_batches_and_preflight_pages(env: Env) -> None:
    async with env.client() as c:
        await login(c, await env.token("marketer", "mk"))
        page = await c.get("/ui/batches")
        csrf = CSRF.search(page.text)
        assert csrf is not None
        from tests.integration.web.support import CSV_GRANTS

        r = await c.post("/ui/batches/import", data={"csrf": csrf.group(1), "sender": "sample"},
                         files={"file": ("g.csv", CSV_GRANTS.encode(), "text/csv")})
        assert r.status_code == 200 and "pending" in r.text
        assert "Approve" not in r.text  # marketer cannot approve
        r = await c.post("/ui/preflight", data={"csrf": csrf.group(1), "sender": "sample"},
                         files={"file": ("d.eml", eml(), "message/rfc822")})
        assert r.status_code == 200 and 'id="preflight-result">OK' in r.text
    async with env.client() as c:
        await login(c, await env.token("approver", "ap"))
        page = await c.get("/ui/batches")
        csrf = CSRF.search(page.text)
        assert csrf is not None
        batch = re.search(r'action="/ui/batches/([^/]+)/approve"', page.text)
        assert batch is not None
        r = await c.post(f"/ui/batches/{batch.group(1)}/approve", data={"csrf": csrf.group(1)})
        assert r.status_code == 200 and "Approved" in r.text
        rows = await env.store.fetch("SELECT status, decided_by FROM import_batches")
        assert rows == [{"status": "approved", "decided_by": "ap"}]


async def test_ui_csv_export_is_masked_and_audited(env: Env) -> None:
    await add_event(env.store, rules=("optin.missing",), recipient="taro@example.jp")
    async with env.client() as c:
        await login(c, await env.token("ops", "ops-ui"))
        page = await c.get("/ui/events")
        link = re.search(r'href="(/ui/events\.csv\?[^"]*)"', page.text)
        assert link is not None
        r = await c.get(link.group(1).replace("&amp;", "&"))
        assert r.status_code == 200 and "t***@example.jp" in r.text
        assert "taro@example.jp" not in r.text
    rows = await env.store.fetch("SELECT actor, action FROM audit_log")
    assert rows == [{"actor": "ops-ui", "action": "events.export"}]


async def test_clearing_every_bounce_since_needs_a_moment_a_reason_and_the_role(env: Env) -> None:
    await suppression.suppress(env.store, "taro@example.com", suppression.HARD_BOUNCE,
                               "550 5.1.1 unknown", sender_id="sample")
    async with env.client() as c:
        await login(c, await env.token("auditor", "dpo"))  # may read events, not clear bounces
        token = CSRF.search((await c.get("/ui/dashboard")).text)
        assert token is not None
        r = await c.post("/ui/suppressions/clear-since",
                         data={"csrf": token.group(1), "since": "2026-11-24T09:00", "reason": "x"})
        assert r.status_code == 403
    async with env.client() as c:
        await login(c, await env.token("ops", "ops-suzuki"))
        token = CSRF.search((await c.get("/ui/suppressions")).text)
        assert token is not None
        for since, reason in (("", "upstream fault"), ("yesterday", "upstream fault"),
                              ("2026-11-24T09:00", " ")):
            r = await c.post("/ui/suppressions/clear-since",
                             data={"csrf": token.group(1), "since": since, "reason": reason})
            assert r.status_code == 422 and "Enter the moment and the reason" in r.text
        assert len(await suppression.listing(env.store)) == 1  # nothing cleared
        r = await c.post("/ui/suppressions/clear-since",  # with seconds, as some browsers send
                         data={"csrf": token.group(1), "since": "2000-01-01T00:00:00",
                               "reason": "upstream fault"})
        assert r.status_code == 200 and "Cleared 1 hard bounce(s)" in r.text
