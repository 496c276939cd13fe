"""gateway.content.insert: the footer is added where items lack, and the result then passes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from gateway.content.footer import check_message
from gateway.content.insert import FooterTemplate, InsertError, insert_footer
from tests.support.footer import SPEC, TEMPLATE, WORDS

ROOT = Path(__file__).resolve().parents[3]
MAIL = ROOT / "tests" / "data" / "mail"
FIXABLE = sorted(p.name for p in MAIL.glob("*.eml")
                 if not p.name.startswith(("broken", "deeply", "missing_end", "truncated")))


@pytest.mark.parametrize("law", ["tokuden", "tokusho"])
@pytest.mark.parametrize("name", FIXABLE)
def test_insert_makes_every_corpus_mail_pass(name: str, law: Literal["tokuden", "tokusho"]) -> None:
    spec = dataclasses.replace(SPEC, law=law)
    raw = (MAIL / name).read_bytes()
    report = check_message(raw, spec, WORDS)
    new = insert_footer(raw, spec, report, TEMPLATE)
    after = check_message(new, spec, WORDS)
    assert after.missing() == [], after.to_dict()
    assert not after.malformed
    if report.ok:
        assert new == raw  # compliant mail is never re-serialised


def test_untouched_parts_and_headers_are_byte_identical() -> None:
    raw = (MAIL / "only_in_attachment.eml").read_bytes()
    new = insert_footer(raw, SPEC, check_message(raw, SPEC, WORDS), TEMPLATE)
    head, _, _ = raw.partition(b"\r\n\r\n")
    assert new.startswith(head)
    attachment = raw[raw.index(b"--mix-b0undary\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
                               b"Content-Transfer-Encoding: base64"):]
    assert new.endswith(attachment)


def test_iso2022jp_part_stays_iso2022jp_7bit() -> None:
    raw = (MAIL / "missing_contact.eml").read_bytes()
    new = insert_footer(raw, SPEC, check_message(raw, SPEC, WORDS), TEMPLATE)
    assert new.isascii()  # ISO-2022-JP 7bit text and base64 HTML: still 7-bit clean
    assert b'charset="iso-2022-jp"' in new


def test_ascii_part_switches_to_utf8_quoted_printable() -> None:
    raw = (b"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n"
           b"\r\nHello\r\n")
    new = insert_footer(raw, SPEC, check_message(raw, SPEC, WORDS), TEMPLATE)
    assert b'charset="UTF-8"' in new and b"Content-Transfer-Encoding: quoted-printable" in new
    assert check_message(new, SPEC, WORDS).ok


def test_explicit_optout_url_and_refusals() -> None:
    raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n"
    spec = dataclasses.replace(SPEC, optout=("https://gw.example.jp/u/",))
    with pytest.raises(InsertError, match="optout_url"):
        insert_footer(raw, spec, check_message(raw, spec, WORDS), TEMPLATE)
    new = insert_footer(raw, spec, check_message(raw, spec, WORDS), TEMPLATE,
                        optout_url="https://gw.example.jp/u/TOKEN")
    assert check_message(new, spec, WORDS).ok
    broken = (MAIL / "broken_boundary.eml").read_bytes()
    with pytest.raises(InsertError):
        insert_footer(broken, SPEC, check_message(broken, SPEC, WORDS), TEMPLATE)


def test_template_validation() -> None:
    with pytest.raises(ValueError, match="optout_url"):
        FooterTemplate.from_toml('[text]\ntemplate = "x"\n[html]\ntemplate = "{optout_url}"\n')
    with pytest.raises(ValueError, match="placeholder"):
        FooterTemplate.from_toml('[text]\ntemplate = "{optout_url}{bogus}"\n'
                                 '[html]\ntemplate = "{optout_url}"\n')


@pytest.mark.parametrize("raw", [b"", b"Subject: x\r\n", b"Subject: x", b"Subject: x\r\n\r\n",
                                 b"\r\nbody\r\n", b"\nbody\n"],
                         ids=["empty", "header-only", "header-no-eol", "empty-body", "no-fields",
                              "no-fields-lf"])
def test_insert_into_a_part_without_body_or_fields_keeps_the_blank_line(raw: bytes) -> None:
    # Found by the fuzzer (tests/fuzz): the new Content-Type ran into the body, or the body
    # into the header section, and the repaired message was malformed.
    new = insert_footer(raw, SPEC, check_message(raw, SPEC, WORDS), TEMPLATE,
                        optout_url="https://gw.example.jp/u/Zx81kQp2")
    after = check_message(new, SPEC, WORDS)
    assert not after.malformed, after.problems
    assert after.missing() == []


def test_a_part_rewritten_as_utf8_keeps_its_parameters_or_is_refused() -> None:
    # Found by the fuzzer: an 8-bit byte in a Content-Type parameter raised UnicodeEncodeError
    # (the gateway answered 451 for a message that can never pass); it is now an InsertError.
    # Invalid UTF-8 in the body sends the part down the re-encode path, which rebuilds the field.
    eight_bit = b'Content-Type: text/plain; charset="utf-8"; name="\xff"\r\n\r\nhello \xff\r\n'
    with pytest.raises(InsertError, match="non-ASCII parameters"):
        insert_footer(eight_bit, SPEC, check_message(eight_bit, SPEC, WORDS), TEMPLATE)
    quoted = b'Content-Type: text/plain; charset="utf-8"; name="a\\"b"\r\n\r\nhello \xff\r\n'
    new = insert_footer(quoted, SPEC, check_message(quoted, SPEC, WORDS), TEMPLATE)
    assert new.startswith(b'Content-Type: text/plain; charset="UTF-8"; name="a\\"b"\r\n')
    assert check_message(new, SPEC, WORDS).missing() == []


def test_insert_into_utf7_text_with_a_lone_surrogate() -> None:
    raw = b'Content-Type: text/plain; charset="utf-7"\r\n\r\nhello +3jg-\r\n'
    new = insert_footer(raw, SPEC, check_message(raw, SPEC, WORDS), TEMPLATE,
                        optout_url="https://gw.example.jp/u/Zx81kQp2")
    assert b'charset="UTF-8"' in new
    assert check_message(new, SPEC, WORDS).missing() == []
