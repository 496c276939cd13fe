"""End to end: a real SMTP client -> the gateway process -> a real recording upstream."""

from __future__ import annotations

import email
import email.utils
import json
import re
import smtplib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.delivery import headers
from tests.support import authenv
from tests.support.consent import grant_in_process
from tests.support.gateway import PASSWORD, REVEAL, GatewayProcess, cli
from tests.support.messages import marketing, unsigned
from tests.support.sink import RecordingSink
from tests.support.verifiers import OpenDkim, dkimpy_verify_all

pytestmark = pytest.mark.e2e


def connect(gw: GatewayProcess, user: str | None = "ma-tool") -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", gw.port, timeout=15)
    client.ehlo("ma.test")
    if user:
        client.login(user, PASSWORD)
    return client


def events(gw: GatewayProcess, *args: str) -> list[dict[str, Any]]:
    result = cli("log", "--json", *REVEAL, *args, config=gw.config_path)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_compliant_message_is_relayed_and_logged(gateway: GatewayProcess, sink: RecordingSink) -> None:
    raw = marketing()
    with connect(gateway) as client:
        code, _ = client.mail("news@bounce.example.jp")
        assert code == 250
        code, _ = client.rcpt("taro@example.com")
        assert code == 250
        code, reply = client.data(raw)
    assert code == 250
    assert b"queued as SINK1" in reply  # the upstream's own answer reaches the client
    assert len(sink.received) == 1
    assert sink.received[0].rcpt_tos == ["taro@example.com"]
    assert sink.received[0].mail_from == "news@bounce.example.jp"
    relayed, signatures = unsigned(sink.received[0].data)
    assert relayed.startswith(b"List-Unsubscribe: <" + gateway.http_url.encode() + b"/u/")
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in relayed
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post"):
        relayed = headers.remove_header(relayed, name)
    assert relayed.rstrip(b"\r\n") == raw.rstrip(b"\r\n")  # byte for byte, plus our headers
    assert [s.split(b"a=", 1)[1][:6] for s in signatures] == [b"rsa-sh", b"ed2551"]
    [event] = events(gateway)
    assert event["verdict"] == "accepted"
    assert event["recipient"] == "taro@example.com"
    assert event["sender_id"] == "sample"
    assert event["client"] == "ma-tool"
    assert event["upstream_reply"].startswith("250")
    assert event["message_id"].endswith("@example.jp>")
    assert {r["rule"] for r in event["results"]} >= {"auth.from_not_allowed", "auth.from_invalid"}


def test_an_internationalised_recipient_goes_upstream_as_utf8_with_smtputf8(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    """RFC 6531: the paths reach the upstream as the client wrote them, in UTF-8, and
    SMTPUTF8 is passed on because the upstream advertised it."""
    grant_in_process(gateway.config_path, "sample", "太郎@example.com")
    with connect(gateway) as client:
        assert client.mail("news@bounce.example.jp", ["SMTPUTF8"])[0] == 250
        assert client.rcpt("太郎@example.com")[0] == 250
        code, _ = client.data(marketing())
    assert code == 250
    [got] = sink.received
    assert (got.mail_from, got.rcpt_tos) == ("news@bounce.example.jp", ["太郎@example.com"])
    assert got.mail_options == ["SMTPUTF8"]
    assert [e["recipient"] for e in events(gateway)] == ["太郎@example.com"]


def test_a_raw_utf8_subject_goes_with_smtputf8_and_is_refused_without(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    raw = re.sub(rb"(?m)^Subject: .*$", "Subject: 冬のセール\r".encode(), marketing(), count=1)
    outcomes = []
    for options in (["SMTPUTF8"], []):
        with connect(gateway) as client:
            client.mail("news@bounce.example.jp", options)
            client.rcpt("taro@example.com")
            outcomes.append(client.data(raw))
    assert outcomes[0][0] == 250  # RFC 6532: UTF-8 header text in an SMTPUTF8 transaction
    code, reply = outcomes[1]
    assert code == 550 and reply.startswith(b"5.6.0 [message.header_fields]"), reply
    assert len(sink.received) == 1 and "Subject: 冬のセール\r\n".encode() in sink.received[0].data
    [refused] = events(gateway, "--verdict", "rejected")
    [result] = [r for r in refused["results"] if r["rule"] == "message.header_fields"]
    assert result["detail"] == ("8-bit bytes in Subject without SMTPUTF8: non-ASCII text needs "
                                "encoded-words (RFC 2047)")


def test_a_missing_message_id_and_date_are_added_before_signing(
    gateway: GatewayProcess, sink: RecordingSink, tmp_path: Path
) -> None:
    raw = marketing()
    for name in ("Message-ID", "Date"):
        raw = headers.remove_header(raw, name)
    with connect(gateway) as client:
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        code, _ = client.data(raw)
    assert code == 250
    delivered = sink.received[0].data
    relayed, _ = unsigned(delivered)
    parsed = email.message_from_bytes(relayed)
    message_id = parsed["Message-ID"]
    assert re.fullmatch(r"<[0-9a-f]+\.[0-9a-f]{16}@example\.jp>", message_id), message_id
    assert email.utils.parsedate_to_datetime(parsed["Date"]) is not None
    dns = authenv.shared().dns
    assert dkimpy_verify_all(delivered, dns) == [True, True]  # both signatures cover them
    assert "dkim=pass" in OpenDkim("/usr/sbin/opendkim", tmp_path).verify(delivered, dns)
    [event] = events(gateway)
    assert event["message_id"] == message_id  # the id the recipient's copy carries
    [result] = [r for r in event["results"] if r["rule"] == "message.header_fields"]
    assert result["detail"] == "missing, added by the gateway: Message-ID, Date"


def test_feedback_id_is_added_and_signed_or_the_clients_own_kept(
    config: dict[str, Any], start_gateway: Any, sink: RecordingSink, tmp_path: Path
) -> None:
    config["policy"]["feedback_id"] = True
    gw = start_gateway(config)
    own = b"Feedback-ID: spring-sale:ma-tool:advertising:sample\r\n" + marketing(
        to="hanako@example.com")
    with connect(gw) as client:
        for rcpt, raw in (("taro@example.com", marketing()), ("hanako@example.com", own)):
            assert client.sendmail("news@bounce.example.jp", [rcpt], raw) == {}
    dns = authenv.shared().dns
    found = []
    for received in sink.received:
        delivered = received.data
        assert dkimpy_verify_all(delivered, dns) == [True, True]
        assert "dkim=pass" in OpenDkim("/usr/sbin/opendkim", tmp_path).verify(delivered, dns)
        relayed, signatures = unsigned(delivered)
        # signed, and over-signed so that a second one added later breaks the signature
        assert all(s.replace(b"\r\n", b"").count(b"feedback-id") == 2 for s in signatures)
        found.append(email.message_from_bytes(relayed).get_all("Feedback-ID"))
    assert found == [["ma-tool:advertising:sample"], ["spring-sale:ma-tool:advertising:sample"]]


def test_a_fake_reply_subject_is_refused_and_a_real_reply_goes(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    fake = marketing(subject="Re: 冬のセールのお知らせ")
    real = marketing(subject="Re: ご質問の件", extra_headers={"In-Reply-To": "<q1@example.com>"})
    outcomes = []
    for raw in (fake, real):
        with connect(gateway) as client:
            client.mail("news@bounce.example.jp")
            client.rcpt("taro@example.com")
            outcomes.append(client.data(raw))
    code, reply = outcomes[0]
    assert code == 550 and reply.startswith(b"5.7.1 [message.fake_reply] "), reply
    assert outcomes[1][0] == 250, outcomes[1]
    assert len(sink.received) == 1 and b"In-Reply-To: <q1@example.com>" in sink.received[0].data
    [refused] = events(gateway, "--verdict", "rejected")
    [result] = [r for r in refused["results"] if r["rule"] == "message.fake_reply"]
    assert result["detail"] == ("Subject starts with 'Re:' but the message has no In-Reply-To or "
                                "References: it replies to or forwards nothing")


def test_a_repeated_subject_and_a_bad_message_id_are_refused_naming_both(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    raw = b"Subject: another subject\r\n" + marketing().replace(
        b"Message-ID: <", b"Message-ID: <broken ", 1)
    with connect(gateway) as client:
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        code, reply = client.data(raw)
    assert code == 550
    assert reply.startswith(b"5.6.0 [message.header_fields] Header fields violate RFC 5322")
    assert sink.received == []
    [event] = events(gateway, "--verdict", "rejected")
    assert event["rule_ids"] == ["message.header_fields"]
    [result] = [r for r in event["results"] if r["rule"] == "message.header_fields"]
    assert result["detail"].startswith("Subject appears 2 times (at most once, RFC 5322 §3.6); "
                                       "Message-ID '<broken ")


def test_from_of_another_identity_is_refused_with_rule_id(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    with connect(gateway) as client:
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        code, reply = client.data(marketing(from_addr="news@other.example"))
    assert code == 550
    assert b"5.7.1 [auth.from_not_allowed]" in reply
    assert sink.received == []
    [event] = events(gateway, "--verdict", "rejected")
    assert event["rule_ids"] == ["auth.from_not_allowed"]
    assert "5.7.1 [auth.from_not_allowed]" in event["reply"]


def test_envelope_domain_of_another_identity_is_refused_at_mail(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    with connect(gateway) as client:
        code, reply = client.mail("news@other.example")
    assert code == 550
    assert b"[auth.from_not_allowed]" in reply
    assert sink.commands == []  # the upstream never saw the refused transaction
    [refused] = events(gateway, "--phase", "mail")
    assert (refused["phase"], refused["rule_ids"]) == ("mail", ["auth.from_not_allowed"])
    assert events(gateway, "--phase", "data") == []
    assert [e["id"] for e in events(gateway, "--since", "1h")] == [refused["id"]]
    assert datetime.fromisoformat(refused["created_at_iso"]).timestamp() == pytest.approx(
        refused["created_at"], abs=0.001)
    later = datetime.fromtimestamp(refused["created_at"] + 1, UTC).isoformat()
    assert events(gateway, "--since", later) == []
    assert len(events(gateway, "--since", later.removesuffix("+00:00") + "+09:00")) == 1


def test_several_from_headers_are_refused(gateway: GatewayProcess, sink: RecordingSink) -> None:
    raw = marketing().replace(b"To: ", b"From: x@example.jp\r\nTo: ", 1)
    with connect(gateway) as client:
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        code, reply = client.data(raw)
    assert code == 550
    assert b"[auth.from_invalid]" in reply
    assert sink.received == []


def test_monitor_mode_relays_and_records_the_would_be_refusal(
    config: dict[str, Any], start_gateway: Any, sink: RecordingSink
) -> None:
    config["policy"]["mode"] = "monitor"
    gw = start_gateway(config)
    with connect(gw) as client:
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        # a subdomain the sender identity does not list (DNS knows it, so only policy objects)
        code, _ = client.data(marketing(from_addr="news@mail.example.jp"))
    assert code == 250
    assert len(sink.received) == 1
    [event] = events(gw)
    assert event["verdict"] == "accepted"
    assert event["monitored"] == ["auth.from_not_allowed"]
    assert events(gw, "--rule", "auth.from_not_allowed")[0]["event_id"] == event["event_id"]


def test_upstream_down_tempfails(config: dict[str, Any], start_gateway: Any, sink: RecordingSink) -> None:
    sink.stop()
    gw = start_gateway(config)
    with connect(gw) as client:
        code, reply = client.mail("news@bounce.example.jp")
    assert (code, reply[:5]) == (451, b"4.4.1")
    [event] = events(gw)
    assert event["verdict"] == "tempfailed"


def test_upstream_per_recipient_answers_are_relayed_exactly(
    config: dict[str, Any], start_gateway: Any, sink: RecordingSink
) -> None:
    config["clients"][1]["senders"] = ["sample"]
    gw = start_gateway(config)
    sink.behaviour.rcpt_replies = {
        "gone@example.com": "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown",
        "full@example.com": "452 4.2.2 Mailbox full, try later",
    }
    with connect(gw, user="receipts") as client:
        client.mail("shop@bounce.example.jp")
        assert client.rcpt("gone@example.com") == (
            550, b"5.1.1 <gone@example.com>: Recipient address rejected: User unknown"
        )
        assert client.rcpt("full@example.com") == (452, b"4.2.2 Mailbox full, try later")
        assert client.rcpt("hanako@example.com")[0] == 250
        code, _ = client.data(marketing(to="hanako@example.com"))
    assert code == 250
    assert [m.rcpt_tos for m in sink.received] == [["hanako@example.com"]]
    refused = {e["recipient"]: e for e in events(gw) if e["phase"] == "rcpt"}
    assert refused["gone@example.com"]["verdict"] == "rejected"
    assert refused["full@example.com"]["verdict"] == "tempfailed"


def test_upstream_data_refusal_is_relayed(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    sink.behaviour.data_reply = "554 5.7.1 Upstream content policy"
    with connect(gateway) as client:
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        code, reply = client.data(marketing())
    assert (code, reply) == (554, b"5.7.1 Upstream content policy")
    [event] = events(gateway)
    assert event["verdict"] == "rejected"
    assert event["upstream_reply"] == "554 5.7.1 Upstream content policy"


def test_upstream_dropping_the_connection_in_data_tempfails(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    sink.behaviour.drop_in_data = True
    with connect(gateway) as client:
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        code, reply = client.data(marketing())
    assert code == 451
    assert reply.startswith(b"4.4.")
    assert sink.received == []


def test_second_recipient_of_an_advertising_transaction_gets_452(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    with connect(gateway) as client:
        client.mail("news@bounce.example.jp")
        assert client.rcpt("taro@example.com")[0] == 250
        code, reply = client.rcpt("hanako@example.com")
        assert (code, reply[:5]) == (452, b"4.5.3")
        assert client.data(marketing())[0] == 250
        # RFC 5321 clients send the deferred recipient in a new transaction
        client.mail("news@bounce.example.jp")
        assert client.rcpt("hanako@example.com")[0] == 250
        assert client.data(marketing(to="hanako@example.com"))[0] == 250
    assert [m.rcpt_tos for m in sink.received] == [["taro@example.com"], ["hanako@example.com"]]
    assert sink.connections == 1  # the upstream connection was reused across transactions


def test_invalid_recipient_gets_553_with_rule_id(gateway: GatewayProcess, sink: RecordingSink) -> None:
    with connect(gateway) as client:
        client.mail("news@bounce.example.jp")
        for address in ("user%other.example@example.com", "no-at-sign", "a@b@example.com"):
            code, reply = client.rcpt(address)
            assert code in (553, 501), (address, reply)
        code, reply = client.rcpt("taro@-bad-.example")
        assert (code, reply[:23]) == (553, b"5.1.3 [address.invalid]")
    assert not any(c.startswith("RCPT") for c in sink.commands)


def test_size_limit(gateway: GatewayProcess, sink: RecordingSink) -> None:
    big = marketing(body="あ" * 100_000)
    with connect(gateway) as client:
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        code, reply = client.data(big)
    assert (code, reply[:5]) == (552, b"5.3.4")
    assert sink.received == []
    [event] = events(gateway)
    assert event["rule_ids"] == ["message.too_large"]


def test_bare_lf_is_refused_as_malformed(gateway: GatewayProcess, sink: RecordingSink) -> None:
    with connect(gateway) as client:
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        client.putcmd("DATA")
        assert client.getreply()[0] == 354
        client.send(marketing().replace(b"\r\n\r\n", b"\r\n\r\nsmuggled\n.\nMAIL FROM:<x@y>\r\n", 1))
        client.send(b"\r\n.\r\n")
        code, reply = client.getreply()
    assert (code, reply[:25]) == (550, b"5.6.0 [message.malformed]")
    assert sink.received == []


def test_data_reply_waits_for_the_upstream_and_event_precedes_reply(
    gateway: GatewayProcess, sink: RecordingSink, tmp_path: Path
) -> None:
    sink.behaviour.data_delay = 1.0
    with connect(gateway) as client:
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        code, _ = client.data(marketing())
        # the reply came: the event must already be committed, readable by another process
        assert code == 250
        assert [e["verdict"] for e in events(gateway)] == ["accepted"]
