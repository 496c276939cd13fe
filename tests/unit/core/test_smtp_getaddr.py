"""GatewaySMTP._getaddr's fast path answers exactly as aiosmtpd's own parser."""

from __future__ import annotations

from types import SimpleNamespace

from aiosmtpd.smtp import SMTP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.smtp.server import GatewaySMTP

PIECES = st.sampled_from(
    ["<", ">", "@", ".", " ", "\t", "a", "Z", "0", "-", "_", "+", '"', "(", ")", "[", "]",
     ":", ",", "\\", "é", "SIZE=10", "example.jp", "taro", "BODY=8BITMIME"]
)


@settings(max_examples=2000)
@given(st.lists(PIECES, max_size=14).map("".join), st.sampled_from([0, 5, 64]))
@example("<taro@example.jp> SIZE=10 BODY=8BITMIME", 64)
@example("<a..b@example.jp>", 64)
@example("<.a@example.jp>", 64)
@example("<a@example.jp.>", 64)
@example("<a@[192.0.2.1]>", 64)
@example("<>", 64)
@example("<abcdef@example.jp>", 5)
def test_same_answer_as_aiosmtpd(arg: str, limit: int) -> None:
    server = SimpleNamespace(local_part_limit=limit)
    try:
        expected = SMTP._getaddr(server, arg)  # type: ignore[arg-type]
    except Exception as exc:  # aiosmtpd's own crash, if any, must not be hidden
        expected = ("raised", type(exc).__name__)  # type: ignore[assignment]
    try:
        got = GatewaySMTP._getaddr(server, arg)  # type: ignore[arg-type]
    except Exception as exc:
        got = ("raised", type(exc).__name__)  # type: ignore[assignment]
    assert got == expected
