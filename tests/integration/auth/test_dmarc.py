"""DMARC discovery by the RFC 9989 tree walk against the loopback knotd, parsing and alignment."""

from __future__ import annotations

import pytest

from gateway.auth.dmarc import (
    AlignmentMode,
    DmarcRecordError,
    DmarcStatus,
    Policy,
    discover,
    dkim_aligned,
    evaluate_alignment,
    org_domain,
    parse_dmarc_record,
    psl_org_domain,
    resolve_org_domains,
    spf_aligned,
    tree_walk_targets,
)
from gateway.auth.dns import DnsTempError
from tests.dns.server import KnotServer

from .conftest import CacheFactory

pytestmark = pytest.mark.integration


async def test_found_at_the_org_domain_by_tree_walk(
    shared_dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    result = await discover(make_cache(shared_dns_server), "news.mail.example.jp")
    assert result.status is DmarcStatus.FOUND
    assert result.record_domain == "example.jp"
    assert result.policy is Policy.REJECT
    assert result.org_domain.tree_walk == "example.jp"
    assert result.org_domain.queried == (
        "_dmarc.news.mail.example.jp",
        "_dmarc.mail.example.jp",
        "_dmarc.example.jp",
        "_dmarc.jp",
    )
    assert not result.org_domain.disagree
    assert result.warnings == ()


async def test_subdomain_policy_applies_below_the_record(
    dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    dns_server.write_zone(
        "sp.test", '_dmarc IN TXT "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@sp.test"'
    )
    cache = make_cache(dns_server)
    assert (await discover(cache, "sp.test")).policy is Policy.REJECT
    assert (await discover(cache, "news.sp.test")).policy is Policy.QUARANTINE


async def test_missing(shared_dns_server: KnotServer, make_cache: CacheFactory) -> None:
    result = await discover(make_cache(shared_dns_server), "mail.nodmarc.test")
    assert result.status is DmarcStatus.MISSING
    assert result.record is None and result.policy is None
    assert result.error == "no DMARC record for mail.nodmarc.test"
    # No record anywhere: the tree walk makes the domain its own org domain; the PSL does not.
    assert result.org_domain.tree_walk == "mail.nodmarc.test"
    assert result.org_domain.psl == "nodmarc.test"


@pytest.mark.parametrize(
    ("domain", "error"),
    [
        ("broken.test", "invalid p='rejectt'"),
        ("twice.test", "2 DMARC records at _dmarc.twice.test"),
    ],
)
async def test_malformed(
    shared_dns_server: KnotServer, make_cache: CacheFactory, domain: str, error: str
) -> None:
    result = await discover(make_cache(shared_dns_server), domain)
    assert result.status is DmarcStatus.MALFORMED
    assert result.error is not None and error in result.error


async def test_malformed_record_is_skipped_when_a_parent_has_one(
    shared_dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    result = await discover(make_cache(shared_dns_server), "broken.example.jp")
    assert result.status is DmarcStatus.FOUND
    assert result.record_domain == "example.jp"
    assert any(
        "ignored: malformed record at _dmarc.broken.example.jp" in w for w in result.warnings
    )


async def test_p_none_warns(shared_dns_server: KnotServer, make_cache: CacheFactory) -> None:
    result = await discover(make_cache(shared_dns_server), "monitor.example.jp")
    assert result.status is DmarcStatus.FOUND
    assert result.policy is Policy.NONE
    assert any(w.startswith("p=none") for w in result.warnings)
    assert any(w.startswith("no rua=") for w in result.warnings)


async def test_psl_and_tree_walk_disagree(
    shared_dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    cache = make_cache(shared_dns_server)
    result = await discover(cache, "mail.brand.example.jp")
    assert result.record_domain == "brand.example.jp"
    assert result.policy is Policy.QUARANTINE  # found before reaching example.jp's p=reject
    assert result.org_domain.tree_walk == "brand.example.jp"  # psd=n
    assert result.org_domain.psl == "example.jp"
    assert result.org_domain.disagree
    assert any("by the PSL example.jp" in w for w in result.warnings)

    # The consequence: d=example.jp aligns with mail.brand.example.jp only under the PSL.
    orgs = await resolve_org_domains(cache, ["mail.brand.example.jp", "example.jp"])
    assert not dkim_aligned("mail.brand.example.jp", "example.jp", "r", orgs.__getitem__)
    assert dkim_aligned("mail.brand.example.jp", "example.jp", "r", psl_org_domain_strict)


def psl_org_domain_strict(domain: str) -> str:
    org = psl_org_domain(domain)
    assert org is not None
    return org


async def test_psd_y_makes_the_child_the_org_domain(
    shared_dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    org = await org_domain(make_cache(shared_dns_server), "x.shop.psd.test")
    assert org.tree_walk == "shop.psd.test"
    assert org.psl == "psd.test"
    assert org.queried[-1] == "_dmarc.psd.test"  # the psd= record ends the walk


async def test_walk_is_at_most_eight_lookups(
    shared_dns_server: KnotServer, make_cache: CacheFactory
) -> None:
    cache = make_cache(shared_dns_server)
    long_name = "a.b.c.d.e.f.g.h.i.example.jp"
    result = await discover(cache, long_name)
    assert result.record_domain == "example.jp"
    assert len(result.org_domain.queried) == 8
    assert result.org_domain.queried[1] == "_dmarc.e.f.g.h.i.example.jp"  # jump to 7 labels
    assert cache.stats.misses == 8


async def test_temp_error_propagates(dns_server: KnotServer, make_cache: CacheFactory) -> None:
    cache = make_cache(dns_server)
    dns_server.stop()
    with pytest.raises(DnsTempError):
        await discover(cache, "example.jp")


def test_tree_walk_targets() -> None:
    assert tree_walk_targets("Mail.Example.JP.") == ["mail.example.jp", "example.jp", "jp"]
    assert tree_walk_targets("jp") == ["jp"]
    nine = "a.b.c.d.e.f.g.h.jp"
    assert tree_walk_targets(nine) == [
        nine,
        "c.d.e.f.g.h.jp",
        "d.e.f.g.h.jp",
        "e.f.g.h.jp",
        "f.g.h.jp",
        "g.h.jp",
        "h.jp",
        "jp",
    ]


def test_parse_record() -> None:
    rec = parse_dmarc_record(
        "v=DMARC1; p=quarantine; sp=reject; np=reject; adkim=s; aspf=r; t=y; psd=n; pct=50; "
        "rua=mailto:a@example.jp,mailto:b@example.jp!10m; ruf=mailto:f@example.jp; fo=1; x=y;"
    )
    assert (rec.p, rec.sp, rec.np) == (Policy.QUARANTINE, Policy.REJECT, Policy.REJECT)
    assert (rec.adkim, rec.aspf) == (AlignmentMode.STRICT, AlignmentMode.RELAXED)
    assert rec.testing and rec.psd == "n" and rec.pct == 50
    assert rec.rua == ("mailto:a@example.jp", "mailto:b@example.jp")
    assert rec.ruf == ("mailto:f@example.jp",)
    assert rec.fo == "1"
    assert rec.tags["x"] == "y"
    assert rec.warnings == ("unknown tag x= ignored",)


def test_parse_record_lenient_and_strict_parts() -> None:
    assert parse_dmarc_record("v=DMARC1").p is Policy.NONE  # RFC 9989: no p= means none
    fallback = parse_dmarc_record("v=DMARC1; p=bogus; rua=mailto:d@example.jp")
    assert fallback.p is Policy.NONE
    assert "treated as p=none" in fallback.warnings[0]
    odd = parse_dmarc_record("v=DMARC1; p=reject; adkim=x; pct=200")
    assert odd.adkim is AlignmentMode.RELAXED
    assert len(odd.warnings) == 2
    for bad in (
        "p=reject; v=DMARC1",
        "v=DMARC2; p=reject",
        "v=DMARC1; p=reject; p=none",
        "v=DMARC1; p=rejectt",
        "v=DMARC1; garbage",
    ):
        with pytest.raises(DmarcRecordError):
            parse_dmarc_record(bad)


def test_alignment_functions() -> None:
    orgs = {
        "news.example.jp": "example.jp",
        "bounce.example.jp": "example.jp",
        "example.jp": "example.jp",
        "example.test": "example.test",
    }.__getitem__
    assert dkim_aligned("news.example.jp", "example.jp", "r", orgs)
    assert not dkim_aligned("news.example.jp", "example.jp", "s", orgs)
    assert dkim_aligned("Example.JP", "example.jp.", AlignmentMode.STRICT, orgs)
    assert spf_aligned("news.example.jp", "bounce.example.jp", "r", orgs)
    assert not spf_aligned("news.example.jp", "bounce.example.jp", "s", orgs)
    assert not spf_aligned("example.jp", "example.test", "r", orgs)


async def test_evaluate_alignment(shared_dns_server: KnotServer, make_cache: CacheFactory) -> None:
    cache = make_cache(shared_dns_server)
    result = await discover(cache, "news.mail.example.jp")
    orgs = await resolve_org_domains(
        cache, ["news.mail.example.jp", "example.jp", "bounce.example.jp", "example.test"]
    )
    ok = evaluate_alignment(result, ["example.jp"], "bounce.example.jp", orgs.__getitem__)
    assert ok.dkim and ok.spf and ok.aligned
    bad = evaluate_alignment(result, ["example.test"], None, orgs.__getitem__)
    assert not bad.aligned
