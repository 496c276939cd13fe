"""gateway/auth/dkim_canon.py is dkimpy's canonicalisation and header hash with fast paths:
they must always agree."""

from __future__ import annotations

import hashlib

import dkim
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.auth.dkim_canon import hash_headers, relaxed_body, relaxed_headers, split_message

LINE = st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
ENDING = st.sampled_from([b"\r\n", b"\n", b"\r"])
HEADER = st.tuples(
    st.sampled_from([b"From", b"To", b"Subject", b"X-A"]), LINE, st.booleans(), ENDING
).map(lambda t: t[0] + b":" + t[1] + (b"\r\n\tmore" if t[2] else b"") + t[3])
BODY = st.lists(st.tuples(LINE, ENDING).map(lambda t: t[0] + t[1]), max_size=8).map(b"".join)


@given(st.lists(HEADER, min_size=1, max_size=5).map(b"".join), ENDING, BODY)
def test_agrees_with_rfc822_parse(head: bytes, blank: bytes, body: bytes) -> None:
    message = head + blank + body
    try:
        expected = dkim.rfc822_parse(message)
    except dkim.MessageFormatError:
        with pytest.raises(dkim.MessageFormatError):
            split_message(message)
        return
    assert split_message(message) == expected


def test_fast_path_on_crlf_and_fallback_on_bare_lf() -> None:
    crlf = b"From: a@example.jp\r\nSubject: x\r\n\r\nline 1\r\n.\r\nline 3\r\n"
    assert split_message(crlf) == dkim.rfc822_parse(crlf)
    assert split_message(crlf)[1] == b"line 1\r\n.\r\nline 3\r\n"
    # LF-only headers, and the first CRLF CRLF in the body: the boundary is the LF blank line
    mixed = b"From: a@example.jp\nSubject: x\n\nbody\r\n\r\nmore\n"
    assert split_message(mixed) == dkim.rfc822_parse(mixed)
    assert split_message(mixed)[0] == [[b"From", b" a@example.jp\r\n"], [b"Subject", b" x\r\n"]]


def test_refuses_what_rfc822_parse_refuses() -> None:
    bad = b"From: a@example.jp\r\nnot a header line\r\n\r\nbody\r\n"
    for parse in (split_message, dkim.rfc822_parse):
        with pytest.raises(dkim.MessageFormatError):
            parse(bad)


WSP_BODY = st.lists(
    st.sampled_from([b"a", b"\xe3\x81\x82", b" ", b"  ", b"\t", b"\r", b"\n", b"\r\n", b" \r\n"]),
    max_size=40,
).map(b"".join)
RELAXED = dkim.canonicalization.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")


@given(WSP_BODY)
def test_relaxed_body_agrees_with_dkimpy(body: bytes) -> None:
    assert relaxed_body(body) == RELAXED.canonicalize_body(body)


def test_relaxed_body_cases() -> None:
    assert relaxed_body(b"a  b\t c \t\r\nd \r\n\r\n\r\n") == b"a b c\r\nd\r\n"
    assert relaxed_body(b"") == relaxed_body(b"\r\n\r\n") == b""
    assert relaxed_body(b"no line end") == b"no line end\r\n"


FIELD_VALUE = st.lists(
    st.sampled_from([b"a", b"\xe3\x81\x82", b" ", b"  ", b"\t", b"\r\n ", b"\r\n\t", b"\n ", b";",
                     b"\x0b", b"\x0c"]),
    max_size=12,
).map(lambda parts: b"".join(parts) + b"\r\n")
FIELD_NAME = st.sampled_from([b"From", b"to", b"Subject", b"SUBJECT", b"Date ", b"X-A\t"])


@given(st.lists(st.tuples(FIELD_NAME, FIELD_VALUE), max_size=8))
def test_relaxed_headers_agree_with_dkimpy(fields: list[tuple[bytes, bytes]]) -> None:
    assert relaxed_headers(fields) == [tuple(f) for f in RELAXED.canonicalize_headers(fields)]


@given(
    st.lists(st.tuples(FIELD_NAME, FIELD_VALUE), max_size=8),
    st.lists(st.sampled_from([b"from", b"to", b"subject", b"date", b"x-a", b"cc"]), max_size=8),
    st.sampled_from([b" v=1; a=rsa-sha256; d=example.jp;\r\n b=", b" v=1; b=AbC+/=\r\n\t; s=x\r\n",
                     b" b =\r\n x; h=from:to\r\n"]),
)
def test_header_hash_agrees_with_dkimpy(
    fields: list[tuple[bytes, bytes]], include: list[bytes], signature: bytes
) -> None:
    cheaders = relaxed_headers(fields)
    ours, theirs = hashlib.sha256(), hashlib.sha256()
    hash_headers(ours, cheaders, include, signature)
    dkim.hash_headers(theirs, RELAXED, cheaders, include, (b"DKIM-Signature", signature), None)
    assert ours.hexdigest() == theirs.hexdigest()


def test_header_hash_signs_instances_from_the_bottom() -> None:
    cheaders = relaxed_headers([(b"From", b" a\r\n"), (b"To", b" b\r\n"), (b"From", b" c\r\n")])
    ours = hashlib.sha256()
    hash_headers(ours, cheaders, [b"from", b"from", b"from", b"to"], b" b=x")
    expected = b"from:c\r\nfrom:a\r\nto:b\r\ndkim-signature:b="
    assert ours.hexdigest() == hashlib.sha256(expected).hexdigest()
