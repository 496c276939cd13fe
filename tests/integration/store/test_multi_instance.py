"""Many instances, one truth: two real gateway processes sharing one PostgreSQL database."""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support import consent_model
from tests.support.consent import grant, import_rows, opt_out
from tests.support.gateway import PASSWORD, ROOT, GatewayProcess, base_config, free_port
from tests.support.messages import marketing
from tests.support.sink import RecordingSink

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

Start = Callable[[str], GatewayProcess]


@pytest.fixture
def start_instance(tmp_path: Path, pg_url: str, sink: RecordingSink) -> Iterator[Start]:
    """start_instance("a") -> a gateway process on its own ports, storing in the shared database."""
    started: list[GatewayProcess] = []

    def start(name: str) -> GatewayProcess:
        home = tmp_path / name
        home.mkdir()
        cfg: dict[str, Any] = base_config(home, sink.port)
        cfg["store"] = {"url": pg_url}
        port = free_port()
        cfg["http"] = {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"}
        proc = GatewayProcess(home, cfg).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def send(gw: GatewayProcess, to: str, raw: bytes | None = None) -> tuple[int, bytes]:
    """One advertising transaction; the RCPT refusal, or the DATA answer."""
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
        client.ehlo("ma.test")
        client.login("ma-tool", PASSWORD)
        code, reply = client.mail("news@bounce.example.jp")
        assert code == 250, reply
        code, reply = client.rcpt(to)
        if code != 250:
            return code, reply
        return client.data(raw or marketing(to=to))


def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_an_opt_out_taken_through_a_is_enforced_by_b(start_instance: Start, sink: RecordingSink) -> None:
    a, b = start_instance("a"), start_instance("b")
    grant(a.config_path, "sample", "taro@example.com", "hanako@example.com")
    code, reply = send(b, "taro@example.com")
    assert code == 250, reply  # B sees the consent that was recorded through A
    opt_out(a.config_path, "sample", "Taro@Example.com")  # the opt-out arrives at A
    code, reply = send(b, "taro@example.com")
    assert code == 550, reply
    assert b"[optin.opted_out]" in reply
    code, reply = send(b, "hanako@example.com")
    assert code == 250, reply
    code, reply = send(a, "taro@example.com")
    assert code == 550 and b"[optin.opted_out]" in reply
    assert [r.rcpt_tos for r in sink.received] == [["taro@example.com"], ["hanako@example.com"]]


def test_concurrent_sends_through_both_instances_are_logged_once(
    start_instance: Start, sink: RecordingSink, pg_url: str
) -> None:
    a, b = start_instance("a"), start_instance("b")
    addresses = [f"user{n}@example.com" for n in range(6)]
    grant(a.config_path, "sample", *addresses)
    accepted: list[str] = []  # Message-IDs the client got 250 for
    refused: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def worker(gw: GatewayProcess, offset: int) -> None:
        for n in range(12):
            to = addresses[(offset + n) % len(addresses)]
            raw = marketing(to=to)
            code, reply = send(gw, to, raw)
            with lock:
                if code == 250:
                    accepted.append(str(message_from_bytes(raw)["Message-ID"]))
                else:
                    refused.append((code, reply))

    threads = [threading.Thread(target=worker, args=(gw, k)) for k in range(4) for gw in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert refused == []
    assert len(accepted) == 96
    assert len(sink.received) == 96
    rows = query(
        pg_url,
        "SELECT message_id, count(*) AS n FROM events WHERE phase = 'data' AND verdict = 'accepted' "
        "GROUP BY message_id",
    )
    assert {r["message_id"]: r["n"] for r in rows} == dict.fromkeys(accepted, 1)
    # last-sent per address is the newest accepted advertising event for it
    newest = query(
        pg_url,
        "SELECT e.recipient, max(e.created_at) AS newest, s.last_sent_at FROM events e "
        "JOIN consent_last_sent s ON s.sender_id = e.sender_id AND s.address_key = e.recipient "
        "WHERE e.phase = 'data' AND e.verdict = 'accepted' GROUP BY e.recipient, s.last_sent_at",
    )
    assert sorted(r["recipient"] for r in newest) == addresses
    for row in newest:
        assert row["last_sent_at"] == pytest.approx(row["newest"])
    [sessions] = query(pg_url, "SELECT count(DISTINCT session_id) AS n FROM events WHERE phase = 'data'")
    assert sessions["n"] == 96  # one session per message, half of them through each instance


def _approve(config: Path, batch: str, by: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "consent", "approve", batch, "--by", by, "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )


def test_concurrent_approvals_from_two_processes_let_exactly_one_win(start_instance: Start, pg_url: str) -> None:
    a, b = start_instance("a"), start_instance("b")
    for round_ in range(3):
        rows = [{"email": f"r{round_}-{n}@example.com", "status": "opted_in", "method": "web_form"} for n in range(50)]
        code, batch, output = import_rows(a.config_path, "sample", rows, name=f"r{round_}.csv")
        assert code == 0 and batch, output
        first, second = _approve(a.config_path, batch, "approver-a"), _approve(b.config_path, batch, "approver-b")
        results = [(p.wait(timeout=60), *p.communicate()) for p in (first, second)]
        codes = sorted(r[0] for r in results)
        assert codes == [0, 1], results
        loser = next(r for r in results if r[0] == 1)
        assert "not pending" in loser[2]
        winner = "approver-a" if results[0][0] == 0 else "approver-b"
        [row] = query(pg_url, "SELECT status, decided_by FROM import_batches WHERE id = $1", batch)
        assert (row["status"], row["decided_by"]) == ("approved", winner)
        [count] = query(pg_url, "SELECT count(*) AS n FROM consent_records WHERE batch_id = $1 AND effective = 1", batch)
        assert count["n"] == 50
    code, reply = send(b, "r2-7@example.com")
    assert code == 250, reply


@pytest.mark.timeout(600)  # passing: ~30 s; a failure's shrinking takes minutes
def test_consent_model_across_two_instances(start_instance: Start, sink: RecordingSink) -> None:
    """Art. 3 across instances: every consent event, import, approval and one-click goes to
    one of two gateways sharing PostgreSQL at random, every message to one of them too,
    and each answer is the model's (tests/support/consent_model.py)."""
    env = consent_model.Env.start([start_instance("a"), start_instance("b")], sink)
    consent_model.run_model(env, examples=60, steps=25)
