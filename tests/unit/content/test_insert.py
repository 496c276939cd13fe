"""gateway.content.insert: the footer is added where items lack, and the result then passes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from gateway.content.footer import FooterSpec, check_message, load_footer_words
from gateway.content.insert import (
    FooterTemplate,
    InsertError,
    insert_footer,
    load_footer_template,
)

ROOT = Path(__file__).resolve().parents[3]
MAIL = ROOT / "tests" / "data" / "mail"
WORDS = load_footer_words(ROOT / "rules" / "footer_words.toml")
TEMPLATE = load_footer_template(ROOT / "rules" / "footer_template.toml")
SPEC = FooterSpec(
    name="株式会社サンプル",
    postal_address="〒100-0005 東京都千代田区丸の内1-1-1",
    contacts=("03-1234-5678", "info@example.jp"),
    optout=("https://example.jp/unsubscribe", "https://gw.example.jp/u/", "unsubscribe@example.jp"),
    info_urls=("https://example.jp/company",),
)
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
