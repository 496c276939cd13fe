"""Consent (特定電子メール法 第3条) end to end: recipients in every state, imports, approval."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.consent import grant, import_rows, opt_out
from tests.support.gateway import PASSWORD, REVEAL, ROOT, GatewayProcess, cli
from tests.support.messages import marketing
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e


def send(gw: GatewayProcess, rcpt: str, *, topic: str | None = None, user: str = "ma-tool") -> tuple[int, bytes]:
    """One transaction; returns the first refusal (RCPT or DATA) or the DATA reply."""
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as client:
        client.ehlo("ma.test")
        client.login(user, PASSWORD)
        client.mail("news@bounce.example.jp")
        code, reply = client.rcpt(rcpt)
        if code != 250:
            return code, reply
        extra = {"X-Tokuden-Topic": topic} if topic else None
        return client.data(marketing(to=rcpt, extra_headers=extra))


def test_recipient_states(gateway: GatewayProcess, sink: RecordingSink) -> None:
    cfg = gateway.config_path
    grant(cfg, "sample", "hiroshi@example.com")
    opt_out(cfg, "sample", "hiroshi@example.com")  # opt-out wins over the earlier consent
    code, _, out = import_rows(cfg, "sample", [
        {"email": "card@example.com", "status": "exempt", "method": "business_card"},
    ], name="exempt.csv")
    assert code == 0, out
    approve = cli("consent", "approve", out.split("batch ")[1].split(":")[0], "--by", "boss", config=cfg)
    assert approve.returncode == 0

    assert send(gateway, "taro@example.com")[0] == 250
    code, reply = send(gateway, "nobody@example.com")
    assert (code, reply[:24]) == (550, b"5.7.1 [optin.missing] Re")
    code, reply = send(gateway, "hiroshi@example.com")
    assert (code, reply[:26]) == (550, b"5.7.1 [optin.opted_out] Re")
    # the opt-out matches every case variant of the local part
    assert send(gateway, "Hiroshi@Example.COM")[1][:23] == b"5.7.1 [optin.opted_out]"
    # business-card exemption: allowed under 特定電子メール法 (sender "sample" is law=tokuden)
    assert send(gateway, "card@example.com")[0] == 250
    assert len(sink.received) == 2
    refused = {e["recipient"]: e["rule_ids"] for e in _events(gateway) if e["verdict"] == "rejected"}
    assert refused == {
        "nobody@example.com": ["optin.missing"],
        "hiroshi@example.com": ["optin.opted_out"],
        "Hiroshi@Example.COM": ["optin.opted_out"],
    }


def test_tokusho_does_not_accept_the_business_card_exemption(
    config: dict[str, Any], start_gateway: Any
) -> None:
    config["senders"][0]["law"] = "tokusho"
    config["policy"]["import_approval"] = False
    gw = start_gateway(config)
    code, _, out = import_rows(gw.config_path, "sample", [
        {"email": "card@example.com", "status": "exempt", "method": "business_card"},
    ])
    assert code == 0, out
    code, reply = send(gw, "card@example.com")
    assert code == 550 and b"[optin.missing]" in reply


def test_topic_optout_blocks_only_that_topic(gateway: GatewayProcess, sink: RecordingSink) -> None:
    opt_out(gateway.config_path, "sample", "taro@example.com", topic="sale")
    code, reply = send(gateway, "taro@example.com", topic="sale")
    assert (code, reply[:23]) == (550, b"5.7.1 [optin.opted_out]")  # refused at DATA
    assert send(gateway, "taro@example.com", topic="newsletter")[0] == 250
    # the topic header is for the gateway only
    assert b"X-Tokuden-Topic" not in sink.received[-1].data
    # mail without a topic could be about anything: a topic refusal applies
    assert send(gateway, "taro@example.com")[0] == 550


def test_transactional_mail_skips_consent(gateway: GatewayProcess, sink: RecordingSink) -> None:
    assert send(gateway, "stranger@example.com", user="receipts")[0] == 250
    [event] = [e for e in _events(gateway) if e["client"] == "receipts"]
    assert event["client_class"] == "transactional"


def test_store_failure_fails_closed(gateway: GatewayProcess, sink: RecordingSink, tmp_path: Path) -> None:
    # Break what the consent lookup reads underneath the running gateway: it cannot answer now.
    with sqlite3.connect(tmp_path / "gateway.sqlite3") as db:
        db.execute("DROP VIEW consent_records")
    code, reply = send(gateway, "taro@example.com")
    assert (code, reply[:5]) == (451, b"4.3.0")
    assert sink.received == []


def test_import_is_all_or_nothing_with_a_clear_report(gateway: GatewayProcess) -> None:
    cfg = gateway.config_path
    rows = [
        {"email": "ok1@example.com", "status": "opted_in", "method": "web_form"},
        {"email": "broken@", "status": "opted_in", "method": "web_form"},
        {"email": "ok2@example.com", "status": "maybe", "method": "web_form"},
        {"email": "twice@example.com", "status": "opted_in", "method": "web_form"},
        {"email": "twice@example.com", "status": "opted_out", "method": "manual"},
    ]
    code, _, out = import_rows(cfg, "sample", rows, name="bad.csv")
    assert code == 1
    assert "line 3: column email" in out
    assert "line 4: column status: unknown value 'maybe'" in out
    assert "line 5" in out and "line 6" in out  # the conflicting pair, both lines named
    assert "nothing was imported" in out
    assert send(gateway, "ok1@example.com")[0] == 550  # nothing changed
    skipped = cli("consent", "import", "--sender", "sample", str(cfg.parent / "bad.csv"),
                  "--skip-invalid", "--by", "importer", "--json", config=cfg)
    report = json.loads(skipped.stdout)
    assert report["imported"] == 1 and report["skipped_lines"] == [3, 4, 5, 6]


def test_four_eyes_approval(gateway: GatewayProcess) -> None:
    cfg = gateway.config_path
    code, batch, out = import_rows(cfg, "sample", [
        {"email": "new@example.com", "status": "opted_in", "method": "web_form"},
    ], by="alice", name="grants.csv")
    assert code == 0 and "wait for approval" in out
    assert send(gateway, "new@example.com")[0] == 550  # pending: not in effect
    same = cli("consent", "approve", batch, "--by", "alice", config=cfg)
    assert same.returncode == 1 and "a second person must approve" in same.stderr
    assert cli("consent", "approve", batch, "--by", "bob", config=cfg).returncode == 0
    again = cli("consent", "approve", batch, "--by", "carol", config=cfg)
    assert again.returncode == 1 and "not pending" in again.stderr
    assert send(gateway, "new@example.com")[0] == 250
    listed = cli("consent", "batches", "--json", config=cfg)
    batches = {b["id"]: b for b in map(json.loads, listed.stdout.splitlines())}
    assert batches[batch]["status"] == "approved" and batches[batch]["decided_by"] == "bob"


def test_lookup_shows_history_last_sent_and_is_audited(gateway: GatewayProcess, tmp_path: Path) -> None:
    cfg = gateway.config_path
    assert send(gateway, "taro@example.com")[0] == 250
    opt_out(cfg, "sample", "taro@example.com")
    result = cli("consent", "lookup", "--sender", "sample", "taro@example.com", "--json",
                 "--by", "marketer1", "--reason", "customer call", config=cfg)
    data = json.loads(result.stdout)
    assert data["status"] == "opted_out"
    assert [h["status"] for h in data["history"]] == ["opted_in", "opted_out"]
    assert data["last_sent"] is not None
    with sqlite3.connect(tmp_path / "gateway.sqlite3") as db:
        rows = db.execute("SELECT actor, action, subject, reason FROM audit_log").fetchall()
    assert ("marketer1", "consent.lookup", "sample:taro@example.com", "customer call") in rows
    table = cli("consent", "lookup", "--sender", "sample", "taro@example.com", config=cfg)
    assert "opted_out" in table.stdout and "double_opt_in" in table.stdout


def test_purge_keeps_what_the_law_requires(gateway: GatewayProcess, tmp_path: Path) -> None:
    cfg = gateway.config_path
    assert send(gateway, "taro@example.com")[0] == 250  # mail sent now: evidence kept a month
    import_rows(cfg, "sample", [
        {"email": "old@example.com", "status": "opted_in", "method": "web_form",
         "consented_at": "2020-01-10T10:00:00+09:00"},
    ], name="old.csv")
    cli("consent", "approve", _pending(cfg), "--by", "approver", config=cfg)
    opt_out(cfg, "sample", "gone@example.com")
    dry = cli("consent", "purge", "--dry-run", "--json", config=cfg)
    plan = {p["address_key"]: p for p in map(json.loads, dry.stdout.splitlines())}
    assert "old@example.com" in plan, dry.stdout + dry.stderr
    assert plan["old@example.com"]["purgeable"] is True  # tokuden: 1 month after consent
    assert plan["taro@example.com"]["purgeable"] is False
    assert "last send" in plan["taro@example.com"]["reason"]
    assert plan["hanako@example.com"]["purgeable"] is True  # consent of January, never used
    assert plan["gone@example.com"]["purgeable"] is False and "opt-out" in plan["gone@example.com"]["reason"]
    with sqlite3.connect(tmp_path / "gateway.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM consent_events WHERE address_key='old@example.com'").fetchone()[0] == 1
    done = cli("consent", "purge", "--by", "dpo", config=cfg)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "gateway.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM consent_events WHERE address_key='old@example.com'").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM consent_events WHERE address_key='gone@example.com'").fetchone()[0] == 1
        assert db.execute("SELECT action FROM audit_log WHERE action='consent.purge'").fetchone()


@pytest.mark.parametrize(("art7_order", "purgeable"), [(False, True), (True, False)])
def test_an_art7_order_keeps_evidence_a_year(
    config: dict[str, Any], start_gateway: Callable[..., GatewayProcess], art7_order: bool,
    purgeable: bool,
) -> None:
    # 特電法 施行規則4条2項: 1 month after the last use, 1 year once an Art. 7 order came
    config["senders"][0]["art7_order"] = art7_order
    cfg = start_gateway(config, consent=False).config_path
    two_months_ago = datetime.now(UTC) - timedelta(days=62)
    import_rows(cfg, "sample", [
        {"email": "spring@example.com", "status": "opted_in", "method": "web_form",
         "consented_at": two_months_ago.isoformat()},
    ], name="spring.csv")
    cli("consent", "approve", _pending(cfg), "--by", "approver", config=cfg)
    dry = cli("consent", "purge", "--dry-run", "--json", config=cfg)
    [plan] = [p for p in map(json.loads, dry.stdout.splitlines())
              if p["address_key"] == "spring@example.com"]
    assert plan["purgeable"] is purgeable, plan
    assert ("(Art. 7 order)" in plan["reason"]) is art7_order


def test_evidence_is_append_only(gateway: GatewayProcess, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "gateway.sqlite3") as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE consent_events SET status='opted_in' WHERE address_key='taro@example.com'")


def _pending(cfg: Path) -> str:
    listed = cli("consent", "batches", "--status", "pending", "--json", config=cfg)
    return str(json.loads(listed.stdout.splitlines()[0])["id"])


def _events(gw: GatewayProcess) -> list[dict[str, Any]]:
    result = cli("log", "--json", *REVEAL, "--limit", "1000", config=gw.config_path)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_big_import_is_parsed_in_a_second_process_and_stays_all_or_nothing(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    from gateway.consent.service import PARALLEL_BYTES

    big = tmp_path / "big.csv"
    with big.open("w", encoding="utf-8") as fh:
        fh.write("email,status,method,consented_at,source_system,source_ref\n")
        i = 0
        while fh.tell() <= PARALLEL_BYTES + 100_000:
            fh.write(f"bulk{i}@example.com,opted_in,web_form,2026-11-01T10:00:00+09:00,cmp,r{i}\n")
            i += 1
    rows = i
    bad = tmp_path / "big-bad.csv"
    bad.write_text(big.read_text() + "broken@,opted_in,web_form,2026-11-01T10:00:00+09:00,cmp,x\n")
    failed = cli("consent", "import", "--sender", "sample", str(bad), "--by", "importer", "--json",
                 config=gateway.config_path)
    report = json.loads(failed.stdout)
    assert failed.returncode == 1 and report["state"] == "failed" and report["imported"] == 0
    assert report["errors"] == [f"line {rows + 2}: column email: invalid address 'broken@' (no domain)"]
    done = cli("consent", "import", "--sender", "sample", str(big), "--by", "importer", "--json",
               config=gateway.config_path)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["imported"] == rows and report["state"] == "pending"
    with sqlite3.connect(tmp_path / "gateway.sqlite3") as db:
        count = db.execute("SELECT count(*) FROM consent_events WHERE batch_id = ?", (report["batch"],))
        assert count.fetchone()[0] == rows


def _big_csv(path: Path, prefix: str) -> Path:
    from gateway.consent.service import PARALLEL_BYTES

    with path.open("w", encoding="utf-8") as fh:
        fh.write("email,status,method,consented_at\n")
        i = 0
        while fh.tell() <= 3 * PARALLEL_BYTES:
            fh.write(f"{prefix}{i}@example.com,opted_in,web_form,2026-11-01T10:00:00+09:00\n")
            i += 1
    return path


def _start_import(gw: GatewayProcess, csv: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "gateway", "consent", "import", "--sender", "sample", str(csv),
            "--by", "importer", "--json", "--config", str(gw.config_path)]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _wait_for_rows(db: sqlite3.Connection, prefix: str, proc: subprocess.Popen[str]) -> str:
    """The batch id of the running import, once its first chunk is committed."""
    deadline = time.monotonic() + 60
    while True:
        found = db.execute("SELECT batch_id FROM consent_events WHERE address LIKE ? LIMIT 1",
                           (f"{prefix}%",)).fetchone()
        if found:
            return str(found[0])
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no chunk was stored within 60 s"
        time.sleep(0.02)


def _killed_import(gw: GatewayProcess, tmp_path: Path, db: sqlite3.Connection, prefix: str) -> str:
    """SIGKILL an import after its first committed chunk (no clean-up can run); its batch."""
    proc = _start_import(gw, _big_csv(tmp_path / f"{prefix}.csv", prefix))
    batch = _wait_for_rows(db, prefix, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return batch


def test_interrupted_import_leaves_no_rows(gateway: GatewayProcess, tmp_path: Path) -> None:
    proc = _start_import(gateway, _big_csv(tmp_path / "big.csv", "stop"))
    db = sqlite3.connect(f"file:{tmp_path / 'gateway.sqlite3'}?mode=ro", uri=True)
    batch = _wait_for_rows(db, "stop", proc)
    proc.send_signal(signal.SIGINT)  # Ctrl-C after the first chunk was committed
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    [(status,)] = db.execute("SELECT status FROM import_batches WHERE id = ?", (batch,)).fetchall()
    assert status == "failed"
    mine = "SELECT count(*) FROM consent_events WHERE address LIKE 'stop%'"
    assert db.execute(mine).fetchone()[0] == 0
    db.close()


def test_killed_import_is_discarded_by_hand_and_a_cut_short_clean_up_by_the_next_import(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    db = sqlite3.connect(f"file:{tmp_path / 'gateway.sqlite3'}?mode=ro", uri=True)
    rows_of = "SELECT count(*) FROM consent_events WHERE batch_id = ?"
    status_of = "SELECT status FROM import_batches WHERE id = ?"
    # SIGKILL (no clean-up can run): the batch stays `loading`, its rows out of effect.
    killed = _killed_import(gateway, tmp_path, db, "kill")
    assert db.execute(status_of, (killed,)).fetchone()[0] == "loading"
    left = db.execute(rows_of, (killed,)).fetchone()[0]
    assert left > 0
    assert send(gateway, "kill0@example.com")[1][:21] == b"5.7.1 [optin.missing]"
    # Its last heartbeat is fresh: as far as anyone can tell the import is still running.
    refused = cli("consent", "discard", killed, "--by", "ops-tanaka", config=gateway.config_path)
    assert refused.returncode == 1 and "still running" in refused.stderr, refused.stderr
    listed = cli("consent", "batches", config=gateway.config_path)
    assert "(import died)" not in listed.stdout
    _silence(tmp_path, killed)
    listed = cli("consent", "batches", config=gateway.config_path)
    assert "loading (import died)" in listed.stdout, listed.stdout

    gone = cli("consent", "discard", killed, "--by", "ops-tanaka", config=gateway.config_path)
    assert gone.returncode == 0, gone.stderr
    assert f"{left} rows removed" in gone.stdout
    assert db.execute(status_of, (killed,)).fetchone()[0] == "failed"
    assert db.execute(rows_of, (killed,)).fetchone()[0] == 0
    audit = db.execute("SELECT actor, subject FROM audit_log WHERE action = 'consent.discard'")
    assert audit.fetchall() == [("ops-tanaka", killed)]

    # A failed batch that still has rows (its clean-up was cut short): the next import ends it.
    cut = _killed_import(gateway, tmp_path, db, "cut")
    with sqlite3.connect(tmp_path / "gateway.sqlite3") as rw:
        rw.execute("UPDATE import_batches SET status = 'failed' WHERE id = ?", (cut,))
    assert db.execute(rows_of, (cut,)).fetchone()[0] > 0
    code, _, out = import_rows(gateway.config_path, "sample", [
        {"email": "next@example.com", "status": "opted_out", "method": "web_form"},
    ], name="next.csv")
    assert code == 0, out
    assert f"removed the rows left of failed batch {cut}" in out
    assert db.execute(rows_of, (cut,)).fetchone()[0] == 0
    db.close()


def _silence(tmp_path: Path, batch: str) -> None:
    """Move a batch's last heartbeat back past ABANDONED_AFTER: what waiting that long does."""
    from gateway.consent.service import ABANDONED_AFTER

    with sqlite3.connect(tmp_path / "gateway.sqlite3") as rw:
        rw.execute("UPDATE import_batches SET heartbeat_at = heartbeat_at - ? WHERE id = ?",
                   (ABANDONED_AFTER + 1, batch))


def test_the_next_import_discards_the_batch_of_an_import_that_died(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    db = sqlite3.connect(f"file:{tmp_path / 'gateway.sqlite3'}?mode=ro", uri=True)
    died = _killed_import(gateway, tmp_path, db, "died")
    # A second import while the first one's heartbeat is fresh leaves its batch alone.
    code, _, out = import_rows(gateway.config_path, "sample", [
        {"email": "early@example.com", "status": "opted_out", "method": "web_form"},
    ], name="early.csv")
    assert code == 0 and "died while loading" not in out, out
    assert db.execute("SELECT status FROM import_batches WHERE id = ?", (died,)).fetchone() == (
        "loading",)
    _silence(tmp_path, died)
    proc = _start_import(gateway, gateway.config_path.parent / "early.csv")
    out, err = proc.communicate(timeout=120)
    report = json.loads(out)
    assert proc.returncode == 0 and report["abandoned_batches"] == [died], err
    assert db.execute("SELECT status FROM import_batches WHERE id = ?", (died,)).fetchone() == (
        "failed",)
    assert db.execute("SELECT count(*) FROM consent_events WHERE batch_id = ?",
                      (died,)).fetchone()[0] == 0
    audit = db.execute("SELECT actor, reason FROM audit_log WHERE action = 'consent.discard' "
                       "AND subject = ?", (died,)).fetchall()
    assert len(audit) == 1 and audit[0][0] == "importer" and "abandoned import" in audit[0][1]
    db.close()


def test_discard_refuses_batches_that_took_effect(gateway: GatewayProcess) -> None:
    code, _, out = import_rows(gateway.config_path, "sample", [
        {"email": "keep@example.com", "status": "opted_out", "method": "web_form"},
        {"email": "wait@example.com", "status": "opted_in", "method": "web_form"},
    ], name="pending.csv")
    assert code == 0, out
    batch = out.split("batch ")[1].split(":")[0]
    refused = cli("consent", "discard", batch, config=gateway.config_path)
    assert refused.returncode == 1
    assert f"refused: batch {batch} is pending" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert send(gateway, "keep@example.com")[1][:23] == b"5.7.1 [optin.opted_out]"
    unknown = cli("consent", "discard", "b-nope", config=gateway.config_path)
    assert unknown.returncode == 1 and "no import batch 'b-nope'" in unknown.stderr


def test_import_discarded_while_loading_fails_instead_of_finishing(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    db = sqlite3.connect(f"file:{tmp_path / 'gateway.sqlite3'}?mode=ro", uri=True)
    proc = _start_import(gateway, _big_csv(tmp_path / "raced.csv", "race"))
    batch = _wait_for_rows(db, "race", proc)
    gone = cli("consent", "discard", batch, "--force", config=gateway.config_path)
    assert gone.returncode == 0, gone.stderr
    out, err = proc.communicate(timeout=120)
    report = json.loads(out)
    assert proc.returncode == 1 and report["state"] == "failed" and report["imported"] == 0, err
    assert "discarded while it was loading" in report["fatal"]
    assert db.execute("SELECT status FROM import_batches WHERE id = ?", (batch,)).fetchone() == (
        "failed",)
    assert db.execute("SELECT count(*) FROM consent_events WHERE batch_id = ?",
                      (batch,)).fetchone()[0] == 0
    db.close()
