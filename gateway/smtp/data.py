"""Reading the DATA section in large chunks instead of one line at a time.

aiosmtpd reads DATA with one `readuntil(b"\\r\\n")` per line (~175 for an 11 KB message),
through a StreamReader whose limit is one line (1001 bytes), so the transport is also
paused and resumed every 2 KB. That was ~11% of a message's CPU. Here the reader stops
only at `.\\r\\n` — the end marker, or a line that happens to end with a dot — and the
marker counts only at the start of a line, as in aiosmtpd: `\\n.\\n` and `\\r.\\n` end
nothing (SMTP smuggling). Line length, size limit and dot-unstuffing follow aiosmtpd's
rules exactly (tests/unit/core/test_smtp_data.py compares both on random input).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

_MARK = b".\r\n"
_END = b"\r\n.\r\n"
# While DATA is read, the stream may buffer this much (x2 before it pauses the socket).
CHUNK_LIMIT = 256 * 1024

# aiosmtpd's own reply texts: the server maps them onto the contract's codes.
LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
TOO_MUCH_DATA = "552 Error: Too much mail data"


@dataclass(frozen=True)
class DataOutcome:
    content: bytes = b""  # unstuffed, without the end marker
    refusal: str = ""  # a reply for data that is refused once it has been read
    closed: bool = False  # the client went away before the end marker


def has_long_line(raw: bytes, limit: int) -> bool:
    """Is any CRLF-terminated line of `raw` (CRLF included) longer than `limit` bytes?"""
    pos, end = 0, len(raw)
    while end - pos > limit:
        # the last CRLF within one line's reach of a line start: every line before it
        # fitted in the window; none found means the line at `pos` is too long
        crlf = raw.rfind(b"\r\n", pos, pos + limit)
        if crlf < 0:
            return True
        pos = crlf + 2
    return False


def unstuff(raw: bytes) -> bytes:
    """RFC 5321 4.5.2: drop the leading dot of every line that starts with one."""
    content = raw.replace(b"\r\n.", b"\r\n")
    return content[1:] if content[:1] == b"." else content


async def read_data(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int
) -> DataOutcome:
    """Read up to and including the end marker; refuse oversize data or lines after it."""
    limit_attr = "_limit"  # asyncio.StreamReader's private line limit; absent: still correct
    saved = getattr(reader, limit_attr, None)
    if saved is not None:
        setattr(reader, limit_attr, max(saved, CHUNK_LIMIT))
    try:
        return await _read(reader, size_limit, line_limit)
    finally:
        if saved is not None:
            setattr(reader, limit_attr, saved)


async def _read(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int
) -> DataOutcome:
    chunks: list[bytes] = []
    size = 0
    tail = b"\r\n"  # the data starts at the start of a line
    refusal = ""
    while True:
        try:
            chunk = await reader.readuntil(_MARK)
        except asyncio.LimitOverrunError as exc:
            chunk = await reader.read(exc.consumed)  # no marker can start before this
        except asyncio.IncompleteReadError:
            return DataOutcome(closed=True)
        if not chunk:
            return DataOutcome(closed=True)
        window = chunk[-5:] if len(chunk) >= 5 else (tail + chunk)[-5:]
        ended = window == _END
        tail = window[-4:]
        size += len(chunk)
        if not refusal:
            chunks.append(chunk)
            if size_limit and size - (len(_MARK) if ended else 0) > size_limit:
                # which limit was crossed first, as aiosmtpd answers: a long line already
                # read, else the size; then keep nothing more (memory stays bounded)
                long_line = has_long_line(b"".join(chunks), line_limit)
                refusal = LINE_TOO_LONG if long_line else TOO_MUCH_DATA
                chunks.clear()
        if ended:
            break
    if refusal:
        return DataOutcome(refusal=refusal)
    raw = (chunks[0] if len(chunks) == 1 else b"".join(chunks))[: -len(_MARK)]
    if has_long_line(raw, line_limit):
        return DataOutcome(refusal=LINE_TOO_LONG)
    return DataOutcome(content=unstuff(raw))
