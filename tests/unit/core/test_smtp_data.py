"""The chunked DATA reader answers exactly as aiosmtpd's line-by-line loop.

The reference is aiosmtpd itself: a real aiosmtpd server on loopback is sent the same
bytes after DATA, and what its handler received (or what it replied) is compared with
`read_data` fed the same bytes in random pieces.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.smtp import data as data_mod
from gateway.smtp.data import (
    LINE_TOO_LONG,
    TOO_MUCH_DATA,
    DataOutcome,
    has_long_line,
    read_data,
    unstuff,
)
from tests.support.gateway import free_port

SIZE_LIMIT = 4000
LINE_LIMIT = SMTP.line_length_limit


class _Keep:
    def __init__(self) -> None:
        self.content: bytes | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.content = envelope.original_content
        return "250 OK"


@pytest.fixture(scope="module")
def reference() -> Iterator[tuple[int, _Keep]]:
    keep = _Keep()
    port = free_port()
    controller = Controller(keep, hostname="127.0.0.1", port=port, data_size_limit=SIZE_LIMIT)
    controller.start()
    try:
        yield port, keep
    finally:
        controller.stop()


def _reply(sock: socket.socket) -> bytes:
    buf = b""
    while True:
        chunk = sock.recv(65536)
        assert chunk, "reference server closed the connection"
        buf += chunk
        lines = buf.split(b"\r\n")
        if len(lines) > 1 and lines[-2][3:4] == b" ":
            return lines[-2]


def aiosmtpd_answer(port: int, keep: _Keep, payload: bytes) -> DataOutcome:
    keep.content = None
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        _reply(sock)
        for command in (b"HELO t", b"MAIL FROM:<a@example.jp>", b"RCPT TO:<b@example.jp>",
                        b"DATA"):
            sock.sendall(command + b"\r\n")
            _reply(sock)
        sock.sendall(payload)
        reply = _reply(sock).decode()
        sock.sendall(b"QUIT\r\n")
    if reply.startswith("250"):
        assert keep.content is not None
        return DataOutcome(content=keep.content)
    return DataOutcome(refusal=reply)


def chunked_answer(payload: bytes, cuts: list[int], after: bytes) -> tuple[DataOutcome, bytes]:
    async def go() -> tuple[DataOutcome, bytes]:
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        pieces = sorted({c % (len(payload) + 1) for c in cuts} | {0, len(payload)})
        stream = payload + after

        async def feed() -> None:
            for a, b in itertools.pairwise(pieces):
                reader.feed_data(stream[a:b])
                await asyncio.sleep(0)
            reader.feed_data(stream[len(payload):])
            reader.feed_eof()

        feeding = asyncio.create_task(feed())
        outcome = await read_data(reader, SIZE_LIMIT, LINE_LIMIT)
        await feeding
        return outcome, await reader.read()

    return asyncio.run(go())


TEXT = st.lists(
    st.sampled_from(["a", "b", ".", " ", "\r", "\n", "\t", "あ", ".."]), max_size=12
).map("".join)
LONG = st.integers(990, 1010).map(lambda n: "x" * n)
LINES = st.lists(st.one_of(TEXT, TEXT, TEXT, LONG), max_size=12)


def wire(lines: list[str]) -> bytes:
    """Lines as a client would send them after DATA, ending with the end marker."""
    return b"".join(line.encode() + b"\r\n" for line in lines) + b".\r\n"


def ends_once(payload: bytes) -> bool:
    return (b"\r\n" + payload).find(b"\r\n.\r\n") == len(payload) - 3


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINES, st.lists(st.integers(0, 20000), max_size=6))
@example([], [])
@example(["..", ".a", "b.", "."[:0]], [1, 2])
@example(["x" * 999], [])
@example(["x" * 1000], [500])
@example(["a\n.\nb", "c\r.\rd", "e\r.\nf"], [3])
@example(["y" * 998] * 5, [7])
def test_same_answer_as_aiosmtpd(
    reference: tuple[int, _Keep], lines: list[str], cuts: list[int]
) -> None:
    payload = wire(lines)
    if not ends_once(payload):
        return  # a "." line inside: the rest would be commands, not data
    expected = aiosmtpd_answer(*reference, payload)
    got, rest = chunked_answer(payload, cuts, b"QUIT\r\n")
    assert rest == b"QUIT\r\n"  # nothing after the end marker is taken
    long_line = any(len(line.encode()) + 2 > LINE_LIMIT for line in lines)
    if long_line and len(payload) - 3 > SIZE_LIMIT:
        # both limits crossed: which one aiosmtpd names depends on how TCP cut the lines
        assert got.refusal in (LINE_TOO_LONG, TOO_MUCH_DATA)
        assert expected.refusal in (LINE_TOO_LONG, TOO_MUCH_DATA)
    else:
        assert got == expected


def test_small_chunk_limit_takes_the_overrun_path(
    reference: tuple[int, _Keep], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream limit below the message size: read in pieces, the same answer."""
    monkeypatch.setattr(data_mod, "CHUNK_LIMIT", 8)
    lines = ["first line", ".dotted", "x" * 300, "末尾の行。", "a\n.\nb"]
    payload = wire(lines)
    got, rest = chunked_answer(payload, [5, 17, 40, 333], b"NOOP\r\n")
    assert got == aiosmtpd_answer(*reference, payload)
    assert got.content.startswith(b"first line\r\ndotted\r\n")
    assert rest == b"NOOP\r\n"


def test_empty_message_and_client_gone() -> None:
    got, rest = chunked_answer(b".\r\n", [1], b"RSET\r\n")
    assert got == DataOutcome(content=b"") and rest == b"RSET\r\n"
    gone, _ = chunked_answer(b"Subject: x\r\n\r\nbody\r\n", [4], b"")
    assert gone.closed


def test_stream_limit_is_restored_after_data() -> None:
    async def go() -> int:
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        reader.feed_data(b"a\r\n.\r\n")
        await read_data(reader, SIZE_LIMIT, LINE_LIMIT)
        return int(reader._limit)  # type: ignore[attr-defined]

    # the command loop after DATA still refuses lines longer than aiosmtpd's limit
    assert asyncio.run(go()) == LINE_LIMIT


@pytest.mark.parametrize(
    ("raw", "limit", "expected"),
    [
        (b"", 10, False),
        (b"12345678\r\n", 10, False),
        (b"123456789\r\n", 10, True),
        (b"ab\r\n" * 50 + b"123456789\r\n", 10, True),
        (b"ab\r\n" * 50 + b"12345678\r\n", 10, False),
        (b"1234\r567\r\n", 10, False),
        (b"1234\r56789\r\n", 10, True),  # a bare CR does not end a line
    ],
)
def test_long_line(raw: bytes, limit: int, expected: bool) -> None:
    assert has_long_line(raw, limit) is expected


def test_unstuff() -> None:
    assert unstuff(b"..a\r\n.b\r\nc.\r\n..\r\n") == b".a\r\nb\r\nc.\r\n.\r\n"
