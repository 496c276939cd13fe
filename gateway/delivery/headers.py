"""Byte-level header edits, so a message is never re-serialised just to add or drop a header.

Re-serialising through the email package would re-fold headers and re-encode
bodies: costly on the hot path, and a change nobody asked for.
"""

from __future__ import annotations

import re

_HEADER_END = re.compile(rb"\r\n\r\n")


def split(raw: bytes) -> tuple[bytes, bytes]:
    """(header section incl. its final CRLF, body incl. the blank line)."""
    match = _HEADER_END.search(raw)
    if match is None:
        return raw, b""
    return raw[: match.start() + 2], raw[match.start() + 2 :]


def remove_header(raw: bytes, name: str) -> bytes:
    """Drop every field called `name` (with its folded continuation lines)."""
    header, body = split(raw)
    wanted = name.lower().encode("ascii") + b":"
    lines = header.split(b"\r\n")
    kept: list[bytes] = []
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and line:
            if not dropping:
                kept.append(line)
            continue
        dropping = line.lower().startswith(wanted)
        if not dropping:
            kept.append(line)
    if len(kept) == len(lines):
        return raw
    return b"\r\n".join(kept) + body


def prepend(raw: bytes, fields: list[tuple[str, str]]) -> bytes:
    """Add header fields at the top (where trace and signature headers belong)."""
    if not fields:
        return raw
    added = b"".join(f"{name}: {value}\r\n".encode() for name, value in fields)
    return added + raw
