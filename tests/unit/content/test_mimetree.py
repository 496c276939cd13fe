"""gateway.content.mimetree: the fast tree equals email's compat32 tree, or it declines."""

from __future__ import annotations

import email
import email.policy
import itertools
from email.message import Message
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.content.mimetree import parse_message, parse_well_formed, plain_header_section
from gateway.content.parts import readable_parts
from tests.support.footer import tree_shape

TESTS = Path(__file__).resolve().parents[2]


def _stdlib(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _assert_same_or_declined(raw: bytes) -> bool:
    fast = parse_well_formed(raw)
    if fast is None:
        return False
    slow = _stdlib(raw)
    assert tree_shape(fast) == tree_shape(slow)
    assert readable_parts(fast) == readable_parts(slow)
    return True


# -- generated messages -------------------------------------------------------------------------

_BCHARS = "abcXYZ019'()+_,-./:=? "
_WORDS = ["配信停止", "株式会社サンプル", "hello", "--", "-- x", "a: b", "From me", " ", "\t",
          "=E3=81=82", "PGh0bWw+", "<p>こんにちは</p>", "Content-Type: text/html", "ü"]
_BODY_LINE = st.lists(st.sampled_from(_WORDS), max_size=4).map("".join).filter(
    lambda line: not line.startswith("--"))
_LEAF_TYPES = ["text/plain; charset=utf-8", "text/html; charset=\"utf-8\"", "text/plain",
               "application/pdf; name=\"a.pdf\"", "TEXT/HTML", "image/png", None]
_HEADER_VALUE = st.sampled_from(["x", "  spaced ", "=?UTF-8?B?5pil?=", "日本語", "a;b=c", ""])


@st.composite
def _headers(draw: st.DrawFn, content_type: str | None) -> list[str]:
    lines = []
    fields: list[str | None] = [content_type]
    fields += [f"X-Extra-{i}" for i in range(draw(st.integers(0, 2)))]
    if draw(st.booleans()):
        fields.append("Content-Transfer-Encoding")
    for name in draw(st.permutations(fields)):
        if name is None:
            continue
        if name.startswith(("text/", "TEXT/", "image/", "application/", "multipart/")):
            lines.append(f"Content-Type: {name}")
        elif name == "Content-Transfer-Encoding":
            multi = bool(content_type and content_type.startswith("multipart/"))
            cte = ["7bit", "8bit"] if multi else ["7bit", "base64", "quoted-printable"]
            lines.append(f"{name}: {draw(st.sampled_from(cte))}")
        else:
            lines.append(f"{name}:{draw(_HEADER_VALUE)}")
            for _ in range(draw(st.integers(0, 2))):  # folded continuation lines
                lines.append(draw(st.sampled_from([" more", "\tand more", " "])))
    return lines


_leaf = st.builds(lambda h, b: ("leaf", h, b), st.sampled_from(_LEAF_TYPES),
                  st.lists(_BODY_LINE, max_size=5))


def _multipart(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.builds(lambda sub, b, kids, pre, epi, ws: ("multi", sub, b, kids, pre, epi, ws),
                     st.sampled_from(["mixed", "alternative", "related"]),
                     st.text(_BCHARS, min_size=1, max_size=12).map(str.strip).filter(bool),
                     st.lists(children, min_size=1, max_size=3),
                     st.lists(_BODY_LINE, max_size=2), st.lists(_BODY_LINE, max_size=2),
                     st.sampled_from(["", " ", "\t ", "  "]))


_tree = st.recursive(_leaf, _multipart, max_leaves=8)


@st.composite
def _message_lines(draw: st.DrawFn) -> list[str]:
    counter = itertools.count()

    def render(node: Any) -> list[str]:
        if node[0] == "leaf":
            return [*draw(_headers(node[1])), "", *node[2]]
        _kind, sub, bnd, kids, pre, epi, ws = node
        # A unique digit at the end: no boundary is another's delimiter line plus "--" or blanks.
        boundary = f"{bnd}{next(counter)}"
        param = f'"{boundary}"' if draw(st.booleans()) or not boundary.isalnum() else boundary
        lines = [*draw(_headers(f"multipart/{sub}; boundary={param}")), "", *pre]
        for kid in kids:
            lines += [f"--{boundary}{ws}", *render(kid)]
        return [*lines, f"--{boundary}--{ws}", *epi]

    return ["Subject: =?UTF-8?B?5pil?=", *render(draw(_tree))]


def _join(lines: list[str], final_crlf: bool) -> bytes:
    return ("\r\n".join(lines) + ("\r\n" if final_crlf else "")).encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(_message_lines(), st.booleans())
def test_well_formed_messages_are_built_fast_and_alike(lines: list[str], final_crlf: bool) -> None:
    # (a header section that the end of the data cuts short is left to the stdlib)
    raw = _join(lines, final_crlf or lines[-1] == "")
    assert _assert_same_or_declined(raw), "a well-formed message was handed to the stdlib"


_NASTY = ["", " folded", "no colon here", ":empty name", "From someone", "From x: y", "--",
          "-- ",
          "Content-Type: multipart/mixed", "Content-Type: message/rfc822", "x--", "\u3042"]


@settings(max_examples=500, deadline=None)
@given(_message_lines(), st.booleans(), st.data())
def test_damaged_messages_are_built_alike_or_declined(lines: list[str], final_crlf: bool,
                                                      data: st.DataObject) -> None:
    lines = list(lines)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(lines)))
        op = data.draw(st.sampled_from(["drop", "repeat", "insert", "boundary", "bare-lf"]))
        if op == "drop" and at < len(lines):
            del lines[at]
        elif op == "repeat" and at < len(lines):
            lines.insert(at, lines[at])
        elif op == "insert":
            lines.insert(at, data.draw(st.sampled_from(_NASTY)))
        elif op == "boundary":  # a copy of some delimiter line, maybe not quite, anywhere
            delimiters = [line for line in lines if line.startswith("--")]
            if delimiters:
                tail = data.draw(st.sampled_from(["", "-", "x", "---", " --", "--x", "\t"]))
                lines.insert(at, data.draw(st.sampled_from(delimiters)) + tail)
        elif op == "bare-lf" and at < len(lines):
            lines[at] += "\n"
    _assert_same_or_declined(_join(lines, final_crlf))


# -- real messages ------------------------------------------------------------------------------

def test_fixture_messages_are_built_alike() -> None:
    built = 0
    files = sorted(TESTS.rglob("*.eml"))
    assert files
    for path in files:
        built += _assert_same_or_declined(path.read_bytes())
    assert built >= len(files) // 2


def test_malformed_structure_goes_to_the_stdlib_and_keeps_its_defects() -> None:
    cases = {
        "no closing delimiter": b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nx\r\n',
        "no first delimiter": b'Content-Type: multipart/mixed; boundary="b"\r\n\r\nx\r\n--b--\r\n',
        "no boundary": b"Content-Type: multipart/mixed\r\n\r\nx\r\n",
        "header without colon": b"Subject: a\r\nnot a header\r\n\r\nbody\r\n",
        "bare LF": b"Subject: a\n\nbody\n",
        "message/rfc822": b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n",
    }
    for what, raw in cases.items():
        assert parse_well_formed(raw) is None, what
        assert tree_shape(parse_message(raw)) == tree_shape(_stdlib(raw)), what


def test_the_crlf_before_a_delimiter_belongs_to_it() -> None:
    raw = (b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
           b"--b\r\nContent-Type: text/plain\r\n\r\nline one\r\n\r\n--b  \r\n"
           b"Content-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\nepilogue")
    msg = parse_well_formed(raw)
    assert msg is not None
    assert [p.get_payload() for p in msg.get_payload()] == ["line one\r\n", "<p>x</p>"]


# -- plain_header_section: when a body-keyed cache may answer for the header section ----------

_HEADER_LINES = ["Subject: x", "From: a <a@example.jp>", " folded", "\tfolded", "no colon",
                 ":empty name", "From someone", "X-8bit: \xff", "Bad Name: v", "", "a:b"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_HEADER_LINES), min_size=1, max_size=6),
       st.sampled_from(["\r\n", "\n", "\r"]))
def test_a_plain_header_section_parses_without_defects_of_its_own(
    lines: list[str], eol: str
) -> None:
    head = eol.join(lines).encode("latin-1")
    if "" in lines or not plain_header_section(head):
        return
    msg = _stdlib(head + b"\r\n\r\nbody\r\n")
    assert msg.defects == [], (head, msg.defects)
    assert msg.get_payload() == "body\r\n"  # the body starts after the first blank line


def test_header_sections_with_defects_are_not_plain() -> None:
    for head in (b" folded\r\nSubject: x", b"Subject: x\r\nbody text", b"Subject: x\nbody",
                 b"From someone\r\nSubject: x", b""):
        assert not plain_header_section(head), head
    assert plain_header_section(b"Subject: x\r\n folded\r\nX-8bit: \xff")
