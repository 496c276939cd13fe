"""gateway.content.insert: the footer is added where items lack, and the result then passes."""

from __future__ import annotations

import dataclasses
import email
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


@pytest.mark.parametrize("seller", ["", "株式会社販売元＆Co."], ids=["no-seller", "seller"])
@pytest.mark.parametrize("law", ["tokuden", "tokusho"])
@pytest.mark.parametrize("name", FIXABLE)
def test_insert_makes_every_corpus_mail_pass(name: str, law: Literal["tokuden", "tokusho"],
                                             seller: str) -> None:
    spec = dataclasses.replace(SPEC, law=law, seller_name=seller)
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


def test_the_seller_line_appears_only_for_a_sender_with_a_seller() -> None:
    raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n"
    plain = insert_footer(raw, SPEC, check_message(raw, SPEC, WORDS), TEMPLATE)
    assert "販売業者".encode() not in plain
    seller = dataclasses.replace(SPEC, seller_name="株式会社<販売元>")
    html = b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Hello</p>\r\n"
    new = insert_footer(html, seller, check_message(html, seller, WORDS), TEMPLATE)
    body = email.message_from_bytes(new).get_payload(decode=True)
    assert "販売業者: 株式会社&lt;販売元&gt;<br>".encode() in body  # escaped in HTML
    assert check_message(new, seller, WORDS).ok


def test_seller_line_validation() -> None:
    base = '[text]\ntemplate = "{optout_url}{seller_line}"\n[html]\ntemplate = "{optout_url}"\n'
    assert FooterTemplate.from_toml(base).text_seller == "販売業者: {seller_name}\n"
    assert not FooterTemplate.from_toml(base).shows_seller  # the HTML block lacks it
    with pytest.raises(ValueError, match=r"text\.seller_line must .* \{seller_name\}"):
        FooterTemplate.from_toml(base.replace("\n[html]", '\nseller_line = "x"\n[html]'))
    with pytest.raises(ValueError, match=r"html\.seller_line has an unknown placeholder"):
        FooterTemplate.from_toml(base + 'seller_line = "{seller_name}{name}"\n')


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
