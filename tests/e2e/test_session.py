"""Session-level behaviour through real SMTP: AUTH, TLS, limits, timeouts, shutdown."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.support.gateway import PASSWORD, GatewayProcess, free_port
from tests.support.messages import marketing
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e


def test_mail_without_auth_is_refused_without_optout_box(
    config: dict[str, Any], start_gateway: Any, sink: RecordingSink
) -> None:
    config["policy"].pop("unsubscribe_address")
    gw = start_gateway(config)
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=10) as client:
        client.ehlo("anon.test")
        code, reply = client.mail("news@bounce.example.jp")
        assert (code, reply[:5]) == (530, b"5.7.0")
    assert sink.commands == []


def test_mail_without_auth_is_not_relayed(gateway: GatewayProcess, sink: RecordingSink) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as client:
        client.ehlo("anon.test")
        # MAIL is taken locally (the mailto: opt-out box needs no AUTH), but no other
        # recipient is: the relay attempt ends at RCPT
        assert client.mail("news@bounce.example.jp")[0] == 250
        code, reply = client.rcpt("victim@example.com")
        assert (code, reply[:5]) == (530, b"5.7.0")
    assert sink.commands == []


def _plain(user: str, password: str) -> str:
    return "PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_wrong_password_then_throttled(gateway: GatewayProcess) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as client:
        client.ehlo("brute.test")
        for _ in range(3):  # auth_failure_limit = 3
            code, reply = client.docmd("AUTH", _plain("ma-tool", "wrong-password"))
            assert (code, reply[:5]) == (535, b"5.7.8")
        # even the right password is refused while the address is throttled
        code, reply = client.docmd("AUTH", _plain("ma-tool", PASSWORD))
        assert (code, reply[:5]) == (454, b"4.7.0")
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as client:
        client.ehlo("brute.test")  # a new connection from the same address is throttled too
        assert client.docmd("AUTH", _plain("ma-tool", PASSWORD))[0] == 454


def test_unknown_user_is_refused_like_a_wrong_password(gateway: GatewayProcess) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as client:
        client.ehlo("x.test")
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.login("nobody", PASSWORD)
        assert failed.value.smtp_code == 535


def test_auth_requires_tls_unless_relaxed(config: dict[str, Any], start_gateway: Any) -> None:
    config["server"]["auth_require_tls"] = True
    gw = start_gateway(config)
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=10) as client:
        client.ehlo("x.test")
        assert not client.has_extn("auth")  # AUTH is not even offered in clear text
        code, reply = client.docmd("AUTH", "PLAIN AGZvbwBiYXI=")
        assert (code, reply[:6]) == (538, b"5.7.11")


def test_starttls_then_auth_and_relay(
    config: dict[str, Any], start_gateway: Any, sink: RecordingSink, tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("gw.test", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "gw.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "gw.key"))
    config["server"].update(
        auth_require_tls=True, tls_cert=str(tmp_path / "gw.pem"), tls_key=str(tmp_path / "gw.key")
    )
    gw = start_gateway(config)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=10) as client:
        client.ehlo("x.test")
        assert client.has_extn("starttls")
        client.starttls(context=context)
        client.ehlo("x.test")
        client.login("ma-tool", PASSWORD)
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        assert client.data(marketing())[0] == 250
    assert len(sink.received) == 1


def test_client_authorised_by_network(config: dict[str, Any], start_gateway: Any, sink: RecordingSink) -> None:
    config["clients"].append(
        {"username": "loadgen", "networks": ["127.0.0.0/8"], "senders": ["sample"], "class": "advertising"}
    )
    gw = start_gateway(config)
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=10) as client:
        client.ehlo("x.test")
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        assert client.data(marketing())[0] == 250
    assert len(sink.received) == 1


def test_idle_timeout_closes_the_connection(config: dict[str, Any], start_gateway: Any) -> None:
    config["server"]["idle_timeout"] = 1
    gw = start_gateway(config)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        assert sock.recv(1024).startswith(b"220 ")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the gateway, not by us
        assert 0.8 < time.monotonic() - started < 5


def test_sigterm_finishes_the_transaction_in_flight(gateway: GatewayProcess, sink: RecordingSink) -> None:
    client = smtplib.SMTP("127.0.0.1", gateway.port, timeout=15)
    client.ehlo("x.test")
    client.login("ma-tool", PASSWORD)
    client.mail("news@bounce.example.jp")
    client.rcpt("taro@example.com")
    gateway.signal(signal.SIGTERM)
    time.sleep(0.5)
    # new connections are no longer accepted ...
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", gateway.port), timeout=2).recv(10)
    # ... but the transaction in flight completes
    code, _ = client.data(marketing())
    assert code == 250
    assert len(sink.received) == 1
    assert gateway.wait(timeout=15) == 0


def test_swaks_through_postfix_smtp_sink(
    config: dict[str, Any], start_gateway: Any, tmp_path: Path
) -> None:
    port = free_port()
    # smtp-sink drops root privileges before it writes: pytest's tmp_path (0700) is closed to it
    dump = Path(tempfile.mkdtemp(prefix="smtp-sink-"))
    dump.chmod(0o777)
    as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
    smtp_sink = subprocess.Popen(
        ["/usr/sbin/smtp-sink", *as_user, "-d", str(dump) + "/%M.", f"127.0.0.1:{port}", "10"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        config["upstream"]["port"] = port
        gw = start_gateway(config)
        message = tmp_path / "message.eml"
        message.write_bytes(marketing())
        result = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{gw.port}", "--auth-user", "ma-tool",
             "--auth-password", PASSWORD, "--from", "news@bounce.example.jp",
             "--to", "taro@example.com", "--data", "@" + str(message)],
            capture_output=True, text=True, timeout=30,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "<-  250" in result.stdout.splitlines()[-3] or "250 2.0.0" in result.stdout
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not list(dump.iterdir()):
            time.sleep(0.1)
        [dumped] = list(dump.iterdir())
        assert "冬のセール".encode() in dumped.read_bytes() or b"=?utf-8?" in dumped.read_bytes()
    finally:
        smtp_sink.terminate()
        smtp_sink.wait(timeout=5)
        shutil.rmtree(dump, ignore_errors=True)


def test_two_workers_share_the_port(config: dict[str, Any], start_gateway: Any, sink: RecordingSink) -> None:
    config["server"]["workers"] = 2
    gw = start_gateway(config)
    for _ in range(12):
        with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as client:
            client.ehlo("x.test")
            client.login("ma-tool", PASSWORD)
            client.mail("news@bounce.example.jp")
            client.rcpt("taro@example.com")
            assert client.data(marketing())[0] == 250
    assert len(sink.received) == 12
    assert len({m.peer for m in sink.received}) >= 1
    gw.signal(signal.SIGTERM)
    assert gw.wait(timeout=30) == 0


def _send_one(port: int) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
        client.ehlo("x.test")
        client.login("ma-tool", PASSWORD)
        client.mail("news@bounce.example.jp")
        client.rcpt("taro@example.com")
        return int(client.data(marketing())[0])


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def _replaced(supervisor: int, killed: int) -> list[int]:
    """The two workers, once the supervisor has replaced the killed one (20 s at most)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = _children(supervisor)
        if len(now) == 2 and killed not in now:
            return now
        time.sleep(0.1)
    pytest.fail(f"no replacement worker for {killed}")


def _cpus_of_threads(pid: int) -> set[str]:
    """Cpus_allowed_list of every thread of a process (the store's threads included)."""
    found = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                found.add(line.split(":", 1)[1].strip())
    return found


def test_cpu_affinity_auto_pins_each_worker_to_its_own_cpu(
    config: dict[str, Any], start_gateway: Any, sink: RecordingSink
) -> None:
    """cpu_affinity = "auto": every thread of worker i runs on the i-th allowed CPU (round
    robin), a replacement worker on the same one; "off" (the default) leaves them all
    allowed (test_workers_on_any_port_survive_a_killed_worker)."""
    allowed = sorted(os.sched_getaffinity(0))
    cpu = [{str(allowed[i % len(allowed)])} for i in range(2)]
    config["server"]["workers"] = 2
    config["server"]["listen"] = "127.0.0.1:0"
    config["server"]["cpu_affinity"] = "auto"
    gw = start_gateway(config)
    assert gw.proc is not None
    assert _send_one(gw.port) == 250  # the store's threads exist by now
    workers = _children(gw.proc.pid)
    assert [_cpus_of_threads(pid) for pid in workers] == cpu
    os.kill(workers[0], signal.SIGKILL)
    replacement = next(pid for pid in _replaced(gw.proc.pid, workers[0]) if pid != workers[1])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _cpus_of_threads(replacement) != cpu[0]:
        time.sleep(0.1)  # the new process pins itself once it has read its config
    assert [_send_one(gw.port) for _ in range(4)] == [250] * 4
    assert _cpus_of_threads(replacement) == cpu[0]
    gw.signal(signal.SIGTERM)
    assert gw.wait(timeout=30) == 0


def test_workers_on_any_port_survive_a_killed_worker(
    config: dict[str, Any], start_gateway: Any, sink: RecordingSink
) -> None:
    """The supervisor opens the socket (so port 0 works) and the workers share its accept
    queue: with one worker SIGKILLed, every client is served by the other at once, and the
    supervisor starts a replacement."""
    config["server"]["workers"] = 2
    config["server"]["listen"] = "127.0.0.1:0"
    gw = start_gateway(config)
    assert gw.proc is not None and gw.port > 0
    workers = _children(gw.proc.pid)
    assert len(workers) == 2
    unpinned = _cpus_of_threads(os.getpid())  # cpu_affinity "off": what the test itself may use
    assert [_cpus_of_threads(pid) for pid in workers] == [unpinned, unpinned]
    os.kill(workers[0], signal.SIGKILL)
    assert [_send_one(gw.port) for _ in range(10)] == [250] * 10
    _replaced(gw.proc.pid, workers[0])
    assert [_send_one(gw.port) for _ in range(4)] == [250] * 4
    assert len(sink.received) == 14
    gw.signal(signal.SIGTERM)
    assert gw.wait(timeout=30) == 0
