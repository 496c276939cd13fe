"""Admin API and UI against the real Starlette app: SQL injection in filters, path traversal,
CSRF on forms, bearer-token brute force (429)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.access.throttle import FailureThrottle
from tests.integration.web.support import Env, add_event, bearer, make_env

pytestmark = pytest.mark.integration

INJECTIONS = [
    "' OR '1'='1",
    "x' UNION SELECT secret_hash, 1, 1 FROM api_tokens --",
    "'; DROP TABLE events; --",
    "optin.missing') OR 1=1 --",
    '" OR ""="',
    "%' OR 1=1 --",
    "\\'; DELETE FROM events WHERE 1=1; --",
]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = await make_env(tmp_path, throttle=FailureThrottle(limit=5, window=300))
    yield e
    await e.store.close()


@pytest.mark.parametrize("param", ["rule", "client", "sender", "verdict", "recipient", "since",
                                   "until", "before_id", "limit"])
async def test_sql_injection_in_event_filters(env: Env, param: str) -> None:
    await add_event(env.store, rules=("optin.missing",), recipient="taro@example.com")
    await add_event(env.store, rules=("footer.contact",), recipient="hanako@example.com")
    token = await env.token("admin")
    async with env.client() as c:
        for payload in INJECTIONS:
            r = await c.get("/api/v1/events", params={param: payload, "reason": "test"},
                            headers=bearer(token))
            assert r.status_code in (200, 422), (param, payload, r.status_code, r.text[:200])
            if r.status_code == 200:
                assert r.json()["events"] == [], (param, payload)  # matched nothing, leaked nothing
    rows = await env.store.fetch("SELECT count(*) AS n FROM events")
    assert rows[0]["n"] == 2  # nothing dropped or deleted
    tokens = await env.store.fetch("SELECT count(*) AS n FROM api_tokens")
    assert tokens[0]["n"] >= 1


@pytest.mark.parametrize("path", [
    "/static/../app.py",
    "/static/%2e%2e/app.py",
    "/static/%2e%2e/%2e%2e/config.py",
    "/static/..%2f..%2fconfig.py",
    "/static/....//....//etc/passwd",
    "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/static//etc/passwd",
    "/ui/../api/v1/tokens",
    "/u/..%2f..%2fetc%2fpasswd",
])
async def test_path_traversal_in_static_and_ui_routes(env: Env, path: str) -> None:
    async with env.client() as c:
        r = await c.get(path)
    assert r.status_code in (302, 303, 307, 400, 401, 403, 404, 405), (path, r.status_code)
    body = r.text
    assert "root:x:0:0" not in body and "def create_app" not in body and "import " not in body


async def test_csrf_on_every_ui_form(env: Env) -> None:
    token = await env.token("admin")
    async with env.client(base_url="https://testserver") as c:  # the session cookie is Secure
        # log in properly, so the only thing missing is the form's CSRF token
        page = await c.get("/ui/login")
        login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
        assert login_csrf is not None
        r = await c.post("/ui/login", data={"token": token, "login_csrf": login_csrf.group(1),
                                            "next": "/ui/"})
        assert r.status_code in (302, 303)
        assert (await c.get("/ui/events")).status_code == 200
        forms = ["/ui/consents", "/ui/batches/import", "/ui/preflight", "/ui/logout",
                 "/ui/events/1/reveal", "/ui/batches/b1/approve"]
        for path in forms:
            for csrf in (None, "forged", ""):
                data = {"sender": "sample", "address": "taro@example.com", "reason": "x"}
                if csrf is not None:
                    data["csrf"] = csrf
                r = await c.post(path, data=data, headers={"Origin": "https://evil.example"})
                assert r.status_code in (400, 403), (path, csrf, r.status_code)
        # still logged in: the forged posts did nothing, not even log out
        assert (await c.get("/ui/events")).status_code == 200
    audit = await env.store.fetch("SELECT count(*) AS n FROM audit_log WHERE action LIKE 'events.reveal%'")
    assert audit[0]["n"] == 0


async def test_login_form_without_its_csrf_token_is_refused(env: Env) -> None:
    token = await env.token("admin")
    async with env.client() as c:
        r = await c.post("/ui/login", data={"token": token, "login_csrf": "forged"})
        assert r.status_code in (400, 403)
        assert "tokuden_session" not in "".join(c.cookies.keys())


async def test_bearer_token_brute_force_gets_429(env: Env) -> None:
    real = await env.token("admin")
    async with env.client(ip="198.51.100.23") as c:
        statuses = [
            (await c.get("/api/v1/me", headers=bearer(f"tk_guess{i}"))).status_code
            for i in range(8)
        ]
        assert statuses[:5] == [401] * 5, statuses
        assert statuses[5:] == [429] * 3, statuses
        blocked = await c.get("/api/v1/me", headers=bearer(real))
        assert blocked.status_code == 429  # even the right token, from this address, for now
        assert int(blocked.headers["Retry-After"]) > 0
    async with env.client(ip="198.51.100.24") as other:
        assert (await other.get("/api/v1/me", headers=bearer(real))).status_code == 200
