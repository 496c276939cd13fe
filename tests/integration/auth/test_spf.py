"""SPF for egress IPs through the DnsCache, against the loopback knotd (zones/example.jp.zone)."""

from __future__ import annotations

import pytest
import spf

from gateway.auth.spf import SpfEvaluator, SpfVerdict
from tests.dns.server import KnotServer

from .conftest import CacheFactory, FakeClock

pytestmark = pytest.mark.integration

EGRESS = "192.0.2.10"  # authorised by _spf.example.jp
OTHER = "198.51.100.7"  # not authorised


@pytest.mark.parametrize(
    ("ip", "domain", "verdict", "mechanism"),
    [
        (EGRESS, "bounce.example.jp", SpfVerdict.PASS, "include:_spf.example.jp"),
        ("2001:db8::10", "bounce.example.jp", SpfVerdict.PASS, "include:_spf.example.jp"),
        ("192.0.2.25", "bounce.example.jp", SpfVerdict.PASS, "mx:example.jp"),
        (OTHER, "bounce.example.jp", SpfVerdict.FAIL, "-all"),
        (EGRESS, "softfail.example.jp", SpfVerdict.SOFTFAIL, "~all"),
        (EGRESS, "neutral.example.jp", SpfVerdict.NEUTRAL, "?all"),
        (EGRESS, "nospf.example.jp", SpfVerdict.NONE, None),
        (EGRESS, "no-such-name.example.jp", SpfVerdict.NONE, None),
    ],
)
async def test_results(
    shared_dns_server: KnotServer,
    make_cache: CacheFactory,
    ip: str,
    domain: str,
    verdict: SpfVerdict,
    mechanism: str | None,
) -> None:
    result = await SpfEvaluator(make_cache(shared_dns_server)).evaluate(ip, domain)
    assert result.verdict is verdict, result.explanation
    assert result.mechanism == mechanism
    assert result.passed is (verdict is SpfVerdict.PASS)


async def test_fail_carries_the_explanation(
    shared_dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    result = await SpfEvaluator(make_cache(shared_dns_server)).evaluate(OTHER, "bounce.example.jp")
    assert result.verdict is SpfVerdict.FAIL
    assert "not authorized" in result.explanation


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("toomany.example.jp", "Too many DNS lookups"),  # 11 includes > 10
        ("voids.example.jp", "Void lookup limit of 2 exceeded"),
        ("syntax.example.jp", "Invalid IP4 address"),
        ("twospf.example.jp", "Two or more type TXT spf records"),
    ],
)
async def test_permerrors(
    shared_dns_server: KnotServer, make_cache: CacheFactory, domain: str, why: str
) -> None:
    result = await SpfEvaluator(make_cache(shared_dns_server)).evaluate(EGRESS, domain)
    assert result.verdict is SpfVerdict.PERMERROR
    assert why in result.explanation


async def test_lookup_counters(shared_dns_server: KnotServer, make_cache: CacheFactory) -> None:
    evaluator = SpfEvaluator(make_cache(shared_dns_server))
    toomany = await evaluator.evaluate(EGRESS, "toomany.example.jp")
    assert toomany.lookups == 11
    voids = await evaluator.evaluate(EGRESS, "voids.example.jp")
    assert voids.void_lookups == 3


async def test_temperror_when_dns_is_down_and_nothing_cached(
    dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    evaluator = SpfEvaluator(make_cache(dns_server))
    dns_server.stop()
    result = await evaluator.evaluate(EGRESS, "bounce.example.jp")
    assert result.verdict is SpfVerdict.TEMPERROR
    assert result.ttl_expires_at is None  # never cached: the next message tries again
    dns_server.start()
    assert (await evaluator.evaluate(EGRESS, "bounce.example.jp")).verdict is SpfVerdict.PASS


async def test_temperror_in_an_include(dns_server: KnotServer, make_cache: CacheFactory) -> None:
    cache = make_cache(dns_server)
    await cache.prefetch(["bounce.example.jp"])  # top record cached, the include is not
    dns_server.stop()
    result = await SpfEvaluator(cache).evaluate(EGRESS, "bounce.example.jp")
    assert result.verdict is SpfVerdict.TEMPERROR
    assert "_spf.example.jp" in result.explanation


async def test_result_cached_for_the_record_ttl_and_needs_no_dns(
    dns_server: KnotServer, make_cache: CacheFactory, clock: FakeClock
) -> None:
    cache = make_cache(dns_server)
    evaluator = SpfEvaluator(cache)
    first = await evaluator.evaluate(EGRESS, "bounce.example.jp")
    assert not first.from_cache
    assert first.ttl_expires_at == clock.now + 300

    dns_server.stop()  # steady state: the answer comes without DNS
    clock.advance(100)
    again = await evaluator.evaluate(EGRESS, "bounce.example.jp")
    assert again.from_cache
    assert again.verdict is SpfVerdict.PASS

    # After the TTL the records are stale but served (DNS down): pyspf runs again on them,
    # and the result is not cached since it rests on stale data.
    clock.advance(250)
    stale = await evaluator.evaluate(EGRESS, "bounce.example.jp")
    assert stale.verdict is SpfVerdict.PASS
    assert not stale.from_cache
    assert stale.ttl_expires_at is None


async def test_warm_cache_evaluates_without_any_query(
    shared_dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    cache = make_cache(shared_dns_server)
    evaluator = SpfEvaluator(cache)
    await evaluator.evaluate(OTHER, "bounce.example.jp")  # a fail visits every mechanism
    misses = cache.stats.misses
    evaluator.forget()  # result cache cleared, DNS cache warm
    result = await evaluator.evaluate("192.0.2.25", "bounce.example.jp")
    assert result.verdict is SpfVerdict.PASS
    assert cache.stats.misses == misses


async def test_evaluate_all_egress_ips(
    shared_dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    results = await SpfEvaluator(make_cache(shared_dns_server)).evaluate_all(
        [EGRESS, OTHER], "bounce.example.jp", helo="gw.example.jp"
    )
    assert [r.ip for r in results] == [EGRESS, OTHER]
    assert [r.verdict for r in results] == [SpfVerdict.PASS, SpfVerdict.FAIL]
    assert results[0].helo == "gw.example.jp"


async def test_pyspf_global_resolver_is_never_used(
    shared_dns_server: KnotServer, make_cache: CacheFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> object:
        raise AssertionError("spf.DNSLookup called: DNS bypassed the cache")

    monkeypatch.setattr(spf, "DNSLookup", forbidden)
    result = await SpfEvaluator(make_cache(shared_dns_server)).evaluate(EGRESS, "bounce.example.jp")
    assert result.verdict is SpfVerdict.PASS


async def test_bad_ip_is_a_value_error(
    shared_dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    with pytest.raises(ValueError):
        await SpfEvaluator(make_cache(shared_dns_server)).evaluate("not-an-ip", "example.jp")
