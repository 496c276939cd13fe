"""Sender reputation (rules/reputation.toml): the complaint-rate guardrail (warn at 0.1 %, stop
at 0.3 %) and refusals for failed authentication reported by DSN or by the upstream."""

from __future__ import annotations

import json
import smtplib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_suppression import dsn, report_dsn
from tests.e2e.test_unsubscribe import feedback_report
from tests.support.gateway import PASSWORD, REVEAL, GatewayProcess, cli
from tests.support.gateway import send_marketing as send
from tests.support.messages import marketing
from tests.support.metrics import scrape
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e
DAY = 86400


@pytest.fixture
def fast_config(config: dict[str, Any]) -> dict[str, Any]:
    config["store"]["volume_interval"] = 0.2
    return config


def seed(store: Path, sender: str, sent: int, count: int, days_ago: int = 0,
         column: str = "complaints") -> None:
    with sqlite3.connect(store) as db:
        db.execute(f"INSERT INTO sender_volume (sender_id, day, sent, {column}) VALUES (?,?,?,?)",
                   (sender, int(time.time() // DAY) - days_ago, sent, count))


def reputation(gw: GatewayProcess) -> tuple[int, dict[str, Any]]:
    done = cli("reputation", "--json", config=gw.config_path)
    rows = {r["sender_id"]: r for r in map(json.loads, done.stdout.splitlines())}
    return done.returncode, rows["sample"]


def standing(gw: GatewayProcess, rule: str = "sender.complaint_rate"
             ) -> tuple[int, dict[str, Any]]:
    code, row = reputation(gw)
    [rate] = [r for r in row["rates"] if r["rule"] == rule]
    return code, rate


def until(what: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


def mail_from(gw: GatewayProcess, user: str, sender: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as client:
        client.ehlo("ma.test")
        client.login(user, PASSWORD)
        return client.mail(sender)


def test_complaints_over_the_stop_rate_stop_the_senders_advertising_mail(
    fast_config: dict[str, Any], start_gateway: Callable[..., GatewayProcess],
    sink: RecordingSink, tmp_path: Path
) -> None:
    gw = start_gateway(fast_config)
    store = tmp_path / "gateway.sqlite3"
    seed(store, "sample", 990, 2, days_ago=6)  # in the 7-day window
    seed(store, "sample", 50_000, 0, days_ago=7)  # just out of it: not counted
    seed(store, "sample", 9, 0)
    until(lambda: standing(gw)[1]["sent"] == 999)
    assert standing(gw) == (0, {
        "rule": "sender.complaint_rate", "of": "complaints", "window_days": 7, "sent": 999,
        "count": 2, "rate": 0.002002, "standing": "too_few",
        "thresholds": {"min_sent": 1000, "warn": 0.001, "stop": 0.003}})

    # The 1,000th recipient: judged now, over the warn rate; the mail still goes.
    assert send(gw, "taro@example.com")[0] == 250
    delivered = sink.received[-1].data
    until(lambda: standing(gw)[1]["sent"] == 1000)
    assert standing(gw)[1]["standing"] == "warn"

    # One more complaint, by the provider's feedback loop: 3 of 1,000 is the stop rate.
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as client:
        client.ehlo("fbl.provider.example.net")
        client.mail("fbl@provider.example.net")
        client.rcpt("unsubscribe@gw.test")
        assert client.data(feedback_report(delivered, "abuse", headers_only=True))[0] == 250
    code, reply = mail_from(gw, "ma-tool", "news@bounce.example.jp")
    assert (code, reply[:30]) == (550, b"5.7.1 [sender.complaint_rate] ")
    assert sink.commands.count("MAIL news@bounce.example.jp") == 1  # upstream not asked
    # A receipt is not advertising: it goes.
    assert mail_from(gw, "receipts", "news@bounce.example.jp")[0] == 250

    until(lambda: standing(gw)[1]["count"] == 3)
    code, row = standing(gw)
    assert (code, row["standing"], row["rate"]) == (1, "stop", 0.003)
    table = cli("reputation", config=gw.config_path)
    assert table.returncode == 1 and "STOPPED: advertising mail refused" in table.stdout
    assert "sender.complaint_rate: warn at 0.10%, stop at 0.30%" in table.stdout
    metrics = scrape(fast_config)
    assert metrics['tokuden_sender_complaint_rate{sender="sample"}'] == 0.003
    assert metrics['tokuden_sender_complaints{sender="sample"}'] == 3

    events = [json.loads(x) for x in cli("log", "--json", *REVEAL, "--rule", "sender.complaint_rate",
                                         config=gw.config_path).stdout.splitlines()]
    [refused] = [e for e in events if e["verdict"] == "rejected"]
    [why] = [r for r in refused["results"] if r["rule"] == "sender.complaint_rate"]
    assert why["detail"] == ("complaint rate 0.300%: 3 complaints for 1,000 recipients in 7 "
                             "days >= stop 0.30%")


def test_counts_unreadable_at_start_are_a_451_until_the_store_answers(
    fast_config: dict[str, Any], start_gateway: Callable[..., GatewayProcess],
    tmp_path: Path
) -> None:
    store = tmp_path / "gateway.sqlite3"
    assert cli("migrate", config=GatewayProcess(tmp_path, fast_config).config_path).returncode == 0
    with sqlite3.connect(store) as db:
        schema = db.execute("SELECT sql FROM sqlite_master WHERE name = 'sender_volume'").fetchone()
        db.execute("DROP TABLE sender_volume")
    gw = start_gateway(fast_config)
    code, reply = mail_from(gw, "ma-tool", "news@bounce.example.jp")
    assert code == 451 and reply.startswith(
        b"4.3.0 [sender.complaint_rate,sender.bounce_rate] Complaint counts unavailable")
    assert any("sender volume not synced" in line for line in gw.stderr_lines)
    with sqlite3.connect(store) as db:
        db.execute(schema[0])
    until(lambda: mail_from(gw, "ma-tool", "news@bounce.example.jp")[0] == 250)
    assert send(gw, "taro@example.com")[0] == 250


def test_receivers_refusing_for_failed_authentication_are_recorded_for_ops(
    fast_config: dict[str, Any], start_gateway: Callable[..., GatewayProcess],
    sink: RecordingSink
) -> None:
    gw = start_gateway(fast_config)
    assert send(gw, "taro@example.com")[0] == 250
    delivered = sink.received[-1].data
    refused = "This mail has been blocked because the sender is unauthenticated"
    # A DSN about an address our message did not go to proves nothing: refused, not counted.
    assert report_dsn(gw, dsn(delivered, "hanako@example.com", "5.7.26", refused))[0] == 550
    code, reply = report_dsn(gw, dsn(delivered, "taro@example.com", "5.7.26", refused))
    assert code == 250 and b"Refusal for failed authentication recorded" in reply
    assert any("refused mail for failed authentication" in line and "5.7.26" in line
               for line in gw.stderr_lines)

    # The sender's mail still goes (recorded only), each message marked for ops.
    assert send(gw, "hanako@example.com")[0] == 250
    # The upstream's own refusal counts too, and is relayed as given.
    sink.behaviour.data_reply = "550 5.7.26 Unauthenticated email is not accepted"
    assert send(gw, "hanako@example.com") == (550, b"5.7.26 Unauthenticated email is not accepted")
    sink.behaviour.data_reply = None
    until(lambda: reputation(gw)[1]["auth_refusals"]["count"] == 2)
    code, row = reputation(gw)
    assert code == 1 and row["auth_refusals"] == {
        "window_days": 1, "count": 2, "at_least": 1, "flagged": True}
    assert "CHECK SPF/DKIM/DMARC" in cli("reputation", config=gw.config_path).stdout
    assert scrape(fast_config)['tokuden_auth_refusals_total{status="5.7.26"}'] == 2

    events = [json.loads(x) for x in cli("log", "--json", *REVEAL, "--rule", "sender.auth_refused",
                                         config=gw.config_path).stdout.splitlines()]
    noted = [e for e in events if e["client"] == "(mailto delivery report)"]
    assert [(e["recipient"], e["results"][0]["detail"]) for e in noted] == [
        ("taro@example.com", f"DSN 5.7.26: smtp; 550 5.7.26 <taro@example.com>: {refused}")]
    marked = [e for e in events if e["client"] == "ma-tool" and e["verdict"] == "accepted"]
    assert marked and all(e["monitored"] == ["sender.auth_refused"] for e in marked)


def test_a_list_full_of_unknown_mailboxes_stops_at_the_bounce_rate(
    fast_config: dict[str, Any], start_gateway: Callable[..., GatewayProcess],
    sink: RecordingSink, tmp_path: Path
) -> None:
    gw = start_gateway(fast_config)
    seed(tmp_path / "gateway.sqlite3", "sample", 500, 49, days_ago=1, column="hard_bounces")
    until(lambda: standing(gw, "sender.bounce_rate")[1]["count"] == 49)
    assert standing(gw, "sender.bounce_rate")[1]["standing"] == "warn"  # 9.8 %
    # The 50th unknown mailbox, in the upstream's own answer: 10 %.
    sink.behaviour.rcpt_replies["hanako@example.com"] = "550 5.1.1 <hanako@example.com>: unknown"
    assert send(gw, "hanako@example.com")[0] == 550
    code, reply = mail_from(gw, "ma-tool", "news@bounce.example.jp")
    assert (code, reply[:27]) == (550, b"5.7.1 [sender.bounce_rate] ")
    assert reply.endswith(b"advertising mail from this sender is stopped; check the list")
    until(lambda: standing(gw, "sender.bounce_rate")[1]["count"] == 50)
    code, rate = standing(gw, "sender.bounce_rate")
    assert (code, rate["standing"], rate["rate"], rate["window_days"]) == (1, "stop", 0.1, 2)
    assert scrape(fast_config)['tokuden_sender_bounce_rate{sender="sample"}'] == 0.1


def receipt(gw: GatewayProcess, rcpts: list[str]) -> dict[str, tuple[int, bytes]]:
    """One transactional message to every address: the refused ones, as smtplib reports."""
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as client:
        client.ehlo("ma.test")
        client.login("receipts", PASSWORD)
        return client.sendmail("news@bounce.example.jp", rcpts, marketing(to=rcpts[0]))


def test_gmail_recipients_of_every_class_count_toward_the_bulk_limit_and_gaps_are_flagged(
    fast_config: dict[str, Any], start_gateway: Callable[..., GatewayProcess],
    sink: RecordingSink, tmp_path: Path
) -> None:
    # Without the alignment pack, three of Gmail's bulk requirements go unenforced here.
    rules = fast_config["policy"]["rules"]
    fast_config["policy"]["rules"] = [r for r in rules if not r.endswith("alignment.toml")]
    gw = start_gateway(fast_config)
    seed(tmp_path / "gateway.sqlite3", "sample", 0, 3998, column="gmail_sent")
    until(lambda: reputation(gw)[1]["gmail"]["today"] == 3998)
    code, row = reputation(gw)
    assert (code, row["gmail"]["near"], row["gmail"]["flagged"]) == (0, 4000, False)

    # Receipts count as Gmail counts them: one of two recipients, then the 4,000th.
    assert receipt(gw, ["hanako@gmail.com", "jiro@example.com"]) == {}
    assert receipt(gw, ["saburo@GoogleMail.com"]) == {}
    until(lambda: reputation(gw)[1]["gmail"]["today"] == 4000)
    code, row = reputation(gw)
    unmet = ["align.spf (not loaded)", "align.dkim (not loaded)", "align.dmarc (not loaded)"]
    assert (code, row["gmail"]) == (1, {"today": 4000, "daily_limit": 5000, "near": 4000,
                                        "bulk_since": None, "unmet": unmet, "flagged": True,
                                        "counted_with": []})
    table = cli("reputation", config=gw.config_path)
    assert table.returncode == 1 and "4,000 (near the limit) CHECK REQUIREMENTS" in table.stdout
    assert "bulk requirement not enforced here: align.dmarc (not loaded)" in table.stdout
    metrics = scrape(fast_config)
    assert metrics['tokuden_sender_gmail_today{sender="sample"}'] == 4000
    assert metrics['tokuden_sender_gmail_bulk{sender="sample"}'] == 0  # near, not yet bulk

    # From now on each message of the sender is marked for ops, and still goes.
    before = len(sink.received)
    assert receipt(gw, ["shiro@example.com"]) == {}
    assert len(sink.received) == before + 1
    events = [json.loads(x) for x in cli("log", "--json", *REVEAL, "--rule", "sender.gmail_bulk",
                                         config=gw.config_path).stdout.splitlines()]
    [marked] = [e for e in events if e["recipient"] == "shiro@example.com"]
    assert marked["verdict"] == "accepted" and marked["monitored"] == ["sender.gmail_bulk"]
    [why] = [r for r in marked["results"] if r["rule"] == "sender.gmail_bulk"]
    assert why["detail"] == ("4,000 of Gmail's 5,000 a day to personal accounts today; its "
                             "requirements not enforced here: " + ", ".join(unmet))


def test_senders_of_one_organisational_domain_share_one_gmail_count(
    fast_config: dict[str, Any], start_gateway: Callable[..., GatewayProcess],
    sink: RecordingSink, tmp_path: Path
) -> None:
    # Gmail counts per primary domain: shop.example.jp's mail and example.jp's are one count.
    fast_config["senders"].append({"id": "shop", "domains": ["shop.example.jp"],
                                   "name": "株式会社サンプル ショップ"})
    gw = start_gateway(fast_config)
    seed(tmp_path / "gateway.sqlite3", "shop", 0, 3999, column="gmail_sent")

    def gmail() -> dict[str, dict[str, Any]]:
        done = cli("reputation", "--json", config=gw.config_path)
        return {r["sender_id"]: r["gmail"] for r in map(json.loads, done.stdout.splitlines())}

    until(lambda: gmail()["sample"]["today"] == 3999)
    rows = gmail()
    assert (rows["shop"]["today"], rows["shop"]["counted_with"]) == (3999, ["sample"])
    assert rows["sample"]["counted_with"] == ["shop"]
    assert (rows["other"]["today"], rows["other"]["counted_with"]) == (0, [])
    table = cli("reputation", config=gw.config_path).stdout
    assert "3,999 with sample" in table and "3,999 with shop" in table

    # sample's first Gmail recipient is the group's 4,000th; the next message says so.
    assert receipt(gw, ["hanako@gmail.com"]) == {}
    until(lambda: gmail()["shop"]["today"] == 4000)
    assert receipt(gw, ["shiro@example.com"]) == {}
    events = [json.loads(x) for x in cli("log", "--json", *REVEAL, config=gw.config_path).stdout.splitlines()]
    [event] = [e for e in events if e["recipient"] == "shiro@example.com"]
    [why] = [r for r in event["results"] if r["rule"] == "sender.gmail_bulk"]
    assert why["detail"] == ("4,000 of Gmail's 5,000 a day to personal accounts today (counted "
                             "with shop: one organisational domain)")
    metrics = scrape(fast_config)
    assert metrics['tokuden_sender_gmail_today{sender="shop"}'] == 4000
    assert metrics['tokuden_sender_gmail_today{sender="other"}'] == 0
