"""Hard bounces: an upstream's 5.1.1 suppresses the address until ops clear it (legal.md §5.1)."""

from __future__ import annotations

import json
import smtplib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import PASSWORD, REVEAL, GatewayProcess, cli
from tests.support.gateway import send_marketing as send
from tests.support.messages import marketing
from tests.support.metrics import scrape
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e
UNKNOWN = "550 5.1.1 <taro@example.com>: Recipient address rejected: User unknown"


def rcpt(gw: GatewayProcess, address: str, user: str = "ma-tool") -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as client:
        client.ehlo("ma.test")
        client.login(user, PASSWORD)
        client.mail("news@bounce.example.jp" if user == "ma-tool" else "shop@bounce.example.jp")
        return client.rcpt(address)


def suppressions(gw: GatewayProcess, *args: str) -> list[dict[str, Any]]:
    result = cli("suppression", "list", "--json", "--by", "ops-suzuki", *args,
                 config=gw.config_path)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_hard_bounce_suppresses_until_ops_clear_it(
    config: dict[str, Any], gateway: GatewayProcess, sink: RecordingSink
) -> None:
    sink.behaviour.rcpt_replies["taro@example.com"] = UNKNOWN
    assert rcpt(gateway, "taro@example.com") == (550, UNKNOWN[4:].encode())  # relayed as given

    # The mailbox is back at the upstream, but the gateway no longer asks it.
    sink.behaviour.rcpt_replies.clear()
    asked = sum(c == "RCPT taro@example.com" for c in sink.commands)
    code, reply = rcpt(gateway, "Taro@EXAMPLE.com")  # any case of the address
    assert (code, reply[:30]) == (550, b"5.1.1 [address.suppressed] Rec")
    assert sum(c == "RCPT taro@example.com" for c in sink.commands) == asked
    # Transactional mail (a receipt) is not advertising: it is still relayed.
    assert rcpt(gateway, "taro@example.com", user="receipts")[0] == 250

    [entry] = suppressions(gateway)
    assert (entry["address_key"], entry["reason"], entry["sender_id"]) == (
        "taro@example.com", "hard_bounce", "sample")
    assert entry["detail"] == UNKNOWN and entry["active"] is True
    events = [json.loads(x) for x in cli("log", "--json", *REVEAL, config=gateway.config_path)
              .stdout.splitlines()]
    refused = [e for e in events if e["rule_ids"] == ["address.suppressed"]]
    [why] = [r for e in refused for r in e["results"] if r["rule"] == "address.suppressed"]
    assert why["outcome"] == "fail" and why["detail"].startswith("suppressed (hard bounce) since")
    assert scrape(config)['tokuden_suppressions_total{reason="hard_bounce"}'] == 1

    looked = cli("consent", "lookup", "--sender", "sample", "taro@example.com",
                 config=gateway.config_path)
    assert "SUPPRESSED — no advertising mail goes to it: suppressed (hard bounce)" in looked.stdout
    cleared = cli("suppression", "clear", "taro@example.com", "--reason", "mailbox restored",
                  "--by", "ops-suzuki", config=gateway.config_path)
    assert cleared.returncode == 0, cleared.stderr
    assert send(gateway, "taro@example.com")[0] == 250
    assert sink.received[-1].rcpt_tos == ["taro@example.com"]
    again = cli("suppression", "clear", "taro@example.com", "--reason", "x",
                config=gateway.config_path)
    assert again.returncode == 1 and "no suppression in force" in again.stdout
    [old] = suppressions(gateway, "--all")
    assert (old["cleared_by"], old["clear_reason"]) == ("ops-suzuki", "mailbox restored")


@pytest.mark.parametrize("reply", [
    "450 4.1.1 <taro@example.com>: mailbox temporarily unavailable",  # 4xx: may come back
    "550 5.7.1 <taro@example.com>: rejected by policy",  # refused, but the mailbox exists
    "550 Recipient rejected",  # no enhanced status: nothing says why
])
def test_other_refusals_suppress_nothing(
    gateway: GatewayProcess, sink: RecordingSink, reply: str
) -> None:
    sink.behaviour.rcpt_replies["taro@example.com"] = reply
    assert rcpt(gateway, "taro@example.com")[0] == int(reply[:3])
    assert suppressions(gateway, "--all") == []


def test_a_bounce_at_data_suppresses_its_one_recipient(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    sink.behaviour.data_reply = "550 5.1.1 <hanako@example.com>: user unknown"
    assert send(gateway, "hanako@example.com")[0] == 550
    sink.behaviour.data_reply = None
    assert rcpt(gateway, "hanako@example.com")[0] == 550
    [entry] = suppressions(gateway, "hanako@example.com")
    assert entry["reason"] == "hard_bounce"


def test_a_store_that_cannot_take_the_suppression_costs_it_not_the_answer(
    gateway: GatewayProcess, sink: RecordingSink, tmp_path: Path
) -> None:
    sink.behaviour.data_reply = "550 5.1.1 <hanako@example.com>: user unknown"
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=15) as client:
        client.ehlo("ma.test")
        client.login("ma-tool", PASSWORD)
        client.mail("news@bounce.example.jp")
        assert client.rcpt("hanako@example.com")[0] == 250
        with sqlite3.connect(tmp_path / "gateway.sqlite3") as db:  # it takes no new entry
            db.execute("CREATE TRIGGER refuse BEFORE INSERT ON suppressions "
                       "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        code, reply = client.data(marketing(to="hanako@example.com"))
    assert (code, reply) == (550, b"5.1.1 <hanako@example.com>: user unknown")  # as given
    events = [json.loads(x) for x in cli("log", "--json", *REVEAL, config=gateway.config_path)
              .stdout.splitlines()]
    assert [e["upstream_reply"] for e in events if e["phase"] == "data"] == [
        "550 5.1.1 <hanako@example.com>: user unknown"]
    assert any("hard bounce not suppressed" in line for line in gateway.stderr_lines)


def test_manual_entries_and_bad_input(gateway: GatewayProcess) -> None:
    added = cli("suppression", "add", "hanako@example.com", "--note", "complaint by phone",
                "--by", "ops-sato", config=gateway.config_path)
    assert added.returncode == 0, added.stderr
    code, reply = rcpt(gateway, "hanako@example.com")
    assert (code, reply[:26]) == (550, b"5.1.1 [address.suppressed]")
    twice = cli("suppression", "add", "hanako@example.com", "--note", "x",
                config=gateway.config_path)
    assert twice.returncode == 1 and "already suppressed" in twice.stdout
    bad = cli("suppression", "clear", "not an address", "--reason", "x",
              config=gateway.config_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "tokuden suppression clear: error:" in bad.stderr
    blank = cli("suppression", "clear", "hanako@example.com", "--reason", "  ",
                config=gateway.config_path)
    assert blank.returncode == 2 and "--reason: must not be empty" in blank.stderr
    table = cli("suppression", "list", config=gateway.config_path)
    assert "hanako@example.com" in table.stdout and "complaint by phone" in table.stdout


def dsn(original: bytes, recipient: str, status: str, why: str = "user unknown") -> bytes:
    """A remote MTA's delivery status notification (RFC 3464) about one of our messages."""
    headers = original.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    return (b"From: MAILER-DAEMON@mx.example.com\r\nTo: unsubscribe@gw.test\r\n"
            b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n'
            b"\r\n--dsn\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            b"--dsn\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.example.com\r\n\r\n"
            + f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
              f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: {why}\r\n".encode()
            + b"\r\n--dsn\r\nContent-Type: text/rfc822-headers\r\n\r\n" + headers
            + b"\r\n--dsn--\r\n")


def report_dsn(gw: GatewayProcess, message: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as client:  # a remote MTA, no AUTH
        client.ehlo("mx.example.com")
        client.mail("")  # the null reverse-path of every DSN
        assert client.rcpt("unsubscribe@gw.test")[0] == 250
        return client.data(message)


def test_a_late_bounce_reported_by_dsn_suppresses_the_address(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    assert send(gateway, "taro@example.com")[0] == 250
    delivered = sink.received[-1].data
    # someone else's address, or a status that is no hard bounce: nothing is suppressed
    assert report_dsn(gateway, dsn(delivered, "hanako@example.com", "5.1.1"))[0] == 550
    assert report_dsn(gateway, dsn(delivered, "taro@example.com", "4.2.2"))[0] == 550
    assert suppressions(gateway, "--all") == []

    code, reply = report_dsn(gateway, dsn(delivered, "Taro@Example.com", "5.1.1"))
    assert code == 250 and b"Hard bounce recorded" in reply
    [entry] = suppressions(gateway)
    assert (entry["address_key"], entry["sender_id"], entry["created_by"]) == (
        "taro@example.com", "sample", "gateway")
    assert entry["detail"].startswith("DSN: 5.1.1 smtp; 550 5.1.1")
    code, reply = send(gateway, "taro@example.com")
    assert (code, reply[:26]) == (550, b"5.1.1 [address.suppressed]")
    events = [json.loads(x) for x in cli("log", "--json", *REVEAL, config=gateway.config_path)
              .stdout.splitlines()]
    [noted] = [e for e in events if e["client"] == "(mailto delivery report)"]
    assert noted["rule_ids"] == ["address.suppressed"] and noted["recipient"] == "taro@example.com"


def test_an_upstream_that_bounced_good_mailboxes_is_undone_in_one_command(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    for address in ("taro@example.com", "hanako@example.com"):  # the upstream went wrong
        sink.behaviour.rcpt_replies[address] = f"550 5.1.1 <{address}>: User unknown"
        assert rcpt(gateway, address)[0] == 550
    added = cli("suppression", "add", "jiro@example.com", "--note", "asked by phone",
                config=gateway.config_path)
    assert added.returncode == 0
    for both_or_neither in (("taro@example.com", "--since", "1h"), ()):
        wrong = cli("suppression", "clear", *both_or_neither, "--reason", "x",
                    config=gateway.config_path)
        assert wrong.returncode == 2 and "give an ADDRESS or --since" in wrong.stderr
    cleared = cli("suppression", "clear", "--since", "1h", "--reason", "upstream fault #12",
                  "--by", "ops-suzuki", config=gateway.config_path)
    assert cleared.returncode == 0 and "2 hard-bounce suppression(s) cleared" in cleared.stdout
    assert [e["address_key"] for e in suppressions(gateway)] == ["jiro@example.com"]  # by hand
    sink.behaviour.rcpt_replies.clear()
    assert send(gateway, "taro@example.com")[0] == 250
    again = cli("suppression", "clear", "--since", "1h", "--reason", "x",
                config=gateway.config_path)
    assert again.returncode == 1 and "0 hard-bounce" in again.stdout


def test_a_suppression_between_rcpt_and_data_stops_that_message(
    gateway: GatewayProcess, sink: RecordingSink
) -> None:
    """Another session's hard bounce (here ops' entry) is seen at DATA, not only at RCPT."""
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=15) as client:
        client.ehlo("ma.test")
        client.login("ma-tool", PASSWORD)
        client.mail("news@bounce.example.jp")
        assert client.rcpt("taro@example.com")[0] == 250
        added = cli("suppression", "add", "taro@example.com", "--note", "bounced elsewhere",
                    config=gateway.config_path)
        assert added.returncode == 0, added.stderr
        code, reply = client.data(marketing(to="taro@example.com"))
    assert (code, reply[:26]) == (550, b"5.1.1 [address.suppressed]")
    assert sink.received == []
