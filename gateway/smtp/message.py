"""Parsing the DATA payload once, and the well-formedness facts the rules read."""

from __future__ import annotations

import email.policy
import email.utils
import re
from email.message import Message
from email.parser import BytesParser

from gateway.engine.context import Facts

# compat32 parses ~7x faster than policy.default (0.16 ms vs 1.1 ms for 6 KB here) and
# keeps header values as the raw strings we need; nothing is re-serialised from it.
_PARSER = BytesParser(policy=email.policy.compat32)
_ADDR_SPEC = re.compile(r"^[^\s@<>()\[\],;:\\\"]+@[^\s@<>()\[\],;:\\\"]+$")
_HEADER_END = re.compile(rb"\r\n\r\n")
MAX_HEADER_BYTES = 256 * 1024
MAX_HEADER_LINE = 998  # RFC 5322 §2.1.1
MAX_HEADER_FIELDS = 1000


def wire_problems(raw: bytes) -> list[str]:
    """Problems visible in the raw bytes, found before parsing (cheap, and smuggling-relevant)."""
    problems: list[str] = []
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        # A bare LF or CR is where SMTP smuggling hides (\n.\n ends DATA on some MTAs)
        problems.append("bare CR or LF line ending (lines must end with CRLF)")
    if b"\0" in raw:
        problems.append("NUL byte in message")
    end = _HEADER_END.search(raw)
    header = raw[: end.start()] if end else raw
    if len(header) > MAX_HEADER_BYTES:
        problems.append(f"header section larger than {MAX_HEADER_BYTES} bytes")
    if header.count(b"\r\n") > MAX_HEADER_FIELDS * 4:
        problems.append("too many header lines")
    if any(len(line) > MAX_HEADER_LINE for line in header.split(b"\r\n")):
        problems.append(f"header line longer than {MAX_HEADER_LINE} characters")
    if end is None and header.strip():
        problems.append("no blank line between header and body")
    return problems


def parse_header_section(raw: bytes) -> Message:
    """The header fields of `raw`, parsed from the header section alone."""
    end = _HEADER_END.search(raw)
    return _PARSER.parsebytes(raw[: end.end()] if end else raw, headersonly=True)


def gather_message_facts(facts: Facts, raw: bytes) -> None:
    """Fill the DATA-phase facts about structure and the author address."""
    problems = wire_problems(raw)
    facts.raw = raw
    if problems:
        facts.extra["malformed"] = problems
        return
    try:
        # The header section alone: the body is decoded where it is needed (the footer
        # report, cached per campaign body). Handing the parser the whole message, even
        # headersonly, splits and copies every body line: 184 µs against 52 µs here.
        message = parse_header_section(raw)
    except Exception as exc:  # the stdlib parser is lenient; anything left is malformed
        facts.extra["malformed"] = [f"unparseable message: {type(exc).__name__}"]
        return
    facts.message = message
    facts.extra["malformed"] = []
    froms = message.get_all("From") or []
    if not froms:
        facts.errors["header_from"] = "no From header"
        return
    if len(froms) > 1:
        facts.errors["header_from"] = f"{len(froms)} From headers (exactly one is allowed)"
        return
    value = str(froms[0])
    addresses = [a for _, a in email.utils.getaddresses([value]) if a]
    if len(addresses) != 1:
        facts.errors["header_from"] = (
            f"From holds {len(addresses)} addresses (exactly one is allowed)"
        )
        return
    address = addresses[0]
    if not _ADDR_SPEC.match(address) or address.startswith("@") or address.endswith("@"):
        facts.errors["header_from"] = f"From address {value.strip()!r} is malformed"
        return
    local, _, domain = address.rpartition("@")
    facts.extra["header_from"] = f"{local}@{domain.lower()}"
    facts.extra["message_id"] = str(message.get("Message-ID", "") or "").strip()
