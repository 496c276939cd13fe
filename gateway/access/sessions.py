"""Web UI sessions: a random cookie (stored hashed, server-side) bound to a token, with CSRF."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from gateway.access.roles import Principal
from gateway.access.tokens import principal_by_id
from gateway.store.base import Store

SESSION_COOKIE = "tokuden_session"
SESSION_LIFETIME = 8 * 3600.0


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf: str


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


async def create_session(store: Store, principal: Principal, *, now: float | None = None
                         ) -> tuple[str, Session]:
    """(cookie value, session); the cookie value itself is never stored."""
    moment = time.time() if now is None else now
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    await store.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (moment,))
    await store.execute(
        "INSERT INTO web_sessions (id_hash, token_id, csrf, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (_hash(cookie), principal.token_id, csrf, moment, moment + SESSION_LIFETIME),
    )
    return cookie, Session(principal, csrf)


async def load_session(store: Store, cookie: str, *, now: float | None = None) -> Session | None:
    """The live session of a cookie whose token is still valid, else None."""
    if not cookie or len(cookie) > 100:
        return None
    moment = time.time() if now is None else now
    rows = await store.fetch(
        "SELECT token_id, csrf, expires_at FROM web_sessions WHERE id_hash = ?", (_hash(cookie),)
    )
    if not rows or rows[0]["expires_at"] <= moment:
        return None
    principal = await principal_by_id(store, rows[0]["token_id"], now=moment)
    if principal is None:
        return None
    return Session(principal, rows[0]["csrf"])


async def delete_session(store: Store, cookie: str) -> None:
    await store.execute("DELETE FROM web_sessions WHERE id_hash = ?", (_hash(cookie),))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
