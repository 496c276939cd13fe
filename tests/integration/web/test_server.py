"""The real uvicorn HttpServer on a loopback port in the test's own event loop."""

from __future__ import annotations

import socket

import httpx

from gateway.web import HttpServer
from tests.integration.web.support import Env


async def test_http_server_on_port_zero(env: Env) -> None:
    server = HttpServer()
    await server.start(env.app, "127.0.0.1:0")
    try:
        assert server.port > 0
        async with httpx.AsyncClient(base_url=server.url) as c:
            assert (await c.get("/healthz")).json()["status"] == "ok"
            token = env.codec.encode("sample", "taro@example.com")
            r = await c.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 200
            assert "server" not in r.headers
    finally:
        await server.stop()
    rows = await env.store.fetch("SELECT method, client_ip FROM consent_events")
    assert rows == [{"method": "one_click", "client_ip": "127.0.0.1"}]
    # the port is released
    with socket.socket() as s:
        s.bind(("127.0.0.1", server.port))
    await server.stop()  # idempotent
