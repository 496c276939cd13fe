"""Fixtures for the auth integration tests: the loopback knotd and DnsCaches pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from gateway.auth.dns import DnsCache, DnsConfig
from tests.dns.fixtures import dns_server, shared_dns_server  # noqa: F401
from tests.dns.server import KnotServer


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
