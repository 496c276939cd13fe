"""SMTP security checks: no open relay, AUTH brute force throttled, STARTTLS injection,
config values that could inject replies or headers."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.faults.client import RawSMTP, dot_stuff
from tests.faults.invariant import new_message
from tests.support import toml
from tests.support.consent import grant_in_process
from tests.support.gateway import PASSWORD, ROOT, GatewayProcess, base_config, cli
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e

# The classic relay-test forms (e.g. the ORDB / Sam Spade relay tests), aimed at a
# foreign domain through the gateway's own name.
RELAY_FORMS = [
    "victim%evil.example@gw.test",
    "victim%evil.example@example.jp",
    "@gw.test:victim@evil.example",
    "@example.jp,@gw.test:victim@evil.example",
    '"victim@evil.example"@gw.test',
    '"victim@evil.example"@example.jp',
    "victim@[192.0.2.99]",
    "victim@[IPv6:2001:db8::99]",
    "victim@evil.example@gw.test",
    "evil.example!victim@gw.test",
    "victim",
    "victim@evil.example",
    "unsubscribe%evil.example@gw.test",
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingSink]:
    server = RecordingSink().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: RecordingSink) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("security")
    cfg = base_config(tmp, upstream.port)
    cfg["server"]["auth_failure_limit"] = 5
    proc = GatewayProcess(tmp, cfg).start()
    grant_in_process(proc.config_path, "sample", "taro@example.com")
    yield proc.port
    proc.stop()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_no_open_relay_without_auth(gw: int, upstream: RecordingSink) -> None:
    upstream.reset()

    async def go() -> list[tuple[str, int, str]]:
        seen = []
        client, _, _ = await RawSMTP.connect(gw)
        await client.cmd("EHLO relay.test")
        for sender in ("news@bounce.example.jp", "", "victim@evil.example"):
            code, text = await client.cmd(f"MAIL FROM:<{sender}>")
            for rcpt in RELAY_FORMS:
                c, t = await client.cmd(f"RCPT TO:<{rcpt}>")
                seen.append((rcpt, c, t))
            code, text = await client.cmd("DATA")
            assert code in (503, 554), text
            await client.cmd("RSET")
        await client.close()
        return seen

    for rcpt, code, text in run(go()):
        # without AUTH only the opt-out mailbox exists here; every relay form is refused
        assert code in (503, 530, 550, 553), (rcpt, text)
    assert upstream.commands == [] and upstream.received == []


def test_no_relay_for_an_authenticated_client_with_a_wrong_sender(
    gw: int, upstream: RecordingSink
) -> None:
    upstream.reset()

    async def go() -> None:
        client, _, _ = await RawSMTP.connect(gw)
        await client.cmd("EHLO relay.test")
        assert (await client.login("other-brand"))[0] == 235  # may send for other.example only
        for sender in ("news@example.jp", "news@bounce.example.jp", "@other.example:news@example.jp",
                       "news@EXAMPLE.JP", "news@[192.0.2.10]"):
            code, text = await client.cmd(f"MAIL FROM:<{sender}>")
            assert code == 550 and "[auth.from_not_allowed]" in text, (sender, text)
            assert (await client.cmd("RCPT TO:<taro@example.com>"))[0] == 503
        # right envelope, foreign From: header -> refused at DATA
        await client.close()
        client, _, _ = await RawSMTP.connect(gw)
        await client.cmd("EHLO relay.test")
        await client.login("ma-tool")
        assert (await client.cmd("MAIL FROM:<news@bounce.example.jp>"))[0] == 250
        assert (await client.cmd("RCPT TO:<taro@example.com>"))[0] == 250
        assert (await client.cmd("DATA"))[0] == 354
        raw = new_message("wrongfrom").replace(b"<news@example.jp>", b"<ceo@evil.example>")
        await client.send(dot_stuff(raw) + b".\r\n")
        code, text = await client.reply()
        assert code == 550 and "[auth.from_not_allowed]" in text, text
        # and every relay form as a recipient: refused by rules, never at the upstream
        for rcpt in RELAY_FORMS:
            assert (await client.cmd("MAIL FROM:<news@bounce.example.jp>"))[0] == 250
            code, text = await client.cmd(f"RCPT TO:<{rcpt}>")
            assert 500 <= code < 600, (rcpt, text)  # a rule id, or aiosmtpd's syntax 553
            await client.cmd("RSET")
        await client.close()

    run(go())
    assert upstream.received == []
    # only the consented recipient of the wrong-From message was ever named upstream
    assert [c for c in upstream.commands if c.startswith("RCPT")] == ["RCPT taro@example.com"]


def test_auth_brute_force_is_throttled_across_connections_and_names(gw: int) -> None:
    import base64

    def plain(user: str, password: str) -> str:
        return "AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()

    async def go() -> list[int]:
        codes = []
        for attempt in range(8):  # a new connection, a new user name each time
            client, _, _ = await RawSMTP.connect(gw, source="127.0.0.9")
            await client.cmd("EHLO brute.test")
            codes.append((await client.cmd(plain(f"user{attempt}", "guess")))[0])
            await client.close()
        client, _, _ = await RawSMTP.connect(gw, source="127.0.0.9")
        await client.cmd("EHLO brute.test")
        codes.append((await client.cmd(plain("ma-tool", PASSWORD)))[0])  # right, but throttled
        await client.close()
        other, _, _ = await RawSMTP.connect(gw, source="127.0.0.10")
        await other.cmd("EHLO other.test")
        codes.append((await other.cmd(plain("ma-tool", PASSWORD)))[0])  # another address: fine
        await other.close()
        return codes

    codes = run(go())
    assert codes[:5] == [535] * 5, codes
    assert codes[5:9] == [454] * 4, codes
    assert codes[9] == 235, codes


def test_auth_attempts_per_connection_are_capped(gw: int) -> None:
    async def go() -> tuple[int, str]:
        client, _, _ = await RawSMTP.connect(gw, source="127.0.0.11")
        await client.cmd("EHLO x")
        last = (0, "")
        for _ in range(11):
            try:
                last = await client.cmd("AUTH PLAIN AGZvbwBiYXI=")
            except Exception:
                break
        await client.close()
        return last

    code, text = run(go())
    assert code in (421, 454), text  # throttled, or aiosmtpd's AUTH budget ended the session


def _tls_gateway(tmp: Path, sink: RecordingSink, *, auth_require_tls: bool = True
                 ) -> tuple[GatewayProcess, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("gw.test", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "gw.pem"))
    cert.private_key_pem.write_to_path(str(tmp / "gw.key"))
    cfg = base_config(tmp, sink.port)
    cfg["server"].update(auth_require_tls=auth_require_tls, tls_cert=str(tmp / "gw.pem"),
                         tls_key=str(tmp / "gw.key"))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return GatewayProcess(tmp, cfg).start(), context


def _read_reply(sock: socket.socket | ssl.SSLSocket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n") or (len(data.splitlines()[-1]) > 3
                                           and data.splitlines()[-1][3:4] == b"-"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_starttls_command_injection_is_discarded(tmp_path: Path, upstream: RecordingSink) -> None:
    """CVE-2011-0411 style: commands sent in the same packet as STARTTLS must not run."""
    gw, context = _tls_gateway(tmp_path, upstream)
    try:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as raw:
            assert _read_reply(raw).startswith(b"220")
            raw.sendall(b"EHLO inj.test\r\n")
            assert b"STARTTLS" in _read_reply(raw)
            # one write: STARTTLS plus plaintext commands an attacker in the middle injected
            raw.sendall(b"STARTTLS\r\nRSET\r\nMAIL FROM:<news@bounce.example.jp>\r\nNOOP\r\n")
            assert _read_reply(raw).startswith(b"220")
            tls = context.wrap_socket(raw, server_hostname="gw.test")
            tls.settimeout(1.5)
            try:
                early = tls.recv(4096)  # nothing must be answered before we say something
            except (TimeoutError, ssl.SSLError, OSError):
                early = b""
            assert early == b"", f"plaintext commands were executed after TLS: {early!r}"
            tls.settimeout(10)
            tls.sendall(b"EHLO inj.test\r\n")
            reply = _read_reply(tls)
            assert reply.startswith(b"250-") and b"AUTH" in reply, reply
            tls.sendall(b"NOOP\r\n")
            assert _read_reply(tls).startswith(b"250")
            tls.close()
    finally:
        gw.stop()


def test_starttls_forgets_the_login_and_the_transaction_before_it(
    tmp_path: Path, upstream: RecordingSink
) -> None:
    """RFC 3207 4.2: after STARTTLS the server forgets what the client said before. With
    AUTH allowed without TLS (loopback only), a login and an open transaction from before
    the handshake carried over: MAIL went through without AUTH, and the upstream link,
    which still had the old MAIL, answered the new one as a nested MAIL."""
    upstream.reset()
    gw, context = _tls_gateway(tmp_path, upstream, auth_require_tls=False)
    grant_in_process(gw.config_path, "sample", "taro@example.com")
    blob = base64.b64encode(f"\0ma-tool\0{PASSWORD}".encode())
    try:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as raw:
            assert _read_reply(raw).startswith(b"220")
            for line, code in ((b"EHLO c.test", b"250"), (b"AUTH PLAIN " + blob, b"235"),
                               (b"MAIL FROM:<news@bounce.example.jp>", b"250"),
                               (b"STARTTLS", b"220")):
                raw.sendall(line + b"\r\n")
                assert _read_reply(raw).startswith(code), line
            tls = context.wrap_socket(raw, server_hostname="gw.test")

            def cmd(line: bytes) -> bytes:
                tls.sendall(line + b"\r\n")
                return _read_reply(tls)

            assert cmd(b"EHLO c.test").startswith(b"250")
            # no login any more: a transaction only to the opt-out mailbox
            assert cmd(b"MAIL FROM:<news@bounce.example.jp>").startswith(b"250 2.1.0 Sender OK")
            assert cmd(b"RCPT TO:<taro@example.com>").startswith(b"530")
            assert cmd(b"RSET").startswith(b"250")
            assert cmd(b"AUTH PLAIN " + blob).startswith(b"235")
            assert cmd(b"MAIL FROM:<news@bounce.example.jp>").startswith(b"250")
            assert cmd(b"RCPT TO:<taro@example.com>").startswith(b"250")
            assert cmd(b"DATA").startswith(b"354")
            assert cmd(dot_stuff(new_message("tls")) + b".").startswith(b"250")
            tls.close()
    finally:
        gw.stop()
    assert [c for c in upstream.commands if c.startswith(("MAIL", "RSET"))][:3] == [
        "MAIL news@bounce.example.jp", "RSET", "MAIL news@bounce.example.jp"]
    assert len(upstream.received) == 1


def _load_config(tmp: Path, cfg: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp / "inject.toml"
    path.write_text(toml.dumps(cfg), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "gateway", "log", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("key", ["name", "postal_address", "contacts", "optout"])
def test_config_display_values_with_line_breaks_are_refused(tmp_path: Path, key: str) -> None:
    cfg = base_config(tmp_path, 1)
    value = "株式会社サンプル\r\nBcc: victim@evil.example"
    cfg["senders"][0][key] = [value] if key in ("contacts", "optout") else value
    result = _load_config(tmp_path, cfg)
    assert result.returncode == 2, result
    assert "senders[0]" in result.stderr and "line breaks" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_hostname_cannot_inject_reply_lines(tmp_path: Path, upstream: RecordingSink) -> None:
    """A host name with line breaks is refused at load (exit 2) — it could never reach a reply."""
    cfg = base_config(tmp_path, upstream.port)
    cfg["server"]["hostname"] = "gw.test\r\n250-INJECTED\r\n250 AUTH PLAIN"
    path = tmp_path / "gw.toml"
    path.write_text(toml.dumps(cfg), encoding="utf-8")
    result = cli("serve", config=path)
    assert result.returncode == 2
    assert "server.hostname: must be one word without spaces or control characters" in result.stderr
