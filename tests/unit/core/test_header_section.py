"""Parsing the header section alone gives the header fields the whole message gives."""

from __future__ import annotations

from email.message import Message

from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.smtp.message import _PARSER, parse_header_section

HEADER_LINES = st.sampled_from(
    ["From: 山田 <taro@example.jp>", "Subject: =?UTF-8?B?5pel5pys?=", " folded", "\tfolded",
     "To: a@example.com", "X-Empty:", "no colon here", "Bad Name: x", ":", "From: b@x.jp",
     "Content-Type: multipart/alternative; boundary=\"b\"", "MIME-Version: 1.0"]
)
BODY_LINES = st.sampled_from(
    ["", "--b", "Content-Type: text/plain", "From: body@example.jp", "本文", ".", "x" * 80]
)


def fields(message: Message) -> tuple[object, ...]:
    return (
        message.items(),
        [type(d).__name__ for d in message.defects],
        message.get_unixfrom(),
    )


@settings(max_examples=500)
@given(st.lists(HEADER_LINES, max_size=8), st.lists(BODY_LINES, max_size=8), st.booleans())
@example(["From: a@example.jp"], ["Subject: not a header"], True)
@example(["no colon here", "From: a@example.jp"], [], True)
@example([], ["From: a@example.jp"], True)
def test_same_fields_as_parsing_everything(
    headers: list[str], body: list[str], separated: bool
) -> None:
    text = "\r\n".join(headers) + ("\r\n\r\n" if separated else "\r\n") + "\r\n".join(body)
    raw = text.encode()
    whole = _PARSER.parsebytes(raw, headersonly=True)
    assert fields(parse_header_section(raw)) == fields(whole)
