"""The fast paths send exactly what aiosmtplib's own regex passes would."""

from __future__ import annotations

from aiosmtplib import protocol
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.delivery import fastdata

PIECES = st.sampled_from([b"\r\n", b"\n", b"\r", b".", b"..", b"a", b"\xe3\x81\x82", b" ", b"\r\n."])


@settings(max_examples=3000)
@given(st.lists(PIECES, max_size=20).map(b"".join))
@example(b"")
@example(b".leading dot\r\nline\r\n")
@example(b"line\r\n.\r\nmore")
@example(b"no final newline")
@example(b"bare\nlf\rcr\r\n")
def test_same_bytes_as_aiosmtplib(message: bytes) -> None:
    expected = fastdata._period.sub(b"..", fastdata._normalize(message))
    got = fastdata.PeriodStuffer().sub(b"..", fastdata.normalize_message_line_endings(message))
    assert got == expected


def test_installed_into_aiosmtplib() -> None:
    import gateway.delivery.upstream  # noqa: F401  (installs on import)

    assert protocol.normalize_message_line_endings is fastdata.normalize_message_line_endings
    assert isinstance(protocol.PERIOD_REGEX, fastdata.PeriodStuffer)
