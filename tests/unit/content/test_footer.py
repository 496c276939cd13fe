"""gateway.content.footer: per-part rules, distances, tokusho window, reasons, JSON output."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.content import footer
from gateway.content.footer import (
    FooterSpec,
    FooterWords,
    Reason,
    check_message,
    load_footer_words,
)

ROOT = Path(__file__).resolve().parents[3]
WORDS = load_footer_words(ROOT / "rules" / "footer_words.toml")
SPEC = FooterSpec(
    name="株式会社サンプル",
    postal_address="〒100-0005 東京都千代田区丸の内1-1-1",
    contacts=("03-1234-5678", "info@example.jp"),
    optout=("https://example.jp/unsubscribe", "https://gw.example.jp/u/"),
    info_urls=("https://example.jp/company",),
)
GOOD = ("株式会社サンプル\n東京都千代田区丸の内1-1-1\nTEL 03-1234-5678\n"
        "配信停止をご希望の方は https://example.jp/unsubscribe から。\n")


def _text(body: str, charset: str = "utf-8") -> bytes:
    return (f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 8bit"
            "\r\n\r\n").encode() + body.encode("utf-8")


def _alt(plain: str, html: str) -> bytes:
    return ('Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + plain +
            "\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html +
            "\r\n--b--\r\n").encode()


def test_good_text_passes() -> None:
    report = check_message(_text(GOOD), SPEC, WORDS)
    assert report.ok and report.missing() == []


def test_each_part_must_comply_on_its_own() -> None:
    report = check_message(_alt(GOOD, "<p>株式会社サンプル</p>"), SPEC, WORDS)
    assert report.parts[0].missing() == []
    assert set(report.parts[1].missing()) == {
        "footer.optout_address", "footer.optout_notice", "footer.postal_address",
        "footer.contact"}
    assert report.missing() == ["footer.optout_address", "footer.optout_notice",
                                "footer.postal_address", "footer.contact"]


def test_gateway_prefix_matches_links_but_not_bare_prefix() -> None:
    html = ('<p>株式会社サンプル 東京都千代田区丸の内1-1-1 03-1234-5678</p>'
            '<p>配信停止は<a href="https://gw.example.jp/u/TOKEN1">こちら</a></p>')
    assert check_message(_alt(GOOD, html), SPEC, WORDS).ok
    bare = html.replace("/u/TOKEN1", "/u/")
    report = check_message(_alt(GOOD, bare), SPEC, WORDS)
    assert report.parts[1].item("footer.optout_address").reason is Reason.WRONG_VALUE


def test_notice_distance_is_configurable() -> None:
    body = GOOD.replace("配信停止をご希望の方は ", "配信停止をご希望の方は" + "。" * 30)
    assert check_message(_text(body), SPEC, WORDS).ok
    tight = dataclasses.replace(WORDS, max_distance=10)
    res = check_message(_text(body), SPEC, tight).parts[0].item("footer.optout_notice")
    assert res.reason is Reason.TOO_FAR and " 37 characters" in res.detail  # 7 + 30


def test_url_containing_unsubscribe_is_not_the_notice() -> None:
    body = GOOD.replace("配信停止をご希望の方は ", "こちら: ")
    res = check_message(_text(body), SPEC, WORDS).parts[0].item("footer.optout_notice")
    assert res.reason is Reason.ABSENT


def test_info_url_link_satisfies_address_and_contact_only() -> None:
    html = ('<p>株式会社サンプル（<a href="https://example.jp/company">会社情報</a>）</p>'
            '<p>配信停止は<a href="https://example.jp/unsubscribe">こちら</a></p>')
    part = check_message(_alt(GOOD, html), SPEC, WORDS).parts[1]
    assert part.item("footer.postal_address").reason is Reason.LINKED_PAGE
    assert part.item("footer.contact").reason is Reason.LINKED_PAGE
    assert part.missing() == []


def test_wrong_phone_does_not_count() -> None:
    body = GOOD.replace("03-1234-5678", "03-1234-5679")
    res = check_message(_text(body), SPEC, WORDS).parts[0].item("footer.contact")
    assert res.reason is Reason.WRONG_VALUE and res.matched == "03-1234-5679"


def test_tokusho_requires_top_or_end() -> None:
    filler = "本文です。" * 200
    body = filler + "\n" + GOOD + filler
    spec = dataclasses.replace(SPEC, law="tokusho")
    assert check_message(_text(body), SPEC, WORDS).ok
    res = check_message(_text(body), spec, WORDS).parts[0].item("footer.optout_address")
    assert res.reason is Reason.NOT_AT_EDGE
    assert check_message(_text(filler + "\n" + GOOD), spec, WORDS).ok


def test_value_wrapped_across_lines() -> None:
    body = GOOD.replace("千代田区丸の内", "千代田区\n  丸の内").replace("株式会社サンプル", "株式会社\nサンプル")
    assert check_message(_text(body), SPEC, WORDS).ok


def test_no_readable_part_misses_everything() -> None:
    raw = b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBO\r\n"
    report = check_message(raw, SPEC, WORDS)
    assert len(report.missing()) == 5 and report.problems


def test_a_configured_seller_name_is_a_display_item_of_its_own() -> None:
    seller = dataclasses.replace(SPEC, seller_name="株式会社販売元")
    assert check_message(_text(GOOD), SPEC, WORDS).parts[0].items[1].item != "footer.seller_name"
    report = check_message(_text(GOOD), seller, WORDS)
    assert report.missing() == ["footer.seller_name"]
    res = report.parts[0].item("footer.seller_name")
    assert res.reason is Reason.ABSENT and "特定商取引法" in res.detail
    assert report.to_dict()["required"][:2] == ["footer.sender_name", "footer.seller_name"]
    shown = check_message(_text("販売元: 株式会社 販売元\n" + GOOD), seller, WORDS)
    assert shown.ok and shown.parts[0].item("footer.seller_name").matched == "株式会社 販売元"
    hidden = _alt(GOOD, '<p style="display:none">株式会社販売元</p><p>' + GOOD + "</p>")
    assert check_message(hidden, seller, WORDS).parts[1].item(
        "footer.seller_name").reason is Reason.HIDDEN_ONLY
    empty = b"Content-Type: image/png\r\n\r\niVBO\r\n"
    assert "footer.seller_name" in check_message(empty, seller, WORDS).missing()
    assert "footer.seller_name" not in check_message(empty, SPEC, WORDS).missing()


def test_to_dict_is_json() -> None:
    data = check_message(_text(GOOD), SPEC, WORDS).to_dict()
    again = json.loads(json.dumps(data, ensure_ascii=False))
    assert again["ok"] is True
    assert again["parts"][0]["items"]["footer.contact"]["matched"] == "03-1234-5678"


def test_footer_words_validation() -> None:
    with pytest.raises(ValueError, match="words"):
        FooterWords.from_toml("[optout_notice]\nwords = []\n")
    with pytest.raises(ValueError, match="max_distance"):
        FooterWords.from_toml('[optout_notice]\nwords = ["x"]\nmax_distance = -1\n')
    assert "unsubscribe" in WORDS.notice_words
    for table, said in (("min_font_px = -1", "visibility.min_font_px must be a number"),
                        ("min_contrast = 0.5", "visibility.min_contrast must be a number"),
                        ('min_contrast = "high"', "visibility.min_contrast must be a number"),
                        ("min_size = 8", "visibility.min_size: unknown key")):
        with pytest.raises(ValueError, match=said):
            FooterWords.from_toml(f'[optout_notice]\nwords = ["x"]\n[visibility]\n{table}\n')
    assert (WORDS.visibility.min_font_px, WORDS.visibility.min_contrast) == (8.0, 1.5)


@pytest.mark.parametrize(("style", "shown"), [
    ("font-size:12px;color:#666666", True),
    ("font-size:8px", False),  # legal.md §4.2: flag <= ~8px
    ("font-size:6pt", False),
    ("color:#eeeeee", False),  # near the white background
    ("color:#ffffff;background:#333333", True),  # light on dark is read
    ("position:absolute;left:-9999px", False),
])
def test_a_display_item_nobody_can_read_is_missing(style: str, shown: bool) -> None:
    html = (f'<p>株式会社サンプル</p><p>配信停止は <a href="https://example.jp/unsubscribe">こちら</a>'
            f'</p><p>TEL 03-1234-5678</p><p style="{style}">〒100-0005 東京都千代田区丸の内1-1-1</p>')
    report = check_message(_alt(GOOD, html), SPEC, WORDS)
    assert report.parts[1].missing() == ([] if shown else ["footer.postal_address"])
    lenient = dataclasses.replace(WORDS, visibility=footer.Visibility(min_font_px=4, min_contrast=1))
    if "font-size" in style or "#eee" in style:
        assert check_message(_alt(GOOD, html), SPEC, lenient).parts[1].missing() == []


def test_spec_rejects_unknown_law() -> None:
    with pytest.raises(ValueError):
        FooterSpec("a", "b", law="other")  # type: ignore[arg-type]


def test_case_classes_are_exactly_what_ignorecase_matches() -> None:
    # footer.py compiles without re.IGNORECASE (so sre can skip ahead in C) and spells out the
    # folded characters instead; they must be exactly the ones IGNORECASE accepts.
    import re
    import string

    from gateway.content.footer import _lit, _variants

    everything = "".join(chr(i) for i in range(0x110000) if not 0xD800 <= i < 0xE000)
    for c in string.ascii_letters:
        assert sorted(set(re.findall(re.escape(c), everything, re.IGNORECASE))) == sorted(
            _variants(c)), c
    sample = [*string.printable, "株", "ー", "ｶ", "İ", "ı", "ſ", "K", "Σ", "ς", "ß", "Ω", "я", "①"]
    for c in sample:
        want = set(re.findall(re.escape(c), everything, re.IGNORECASE))
        assert set(re.findall(_lit(c), everything)) == want, c


_NOTICE_TEXT = st.lists(st.sampled_from(
    ["unsubscribe", "配信停止", " ", "\n", "https://", "x.jp/", "@", "a", "mailto:", "opt-out",
     ".", "-", "http:/", "user", "example.jp"]), max_size=14).map("".join)


@settings(max_examples=300, deadline=None)
@given(_NOTICE_TEXT)
def test_notice_words_inside_addresses_are_dropped_as_by_a_whole_text_scan(text: str) -> None:
    # The reference: every URL and e-mail address match of the whole text, then drop the
    # notice words that start inside one (what _notices did before it scanned runs only).
    pattern = footer._matchers(SPEC, WORDS).notice
    spans = [(u.start(), u.end()) for u in footer._ADDRESS_LIKE.finditer(text)]
    expected = [(x.start(), x.end()) for x in pattern.finditer(text)
                if not any(s <= x.start() < e for s, e in spans)]
    assert [(n.start, n.end) for n in footer._notices(pattern, text)] == expected
