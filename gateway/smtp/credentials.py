"""Client credentials: scrypt password hashes, a verified-credentials cache, AUTH throttling.

MA tools often open one connection per message and AUTH every time; a full
scrypt per AUTH would cost ~50 ms of CPU each, so a successful verification
is remembered (keyed by a per-process random key, never the password itself)
for a bounded time. Failures are counted per client address and throttled.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass

from gateway.config import ClientConfig

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_CACHE_SECONDS = 300.0


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """`scrypt$n$r$p$salt$hash` with url-safe base64 parts."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.urlsafe_b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(slots=True)
class _Failures:
    count: int
    first: float


class Authenticator:
    """Checks username/password against the configured clients, with cache and throttling."""

    def __init__(
        self, clients: tuple[ClientConfig, ...], *, failure_limit: int, failure_window: float
    ) -> None:
        self._clients = {c.username: c for c in clients if c.password_hash}
        self._failure_limit = failure_limit
        self._failure_window = failure_window
        self._failures: dict[str, _Failures] = {}
        self._verified: dict[bytes, float] = {}
        self._cache_key = secrets.token_bytes(32)

    def throttled(self, ip: str) -> bool:
        entry = self._failures.get(ip)
        if entry is None:
            return False
        if time.monotonic() - entry.first > self._failure_window:
            del self._failures[ip]
            return False
        return entry.count >= self._failure_limit

    async def verify(self, ip: str, username: str, password: str) -> ClientConfig | None:
        """The client on success; None on failure (counted against `ip`)."""
        client = self._clients.get(username)
        token = hmac.new(
            self._cache_key, username.encode() + b"\0" + password.encode(), "sha256"
        ).digest()
        now = time.monotonic()
        if client is not None and self._verified.get(token, 0.0) > now:
            return client
        ok = False
        if client is not None and client.password_hash:
            # scrypt is deliberately slow: keep it off the event loop
            ok = await asyncio.to_thread(verify_password, password, client.password_hash)
        else:
            # spend the same time for unknown users so timing does not reveal them
            await asyncio.to_thread(verify_password, password, _dummy_hash())
        if ok and client is not None:
            if len(self._verified) > 10000:
                self._verified.clear()
            self._verified[token] = now + _CACHE_SECONDS
            return client
        self._record_failure(ip)
        return None

    def _record_failure(self, ip: str) -> None:
        now = time.monotonic()
        entry = self._failures.get(ip)
        if entry is None or now - entry.first > self._failure_window:
            self._failures[ip] = _Failures(1, now)
        else:
            entry.count += 1
        if len(self._failures) > 100000:  # bounded memory under a distributed attack
            oldest = sorted(self._failures.items(), key=lambda kv: kv[1].first)[:50000]
            for key, _ in oldest:
                del self._failures[key]


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))
