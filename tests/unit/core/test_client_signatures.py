"""Client DKIM signatures are removed exactly when the gateway changed what they sign."""

from __future__ import annotations

import asyncio

from gateway.auth import dkim_sign
from gateway.auth.dkim_sign import MAX_VERIFIED, verify_existing
from gateway.auth.dns import DnsCache, DnsConfig
from gateway.config import ClientConfig, Config
from gateway.delivery import headers
from gateway.delivery.client_signatures import note_removed, strip_broken
from gateway.engine.context import Facts
from gateway.model import Outcome, Phase, RuleResult
from tests.support import authenv

SIG = (b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=ma.example; s=s1;\r\n"
       b" h=from:to:subject:list-unsubscribe; bh=AAAA; b=BBBB\r\n")
MESSAGE = (b"From: news@example.jp\r\nTo: taro@example.com\r\nSubject: hello\r\n"
           b"X-Topic: sale\r\n\r\nbody\r\n")


def strip(received: bytes, outgoing: bytes) -> tuple[bytes, list[str] | None]:
    facts = Facts(config=Config(), client=ClientConfig(username="t"), client_ip="",
                  phase=Phase.DATA)
    facts.extra["received"] = received
    out = asyncio.run(strip_broken(facts, outgoing))
    return out, facts.extra.get("client_dkim_removed")


def test_a_signature_over_fields_the_gateway_left_alone_is_kept() -> None:
    received = SIG + MESSAGE
    outgoing = headers.remove_header(received, "X-Topic")  # not in h=
    assert strip(received, outgoing) == (outgoing, None)


def test_a_signed_field_added_or_a_changed_body_removes_it() -> None:
    received = SIG + MESSAGE
    added = headers.prepend(received, [("List-Unsubscribe", "<https://gw.example.jp/u/x>")])
    out, removed = strip(received, added)
    assert out == headers.prepend(MESSAGE, [("List-Unsubscribe", "<https://gw.example.jp/u/x>")])
    assert removed == ["d=ma.example s=s1 (list-unsubscribe)"]
    out, removed = strip(received, received.replace(b"body\r\n", b"body\r\nfooter\r\n"))
    assert b"DKIM-Signature" not in out and removed == ["d=ma.example s=s1 (body)"]


def test_only_the_clients_signatures_are_judged() -> None:
    ours = SIG.replace(b"d=ma.example", b"d=example.jp")
    received = SIG + MESSAGE
    outgoing = ours + headers.prepend(received, [("List-Unsubscribe", "<x>")])
    out, removed = strip(received, outgoing)
    assert out.startswith(ours) and out.count(b"DKIM-Signature") == 1
    assert removed == ["d=ma.example s=s1 (list-unsubscribe)"]


def test_an_unreadable_signature_is_left_as_it_is() -> None:
    received = b"DKIM-Signature: v=1; d\r\n" + MESSAGE
    outgoing = received.replace(b"body", b"changed")
    assert strip(received, outgoing) == (outgoing, None)


def test_the_note_goes_to_the_client_signature_result() -> None:
    results = [RuleResult("align.spf", Outcome.PASS),
               RuleResult("align.client_dkim", Outcome.PASS, "d=ma.example s=s1: pass",
                          {"signatures": [{"d": "ma.example"}]})]
    note_removed(results, ["d=ma.example s=s1 (body)"])
    assert results[0] == RuleResult("align.spf", Outcome.PASS)
    assert results[1].detail == ("d=ma.example s=s1: pass; removed, the gateway changed what "
                                 "they sign: d=ma.example s=s1 (body)")
    assert results[1].data == {"signatures": [{"d": "ma.example"}],
                               "removed": ["d=ma.example s=s1 (body)"]}


def test_verification_is_capped_and_can_skip_domains() -> None:
    # a message may carry any number of signatures; each costs a DNS query and an RSA check
    many = b"".join(SIG.replace(b"d=ma.example", f"d=d{i}.example.jp".encode())
                    for i in range(40)) + MESSAGE

    async def verify(**kw: object) -> list[str | None]:
        cache = DnsCache(DnsConfig(nameservers=(authenv.shared().nameserver,), timeout=1.0))
        try:
            return [r.domain for r in await verify_existing(cache, many, **kw)]  # type: ignore[arg-type]
        finally:
            await cache.aclose()

    assert asyncio.run(verify()) == [f"d{i}.example.jp" for i in range(MAX_VERIFIED)]
    assert asyncio.run(verify(domains=lambda d: d == "d17.example.jp")) == ["d17.example.jp"]
    assert dkim_sign._signing_domain(b" v=1; a=rsa-sha256; bh=x; d=\r\n Brand.Example; s=s") == (
        "brand.example")
