"""Bad input through SMTP: every case gets a clear reply, and nothing odd reaches the upstream.

One gateway serves the whole module (these tests only send, they never change it).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.smtp.server import LINGER_SECONDS
from tests.faults.client import RawSMTP, dot_stuff
from tests.faults.invariant import event_log, new_message
from tests.support.consent import grant_in_process
from tests.support.gateway import GatewayProcess, base_config
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingSink]:
    server = RecordingSink().start()
    yield server
    server.stop()


def _start(tmp: Path, sink: RecordingSink, **policy: Any) -> GatewayProcess:
    cfg = base_config(tmp, sink.port)
    cfg["server"]["max_message_size"] = 8_000_000  # room for header floods
    cfg["policy"].update(policy)
    gw = GatewayProcess(tmp, cfg).start()
    grant_in_process(gw.config_path, "sample", "taro@example.com", "hanako@example.com")
    return gw


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: RecordingSink) -> Iterator[int]:
    proc = _start(tmp_path_factory.mktemp("badinput"), upstream)
    yield proc.port
    proc.stop()


@pytest.fixture
def gw_with_log(tmp_path: Path, upstream: RecordingSink) -> Iterator[tuple[int, Path]]:
    """A gateway of the test's own, so that its event log holds only the test's events."""
    proc = _start(tmp_path, upstream)
    yield proc.port, proc.config_path
    proc.stop()


@pytest.fixture(scope="module")
def monitor_gw(tmp_path_factory: pytest.TempPathFactory, upstream: RecordingSink) -> Iterator[int]:
    proc = _start(tmp_path_factory.mktemp("monitor"), upstream, mode="monitor")
    yield proc.port
    proc.stop()


@pytest.fixture
def sink(upstream: RecordingSink) -> RecordingSink:
    upstream.reset()
    return upstream


async def _session(port: int, user: str = "ma-tool") -> RawSMTP:
    client, code, _ = await RawSMTP.connect(port, wait=30)
    assert code == 220
    assert (await client.cmd("EHLO bad.test"))[0] == 250
    assert (await client.login(user))[0] == 235
    return client


async def _in_data(port: int) -> RawSMTP:
    client = await _session(port)
    assert (await client.cmd("MAIL FROM:<news@bounce.example.jp>"))[0] == 250
    assert (await client.cmd("RCPT TO:<taro@example.com>"))[0] == 250
    assert (await client.cmd("DATA"))[0] == 354
    return client


async def _send_in_data(port: int, raw: bytes) -> tuple[int, str]:
    client = await _in_data(port)
    await client.send(dot_stuff(raw) + b".\r\n")
    reply = await client.reply()
    await client.close()
    return reply


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


# -- command lines -------------------------------------------------------------------------------


def test_overlong_command_lines(gw: int, sink: RecordingSink) -> None:
    async def go() -> None:
        client = await _session(gw)
        code, text = await client.cmd("MAIL FROM:<" + "a" * 2000 + "@bounce.example.jp>")
        assert code == 500 and "5.5.2" in text, text
        # a megabyte without a line break: read and discarded, not buffered
        await client.send(b"NOOP " + b"x" * 1_000_000 + b"\r\n")
        code, text = await client.reply()
        assert code == 500 and "5.5.2" in text, text
        assert (await client.cmd("NOOP"))[0] == 250  # the session goes on
        await client.close()

    run(go())
    assert [c for c in sink.commands if c != "RSET"] == []


def test_nul_and_bare_line_endings_in_commands(gw: int, sink: RecordingSink) -> None:
    async def go() -> None:
        client = await _session(gw)
        code, text = await client.cmd(b"MAIL FROM:<news\x00@bounce.example.jp>")
        assert code == 553 and "5.1.7" in text, text
        assert (await client.cmd("MAIL FROM:<news@bounce.example.jp>"))[0] == 250
        for rcpt in (b"RCPT TO:<taro\x00@example.com>", b"RCPT TO:<taro@example.com\x00>"):
            code, text = await client.cmd(rcpt)
            assert 500 <= code < 600 and "[" in text, text
        # a bare LF ends a command line for aiosmtpd; a bare CR does not end it
        await client.send(b"RSET\n")
        assert (await client.reply())[0] == 250
        code, text = await client.cmd(b"NOOP\rMAIL FROM:<news@bounce.example.jp>")
        assert code != 250 or "2.1.0" not in text  # never taken as a MAIL command
        await client.close()

    run(go())
    assert not any(c.startswith("RCPT") for c in sink.commands)


def test_unparsable_sender_is_malformed_not_foreign(gw: int, sink: RecordingSink) -> None:
    """aiosmtpd hands on "MAIL FROM:<bad" as "bad"; that is a malformed address (553 5.1.7),
    with or without AUTH (the opt-out mailbox path), not a "domain not allowed"."""
    async def go() -> None:
        for login in (True, False):
            if login:
                client = await _session(gw)
            else:
                client, _, _ = await RawSMTP.connect(gw, wait=30)
                await client.cmd("EHLO bad.test")
            for line in ("MAIL FROM:<bad", "MAIL FROM:bad", "MAIL FROM:<@bounce.example.jp>"):
                code, text = await client.cmd(line)
                assert code == 553 and "5.1.7" in text, (login, line, text)
            assert (await client.cmd("MAIL FROM:<>"))[0] == (550 if login else 250)
            await client.close()

    run(go())
    assert sink.commands == []


def test_helo_or_ehlo_in_a_transaction_resets_it_upstream_too(
    gw: int, sink: RecordingSink
) -> None:
    """RFC 5321 4.1.4: HELO/EHLO mid-transaction is like RSET. The upstream link, which had
    the MAIL already, must be reset as well: the next MAIL once went to it as a nested MAIL."""
    async def go() -> None:
        client = await _session(gw)
        for hello in ("HELO again.test", "EHLO again.test"):
            assert (await client.cmd("MAIL FROM:<news@bounce.example.jp>"))[0] == 250
            assert (await client.cmd(hello))[0] == 250
        code, text = await client.cmd("RCPT TO:<taro@example.com>")
        assert code == 503, text  # no transaction any more
        assert (await client.cmd("MAIL FROM:<news@bounce.example.jp>"))[0] == 250
        assert (await client.cmd("RCPT TO:<taro@example.com>"))[0] == 250
        assert (await client.cmd("DATA"))[0] == 354
        await client.send(dot_stuff(new_message("helo")) + b".\r\n")
        assert (await client.reply())[0] == 250
        await client.close()

    run(go())
    mails = [c for c in sink.commands if c.startswith("MAIL")]
    assert len(mails) == 3 and len(sink.received) == 1
    # every MAIL upstream after the first came after a RSET of the transaction before
    assert [c for c in sink.commands if c.startswith(("MAIL", "RSET"))][:5] == [
        mails[0], "RSET", mails[1], "RSET", mails[2]]


def test_auth_inside_a_transaction_is_refused(gw: int, sink: RecordingSink) -> None:
    """RFC 4954 section 4: AUTH during a mail transaction MUST get 503. A transaction begun
    without AUTH may reach only the opt-out mailbox, and logging in must not widen it."""
    async def go() -> None:
        client, _, _ = await RawSMTP.connect(gw, wait=30)
        await client.cmd("EHLO bad.test")
        assert (await client.cmd("MAIL FROM:<news@bounce.example.jp>"))[0] == 250
        code, text = await client.login()
        assert code == 503 and "5.5.1" in text, text
        code, text = await client.cmd("RCPT TO:<taro@example.com>")
        assert code == 530, text  # still no relay
        assert (await client.cmd("RSET"))[0] == 250
        assert (await client.login())[0] == 235  # outside a transaction it works
        await client.close()

    run(go())
    assert not any(c.startswith("RCPT") for c in sink.commands)


# -- DATA ------------------------------------------------------------------------------------------


def _body_with(insert: bytes) -> bytes:
    raw = new_message("bad")
    head, _, body = raw.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n" + insert + body


@pytest.mark.parametrize("insert", [b"bare LF\nhere\r\n", b"bare CR\rhere\r\n", b"NUL \x00 byte\r\n"],
                         ids=["bare-LF", "bare-CR", "NUL"])
def test_bare_line_endings_and_nul_in_data(gw: int, sink: RecordingSink, insert: bytes) -> None:
    code, text = run(_send_in_data(gw, _body_with(insert)))
    assert code == 550 and "5.6.0" in text and "[message.malformed]" in text, text
    assert sink.received == []


def test_header_section_that_starts_with_a_continuation_line(gw: int, sink: RecordingSink) -> None:
    # The fuzzer found dkimpy's header parser raising IndexError on such a message; here the
    # malformed-MIME rule refuses it before anything parses it for DKIM. The same body sent
    # well formed first: the footer report cached for that body once answered for this
    # message too, and it was relayed with its broken header section.
    plain = new_message("fold")
    assert run(_send_in_data(gw, plain))[0] == 250
    code, text = run(_send_in_data(gw, b" folded\r\n" + plain))
    assert code == 550 and "5.6.0" in text and "[message.malformed]" in text, text
    assert len(sink.received) == 1


EIGHT_BIT_HEADERS = {
    "subject": lambda raw: raw.replace(b"\r\nSubject: ", b"\r\nSubject: \xff\xfe ", 1),
    "from display name": lambda raw: re.sub(rb"(?m)^From: ", b"From: \xe3\x81 ", raw, count=1),
    "charset name": lambda raw: re.sub(rb"charset=\"?[\w-]+\"?", b'charset="ut\xf8-8"', raw, count=1),
    "content-type parameter": lambda raw: re.sub(rb"(Content-Type: [^\r;]+)",
                                                 lambda m: m.group(1) + b"; name=\xff", raw, count=1),
    "unknown field": lambda raw: raw.replace(b"\r\n\r\n", b"\r\nX-Junk: \x80\x81\r\n\r\n", 1),
}


@pytest.mark.parametrize("where", sorted(EIGHT_BIT_HEADERS))
def test_eight_bit_bytes_in_header_fields_get_a_verdict(gw: int, sink: RecordingSink,
                                                         where: str) -> None:
    # Raw 8-bit bytes in header fields without SMTPUTF8 (RFC 5322 §2.2, RFC 6532): refused,
    # never a 451 the client would retry for ever, and never relayed for Gmail to refuse.
    plain = new_message("8bit")
    raw = EIGHT_BIT_HEADERS[where](plain)
    assert raw != plain
    code, text = run(_send_in_data(gw, raw))
    assert code == 550 and "5.6.0 [message.header_fields]" in text, (code, text)
    assert sink.received == []


def test_overlong_header_lines(gw: int, sink: RecordingSink) -> None:
    async def go(line: bytes) -> tuple[int, str]:
        client = await _in_data(gw)
        raw = new_message("long")
        await client.send(dot_stuff(b"X-Long: " + line + b"\r\n" + raw) + b".\r\n")
        reply = await client.reply()
        await client.close()
        return reply

    code, text = run(go(b"y" * 991))  # 999 octets: over RFC 5322 998, within SMTP 1000 with CRLF
    assert code == 550 and "[message.malformed]" in text, text
    code, text = run(go(b"y" * 5000))  # over SMTP's line limit: refused by the protocol layer
    assert code == 500 and "5.5.2" in text, text
    assert sink.received == []


@pytest.mark.parametrize(("body", "code", "rule"), [
    (b"X-Long: " + b"y" * 5000 + b"\r\n", 500, "message.line_too_long"),
    (b"X-Big: z\r\n" + (b" " + b"z" * 900 + b"\r\n") * 10_000, 552, "message.too_large"),
], ids=["line-too-long", "too-large"])
def test_data_refused_by_the_protocol_layer_ends_the_transaction(
    gw_with_log: tuple[int, Path], sink: RecordingSink, body: bytes, code: int, rule: str
) -> None:
    """The refusal is in the event log, and the same session's next transaction goes
    through. A line too long once left the upstream link holding MAIL and RCPT: the next
    MAIL met it as a nested MAIL (503), and no event said why DATA was refused."""
    port, config = gw_with_log

    async def go() -> list[tuple[int, str]]:
        client = await _in_data(port)
        await client.send(dot_stuff(body + new_message("refused")) + b".\r\n")
        replies = [await client.reply()]
        for line in ("MAIL FROM:<news@bounce.example.jp>", "RCPT TO:<taro@example.com>", "DATA"):
            replies.append(await client.cmd(line))
        await client.send(dot_stuff(new_message("next")) + b".\r\n")
        replies.append(await client.reply())
        await client.close()
        return replies

    refused, *rest = run(go())
    assert refused[0] == code, refused
    assert [c for c, _ in rest] == [250, 250, 354, 250], rest
    assert len(sink.received) == 1
    logged = [e for e in event_log(config) if e["rule_ids"] == [rule]]
    assert len(logged) == 1 and logged[0]["reply"] == refused[1], logged
    assert logged[0]["recipient"] == "taro@example.com"


def test_header_flood(gw: int, sink: RecordingSink) -> None:
    flood = b"".join(b"X-Flood-%d: v\r\n" % i for i in range(100_000))  # ~1.6 MB of headers

    async def go() -> tuple[int, str, float]:
        client = await _in_data(gw)
        started = time.monotonic()
        await client.send(dot_stuff(flood + new_message("flood")) + b".\r\n")
        code, text = await client.reply(wait=30)
        took = time.monotonic() - started
        assert (await client.cmd("NOOP"))[0] == 250
        await client.close()
        return code, text, took

    code, text, took = run(go())
    assert code == 550 and "[message.malformed]" in text, text
    assert took < 10, took
    assert sink.received == []


def test_ten_thousand_recipients(gw: int, sink: RecordingSink) -> None:
    """Pipelined: each reply in order; one advertising recipient reaches the upstream."""
    n = 10_000

    async def go() -> list[tuple[int, str]]:
        client = await _session(gw)
        assert (await client.cmd("MAIL FROM:<news@bounce.example.jp>"))[0] == 250
        rcpts = [b"RCPT TO:<taro@example.com>\r\n"] + [
            b"RCPT TO:<user%d@example.com>\r\n" % i for i in range(n - 1)
        ]
        client.writer.write(b"".join(rcpts))
        replies = []
        for _ in range(n):
            try:
                replies.append(await client.reply(wait=30))
            except Exception:
                break
        await client.close()
        return replies

    replies = run(go())
    assert replies[0][0] == 250
    # the rest: 452 4.5.3 (one recipient per advertising transaction) until aiosmtpd's
    # per-session RCPT budget (1000) ends the session with 421 4.7.0
    assert all(code == 452 and "4.5.3" in text for code, text in replies[1:1000]), replies[1:3]
    # the 1000-RCPT cap ends the session with 421; the gateway half-closes and drains
    # the unread commands, so the 421 reaches the client (no RST) and nothing more is answered
    assert len(replies) == 1001, len(replies)
    assert replies[-1][0] == 421 and "4.7.0" in replies[-1][1], replies[-1]
    assert [c for c in sink.commands if c.startswith("RCPT")] == ["RCPT taro@example.com"]
    assert sink.received == []


def test_transactional_recipients_capped(gw: int, sink: RecordingSink) -> None:
    async def go() -> list[int]:
        client = await _session(gw, user="receipts")
        assert (await client.cmd("MAIL FROM:<news@bounce.example.jp>"))[0] == 250
        client.writer.write(b"".join(b"RCPT TO:<r%d@example.com>\r\n" % i for i in range(300)))
        codes = [(await client.reply())[0] for _ in range(300)]
        await client.close()
        return codes

    codes = run(go())
    assert codes[:100] == [250] * 100 and set(codes[100:]) == {452}
    assert sum(c.startswith("RCPT") for c in sink.commands) == 100


def test_pipelining_flood(gw: int, sink: RecordingSink) -> None:
    """20,000 commands in one write, replies not read: bounded, then the session ends."""
    async def go() -> tuple[int, tuple[int, str]]:
        client, _, _ = await RawSMTP.connect(gw)
        client.writer.write(b"NOOP\r\n" * 20_000)
        count = 0
        last = (0, "")
        while True:
            try:
                last = await client.reply(wait=20)
            except Exception:
                break
            count += 1
        await client.close()
        return count, last

    count, last = run(go())
    assert count == 10_001 and last[0] == 421 and "NOOP sent too many times" in last[1], (count, last)
    # an RSET may still arrive from the previous test's pooled upstream link
    assert [c for c in sink.commands if c != "RSET"] == []


def test_flood_without_reading_is_closed(gw: int, sink: RecordingSink) -> None:
    """A flooder that never reads nor closes: the 421's lingering close is bounded, the
    gateway lets go of the socket (EOF or reset) within seconds, not the idle timeout."""
    async def go() -> tuple[float, bytes]:
        client, _, _ = await RawSMTP.connect(gw)
        loop = asyncio.get_running_loop()
        start = loop.time()
        client.writer.write(b"NOOP\r\n" * 20_000)
        await asyncio.sleep(LINGER_SECONDS + 3)  # neither read nor close meanwhile
        received = b""
        async with asyncio.timeout(30):
            while chunk := await client.reader.read(65536):
                received += chunk
        elapsed = loop.time() - start
        await client.close()
        return elapsed, received

    elapsed, received = run(go())
    assert elapsed < LINGER_SECONDS + 10, elapsed  # the test config's idle timeout is 30 s
    # every reply arrived, the last one says why the session ended
    assert received.count(b"250 OK\r\n") == 10_000
    assert received.endswith(b"421 4.7.0 NOOP sent too many times\r\n"), received[-80:]
    assert [c for c in sink.commands if c != "RSET"] == []


# -- SMTP smuggling --------------------------------------------------------------------------------

SMUGGLE_ENDS = [b"\n.\n", b"\r.\n", b"\r\n.\r", b"\n.\r\n", b"\n.\r", b"\r.\r"]


def _smuggled(end: bytes) -> bytes:
    inner = new_message("smuggled").replace(b"taro@example.com", b"hanako@example.com")
    return (
        _body_with(b"first part\r\n").rstrip(b"\r\n") + end
        + b"MAIL FROM:<news@bounce.example.jp>\r\nRCPT TO:<hanako@example.com>\r\nDATA\r\n"
        + inner
    )


@pytest.mark.parametrize("mode", ["enforce", "monitor"])
@pytest.mark.parametrize("end", SMUGGLE_ENDS, ids=[repr(e)[2:-1] for e in SMUGGLE_ENDS])
def test_smtp_smuggling_never_makes_a_second_message(
    gw: int, monitor_gw: int, sink: RecordingSink, end: bytes, mode: str
) -> None:
    port = gw if mode == "enforce" else monitor_gw

    async def go() -> tuple[tuple[int, str], tuple[int, str]]:
        client = await _in_data(port)
        # the smuggled payload, then the real end of DATA and a probe in the same write
        await client.send(_smuggled(end) + b"\r\n.\r\nNOOP\r\n")
        first = await client.reply()
        second = await client.reply()  # must answer the NOOP, not a smuggled DATA
        await client.close()
        return first, second

    first, second = run(go())
    # message.malformed is always_enforce: refused in monitor mode too
    assert first[0] == 550 and "[message.malformed]" in first[1], (mode, first)
    assert sink.received == []
    assert second == (250, "250 OK"), second  # the NOOP, not a smuggled transaction
    assert sum(c.startswith("MAIL") for c in sink.commands) <= 1
    assert "RCPT hanako@example.com" not in sink.commands
    for received in sink.received:  # monitor mode: one message, one recipient, CRLF only
        assert received.rcpt_tos == ["taro@example.com"]
        data = received.data
        assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r"), "bare CR/LF upstream"
