"""gateway.content.normalize: folds, phones, postal codes and 丁目番号 addresses."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.content.normalize import (
    collapse_whitespace,
    kanji_to_int,
    nfkc,
    normalize,
    normalize_address,
    normalize_phone,
    normalize_postal_code,
    normalize_url,
    normalize_with_map,
    phone_pattern,
    split_postal_code,
)


def test_dash_and_tilde_variants_fold() -> None:
    for dash in "-‐‑‒–—―−－":
        assert normalize(f"03{dash}1234") == "03-1234"
    assert normalize("10時〜18時") == normalize("10時～18時") == "10時~18時"


def test_long_vowel_only_between_digits() -> None:
    assert normalize("03ー1234") == "03-1234"
    assert normalize("メール") == "メール"


def test_zero_width_and_whitespace() -> None:
    assert normalize("配\u200b信\ufeff停止") == "配信停止"
    assert normalize("a \u3000 b\n\n  c\t d") == "a b\nc d"


def test_entity_abbreviation() -> None:
    assert normalize("㈱サンプル") == "株式会社サンプル"


def test_phone_and_postal() -> None:
    assert normalize_phone("ＴＥＬ：０３－１２３４－５６７８") == "0312345678"
    assert normalize_phone("+81 3-1234-5678") == "0312345678"
    assert normalize_postal_code("〒１００－０００５") == "1000005"
    pat = re.compile(phone_pattern("03-1234-5678"))
    assert pat.search("電話 03 (1234) 5678 まで")
    assert pat.search("+81-3-1234-5678")
    assert not pat.search("03-1234-56789")


def test_address_forms_match_both_ways() -> None:
    base = normalize_address("東京都千代田区丸の内1-1-1")
    assert normalize_address("東京都千代田区丸の内1丁目1番1号") == base
    assert normalize_address("〒100-0005 東京都千代田区丸の内一丁目１番地１") == base
    assert normalize_address("東京都千代田区丸の内1丁目1-1") == base
    assert normalize_address("東京都千代田区丸の内1-1-2") != base
    assert split_postal_code("〒100-0005 東京都") == ("1000005", "東京都")


def test_kanji_numerals() -> None:
    assert kanji_to_int("三") == 3
    assert kanji_to_int("二十一") == 21
    assert kanji_to_int("一〇五") == 105
    assert kanji_to_int("丸") is None


def test_url_host_case_only() -> None:
    assert normalize_url("HTTPS://Example.JP/Path?X=1") == "https://example.jp/Path?X=1"


def test_index_map_points_at_source() -> None:
    src = "住所：東京都 ①丁目"
    out, idx = normalize_with_map(src)
    assert out == normalize(src)
    k = out.index("東京都")
    assert src[idx[k]] == "東"


@given(st.text(max_size=200))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(st.text(max_size=200))
def test_normalize_removes_variants(text: str) -> None:
    out = normalize(text)
    assert not re.search("[\u2010-\u2015\u2212\uff0d\u301c\uff5e\u200b\ufeff]", out)
    assert "  " not in out


@given(st.text(max_size=120))
def test_map_is_consistent(text: str) -> None:
    out, idx = normalize_with_map(text)
    assert out == normalize(text)
    assert len(idx) == len(out)
    assert idx == sorted(idx)
    assert all(0 <= i < max(1, len(text)) for i in idx)


@given(st.text(alphabet="0123456789０１２３４５６７８９-－ー ", max_size=30))
def test_phone_digits_only(text: str) -> None:
    assert normalize_phone(text).isdigit() or normalize_phone(text) == ""


# Characters NFKC changes, composes or reorders, mixed with what Japanese mail holds.
_NFKC_ALPHABET = st.sampled_from(
    ["あ", "か", "\u3099", "\u309a", "ｶ", "ﾞ", "ﾟ", "（", "）", "：", "Ａ", "１", "\u3000", "①", "㈱",
     "e", "\u0301", "\u0323", "\u1100", "\u1161", "\u11a8", "\n", " ", "a", "ﬁ", "Ω", "\u212b",
     "〜", "－", "\uff5e", "\ufe63", "\U0001d400"]
)


@settings(max_examples=500)
@given(st.lists(_NFKC_ALPHABET | st.characters(), max_size=40).map("".join))
def test_nfkc_is_unicodedatas(text: str) -> None:
    assert nfkc(text) == unicodedata.normalize("NFKC", text)


# The two regex passes collapse_whitespace() replaced: the reference it must agree with.
_NL_RUN = re.compile(r"\s(?:(?<=\n)\s+|(?<!\n)[^\S\n]*\n\s*)")
_SP_RUN = re.compile(r"[^\S\n](?:[^\S\n]+|(?<=[^\S \n]))")
_SPACES = st.sampled_from([" ", "\n", "\t", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u2028",
                           "\u3000", "a", "あ", "-", "\n\n", " \n "])


@settings(max_examples=500)
@given(st.lists(_SPACES | st.characters(), max_size=30).map("".join))
def test_collapse_whitespace_is_the_two_regex_passes(text: str) -> None:
    assert collapse_whitespace(text) == _SP_RUN.sub(" ", _NL_RUN.sub("\n", text))
