"""Alignment refusals through real SMTP, against a private knotd per test."""

from __future__ import annotations

import json
import re
import smtplib
from pathlib import Path
from typing import Any

import dkim
import pytest

from gateway.auth.dkim_sign import DkimSigner, load_key
from tests.support import authenv
from tests.support.gateway import PASSWORD, REVEAL, GatewayProcess, base_config, cli
from tests.support.messages import marketing
from tests.support.sink import RecordingSink
from tests.support.verifiers import dkimpy_verify_all

pytestmark = pytest.mark.e2e


@pytest.fixture
def private_dns(tmp_path: Path) -> Any:
    env = authenv.start(tmp_path / "dns")
    yield env
    env.dns.stop()


def send(gw: GatewayProcess, raw: bytes | None = None) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=20) as client:
        client.ehlo("ma.test")
        client.login("ma-tool", PASSWORD)
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        return client.data(raw or marketing())


def test_egress_ip_not_in_spf_is_refused(tmp_path: Path, sink: RecordingSink, start_gateway: Any,
                                         private_dns: Any) -> None:
    cfg = base_config(tmp_path, sink.port, private_dns)
    cfg["senders"][0]["egress_ips"] = ["198.51.100.7"]
    gw = start_gateway(cfg)
    code, reply = send(gw)
    assert code == 550 and b"[align.spf]" in reply
    assert sink.received == []


def test_unpublished_or_changed_key_is_refused(tmp_path: Path, sink: RecordingSink,
                                               start_gateway: Any, private_dns: Any) -> None:
    cfg = base_config(tmp_path, sink.port, private_dns)
    gw = start_gateway(cfg)
    assert send(gw)[0] == 250
    gw.stop()
    # the DNS now publishes other keys than the ones the gateway signs with
    other = tmp_path / "other-keys"
    other.mkdir()
    _, _, rsa_record, ed_record = authenv.make_keys(other)
    authenv.publish(private_dns.dns, rsa_record, ed_record)
    gw = start_gateway(cfg, consent=False)
    code, reply = send(gw)
    assert code == 550 and b"[align.dkim]" in reply
    events = [json.loads(x) for x in cli("log", "--json", *REVEAL, config=gw.config_path).stdout.splitlines()]
    detail = next(r["detail"] for r in events[0]["results"] if r["rule"] == "align.dkim")
    assert "mk2026._domainkey.example.jp: different; publish TXT v=DKIM1; k=rsa; p=" in detail


def test_missing_dmarc_record_is_refused(tmp_path: Path, sink: RecordingSink, start_gateway: Any,
                                         private_dns: Any) -> None:
    zone = (Path(__file__).parents[1] / "dns" / "zones" / "example.jp.zone").read_text()
    private_dns.dns.write_zone("example.jp", "\n".join(
        line for line in zone.splitlines() if not line.startswith("_dmarc ")
    ) + "\n")
    gw = start_gateway(base_config(tmp_path, sink.port, private_dns))
    code, reply = send(gw)
    assert code == 550 and b"[align.dmarc]" in reply


def test_dns_outage_with_nothing_cached_tempfails(tmp_path: Path, sink: RecordingSink,
                                                  start_gateway: Any, private_dns: Any) -> None:
    cfg = base_config(tmp_path, sink.port, private_dns)
    private_dns.dns.stop()
    gw = start_gateway(cfg)
    code, reply = send(gw)
    assert (code, reply[:5]) == (451, b"4.4.3")
    assert sink.received == []


def _client_event(gw: GatewayProcess) -> dict[str, Any]:
    [event] = [json.loads(x) for x in cli("log", "--json", *REVEAL, config=gw.config_path).stdout.splitlines()]
    return next(r for r in event["results"] if r["rule"] == "align.client_dkim")


def test_client_signature_is_verified_recorded_and_kept(gateway: GatewayProcess, sink: RecordingSink) -> None:
    # signed over fields the gateway leaves alone: it still verifies after the relay
    env = authenv.shared()
    message = marketing()
    signed_by_client = dkim.sign(
        message, b"mk2026", b"example.jp", env.rsa_key.read_bytes(),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    ) + message
    assert send(gateway, signed_by_client)[0] == 250
    delivered = sink.received[-1].data
    assert delivered.count(b"DKIM-Signature:") == 3  # the client's, plus our RSA and Ed25519
    assert dkimpy_verify_all(delivered, env.dns) == [True, True, True]
    client_dkim = _client_event(gateway)
    assert client_dkim["outcome"] == "pass" and client_dkim["detail"] == "d=example.jp s=mk2026: pass"


def test_a_client_signature_the_gateways_changes_break_is_removed(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    # signed over List-Unsubscribe (absent, oversigned), which the gateway adds: it would fail
    env = authenv.shared()
    signer = DkimSigner([load_key(env.rsa_key, selector="mk2026", domain="example.jp")])
    signed_by_client = signer.sign(marketing(), "example.jp")
    assert send(gateway, signed_by_client)[0] == 250
    delivered = sink.received[-1].data
    assert delivered.count(b"DKIM-Signature:") == 2  # ours only
    assert dkimpy_verify_all(delivered, env.dns) == [True, True]
    client_dkim = _client_event(gateway)
    assert client_dkim["outcome"] == "pass"  # it verified as the client sent it
    assert client_dkim["detail"] == (
        "d=example.jp s=mk2026: pass; removed, the gateway changed what they sign: "
        "d=example.jp s=mk2026 (list-unsubscribe, list-unsubscribe-post)")


def test_a_client_signature_that_cannot_be_read_is_a_permerror_not_a_tempfail(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    # Found by the fuzzer (tests/fuzz, target dkim_verify): dkimpy 1.1.8 checks bh= with the
    # pattern of b= (a slip in validate_signature_fields), so a bh= of the right length that
    # is not base64 reaches b64decode, whose binascii.Error came through verify_existing: the
    # message got 451 for ever.
    env = authenv.shared()
    signer = DkimSigner([load_key(env.rsa_key, selector="mk2026", domain="example.jp")])
    signed = signer.sign(marketing(), "example.jp")
    broken = re.sub(rb"bh=[A-Za-z0-9+/]+=*;", b"bh=AA=A;", signed, count=1)
    assert broken != signed
    code, _reply = send(gateway, broken)
    assert code == 250
    [event] = [json.loads(x) for x in cli("log", "--json", *REVEAL, config=gateway.config_path).stdout.splitlines()]
    client_dkim = next(r for r in event["results"] if r["rule"] == "align.client_dkim")
    assert client_dkim["detail"].startswith("d=example.jp s=mk2026: permerror; removed")
