"""Fixtures for the auth integration tests: the loopback knotd and DnsCaches pointed at it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

# `tests.dns` must be importable however pytest was started. Until tests/integration/ is a
# package (or tests/conftest.py exists), pytest puts only tests/integration on sys.path, so the
# repository root is added here; once it is on the path this does nothing.
_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from gateway.auth.dns import DnsCache, DnsConfig  # noqa: E402
from tests.dns.fixtures import dns_server, shared_dns_server  # noqa: E402, F401
from tests.dns.server import KnotServer  # noqa: E402


class FakeClock:
    """A monotonic clock the test moves by hand, so TTL tests need no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


CacheFactory = Callable[..., DnsCache]


@pytest.fixture
async def make_cache(clock: FakeClock) -> AsyncIterator[CacheFactory]:
    """make_cache(server, **DnsConfig overrides) -> a DnsCache on `server` with the fake clock."""
    made: list[DnsCache] = []

    def factory(server: KnotServer, **overrides: object) -> DnsCache:
        options: dict[str, object] = {"timeout": 0.3, "min_ttl": 1.0}
        options.update(overrides)
        config = DnsConfig(nameservers=(server.nameserver,), **options)  # type: ignore[arg-type]
        cache = DnsCache(config, clock=clock)
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        await cache.aclose()
