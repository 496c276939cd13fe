"""Parse a message into the same tree as email's compat32 parser, fast when it is well formed.

The footer check needs the MIME tree of every message whose body it has not seen (mail
personalised per recipient misses the body cache). email.feedparser builds it one line at
a time in Python: ~0.45 ms for the benchmark's 11 KB message, a sixth of the whole check.
A well-formed message needs no line-by-line work: boundaries are found with str.find,
headers are read per field. This module builds that tree for messages that are plainly
well formed — CRLF line ends, every header line a field or a continuation, every multipart
with its boundary, its first and its closing delimiter, no empty part, no message/* part —
and hands everything else to the stdlib parser, which records the defects the footer
report names. The two agree on every tree the fast path builds (tests/unit/content/
test_mimetree.py compares them on generated and mutated messages).

The fast tree has the headers, payloads and sub-parts readable_parts() reads; it keeps no
preamble and no epilogue.
"""

from __future__ import annotations

import email.policy
import itertools
import re
from email.message import Message
from email.parser import BytesParser

__all__ = ["parse_message", "parse_well_formed", "plain_header_section"]

_PARSER = BytesParser(policy=email.policy.compat32)
# email.feedparser.headerRE's field branch (continuations are handled apart).
_FIELD = re.compile(r"[\041-\071\073-\176]+:")
# A field (name, colon, value) with its continuation lines, CRLF between lines only.
_FIELD_LINES = rb"[\041-\071\073-\176]+:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*"
_PLAIN_HEADER = re.compile(_FIELD_LINES + rb"(?:\r\n" + _FIELD_LINES + rb")*")
_MAX_DEPTH = 40  # beyond this the stdlib parser decides (it reports runaway nesting)
_CRLF = "\r\n"


class _Decline(Exception):
    """The message is not plainly well formed: let the stdlib parser build (and judge) it."""


def parse_message(raw: bytes) -> Message:
    """The compat32 tree of `raw`: built by parse_well_formed() when it can, else by email."""
    msg = parse_well_formed(raw)
    return msg if msg is not None else _PARSER.parsebytes(raw)


def plain_header_section(head: bytes) -> bool:
    """Whether a top-level header section (without its blank line) has only CRLF line
    ends and every line is a field or the continuation of one, the first a field.

    Then email's parser reads it without a defect that changes the tree, and the body
    starts after the first blank line; otherwise (a leading continuation line, a line
    that is no field) the defects are the header section's own, which a cache keyed by
    the body must not answer for.
    """
    return _PLAIN_HEADER.fullmatch(head) is not None


def parse_well_formed(raw: bytes) -> Message | None:
    """The tree email.parser would build for `raw`, or None if `raw` is not plainly well formed."""
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        return None  # bare CR or LF: line splitting is the stdlib's business
    text = raw.decode("ascii", "surrogateescape")  # as BytesFeedParser does
    try:
        return _entity(text, 0, len(text), False, "text/plain", 0)
    except _Decline:
        return None


def _entity(text: str, start: int, end: int, in_multipart: bool, default_type: str,
            depth: int) -> Message:
    """Parse the entity text[start:end] (headers, then body) into a Message."""
    if depth > _MAX_DEPTH:
        raise _Decline
    msg = Message()
    if default_type != "text/plain":
        msg.set_default_type(default_type)
    body = _headers(msg, text, start, end)
    maintype = msg.get_content_maintype()
    if maintype == "message":
        raise _Decline  # message/rfc822 and delivery-status: nested parsing rules
    if maintype == "multipart":
        _multipart(msg, text, body, end, depth)
        return msg
    payload = text[body:end]
    if in_multipart and payload.endswith(_CRLF):
        payload = payload[:-2]  # RFC 2046: the CRLF before a delimiter belongs to it
    msg.set_payload(payload)
    return msg


def _headers(msg: Message, text: str, pos: int, end: int) -> int:
    """Read the header section at text[pos:end] into `msg`; return where the body starts."""
    fields: list[list[str]] = []
    while True:
        if pos >= end:
            # No blank line before the end, or an empty part between adjacent delimiters
            # (which feedparser folds into one): the stdlib's edge cases decide.
            raise _Decline
        eol = text.find(_CRLF, pos, end)
        if eol < 0:
            raise _Decline
        nxt = eol + 2
        if eol == pos:  # the blank line
            break
        line = text[pos:nxt]
        first = line[0]
        if first == " " or first == "\t":
            if not fields:
                raise _Decline  # FirstHeaderLineIsContinuationDefect
            fields[-1].append(line)
        elif _FIELD.match(line) is None:
            # No field name (a "From " envelope line has none either: a space before any
            # colon), or body text without the blank line before it.
            raise _Decline
        else:
            fields.append([line])
        pos = nxt
    for lines in fields:
        # compat32's header_source_parse, which feedparser applies to the same lines
        name, value = lines[0].split(":", 1)
        value = value.lstrip(" \t") + "".join(lines[1:])
        msg.set_raw(name, value.rstrip("\r\n"))
    return pos + 2


def _multipart(msg: Message, text: str, body: int, end: int, depth: int) -> None:
    boundary = msg.get_boundary()
    if boundary is None:
        raise _Decline  # NoBoundaryInMultipartDefect
    if str(msg.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit",
                                                                         "binary"):
        raise _Decline  # InvalidMultipartContentTransferEncodingDefect
    child_type = "message/rfc822" if msg.get_content_type() == "multipart/digest" else (
        "text/plain")
    sep = "--" + boundary
    needle = _CRLF + sep
    # Delimiter lines in order: (line start, line end incl. CRLF, closing?)
    delimiters: list[tuple[int, int, bool]] = []
    if text.startswith(sep, body, end):
        at = body
    else:
        at = text.find(needle, body, end)
        at = at + 2 if at >= 0 else -1
    while at >= 0:
        eol = text.find(_CRLF, at, end)
        line_end = end if eol < 0 else eol
        rest = text[at + len(sep):line_end]
        closing = rest.startswith("--")
        if (rest[2:] if closing else rest).strip(" \t") == "":
            delimiters.append((at, end if eol < 0 else eol + 2, closing))
            if closing:
                break
        nxt = text.find(needle, line_end, end)
        at = nxt + 2 if nxt >= 0 else -1
    if not delimiters or delimiters[0][2] or not delimiters[-1][2] or len(delimiters) < 2:
        raise _Decline  # no first delimiter, no closing one, or no part between them
    parts: list[Message | str] = []
    for (_s, part_start, _c), (next_start, _e, _c2) in itertools.pairwise(delimiters):
        parts.append(_entity(text, part_start, next_start, True, child_type, depth + 1))
    msg.set_payload(parts)  # the list feedparser's attach() builds
