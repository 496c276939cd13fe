"""RFC 8058 one-click and mailto opt-out end to end: send, unsubscribe, the next send is refused."""

from __future__ import annotations

import concurrent.futures
import json
import re
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dkim
import httpx
import pytest

from tests.support import authenv
from tests.support.consent import grant_in_process
from tests.support.gateway import PASSWORD, REVEAL, GatewayProcess, cli
from tests.support.gateway import send_marketing as send
from tests.support.messages import marketing
from tests.support.sink import RecordingSink
from tests.support.verifiers import OpenDkim, dkimpy_verify_all

pytestmark = pytest.mark.e2e


def one_click_url(delivered: bytes) -> str:
    header = delivered.split(b"\r\n\r\n", 1)[0].decode()
    match = re.search(r"List-Unsubscribe: <(http[^>]+)>", header)
    assert match, header
    return match.group(1)


def test_one_click_stops_the_next_message(gateway: GatewayProcess, sink: RecordingSink) -> None:
    assert send(gateway, "taro@example.com")[0] == 250
    url = one_click_url(sink.received[-1].data)
    assert "taro" not in url  # the token does not show the address
    page = httpx.get(url)  # a GET (link scanner) shows a page and changes nothing
    assert page.status_code == 200 and "配信停止" in page.text
    assert send(gateway, "taro@example.com")[0] == 250
    # what Gmail sends (RFC 8058 §3.2): no cookies, no auth
    posted = httpx.post(url, data={"List-Unsubscribe": "One-Click"})
    assert posted.status_code == 200
    code, reply = send(gateway, "taro@example.com")
    assert (code, reply[:23]) == (550, b"5.7.1 [optin.opted_out]")
    assert httpx.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200  # replay
    assert send(gateway, "hanako@example.com")[0] == 250  # other recipients unaffected


def test_tampered_token_is_refused_and_records_nothing(gateway: GatewayProcess, sink: RecordingSink) -> None:
    assert send(gateway, "taro@example.com")[0] == 250
    url = one_click_url(sink.received[-1].data)
    token = url.rsplit("/", 1)[1]
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for bad in (url.replace(token, flipped), url.replace(token, "not-a-token"), url + "x"):
        assert httpx.post(bad, data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert send(gateway, "taro@example.com")[0] == 250


def test_headers_are_signed_and_verify_independently(
    gateway: GatewayProcess, sink: RecordingSink, tmp_path: Path
) -> None:
    assert send(gateway, "taro@example.com")[0] == 250
    delivered = sink.received[-1].data
    signatures = re.findall(rb"(?is)^DKIM-Signature:.*?(?=^\S)", delivered, re.M)
    assert len(signatures) == 2
    for signature in signatures:
        h = re.search(rb"h=([^;]+);", signature.replace(b"\r\n", b"").replace(b" ", b""))
        assert h is not None
        names = h.group(1).lower().split(b":")
        assert names.count(b"list-unsubscribe") == 2  # present once, over-signed once
        assert names.count(b"list-unsubscribe-post") == 2
        assert names.count(b"from") == 2
        assert b"l=" not in signature.replace(b"\r\n", b" ").split(b"b=")[0].split(b"h=")[0]
    dns = authenv.shared().dns
    assert dkimpy_verify_all(delivered, dns) == [True, True]
    verdict = OpenDkim("/usr/sbin/opendkim", tmp_path).verify(delivered, dns)
    assert "dkim=pass" in verdict


def test_mailto_optout_without_auth(gateway: GatewayProcess, sink: RecordingSink) -> None:
    assert send(gateway, "taro@example.com")[0] == 250
    header = sink.received[-1].data.split(b"\r\n\r\n", 1)[0].decode()
    mailto = re.search(r"<mailto:([^?>]+)\?subject=([^>]+)>", header)
    assert mailto, header
    from urllib.parse import unquote

    address, subject = mailto.group(1), unquote(mailto.group(2))
    reply = EmailMessage()
    reply["From"] = "taro@example.com"
    reply["To"] = address
    reply["Subject"] = subject
    reply.set_content("配信停止をお願いします。")
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=15) as client:  # no AUTH
        client.ehlo("mua.example.com")
        client.mail("taro@example.com")
        assert client.rcpt("victim@example.org")[0] == 530  # still no open relay
        assert client.rcpt(address)[0] == 250
        code, text = client.data(reply.as_bytes())
    assert code == 250 and b"Opt-out recorded" in text, (code, text, gateway.stderr_lines[-5:])
    assert send(gateway, "taro@example.com")[1][:23] == b"5.7.1 [optin.opted_out]"
    assert all("victim" not in " ".join(m.rcpt_tos) for m in sink.received)


def test_mailto_optout_with_a_garbled_subject_is_still_recorded(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    # Found by the fuzzer (tests/fuzz, target mailto): an encoded-word naming a charset that is
    # no charset raised CharsetError, and the recipient's opt-out got 451 for ever.
    assert send(gateway, "hanako@example.com")[0] == 250
    header = sink.received[-1].data.split(b"\r\n\r\n", 1)[0].decode()
    mailto = re.search(r"<mailto:([^?>]+)\?subject=([^>]+)>", header)
    assert mailto, header
    from urllib.parse import unquote

    address, subject = mailto.group(1), unquote(mailto.group(2))
    raw = (b"From: hanako@example.com\r\nTo: " + address.encode() + b"\r\nSubject: =?\xff\xfe?Q?x?= "
           + subject.encode() + b"\r\n\r\nplease stop\r\n")
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=15) as client:
        client.ehlo("mua.example.com")
        client.mail("hanako@example.com")
        assert client.rcpt(address)[0] == 250
        code, text = client.data(raw)
    assert code == 250 and b"Opt-out recorded" in text, (code, text)
    assert send(gateway, "hanako@example.com")[1][:23] == b"5.7.1 [optin.opted_out]"


def test_mailto_without_a_token_is_answered_clearly(gateway: GatewayProcess) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=15) as client:
        client.ehlo("mua.example.com")
        client.mail("someone@example.com")
        client.rcpt("unsubscribe@gw.test")
        code, text = client.data(b"Subject: stop\r\n\r\nplease stop\r\n")
    assert code == 550 and b"5.7.1 [unsubscribe.mailto] No valid unsubscribe token" in text


def _handwritten(author: str, *, sign_as: str | None) -> bytes:
    """A refusal written by hand to the mailbox: no token; DKIM-signed by `sign_as`'s key."""
    reply = EmailMessage()
    reply["From"] = author
    reply["To"] = "unsubscribe@gw.test"
    reply["Subject"] = "配信停止"
    reply.set_content("今後のメールは不要です。")
    raw = reply.as_bytes(policy=reply.policy.clone(linesep="\r\n"))
    if sign_as is None:
        return raw
    env = authenv.shared()
    return dkim.sign(raw, b"mk2026", sign_as.encode(), env.rsa_key.read_bytes(),
                     include_headers=[b"from", b"to", b"subject"]) + raw


def _to_mailbox(gw: GatewayProcess, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as client:  # no AUTH
        client.ehlo("mua.example.jp")
        client.mail("reader@example.jp")
        assert client.rcpt("unsubscribe@gw.test")[0] == 250
        return client.data(raw)


def test_a_handwritten_refusal_is_honoured_when_dkim_proves_the_author(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    grant_in_process(gateway.config_path, "sample", "reader@example.jp")
    grant_in_process(gateway.config_path, "other", "reader@example.jp")
    assert send(gateway, "reader@example.jp")[0] == 250  # "sample" mailed the reader
    # no signature, or one of a domain that is not the author's: anyone could have sent it
    for forged in (_handwritten("reader@example.jp", sign_as=None),
                   _handwritten("reader@psd.test", sign_as="example.jp")):  # valid, not aligned
        code, text = _to_mailbox(gateway, forged)
        assert code == 550 and b"[unsubscribe.mailto] No valid unsubscribe token" in text
    assert send(gateway, "reader@example.jp")[0] == 250
    code, text = _to_mailbox(gateway, _handwritten("Reader@Example.jp", sign_as="example.jp"))
    assert code == 250 and b"Opt-out recorded" in text, text
    assert send(gateway, "reader@example.jp")[1][:23] == b"5.7.1 [optin.opted_out]"
    # only the sender that mailed the reader: the other brand's consent stands
    other = cli("consent", "lookup", "--sender", "other", "reader@example.jp", "--json",
                config=gateway.config_path)
    assert json.loads(other.stdout)["status"] == "allowed", other.stdout
    events = [json.loads(x) for x in cli("log", "--json", *REVEAL, "--client", "(mailto opt-out)",
                                         config=gateway.config_path).stdout.splitlines()]
    recorded = [e for e in events if e["verdict"] == "accepted"]
    assert [(e["sender_id"], e["results"][0]["detail"]) for e in recorded] == [
        ("sample", "dkim d=example.jp")]


def test_a_handwritten_refusal_from_someone_never_mailed_holds_for_every_sender(
    gateway: GatewayProcess,
) -> None:
    code, text = _to_mailbox(gateway, _handwritten("new@example.jp", sign_as="example.jp"))
    assert code == 250 and b"Opt-out recorded" in text, text
    for sender in ("sample", "other"):
        looked = cli("consent", "lookup", "--sender", sender, "new@example.jp", "--json",
                     config=gateway.config_path)
        assert json.loads(looked.stdout)["status"] == "opted_out", looked.stdout


def test_mailto_token_in_the_address_alone_is_enough(gateway: GatewayProcess, sink: RecordingSink) -> None:
    # "unsubscribe+TOKEN@": the token survives a mail app that drops the Subject
    assert send(gateway, "taro@example.com")[0] == 250
    token = one_click_url(sink.received[-1].data).rsplit("/", 1)[1]
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=15) as client:
        client.ehlo("mua.example.com")
        client.mail("taro@example.com")
        assert client.rcpt(f"unsubscribe+{token}@gw.test")[0] == 250
        code, text = client.data(b"From: taro@example.com\r\nSubject: stop\r\n\r\nstop\r\n")
    assert code == 250 and b"Opt-out recorded" in text, text
    assert send(gateway, "taro@example.com")[1][:23] == b"5.7.1 [optin.opted_out]"


@pytest.mark.parametrize("own_header", [True, False])
def test_list_unsubscribe_keep_leaves_the_ma_tools_header(
    config: dict[str, Any], start_gateway: Callable[..., GatewayProcess], sink: RecordingSink,
    own_header: bool,
) -> None:
    config["policy"]["list_unsubscribe"] = "keep"
    gw = start_gateway(config)
    theirs = "<https://ma.example.jp/unsub?u=1>"
    extra = {"List-Unsubscribe": theirs, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    raw = marketing(extra_headers=extra if own_header else None)
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as client:
        client.login("ma-tool", PASSWORD)
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        assert client.data(raw)[0] == 250
    header = sink.received[-1].data.split(b"\r\n\r\n", 1)[0].decode()
    fields = re.findall(r"(?m)^List-Unsubscribe: ([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", header)
    if own_header:
        assert fields == [theirs]  # kept as the MA tool wrote it, and no second one
    else:
        assert len(fields) == 1 and "/u/" in fields[0]  # none given: the gateway's


def test_many_concurrent_one_clicks(gateway: GatewayProcess, sink: RecordingSink) -> None:
    assert send(gateway, "taro@example.com")[0] == 250
    url = one_click_url(sink.received[-1].data)
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda _: httpx.post(url, data={"List-Unsubscribe": "One-Click"},
                                                      timeout=30).status_code, range(40)))
    assert statuses == [200] * 40
    assert send(gateway, "taro@example.com")[0] == 550


def test_an_opt_out_between_rcpt_and_data_stops_that_message(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    """Art. 3(3): an opt-out stops mail at once, also the message whose RCPT was accepted
    just before it. DATA decided on the consent history fetched at RCPT, and sent it."""
    assert send(gateway, "taro@example.com")[0] == 250
    url = one_click_url(sink.received[-1].data)
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=15) as client:
        client.ehlo("ma.test")
        client.login("ma-tool", PASSWORD)
        client.mail("news@bounce.example.jp")
        assert client.rcpt("taro@example.com")[0] == 250
        assert httpx.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
        code, reply = client.data(marketing(to="taro@example.com"))
    assert (code, reply[:23]) == (550, b"5.7.1 [optin.opted_out]")
    assert len(sink.received) == 1


def feedback_report(original: bytes, feedback_type: str, headers_only: bool) -> bytes:
    """A mailbox provider's complaint as RFC 5965 has it: text, the report, our message."""
    quoted = original.split(b"\r\n\r\n", 1)[0] + b"\r\n" if headers_only else original
    kind = b"text/rfc822-headers" if headers_only else b"message/rfc822"
    return (b"From: fbl@provider.example.net\r\nTo: unsubscribe@gw.test\r\n"
            b"Subject: FW: complaint about a message from 192.0.2.5\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"\r\n'
            b"\r\n--arf\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
            b"--arf\r\nContent-Type: message/feedback-report\r\n\r\n"
            + f"Feedback-Type: {feedback_type}\r\nUser-Agent: fbl/1.0\r\nVersion: 1\r\n".encode()
            + b"\r\n--arf\r\nContent-Type: " + kind + b"\r\n\r\n" + quoted
            + b"\r\n--arf--\r\n")


@pytest.mark.parametrize("headers_only", [False, True], ids=["whole-message", "headers-only"])
def test_a_complaint_feedback_report_opts_the_recipient_out(
    gateway: GatewayProcess, sink: RecordingSink, headers_only: bool
) -> None:
    assert send(gateway, "taro@example.com")[0] == 250
    delivered = sink.received[-1].data
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=15) as client:  # the provider, no AUTH
        client.ehlo("fbl.provider.example.net")
        client.mail("fbl@provider.example.net")
        assert client.rcpt("unsubscribe@gw.test")[0] == 250
        not_spam = client.data(feedback_report(delivered, "not-spam", headers_only))
        assert not_spam[0] == 550, not_spam  # "this is not spam" refuses nothing
        client.mail("fbl@provider.example.net")
        client.rcpt("unsubscribe@gw.test")
        code, text = client.data(feedback_report(delivered, "abuse", headers_only))
    assert code == 250 and b"Opt-out recorded" in text, (code, text, gateway.stderr_lines[-5:])
    assert send(gateway, "taro@example.com")[1][:23] == b"5.7.1 [optin.opted_out]"
    looked = json.loads(cli("consent", "lookup", "--sender", "sample", "taro@example.com",
                            "--json", config=gateway.config_path).stdout)
    assert looked["decided_by"]["method"] == "complaint"
    # the provider's own address is opted out of nothing
    provider = json.loads(cli("consent", "lookup", "--sender", "sample",
                              "fbl@provider.example.net", "--json",
                              config=gateway.config_path).stdout)
    assert provider["history"] == []
