"""gateway.content.parts: readable leaves, attachments, transfer decoding, malformed MIME."""

from __future__ import annotations

import email
import email.policy
from email.message import Message

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.content.footer import FooterSpec, FooterWords, check_message
from gateway.content.parts import decode_transfer, header_params, readable_parts


def _parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.default)


MIXED = (
    b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
    b'--m\r\nContent-Type: multipart/alternative; boundary="a"\r\n\r\n'
    b"--a\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n\r\n\x1b$B$3$s\x1b(B\r\n"
    b'--a\r\nContent-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    b"PHA+44GT44KTPC9wPg==\r\n--a--\r\n"
    b'--m\r\nContent-Type: text/plain; name="a.txt"\r\nContent-Disposition: attachment\r\n\r\n'
    b"attached\r\n"
    b"--m\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n"
    b"--m--\r\n"
)


def test_alternatives_are_separate_and_attachments_excluded() -> None:
    res = readable_parts(_parse(MIXED))
    assert [(p.path, p.content_type, p.text) for p in res.readable] == [
        ("1.1", "text/plain", "こん"), ("1.2", "text/html", "こん")]
    assert [(a.path, a.content_type) for a in res.attachments] == [
        ("2", "text/plain"), ("3", "application/pdf")]
    assert not res.malformed


def test_header_params() -> None:
    assert header_params('Text/Plain; Charset="ISO-2022-JP"; format=flowed') == (
        "text/plain", {"charset": "ISO-2022-JP", "format": "flowed"})
    assert header_params("text/plain; charset*=utf-8''shift_jis")[1]["charset"] == "shift_jis"


def test_decode_transfer_flags_bad_base64() -> None:
    data, problem = decode_transfer(b"44GT44K", "base64")
    assert data.startswith("こ".encode()) and problem
    assert decode_transfer(b"=E3=81=93", "quoted-printable") == ("こ".encode(), None)
    assert decode_transfer(b"x", "x-weird")[1]


def test_missing_close_boundary_is_malformed() -> None:
    res = readable_parts(_parse(MIXED.replace(b"--m--\r\n", b"")))
    assert res.malformed
    assert any("CloseBoundaryNotFound" in p for p in res.problems)


def test_caps_on_depth_and_count() -> None:
    raw = b"Content-Type: text/plain\r\n\r\nx\r\n"
    for i in range(30):
        raw = (f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
               + raw + f"\r\n--b{i}--\r\n".encode())
    res = readable_parts(_parse(raw), max_depth=5)
    assert res.malformed and not res.readable
    many = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + (
        b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 50) + b"--b--\r\n"
    res = readable_parts(_parse(many), max_parts=10)
    assert res.malformed and len(res.readable) < 10


WORDS = FooterWords(("配信停止",))
SPEC = FooterSpec("株式会社サンプル", "東京都千代田区丸の内1-1-1", ("03-1234-5678",),
                  ("https://example.jp/u/",))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_check_message_never_raises_on_random_bytes(raw: bytes) -> None:
    report = check_message(raw, SPEC, WORDS)
    assert isinstance(report.missing(), list)


_leaf = st.builds(
    lambda ct, cs, cte, body: (f"Content-Type: {ct}; charset={cs}\r\n"
                               f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode() + body,
    st.sampled_from(["text/plain", "text/html", "image/png", "text/calendar", "bogus"]),
    st.sampled_from(["utf-8", "iso-2022-jp", "shift_jis", "x-none", '"', ""]),
    st.sampled_from(["7bit", "base64", "quoted-printable", "8bit", "x-uue"]),
    st.binary(max_size=80),
)


def _multipart(children: list[bytes], boundary: str, close: bool) -> bytes:
    out = f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
    for c in children:
        out += f"--{boundary}\r\n".encode() + c + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


_mime = st.recursive(
    _leaf,
    lambda kids: st.builds(_multipart, st.lists(kids, max_size=4),
                           st.sampled_from(["b1", "b2", "x"]), st.booleans()),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_mime)
def test_check_message_never_raises_on_random_mime(raw: bytes) -> None:
    report = check_message(raw, SPEC, WORDS)
    report.to_dict()
