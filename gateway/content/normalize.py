"""Normalise text for matching display items: NFKC, dash/tilde folds, phones, addresses."""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "address_pattern",
    "collapse_whitespace",
    "compact",
    "kanji_to_int",
    "nfkc",
    "normalize",
    "normalize_address",
    "normalize_email",
    "normalize_phone",
    "normalize_postal_code",
    "normalize_url",
    "normalize_with_map",
    "phone_pattern",
    "split_postal_code",
    "text_pattern",
]

# NFKC leaves these alone (legal.md §4.2): fold every dash/minus to '-', every wave/tilde to '~',
# and drop invisible characters that senders use to break up words.
_FOLD = str.maketrans(
    {
        **{c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u2796"
                           "\ufe58\ufe63\uff0d"},
        **{c: "~" for c in "\u301c\u3030\u223c\u02dc\uff5e"},
        **{c: None for c in "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063"
                            "\ufeff\u00ad\u034f"},
    }
)
# The long-vowel mark is a dash only between digits: 03ー1234 but not メール.
_FOLD_MAP: dict[str, str] = {chr(k): (v or "") for k, v in _FOLD.items()}
# One regex over the text is much faster than str.translate with a dict on non-ASCII text; the
# callback only runs for the (rare) characters that actually fold.
_FOLD_RE = re.compile("[" + re.escape("".join(_FOLD_MAP)) + "]")


def _fold(text: str) -> str:
    return _FOLD_RE.sub(lambda m: _FOLD_MAP[m.group()], text) if _FOLD_RE.search(text) else text


# Patterns that begin with a lookbehind or a repeat make sre try every position in Python-slow
# steps; beginning with a literal or a class lets it skip ahead in C. Hence the lookbehinds
# written after the first character below ((?<=\dー) instead of (?<=\d)ー and so on).
_CHOON_DIGIT = re.compile(r"[\u30fc\uff70](?<=\d[\u30fc\uff70])(?=\d)")

# Legal-entity abbreviations (after NFKC ㈱ is already "(株)"): match the full form either way.
_ENTITY = (("(株)", "株式会社"), ("(有)", "有限会社"), ("(同)", "合同会社"), ("(財)", "財団法人"),
           ("(社)", "社団法人"))


# Full-width ASCII and the ideographic space: most of what NFKC changes in Japanese mail, each
# to one ASCII character (taken from unicodedata itself, so the two cannot disagree).
_WIDE = {c: unicodedata.normalize("NFKC", c) for c in ["\u3000", *map(chr, range(0xFF01, 0xFF5F))]}
_WIDE_RE = re.compile("([\u3000\uff01-\uff5e])")


def nfkc(text: str) -> str:
    """unicodedata.normalize("NFKC", text), without its slow path where it can be skipped.

    CPython's NFKC costs ~2,700 instructions per Japanese character once its quick check
    fails (~20 while it passes), and in mail text it fails on （）：… Replacing a character by
    its compatibility mapping leaves the NFKC form unchanged, so map those first; then only
    lines the quick check still rejects need the full algorithm ("\n" is a boundary NFKC
    never composes or reorders across).
    """
    if unicodedata.is_normalized("NFKC", text):
        return text
    if _WIDE_RE.search(text):
        pieces = _WIDE_RE.split(text)
        pieces[1::2] = map(_WIDE.__getitem__, pieces[1::2])
        text = "".join(pieces)
        if unicodedata.is_normalized("NFKC", text):
            return text
    return "\n".join(line if unicodedata.is_normalized("NFKC", line)
                     else unicodedata.normalize("NFKC", line) for line in text.split("\n"))


def normalize(text: str) -> str:
    """Matching copy of `text`: NFKC, folds, no zero-width chars, collapsed whitespace."""
    text = _fold(nfkc(text))
    if "\u30fc" in text:
        text = _CHOON_DIGIT.sub("-", text)
    if "(" in text:
        for short, full in _ENTITY:
            text = text.replace(short, full)
    return collapse_whitespace(text)


def collapse_whitespace(text: str) -> str:
    """Every run of whitespace (str.isspace) becomes "\n" if it holds a line feed, else " ".

    Per line, str.split() and join() do it in C: a third of the instructions of two regex
    passes over Japanese mail text (whose every line break and space starts a match attempt).
    """
    body = "\n".join([" ".join(words) for line in text.split("\n") if (words := line.split())])
    if not body:
        return ("\n" if "\n" in text else " ") if text else ""
    head = text[:len(text) - len(text.lstrip())]
    tail = text[len(text.rstrip()):]
    if head:
        body = ("\n" if "\n" in head else " ") + body
    if tail:
        body += "\n" if "\n" in tail else " "
    return body


def normalize_with_map(text: str) -> tuple[str, list[int]]:
    """Like normalize() but also return, for each output char, the index of its source char.

    Slow (a Python loop per character): only for reports, never on the hot path.
    """
    target = normalize(text)
    out: list[str] = []
    index: list[int] = []
    i = 0
    n = len(text)
    while i < n:
        j = i + 1
        # Keep combining marks (and half-width voiced marks, which NFKC composes) with their base.
        while j < n and (unicodedata.combining(text[j]) or text[j] in "\uff9e\uff9f"):
            j += 1
        piece = unicodedata.normalize("NFKC", text[i:j]).translate(_FOLD)
        out.append(piece)
        index.extend([i] * len(piece))
        i = j
    mapped = "".join(out)
    if "\u30fc" in mapped:
        mapped = _CHOON_DIGIT.sub("-", mapped)  # same length
    pairs = _collapse_with_map(mapped, index)
    if pairs is not None and pairs[0] == target:
        return pairs
    # Exotic compositions across our cluster boundaries (e.g. Hangul jamo): coarse map.
    return target, [0] * len(target)


def _collapse_with_map(text: str, index: list[int]) -> tuple[str, list[int]] | None:
    if "(" in text:
        for short, full in _ENTITY:
            while (k := text.find(short)) >= 0:
                text = text[:k] + full + text[k + len(short):]
                index = index[:k] + [index[k]] * len(full) + index[k + len(short):]
    out: list[str] = []
    idx: list[int] = []
    pos = 0
    for m in re.finditer(r"\s+", text):
        out.append(text[pos:m.start()])
        idx.extend(index[pos:m.start()])
        out.append("\n" if "\n" in m.group() else " ")
        idx.append(index[m.start()])
        pos = m.end()
    out.append(text[pos:])
    idx.extend(index[pos:])
    return "".join(out), idx


def compact(text: str) -> str:
    """normalize() and drop all whitespace: for comparing values that may wrap across lines."""
    return re.sub(r"\s+", "", normalize(text))


def normalize_phone(text: str) -> str:
    """Digits of a phone number; +81 becomes the domestic leading 0."""
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", text))
    if re.match(r"\s*\+\s*81", unicodedata.normalize("NFKC", text)) and digits.startswith("81"):
        digits = "0" + digits[2:]
    return digits


def phone_pattern(phone: str) -> str:
    """Regex (for normalised text) matching the phone number with any separators, or +81 form."""
    digits = normalize_phone(phone)
    if not digits:
        return r"(?!x)x"
    sep = r"[-\s().]{0,3}"
    body = sep.join(digits)
    if digits.startswith("0") and len(digits) > 1:
        intl = r"\+\s?81" + sep + r"(?:\(0\))?" + sep + sep.join(digits[1:])
        body = f"(?:{body}|{intl})"
    return rf"(?<![\d+]){body}(?!\d)"


def normalize_postal_code(text: str) -> str:
    """Seven digits of a Japanese postal code (〒, full-width digits and dashes dropped)."""
    return re.sub(r"\D", "", unicodedata.normalize("NFKC", text).translate(_FOLD))


_POSTAL_RE = re.compile(r"^\s*(?:〒|\u3036)?\s*(\d{3})\s*-?\s*(\d{4})\s*")


def split_postal_code(address: str) -> tuple[str | None, str]:
    """Split a leading 〒123-4567 off an address: (postal code digits or None, rest)."""
    text = normalize(address)
    m = _POSTAL_RE.match(text)
    if not m:
        return None, text.strip()
    return m.group(1) + m.group(2), text[m.end():].strip()


_KANJI_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
                 "八": 8, "九": 9}
_KANJI_UNITS = {"十": 10, "百": 100, "千": 1000}


def kanji_to_int(text: str) -> int | None:
    """Value of a kanji numeral such as 三, 十二, 二十一, 百五, 一〇五; None if not one."""
    if not text:
        return None
    if all(c in _KANJI_DIGITS for c in text):  # positional: 一〇五 = 105
        return int("".join(str(_KANJI_DIGITS[c]) for c in text))
    total = 0
    current = 0
    for c in text:
        if c in _KANJI_DIGITS:
            current = _KANJI_DIGITS[c]
        elif c in _KANJI_UNITS:
            total += (current or 1) * _KANJI_UNITS[c]
            current = 0
        else:
            return None
    return total + current


_KANJI_NUM = "〇零一二三四五六七八九十百千"
# X X* rather than X+: same matches, but sre can skip to the first X in C (see _CHOON_DIGIT).
_ADDR_KANJI = re.compile(rf"([{_KANJI_NUM}][{_KANJI_NUM}]*)(?=\s?(?:丁目|番地|番|号|の\s?\d))")
_ADDR_CHOME = re.compile(r"(\d\d*)\s?丁目\s?(?:-\s?)?(?=\d)")
_ADDR_BANCHI = re.compile(r"(\d\d*)\s?番地?\s?(?:の\s?|-\s?)?(?=\d)")
_ADDR_GO = re.compile(r"(\d\d*)\s?(?:番地|号|番)")
_ADDR_NO = re.compile(r"の(?<=\dの)(?=\d)")


def canonical_address_numbers(text: str) -> str:
    """Rewrite 1丁目2番3号 / 一丁目2番地の3 forms as 1-2-3 in already normalised text."""
    if any(c in text for c in "丁番号"):
        if _ADDR_KANJI.search(text):
            text = _ADDR_KANJI.sub(lambda m: str(kanji_to_int(m.group(1)) or m.group(1)), text)
        text = _ADDR_CHOME.sub(r"\1-", text)
        text = _ADDR_BANCHI.sub(r"\1-", text)
        text = _ADDR_GO.sub(r"\1", text)
    if "の" in text:
        text = _ADDR_NO.sub("-", text)
    return text


def normalize_address(address: str) -> str:
    """Canonical address for comparison: no 〒 code, no spaces, 丁目/番/号 and kanji as 1-2-3."""
    _code, rest = split_postal_code(address)
    return re.sub(r"\s+", "", canonical_address_numbers(rest))


def text_pattern(value: str) -> str:
    """Regex for a normalised value that tolerates one whitespace (a wrapped line) between chars."""
    chars = [c for c in normalize(value) if not c.isspace()]
    return r"\s?".join(re.escape(c) for c in chars) if chars else r"(?!x)x"


def address_pattern(address: str) -> str:
    """Regex for the street address (postal code optional) over canonical_address_numbers() text."""
    return text_pattern(normalize_address(address))


def normalize_email(address: str) -> str:
    """Lower-cased NFKC e-mail address without surrounding <> or mailto:."""
    text = normalize(address).strip().strip("<>")
    if text.lower().startswith("mailto:"):
        text = text[7:].split("?", 1)[0]
    return text.lower()


_URL_PARTS = re.compile(r"(?i)^([a-z][a-z0-9+.-]*://)([^/?#]*)(.*)$", re.DOTALL)
_ANY_WS = re.compile(r"\s+")


def normalize_url(url: str) -> str:
    """NFKC URL with whitespace removed and scheme and host lower-cased (path kept as is)."""
    if url.isascii():  # the common case: skip NFKC and the folds
        text = _ANY_WS.sub("", url) if not url.isprintable() or " " in url else url
    else:
        text = _ANY_WS.sub("", unicodedata.normalize("NFKC", url).translate(_FOLD))
    m = _URL_PARTS.match(text)
    if not m:
        return text
    return m.group(1).lower() + m.group(2).lower() + m.group(3)
