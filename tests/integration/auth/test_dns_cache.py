"""DnsCache against a real knotd: TTLs, refresh, negative caching, serve-stale, temp errors."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.auth.dns import DnsConfig, DnsStatus, DnsTempError, parse_nameserver
from tests.dns.server import KnotServer

from .conftest import CacheFactory, FakeClock

pytestmark = pytest.mark.integration

ZONE = 'probe   IN TXT "v={version}"\nhost    IN A   192.0.2.50\n'


def _serve(server: KnotServer, version: int, ttl: int = 300) -> None:
    server.write_zone("cache.test", f"$TTL {ttl}\n" + ZONE.format(version=version))


async def test_answer_is_cached_until_its_ttl_expires(
    dns_server: KnotServer, make_cache: CacheFactory, clock: FakeClock
) -> None:
    _serve(dns_server, 1, ttl=120)
    cache = make_cache(dns_server)

    first = await cache.lookup("probe.cache.test", "TXT")
    assert first.txt_strings() == ["v=1"]
    assert first.ttl == 120
    assert (cache.stats.misses, cache.stats.hits) == (1, 0)

    _serve(dns_server, 2, ttl=120)  # the server changes, the cached answer does not
    clock.advance(60)
    assert await cache.txt("probe.cache.test") == ["v=1"]
    assert cache.stats.hits == 1

    clock.advance(61)  # past the TTL: asked again
    assert await cache.txt("PROBE.cache.test.") == ["v=2"]  # case and trailing dot normalised
    assert cache.stats.misses == 2


async def test_ttl_is_clamped(dns_server: KnotServer, make_cache: CacheFactory) -> None:
    _serve(dns_server, 1, ttl=5)
    cache = make_cache(dns_server, min_ttl=60.0, max_ttl=600.0)
    assert (await cache.lookup("probe.cache.test")).ttl == 60
    _serve(dns_server, 1, ttl=86400)
    cache2 = make_cache(dns_server, min_ttl=60.0, max_ttl=600.0)
    assert (await cache2.lookup("probe.cache.test")).ttl == 600


async def test_used_entry_near_expiry_is_refreshed_in_the_background(
    dns_server: KnotServer, make_cache: CacheFactory, clock: FakeClock
) -> None:
    _serve(dns_server, 1, ttl=100)
    cache = make_cache(dns_server)
    await cache.lookup("probe.cache.test")
    _serve(dns_server, 2, ttl=100)

    clock.advance(50)  # half the TTL left: no refresh
    assert await cache.txt("probe.cache.test") == ["v=1"]
    await cache.drain()
    assert cache.stats.refreshes == 0

    clock.advance(45)  # 5 s of 100 left (< 10 %): served at once, refreshed behind the scenes
    assert await cache.txt("probe.cache.test") == ["v=1"]
    await cache.drain()
    assert cache.stats.refreshes == 1
    refreshed = cache.peek("probe.cache.test")
    assert refreshed is not None
    assert refreshed.txt_strings() == ["v=2"]
    assert refreshed.expires_at == clock.now + 100
    assert cache.stats.misses == 1  # the message never waited for the refresh


async def test_nxdomain_and_nodata_are_cached_for_the_soa_minimum(
    dns_server: KnotServer, make_cache: CacheFactory, clock: FakeClock
) -> None:
    _serve(dns_server, 1)
    cache = make_cache(dns_server)

    nx = await cache.lookup("absent.cache.test", "TXT")
    assert nx.status is DnsStatus.NXDOMAIN
    assert not nx.exists
    # KnotServer's SOA has MINIMUM 60 and TTL 300: RFC 2308 takes the lesser.
    assert nx.ttl == dns_server.negative_ttl == 60

    nodata = await cache.lookup("host.cache.test", "TXT")
    assert nodata.status is DnsStatus.NODATA
    assert nodata.ttl == 60

    dns_server.write_zone("cache.test", ZONE.format(version=1) + 'absent IN TXT "now here"\n')
    clock.advance(30)
    assert await cache.txt("absent.cache.test") == []  # still the cached NXDOMAIN
    assert cache.stats.negative_hits == 1
    clock.advance(31)
    assert await cache.txt("absent.cache.test") == ["now here"]


async def test_negative_answer_without_soa_uses_the_configured_default(
    dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    # Outside every zone knotd answers REFUSED: that is a failure, not a negative answer.
    cache = make_cache(dns_server, negative_ttl=42.0)
    with pytest.raises(DnsTempError):
        await cache.lookup("nowhere.invalid", "TXT")
    assert cache.stats.errors == 1


async def test_serve_stale_while_dns_is_down_then_temp_error(
    dns_server: KnotServer, make_cache: CacheFactory, clock: FakeClock
) -> None:
    _serve(dns_server, 1, ttl=60)
    cache = make_cache(dns_server, stale_ttl=3600.0, stale_retry=30.0)
    await cache.lookup("probe.cache.test")
    dns_server.stop()

    clock.advance(61)  # expired, server down: the last good answer, marked stale
    stale = await cache.lookup("probe.cache.test")
    assert stale.stale
    assert stale.txt_strings() == ["v=1"]
    assert cache.stats.stale_served == 1

    # Within stale_retry the servers are not asked again: no timeout for the next message.
    started = time.monotonic()
    again = await cache.lookup("probe.cache.test")
    assert again.stale
    assert time.monotonic() - started < 0.1
    assert cache.stats.errors == 1

    clock.advance(3600)  # beyond the stale window
    with pytest.raises(DnsTempError):
        await cache.lookup("probe.cache.test")

    dns_server.start()  # recovery: a fresh answer again
    fresh = await cache.lookup("probe.cache.test")
    assert not fresh.stale
    assert fresh.txt_strings() == ["v=1"]


async def test_nothing_cached_and_dns_down_is_a_temp_error(
    dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    cache = make_cache(dns_server)
    dns_server.stop()
    with pytest.raises(DnsTempError):
        await cache.lookup("bounce.example.jp", "TXT")


async def test_peek_never_does_io_and_prefetch_warms(
    dns_server: KnotServer, make_cache: CacheFactory, clock: FakeClock
) -> None:
    cache = make_cache(dns_server)
    assert cache.peek("bounce.example.jp") is None
    await cache.prefetch(["bounce.example.jp", ("mx1.example.jp", "A"), "gone.example.jp"])
    txt = cache.peek("bounce.example.jp")
    assert txt is not None and txt.txt_strings()[0].startswith("v=spf1")
    a = cache.peek("mx1.example.jp", "A")
    assert a is not None and a.addresses() == ["192.0.2.25"]
    gone = cache.peek("gone.example.jp")
    assert gone is not None and gone.status is DnsStatus.NXDOMAIN
    clock.advance(1000)  # past the 300 s TTL, inside the 3600 s stale window
    assert cache.peek("bounce.example.jp") is None
    assert cache.peek("bounce.example.jp", allow_stale=True) is not None
    clock.advance(3600)
    assert cache.peek("bounce.example.jp", allow_stale=True) is None


async def test_concurrent_misses_share_one_query(
    dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    cache = make_cache(dns_server)
    answers = await asyncio.gather(*(cache.lookup("bounce.example.jp") for _ in range(20)))
    assert len({a.txt_strings()[0] for a in answers}) == 1
    assert cache.stats.errors == 0
    assert len(cache._entries) == 1


async def test_large_txt_over_tcp(dns_server: KnotServer, make_cache: CacheFactory) -> None:
    big = "x" * 250
    records = "\n".join(f'big IN TXT "{i}-{big}"' for i in range(12))  # > 512 octets: TC bit
    dns_server.write_zone("cache.test", records)
    cache = make_cache(dns_server)
    assert len(await cache.txt("big.cache.test")) == 12


def test_parse_nameserver() -> None:
    assert parse_nameserver("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_nameserver("127.0.0.1:5300") == ("127.0.0.1", 5300)
    assert parse_nameserver("[::1]:5300") == ("::1", 5300)
    assert parse_nameserver("2001:db8::1") == ("2001:db8::1", 53)
    for bad in ("dns.example.jp", "127.0.0.1:0", "127.0.0.1:x", "[::1"):
        with pytest.raises(ValueError):
            parse_nameserver(bad)
    with pytest.raises(ValueError):
        DnsConfig(nameservers=("resolver.example.jp:53",))
