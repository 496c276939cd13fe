"""Find the 特定電子メール法 Art. 4 display items in every readable part of a message."""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

from gateway.content.html import DEFAULT_VISIBILITY, Link, Visibility
from gateway.content.mimetree import parse_message
from gateway.content.normalize import (
    canonical_address_numbers,
    normalize,
    normalize_address,
    normalize_email,
    normalize_phone,
    normalize_url,
)
from gateway.content.parts import MessageParts, ReadablePart, attachment_text, readable_parts

__all__ = [
    "ITEM_IDS",
    "FooterReport",
    "FooterSpec",
    "FooterWords",
    "ItemId",
    "ItemResult",
    "PartReport",
    "Reason",
    "check_message",
    "check_parts",
    "load_footer_words",
]

ItemId = Literal[
    "footer.sender_name",
    "footer.seller_name",
    "footer.optout_address",
    "footer.optout_notice",
    "footer.postal_address",
    "footer.contact",
]
ITEM_IDS: tuple[ItemId, ...] = (
    "footer.sender_name",
    "footer.seller_name",
    "footer.optout_address",
    "footer.optout_notice",
    "footer.postal_address",
    "footer.contact",
)
# The seller's name (特定商取引法 第11条) is an item only where one is configured.
_ALWAYS: tuple[ItemId, ...] = tuple(i for i in ITEM_IDS if i != "footer.seller_name")


@dataclass(frozen=True, slots=True)
class FooterSpec:
    """The configured display values of one sender identity (see contract.md [[senders]])."""

    name: str
    postal_address: str
    contacts: tuple[str, ...] = ()
    optout: tuple[str, ...] = ()
    info_urls: tuple[str, ...] = ()
    law: Literal["tokuden", "tokusho"] = "tokuden"
    seller_name: str = ""  # the 特商法 seller, where it is not the sender itself

    def __post_init__(self) -> None:
        if self.law not in ("tokuden", "tokusho"):
            raise ValueError(f"law must be 'tokuden' or 'tokusho', not {self.law!r}")

    @property
    def required(self) -> tuple[ItemId, ...]:
        """The display items every readable part must show for this sender."""
        return ITEM_IDS if self.seller_name.strip() else _ALWAYS


@dataclass(frozen=True, slots=True)
class FooterWords:
    """Word lists and distances for the footer checks, loaded from rules/footer_words.toml."""

    notice_words: tuple[str, ...]
    max_distance: int = 80
    edge_window: int = 400
    visibility: Visibility = DEFAULT_VISIBILITY  # when HTML text counts as not displayed

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FooterWords:
        """Build from the parsed TOML document; raises ValueError naming the bad key."""
        notice = data.get("optout_notice", {})
        tokusho = data.get("tokusho", {})
        words = notice.get("words")
        if not isinstance(words, list) or not words or not all(
            isinstance(w, str) and w.strip() for w in words
        ):
            raise ValueError("optout_notice.words must be a non-empty list of strings")
        max_distance = notice.get("max_distance", 80)
        edge_window = tokusho.get("edge_window", 400)
        for key, val in (("optout_notice.max_distance", max_distance),
                         ("tokusho.edge_window", edge_window)):
            if not isinstance(val, int) or isinstance(val, bool) or val < 0:
                raise ValueError(f"{key} must be a non-negative integer")
        return cls(tuple(words), max_distance, edge_window,
                   _visibility(data.get("visibility", {})))

    @classmethod
    def from_toml(cls, text: str) -> FooterWords:
        """Parse the TOML text of a footer_words file."""
        return cls.from_mapping(tomllib.loads(text))


def _visibility(table: Mapping[str, Any]) -> Visibility:
    limits = {  # key: (lowest allowed, highest allowed)
        "min_font_px": (0.0, 100.0), "min_contrast": (1.0, 21.0), "min_offset_px": (1.0, 1e6),
    }
    values: dict[str, float] = {}
    for key, val in table.items():
        if key not in limits:
            raise ValueError(f"visibility.{key}: unknown key (known: {', '.join(limits)})")
        low, high = limits[key]
        if not isinstance(val, int | float) or isinstance(val, bool) or not low <= val <= high:
            raise ValueError(f"visibility.{key} must be a number from {low:g} to {high:g}")
        values[key] = float(val)
    return Visibility(**values)


def load_footer_words(path: str | Path) -> FooterWords:
    """Load rules/footer_words.toml (the only function here that touches the file system)."""
    return FooterWords.from_toml(Path(path).read_text(encoding="utf-8"))


class Reason(StrEnum):
    """Why an item counts as present or not in one part."""

    FOUND = "found"
    LINKED_PAGE = "linked_page"  # address/contact via a link to a configured info page
    ABSENT = "absent"
    HIDDEN_ONLY = "hidden_only"  # only in HTML hidden by CSS
    ATTACHMENT_ONLY = "attachment_only"  # not in this part, but in an attachment
    WRONG_VALUE = "wrong_value"  # something like it is there, with a different value
    TOO_FAR = "too_far"  # notice present but not next to the opt-out address
    NOT_AT_EDGE = "not_at_top_or_end"  # tokusho: opt-out address buried mid-text


_PRESENT = frozenset({Reason.FOUND, Reason.LINKED_PAGE})


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One display item in one part. Offsets index the part's normalised matching text."""

    item: ItemId
    reason: Reason
    matched: str | None = None
    offset: int | None = None
    detail: str = ""

    @property
    def present(self) -> bool:
        return self.reason in _PRESENT

    def to_dict(self) -> dict[str, Any]:
        return {"present": self.present, "reason": self.reason.value, "matched": self.matched,
                "offset": self.offset, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class PartReport:
    """The display items found (or not) in one readable part."""

    path: str
    content_type: str
    charset: str | None
    items: tuple[ItemResult, ...]
    problems: tuple[str, ...] = ()

    def item(self, item: ItemId) -> ItemResult:
        for res in self.items:
            if res.item == item:
                return res
        raise KeyError(item)

    def missing(self) -> list[ItemId]:
        return [r.item for r in self.items if not r.present]


@dataclass(frozen=True, slots=True)
class FooterReport:
    """Per-part display-item results for one message, plus message-level problems."""

    parts: tuple[PartReport, ...]
    problems: tuple[str, ...] = ()
    malformed: bool = False
    law: str = "tokuden"
    required: tuple[ItemId, ...] = _ALWAYS

    @property
    def ok(self) -> bool:
        """True when every readable part has every item (structure problems are separate)."""
        return not self.missing()

    def missing(self) -> list[ItemId]:
        """Item ids missing in at least one readable part (all of them if there is no part)."""
        if not self.parts:
            return list(self.required)
        bad = {i for p in self.parts for i in p.missing()}
        return [i for i in self.required if i in bad]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with stable keys (used by `check FILE.eml --json`)."""
        return {
            "ok": self.ok,
            "law": self.law,
            "required": list(self.required),
            "missing": self.missing(),
            "malformed": self.malformed,
            "problems": list(self.problems),
            "parts": [
                {
                    "path": p.path,
                    "content_type": p.content_type,
                    "charset": p.charset,
                    "problems": list(p.problems),
                    "items": {r.item: r.to_dict() for r in p.items},
                }
                for p in self.parts
            ],
        }


# ---------------------------------------------------------------------------------------------
# Compiled matchers, built once per (spec, words) pair.

# Matching is case-insensitive, but patterns are compiled without re.IGNORECASE: sre cannot
# skip ahead to a cased first character under IGNORECASE and tries every position in slow
# steps instead (5-10x slower on a 2,000-character part). _lit() spells out exactly the
# characters re.IGNORECASE would accept, so the matches are the same.
_FLAGS = 0
# Under re.IGNORECASE an ASCII letter also matches these (checked in test_footer.py).
_EXTRA_FOLDS = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}
_URL_TAIL = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%\u0130\u0131\u212a\u017f]*"


def _variants(c: str) -> str:
    """The characters re.IGNORECASE matches for ASCII letter `c`."""
    low = c.lower()
    return low + low.upper() + _EXTRA_FOLDS.get(low, "")


def _lit(c: str) -> str:
    """Regex for one character as re.IGNORECASE would match it, without the flag."""
    if c.isascii():
        return f"[{_variants(c)}]" if c.isalpha() else re.escape(c)
    if c.lower() != c or c.upper() != c:
        return f"(?i:{re.escape(c)})"  # rare (Greek, Cyrillic …): let sre fold it
    return re.escape(c)


def _text_regex(value: str) -> str:
    """normalize.text_pattern(value) for use without re.IGNORECASE."""
    chars = [c for c in normalize(value) if not c.isspace()]
    return r"\s?".join(_lit(c) for c in chars) if chars else r"(?!x)x"


def _phone_regex(phone: str) -> str:
    """normalize.phone_pattern(phone) with its lookbehind after the first character."""
    digits = normalize_phone(phone)
    if not digits:
        return r"(?!x)x"
    sep = r"[-\s().]{0,3}"
    first = re.escape(digits[0])
    body = first + rf"(?<![\d+]{first})" + "".join(sep + re.escape(d) for d in digits[1:])
    if digits.startswith("0") and len(digits) > 1:
        intl = r"\+(?<![\d+]\+)\s?81" + sep + r"(?:\(0\))?" + sep + sep.join(digits[1:])
        body = f"(?:{body}|{intl})"
    return rf"{body}(?!\d)"


_PREFECTURES = (
    "北海道|青森県|岩手県|宮城県|秋田県|山形県|福島県|茨城県|栃木県|群馬県|埼玉県|千葉県|東京都|"
    "神奈川県|新潟県|富山県|石川県|福井県|山梨県|長野県|岐阜県|静岡県|愛知県|三重県|滋賀県|京都府|"
    "大阪府|兵庫県|奈良県|和歌山県|鳥取県|島根県|岡山県|広島県|山口県|徳島県|香川県|愛媛県|高知県|"
    "福岡県|佐賀県|長崎県|熊本県|大分県|宮崎県|鹿児島県|沖縄県"
)
_WRONG_ADDRESS = re.compile(rf"(?:{_PREFECTURES})\S{{2,40}}\d")
# (?<![\d+])(?:0…|0120…)(?!\d), with the common "0" first so sre can skip to it.
_WRONG_PHONE = re.compile(r"0(?<![\d+]0)(?:\d{1,4}[-\s()]{1,2}\d{1,4}[-\s()]{1,2}\d{3,4}|"
                          r"120[-\s]?\d{2,3}[-\s]?\d{3})(?!\d)")
_ENTITY_WORDS = ("株式会社", "有限会社", "合同会社", "合資会社", "一般社団法人", "一般財団法人")
_WRONG_NAME = re.compile(r"(?:株式会社|有限会社|合同会社|合資会社|一般社団法人|一般財団法人)"
                         r"[^\s、。,.:()]{1,20}|[^\s、。,.:()]{1,20}(?:株式会社|有限会社|合同会社)")
# ASCII only (text is NFKC already): \w would also match kanji and make the scan quadratic.
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_MARK = "\ue000"  # private-use: survives NFKC, marks link boundaries through normalisation


@dataclass(frozen=True, slots=True)
class _Target:
    """An opt-out, contact or info address: how to recognise it in text and in an href."""

    kind: Literal["url", "email", "phone", "text"]
    value: str  # normalised
    prefix: bool
    text_re: re.Pattern[str]

    def matches_href(self, href: str, url: str) -> bool:
        """Does a link to `href` (`url` is its normalize_url()) point at this target?"""
        if self.kind == "email":
            return href[:7].lower() == "mailto:" and normalize_email(href) == self.value
        if self.kind != "url":
            return self.kind == "phone" and href[:4].lower() == "tel:" and bool(
                self.text_re.search(normalize(href[4:])))
        if self.prefix:
            return url.startswith(self.value) and len(url) > len(self.value)
        if url == self.value or url.rstrip("/") == self.value.rstrip("/"):
            return True
        # A per-recipient query or fragment on the configured URL is still that URL.
        return url.startswith(self.value) and url[len(self.value)] in "?#&"


def _target(value: str) -> _Target:
    raw = value.strip()
    low = raw.lower()
    if re.match(r"(?i)^[a-z][a-z0-9+.-]*://", raw):
        url = normalize_url(raw)
        prefix = url.endswith("/") and url.count("/") > 3
        body = "".join(_lit(c) for c in url)
        pat = rf"{body}{_URL_TAIL}" if prefix else rf"{body}(?:[?#&]{_URL_TAIL})?(?![\w/])"
        return _Target("url", url, prefix, re.compile(pat, _FLAGS))
    if "@" in raw and " " not in raw:
        addr = normalize_email(raw)
        if not addr:
            return _Target("email", addr, False, re.compile(r"(?!x)x"))
        # (?<![\w.+-])address…, with the lookbehind after the first character.
        first = _lit(addr[0])
        rest = "".join(_lit(c) for c in addr[1:])
        pat = rf"{first}(?<![\w.+-]{first}){rest}(?![\w-]|\.\w)"
        return _Target("email", addr, False, re.compile(pat, _FLAGS))
    if low.startswith("tel:") or re.fullmatch(r"[\d\s()+\-‐－―ー０-９]+", raw):
        return _Target("phone", raw, False, re.compile(_phone_regex(raw.removeprefix("tel:"))))
    return _Target("text", raw, False, re.compile(_text_regex(canonical(raw)), _FLAGS))


def canonical(text: str) -> str:
    """The matching copy used on both sides: normalise() then 丁目/番/号 → 1-2-3."""
    return canonical_address_numbers(normalize(text))


@dataclass(frozen=True, slots=True)
class _Matchers:
    name: re.Pattern[str]
    seller: re.Pattern[str] | None
    address: re.Pattern[str]
    contacts: _TargetSet
    optout: _TargetSet
    info: _TargetSet
    notice: re.Pattern[str]
    max_distance: int
    edge_window: int
    tokusho: bool


def _notice_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    alts = []
    for w in sorted({canonical(w).strip() for w in words if w.strip()}, key=len, reverse=True):
        # "opt out" / "opt-out" / "optout" and words wrapped across a line all count.
        chars = [c for c in w if not c.isspace() and c != "-"]
        if not chars:
            alts.append("")
            continue
        rest = "".join(r"[\s-]?" + _lit(c) for c in chars[1:])
        # One alternative per spelling of an ASCII first letter keeps every alternative
        # starting with a literal, so sre scans for the set of first characters in C.
        firsts = _variants(chars[0]) if chars[0].isascii() and chars[0].isalpha() else ""
        if firsts:
            alts.extend(re.escape(v) + rest for v in firsts)
        else:
            alts.append(_lit(chars[0]) + rest)
    return re.compile("|".join(alts) if alts else r"(?!x)x", _FLAGS)


_last_matchers: tuple[FooterSpec, FooterWords, _Matchers] | None = None


def _matchers(spec: FooterSpec, words: FooterWords) -> _Matchers:
    # Hashing a FooterSpec/FooterWords (every word) costs more than an identity check, and a
    # gateway process mostly sees the same sender identity again: remember the last pair.
    global _last_matchers
    last = _last_matchers
    if last is not None and last[0] is spec and last[1] is words:
        return last[2]
    m = _build_matchers(spec, words)
    _last_matchers = (spec, words, m)
    return m


@lru_cache(maxsize=256)
def _build_matchers(spec: FooterSpec, words: FooterWords) -> _Matchers:
    return _Matchers(
        name=re.compile(_text_regex(canonical(spec.name)), _FLAGS),
        seller=(re.compile(_text_regex(canonical(spec.seller_name)), _FLAGS)
                if spec.seller_name.strip() else None),
        address=re.compile(_text_regex(normalize_address(spec.postal_address)), _FLAGS),
        contacts=_TargetSet.of(tuple(_target(c) for c in spec.contacts if c.strip())),
        optout=_TargetSet.of(tuple(_target(o) for o in spec.optout if o.strip())),
        info=_TargetSet.of(tuple(_target(u) for u in spec.info_urls if u.strip())),
        notice=_notice_pattern(words.notice_words),
        max_distance=words.max_distance,
        edge_window=words.edge_window,
        tokusho=spec.law == "tokusho",
    )


# ---------------------------------------------------------------------------------------------
# Per-part matching text.


class _Span(NamedTuple):
    # A NamedTuple, not a frozen dataclass: built per link and per match, and a frozen
    # dataclass's __init__ (object.__setattr__ per field) is several times slower.
    start: int
    end: int
    text: str
    href: str | None = None


@dataclass(slots=True)
class _Prepared:
    """A part's (or attachment's) canonical matching text with link spans mapped into it."""

    text: str
    links: list[tuple[Link, _Span]] = field(default_factory=list)
    # normalize_url(href) per link, computed only for links a URL target may match.
    urls: list[str | None] = field(default_factory=list)

    def url(self, i: int) -> str:
        url = self.urls[i]
        if url is None:
            url = self.urls[i] = normalize_url(self.links[i][0].href)
        return url


def _prepare(text: str, links: tuple[Link, ...] = ()) -> _Prepared:
    if not links:
        return _Prepared(canonical(text).strip())
    # Mark every link boundary with a private-use character, normalise, then read the markers'
    # new positions: no per-character offset map needed on the hot path.
    bounds = sorted({b for lk in links for b in (lk.start, lk.end)})
    pieces: list[str] = []
    prev = 0
    for b in bounds:
        pieces.append(text[prev:b])
        pieces.append(_MARK)
        prev = b
    pieces.append(text[prev:])
    # The k-th marker's position in the unmarked text is the length of what precedes it:
    # split + accumulate do that in C. (A marker character already in the text shifts the
    # mapping exactly as a scan for markers would.)
    chunks = canonical("".join(pieces)).split(_MARK)
    norm = "".join(chunks)
    where = dict(zip(bounds, itertools.accumulate(map(len, chunks[:-1])), strict=False))
    spans = []
    for lk in links:
        s = where.get(lk.start, 0)
        e = where.get(lk.end, s)
        spans.append((lk, _Span(s, e, norm[s:e], lk.href)))
    return _Prepared(norm, spans, [None] * len(spans))


def _search(pattern: re.Pattern[str], text: str) -> _Span | None:
    m = pattern.search(text)
    return _Span(m.start(), m.end(), m.group()) if m else None


@dataclass(frozen=True, slots=True)
class _TargetSet:
    """Targets plus a cheap test that rules out most hrefs before normalize_url() runs."""

    targets: tuple[_Target, ...]
    url_prefixes: tuple[str, ...]  # lower-cased, "/"-stripped values of the URL targets
    mailto: bool
    tel: bool

    @classmethod
    def of(cls, targets: tuple[_Target, ...]) -> _TargetSet:
        return cls(targets, tuple(t.value.rstrip("/").lower() for t in targets if t.kind == "url"),
                   any(t.kind == "email" for t in targets),
                   any(t.kind == "phone" for t in targets))

    def __bool__(self) -> bool:
        return bool(self.targets)

    def may_match(self, href: str) -> bool:
        """False only if no target's matches_href() can be true for `href`."""
        scheme = href[:7].lower()
        if (self.mailto and scheme == "mailto:") or (self.tel and scheme[:4] == "tel:"):
            return True
        if not self.url_prefixes:
            return False
        # Every URL match starts with the value minus trailing "/"; for a plain ASCII href
        # normalize_url() only lower-cases scheme and host, so compare lower-cased.
        if href.isascii() and href.isprintable() and " " not in href:
            return href.lower().startswith(self.url_prefixes)
        return True


def _target_spans(targets: _TargetSet, prep: _Prepared) -> list[_Span]:
    spans: list[_Span] = []
    for i, (lk, span) in enumerate(prep.links):
        if targets.may_match(lk.href) and any(
                t.matches_href(lk.href, prep.url(i)) for t in targets.targets):
            spans.append(span)
    for t in targets.targets:
        for m in t.text_re.finditer(prep.text):
            spans.append(_Span(m.start(), m.end(), m.group()))
    return spans


def _snippet(text: str, start: int, end: int, pad: int = 20) -> str:
    return text[max(0, start - pad):end + pad].replace("\n", " ")


class _Context:
    """Lazily prepared hidden and attachment texts shared by the items of one message."""

    def __init__(self, parts: MessageParts, visibility: Visibility) -> None:
        self._parts = parts
        self._visibility = visibility
        self._attachments: list[tuple[str, _Prepared]] | None = None

    def attachments(self) -> list[tuple[str, _Prepared]]:
        if self._attachments is None:
            self._attachments = []
            for att in self._parts.attachments:
                text = attachment_text(att, self._visibility)
                if text:
                    self._attachments.append((att.path, _prepare(text)))
        return self._attachments


def _elsewhere(item: ItemId, find: Any, part: ReadablePart, ctx: _Context,
               hidden: _Prepared | None) -> ItemResult | None:
    """Report "only in hidden HTML" or "only in an attachment" when that is the case."""
    if hidden is not None and hidden.text:
        span = find(hidden)
        if span is not None:
            return ItemResult(item, Reason.HIDDEN_ONLY, span.text, None,
                              "found only in HTML hidden from the reader")
    for path, prep in ctx.attachments():
        span = find(prep)
        if span is not None:
            return ItemResult(item, Reason.ATTACHMENT_ONLY, span.text, None,
                              f"found only in attachment part {path}")
    return None


def _check_part(part: ReadablePart, m: _Matchers, ctx: _Context) -> PartReport:
    prep = _prepare(part.text, tuple(lk for lk in part.links if not lk.hidden))
    hidden_links = tuple(
        Link(lk.href, lk.text, lk.start, lk.end, True) for lk in part.links if lk.hidden
    )
    hidden = _prepare(part.hidden_text, hidden_links) if part.hidden_text or hidden_links else None
    text = prep.text
    results: list[ItemResult] = []

    def miss(item: ItemId, find: Any, wrong: re.Pattern[str] | None, what: str) -> ItemResult:
        other = _elsewhere(item, find, part, ctx, hidden)
        if other is not None:
            return other
        if wrong is not None and (wrong is not _WRONG_NAME
                                  or any(word in text for word in _ENTITY_WORDS)):
            # (_WRONG_NAME's second branch starts with a repeat, so sre tries it at every
            # position; both branches need one of the entity words, which `in` finds in C.)
            w = wrong.search(text)
            if w is not None:
                return ItemResult(item, Reason.WRONG_VALUE, w.group(), w.start(),
                                  f"{what} differs from the configured value")
        detail = f"no {what}" + (" (part could not be fully decoded)" if part.undecodable else "")
        return ItemResult(item, Reason.ABSENT, None, None, detail)

    # 1. sender name: must be in the mail itself.
    span = _search(m.name, text)
    if span:
        results.append(ItemResult("footer.sender_name", Reason.FOUND, span.text, span.start))
    else:
        results.append(miss("footer.sender_name", lambda p: _search(m.name, p.text),
                            _WRONG_NAME, "sender name"))
    if m.seller is not None:
        seller = m.seller
        span = _search(seller, text)
        if span:
            results.append(ItemResult("footer.seller_name", Reason.FOUND, span.text, span.start))
        else:
            # No WRONG_VALUE guess: the sender's own company name would look like one.
            results.append(miss("footer.seller_name", lambda p: _search(seller, p.text), None,
                                "seller name (特定商取引法 第11条)"))

    # 2. opt-out address: a link href or a visible URL / e-mail address.
    optouts = _target_spans(m.optout, prep)
    notices = _notices(m.notice, text)
    if optouts and m.tokusho:
        edge = [s for s in optouts
                if s.start <= m.edge_window or s.end >= len(text) - m.edge_window]
        if edge:
            s = edge[0]
            results.append(ItemResult("footer.optout_address", Reason.FOUND, s.text, s.start))
        else:
            s = optouts[0]
            results.append(ItemResult(
                "footer.optout_address", Reason.NOT_AT_EDGE, s.text, s.start,
                f"特定商取引法: the opt-out address must be within {m.edge_window} characters of "
                "the top or the end of the part"))
    elif optouts:
        s = optouts[0]
        results.append(ItemResult("footer.optout_address", Reason.FOUND, s.href or s.text,
                                  s.start))
    else:
        def find_optout(p: _Prepared) -> _Span | None:
            found = _target_spans(m.optout, p)
            return found[0] if found else None

        res = miss("footer.optout_address", find_optout, None, "opt-out address")
        if res.reason == Reason.ABSENT:
            wrong = _wrong_optout(prep, notices, m.max_distance)
            if wrong is not None:
                res = ItemResult("footer.optout_address", Reason.WRONG_VALUE, wrong.text,
                                 wrong.start, "the opt-out link or address next to the notice "
                                 "is not one of the configured opt-out addresses")
        results.append(res)

    # 3. the refusal notice, next to the opt-out address.
    results.append(_notice_result(optouts, notices, m, text, ctx, part, hidden))

    # 4./5. postal address and contact: in the part, or via a link to a configured info page.
    info = _target_spans(m.info, prep) if m.info else []
    span = _search(m.address, text)
    if span:
        results.append(ItemResult("footer.postal_address", Reason.FOUND, span.text, span.start))
    elif info:
        results.append(ItemResult("footer.postal_address", Reason.LINKED_PAGE,
                                  info[0].href or info[0].text, info[0].start,
                                  "shown on a linked information page"))
    else:
        results.append(miss("footer.postal_address", lambda p: _search(m.address, p.text),
                            _WRONG_ADDRESS, "postal address"))
    contacts = _target_spans(m.contacts, prep)
    if contacts:
        s = min(contacts, key=lambda c: c.start)
        results.append(ItemResult("footer.contact", Reason.FOUND, s.href or s.text, s.start))
    elif info:
        results.append(ItemResult("footer.contact", Reason.LINKED_PAGE,
                                  info[0].href or info[0].text, info[0].start,
                                  "shown on a linked information page"))
    else:
        def find_contact(p: _Prepared) -> _Span | None:
            found = _target_spans(m.contacts, p)
            return found[0] if found else None

        results.append(miss("footer.contact", find_contact, _WRONG_PHONE, "contact"))
    return PartReport(part.path, part.content_type, part.charset, tuple(results), part.problems)


_ADDRESS_LIKE = re.compile(r"[a-z][a-z0-9+.-]*://\S+|" + _EMAIL_RE.pattern, re.IGNORECASE)


def _address_run(text: str, pos: int) -> tuple[int, int] | None:
    """The run of non-whitespace around `pos` if a URL or e-mail match could lie in it.

    A match of _ADDRESS_LIKE holds no whitespace, so it lies within one such run (matching
    text has only " " and "\n" as whitespace: normalize() collapsed the rest), and a run
    without "://" or "@" holds none. Scanning the whole part with _ADDRESS_LIKE is slow (it
    starts with a repeat): scan only the runs of notice words, which finds the same matches.
    """
    start = max(text.rfind(" ", 0, pos), text.rfind("\n", 0, pos)) + 1
    ends = [e for e in (text.find(" ", pos), text.find("\n", pos)) if e >= 0]
    end = min(ends) if ends else len(text)
    run = text[start:end]
    return (start, end) if "://" in run or "@" in run else None


def _notices(pattern: re.Pattern[str], text: str) -> list[_Span]:
    """Notice words outside URLs and e-mail addresses (".../unsubscribe" is not a statement)."""
    found = []
    for x in pattern.finditer(text):
        pos = x.start()
        run = _address_run(text, pos)
        if run is not None and any(u.start() <= pos < u.end()
                                   for u in _ADDRESS_LIKE.finditer(text, *run)):
            continue
        found.append(_Span(pos, x.end(), x.group()))
    return found


def _distance(a: _Span, b: _Span) -> int:
    if a.end <= b.start:
        return b.start - a.end
    if b.end <= a.start:
        return a.start - b.end
    return 0  # overlapping: e.g. the anchor text 「配信停止はこちら」 is itself the notice


def _notice_result(optouts: list[_Span], notices: list[_Span], m: _Matchers, text: str,
                   ctx: _Context, part: ReadablePart, hidden: _Prepared | None) -> ItemResult:
    item: ItemId = "footer.optout_notice"
    if notices and optouts:
        d, n = min(((_distance(n, o), n) for n in notices for o in optouts),
                   key=lambda x: x[0])
        if d <= m.max_distance:
            return ItemResult(item, Reason.FOUND, n.text, n.start,
                              f"{d} characters from the opt-out address")
        return ItemResult(item, Reason.TOO_FAR, n.text, n.start,
                          f"the nearest notice is {d} characters from the opt-out address "
                          f"(at most {m.max_distance} allowed)")
    if notices:
        # Without an opt-out address the distance cannot be measured; the address is the fault.
        n = notices[0]
        return ItemResult(item, Reason.FOUND, n.text, n.start,
                          "no opt-out address in this part to measure the distance to")
    def find_notice(p: _Prepared) -> _Span | None:
        found = _notices(m.notice, p.text)
        return found[0] if found else None

    other = _elsewhere(item, find_notice, part, ctx, hidden)
    if other is not None:
        return other
    return ItemResult(item, Reason.ABSENT, None, None, "no statement that the recipient may "
                      "refuse further mail (配信停止/受信拒否 …)")


_URL_OR_EMAIL = re.compile(r"https?://\S+|" + _EMAIL_RE.pattern)
_WRONG_OPTOUT_GAP = 40  # "配信停止はこちら: URL" – the address right after (or around) the words


def _wrong_optout(prep: _Prepared, notices: list[_Span], max_distance: int) -> _Span | None:
    """A link, URL or e-mail address right after a notice word that is not a configured target."""
    if not notices:
        return None
    gap = min(_WRONG_OPTOUT_GAP, max_distance)
    candidates = [s for _lk, s in prep.links]
    candidates += [_Span(x.start(), x.end(), x.group())
                   for x in _URL_OR_EMAIL.finditer(prep.text)]
    for c in sorted(candidates, key=lambda s: s.start):
        for n in notices:
            if (c.start < n.end and n.start < c.end) or 0 <= c.start - n.end <= gap:
                return c
    return None


def check_parts(parts: MessageParts, spec: FooterSpec, words: FooterWords) -> FooterReport:
    """Check every readable part of an already decoded message against `spec`."""
    m = _matchers(spec, words)
    ctx = _Context(parts, words.visibility)
    reports = tuple(_check_part(p, m, ctx) for p in parts.readable)
    problems = list(parts.problems)
    if not parts.readable:
        problems.append("no readable text/plain or text/html part")
    return FooterReport(reports, tuple(problems), parts.malformed, spec.law, spec.required)


def check_message(raw: bytes, spec: FooterSpec, words: FooterWords) -> FooterReport:
    """Parse `raw` and check it; never raises on malformed input (it reports it instead)."""
    try:
        # compat32's tree (header values left raw; readable_parts reads them itself),
        # built without the stdlib's line-by-line parser when the message is well formed.
        msg = parse_message(raw)
        parts = readable_parts(msg, visibility=words.visibility)
    except (RecursionError, MemoryError, ValueError, TypeError, LookupError,
            AttributeError, IndexError) as exc:
        # The stdlib parser recurses per nesting level and can give up on hostile input.
        return FooterReport((), (f"message could not be parsed: {type(exc).__name__}",), True,
                            spec.law, spec.required)
    return check_parts(parts, spec, words)
