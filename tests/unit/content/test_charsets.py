"""gateway.content.charsets: labels map like a mail client's, bad bytes never raise."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.content.charsets import codec_for_label, decode_text, jis_to_sjis


def test_shift_jis_labels_decode_cp932_extensions() -> None:
    data = "①㈱髙".encode("cp932")
    for label in ("shift_jis", "Shift_JIS", "x-sjis", "windows-31j", "sjis"):
        res = decode_text(data, label)
        assert res.text == "①㈱髙" and not res.replaced


def test_iso2022jp_nec_row13_falls_back_to_cp50220() -> None:
    res = decode_text(b"\x1b$B-!-j\x1b(B OK", "iso-2022-jp")  # ① ㈱ in NEC row 13
    assert res.text == "①㈱ OK"
    assert res.codec == "cp50220" and not res.replaced


def test_iso2022jp_halfwidth_kana_escape() -> None:
    assert decode_text(b"\x1b(I1\x1b(B", "iso-2022-jp").text == "ｱ"


def test_iso2022jp_label_with_utf8_body() -> None:
    res = decode_text("配信停止".encode(), "ISO-2022-JP")
    assert res.text == "配信停止" and res.codec == "utf-8" and res.reason


def test_eucjp_row13_fallback() -> None:
    res = decode_text(b"\xad\xa1\xa4\xa2", "euc-jp")
    assert res.text == "①あ" and not res.replaced


def test_unknown_label_tries_utf8_and_reports() -> None:
    res = decode_text("テスト".encode(), "x-foo")
    assert res.text == "テスト" and "x-foo" in (res.reason or "")


def test_bytes_codecs_are_not_text_labels() -> None:
    assert codec_for_label("base64") is None
    assert codec_for_label("iso-8859-1") == "iso8859-1"


def test_invalid_bytes_are_flagged_not_raised() -> None:
    res = decode_text(b"\xff\xfe\xfd abc", "utf-8")
    assert res.replaced and "\ufffd" in res.text


def test_jis_to_sjis_matches_codec() -> None:
    assert jis_to_sjis(0x30, 0x21) == "亜".encode("cp932")
    assert jis_to_sjis(0x2D, 0x21) == "①".encode("cp932")


@given(st.binary(max_size=300),
       st.sampled_from([None, "", "utf-8", "us-ascii", "iso-2022-jp", "shift_jis", "euc-jp",
                        "iso-8859-1", "x-unknown", "base64", "utf-16"]))
def test_never_raises(data: bytes, label: str | None) -> None:
    res = decode_text(data, label)
    assert isinstance(res.text, str)
    if "\ufffd" in res.text and "\ufffd".encode() not in data:
        assert res.replaced or res.reason


def test_utf7_lone_surrogates_become_replacement_characters() -> None:
    # Found by the fuzzer (tests/fuzz, target insert): UTF-7 decodes "+3jg-" to a lone
    # surrogate, and insert mode's UTF-8 re-encoding of the part raised on it.
    for data in (b"a +3jg- b", b"a +3jg- \xff b"):
        decoded = decode_text(data, "utf-7")
        assert "\ude38" not in decoded.text and "\ufffd" in decoded.text
        assert decoded.replaced and decoded.codec == "utf-7"
        decoded.text.encode("utf-8")  # every encoder takes it now
    assert decode_text(b"a +MEIwRA- b", "utf-7").text == "a あい b"  # real UTF-7 untouched
