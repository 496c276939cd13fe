"""Skip aiosmtplib's two whole-message regex passes when a message does not need them.

Before DATA, aiosmtplib rewrites every message with LINE_ENDINGS_REGEX (lone CR or LF
to CRLF) and PERIOD_REGEX (dot-stuffing). For the CRLF-only messages the gateway relays,
with no line starting with a dot, both passes rebuild the same bytes: 4 % of the
gateway's CPU per message under load. These replacements answer in one or three C-speed
scans and hand anything else to aiosmtplib's own code, so the bytes on the wire are the
same for any input (tests/unit/core/test_fastdata.py checks that against the originals).
"""

from __future__ import annotations

from aiosmtplib import protocol as _protocol

_normalize = _protocol.normalize_message_line_endings
_period = _protocol.PERIOD_REGEX


def normalize_message_line_endings(message: bytes) -> bytes:
    crlf = message.count(b"\r\n")
    if message.count(b"\n") == crlf and message.count(b"\r") == crlf:
        return message if message.endswith(b"\r\n") else message + b"\r\n"
    return _normalize(message)


class PeriodStuffer:
    """PERIOD_REGEX for the one call aiosmtplib makes: `.sub(b"..", message)`."""

    def sub(self, repl: bytes, message: bytes) -> bytes:
        if not message.startswith(b".") and b"\n." not in message:
            return message  # no line starts with a dot: nothing to stuff
        stuffed: bytes = _period.sub(repl, message)
        return stuffed


def install() -> None:
    """Replace the two module globals execute_data_command looks up at call time."""
    if not hasattr(_protocol, "normalize_message_line_endings") or not hasattr(
        _protocol, "PERIOD_REGEX"
    ):  # pragma: no cover - an aiosmtplib that changed; keep its own code
        return
    _protocol.normalize_message_line_endings = normalize_message_line_endings
    _protocol.PERIOD_REGEX = PeriodStuffer()  # type: ignore[assignment]
