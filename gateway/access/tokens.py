"""API tokens: high-entropy secrets shown once, stored as SHA-256, expiring and revocable."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from gateway.access.roles import Principal, Role
from gateway.store.base import Store

__all__ = ["SECRET_PREFIX", "TokenError", "authenticate", "create_token", "hash_secret",
           "list_tokens", "parse_duration", "revoke_token"]

SECRET_PREFIX = "tkd_"  # recognisable in logs and by secret scanners
TOUCH_INTERVAL = 60.0  # last_used_at is written at most once a minute per token
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class TokenError(ValueError):
    """A token operation was refused (unknown id, bad role or duration)."""


@dataclass(frozen=True, slots=True)
class NewToken:
    id: str
    name: str
    role: Role
    secret: str  # shown once; only its hash is stored
    expires_at: float | None


def hash_secret(secret: str) -> str:
    # A plain hash is enough: secrets carry 256 random bits, so there is nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_duration(text: str) -> float:
    """'30d', '12h', '2w' -> seconds."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise TokenError(f"duration {text!r} is not like 30d, 12h, 2w")
    return int(match.group(1)) * _UNITS[match.group(2)]


async def create_token(
    store: Store, role: str, name: str, *, expires_in: float | None = None, created_by: str = "",
    now: float | None = None,
) -> NewToken:
    try:
        role_ = Role(role)
    except ValueError:
        raise TokenError(f"unknown role {role!r} (known: {', '.join(r.value for r in Role)})"
                         ) from None
    if not name.strip():
        raise TokenError("a token needs a name (the person or system using it)")
    moment = time.time() if now is None else now
    token_id = "tk_" + secrets.token_hex(4)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    expires = moment + expires_in if expires_in is not None else None
    await store.execute(
        "INSERT INTO api_tokens (id, name, role, hash, created_at, created_by, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (token_id, name.strip(), role_.value, hash_secret(secret), moment, created_by, expires),
    )
    return NewToken(token_id, name.strip(), role_, secret, expires)


async def authenticate(store: Store, secret: str, *, now: float | None = None) -> Principal | None:
    """The principal of a valid secret; None when unknown, expired or revoked."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
        return None
    digest = hash_secret(secret)
    rows = await store.fetch(
        "SELECT id, name, role, hash, expires_at, revoked_at, last_used_at FROM api_tokens "
        "WHERE hash = ?",
        (digest,),
    )
    if not rows or not hmac.compare_digest(str(rows[0]["hash"]), digest):
        return None
    row = rows[0]
    moment = time.time() if now is None else now
    if row["revoked_at"] is not None:
        return None
    if row["expires_at"] is not None and row["expires_at"] <= moment:
        return None
    try:
        role = Role(row["role"])
    except ValueError:
        return None
    if row["last_used_at"] is None or moment - row["last_used_at"] > TOUCH_INTERVAL:
        await store.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?",
                            (moment, row["id"]))
    return Principal(row["id"], row["name"], role)


async def principal_by_id(store: Store, token_id: str, *, now: float | None = None
                          ) -> Principal | None:
    """The principal of a token id if the token is still valid (for UI sessions)."""
    rows = await store.fetch(
        "SELECT id, name, role, expires_at, revoked_at FROM api_tokens WHERE id = ?", (token_id,)
    )
    moment = time.time() if now is None else now
    if not rows or rows[0]["revoked_at"] is not None:
        return None
    if rows[0]["expires_at"] is not None and rows[0]["expires_at"] <= moment:
        return None
    return Principal(rows[0]["id"], rows[0]["name"], Role(rows[0]["role"]))


async def revoke_token(store: Store, token_id: str, *, now: float | None = None) -> None:
    changed = await store.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (time.time() if now is None else now, token_id),
    )
    if not changed:
        rows = await store.fetch("SELECT revoked_at FROM api_tokens WHERE id = ?", (token_id,))
        if not rows:
            raise TokenError(f"no token {token_id!r}")
        raise TokenError(f"token {token_id} is already revoked")
    await store.execute("DELETE FROM web_sessions WHERE token_id = ?", (token_id,))


async def list_tokens(store: Store) -> list[dict[str, Any]]:
    """Every token without its hash, newest first, with a computed state."""
    rows = await store.fetch(
        "SELECT id, name, role, created_at, created_by, expires_at, revoked_at, last_used_at "
        "FROM api_tokens ORDER BY created_at DESC"
    )
    moment = time.time()
    for row in rows:
        if row["revoked_at"] is not None:
            row["state"] = "revoked"
        elif row["expires_at"] is not None and row["expires_at"] <= moment:
            row["state"] = "expired"
        else:
            row["state"] = "active"
    return rows
