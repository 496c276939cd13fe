"""Decode a text MIME part's bytes from its charset label the way a Japanese mail client would."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["Decoded", "codec_for_label", "decode_text", "jis_to_sjis"]

# Labels that mail clients treat as CP932 even though Python's shift_jis codec is stricter:
# Windows and mobile senders write CP932 extension characters (①, ㈱, IBM kanji) under them.
_CP932_LABELS = frozenset(
    {
        "shift_jis", "shift-jis", "sjis", "x-sjis", "s-jis", "shiftjis", "ms_kanji", "csshiftjis",
        "windows-31j", "cp932", "ms932", "x-ms-cp932", "ibm-943", "x-sjis-open", "sjis-open",
        "sjis-win", "shift_jisx0213", "shift_jis-2004",
    }
)
_ISO2022JP_LABELS = frozenset(
    {
        "iso-2022-jp", "iso2022jp", "iso2022_jp", "csiso2022jp", "iso-2022-jp-1", "iso-2022-jp-2",
        "iso-2022-jp-3", "iso-2022-jp-2004", "iso-2022-jp-ms", "cp50220", "cp50221", "cp50222",
        "x-iso-2022-jp", "jis", "x-jis",
    }
)
_EUCJP_LABELS = frozenset(
    {"euc-jp", "euc_jp", "eucjp", "x-euc-jp", "x-euc", "cseucpkdfmtjapanese", "cp51932", "eucjp-ms",
     "euc-jp-ms", "eucjpms", "ujis"}
)
_UTF8_LABELS = frozenset({"utf-8", "utf8", "unicode-1-1-utf-8", "x-unicode20utf8"})
_ASCII_LABELS = frozenset({"us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "us", "csascii"})

_ESC = 0x1B
_CP932_JUNK = re.compile("[\x80-\x9f\xa0\uf8f0-\uf8f3]")


@dataclass(frozen=True, slots=True)
class Decoded:
    """Text of a part plus how it was obtained; `replaced` means some bytes became U+FFFD."""

    text: str
    codec: str
    replaced: bool = False
    reason: str | None = None


def codec_for_label(label: str | None) -> str | None:
    """Map a MIME charset label to the Python codec a mail client would really use, or None."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    if name in _UTF8_LABELS:
        return "utf-8"
    if name in _ASCII_LABELS:
        return "ascii"
    if name in _ISO2022JP_LABELS:
        return "iso2022_jp"
    if name in _CP932_LABELS:
        return "cp932"
    if name in _EUCJP_LABELS:
        return "euc_jp"
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # codecs.lookup also knows bytes-to-bytes codecs such as "base64" or "zip": never text.
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def jis_to_sjis(j1: int, j2: int) -> bytes:
    """Convert one JIS X 0208 row/cell pair (0x21-0x7E each) to its CP932 (Shift_JIS) bytes."""
    s1 = ((j1 + 1) >> 1) + (0x70 if j1 <= 0x5E else 0xB0)
    if j1 & 1:
        s2 = j2 + (0x1F if j2 <= 0x5F else 0x20)
    else:
        s2 = j2 + 0x7E
    return bytes((s1, s2))


# ISO-2022-JP escape sequences: ESC ( B / ESC ( J (ASCII, JIS Roman), ESC ( I (half-width kana),
# ESC $ @ / ESC $ B (JIS X 0208), ESC $ ( D and others (JIS X 0212 etc.: not in CP932).
_ESC_RE = re.compile(rb"\x1b(?:\(([BJI])|\$([@B])|\$\(([A-Z@])|.)", re.DOTALL)


def _decode_cp50220(data: bytes) -> tuple[str, bool]:
    """Decode ISO-2022-JP as Windows' CP50220 does: JIS pairs via CP932, so NEC row 13 decodes."""
    out: list[str] = []
    replaced = False
    mode = "ascii"
    pos = 0
    n = len(data)
    while pos < n:
        m = _ESC_RE.search(data, pos)
        seg_end = m.start() if m else n
        seg = data[pos:seg_end]
        if seg:
            text, bad = _decode_segment(seg, mode)
            out.append(text)
            replaced = replaced or bad
        if m is None:
            break
        if m.group(1):
            mode = {b"B": "ascii", b"J": "ascii", b"I": "kana"}[m.group(1)]
        elif m.group(2):
            mode = "kanji"
        else:
            # JIS X 0212/0213 planes or a bogus escape: CP932 cannot show them.
            mode = "unknown"
        pos = m.end()
    return "".join(out), replaced


def _decode_segment(seg: bytes, mode: str) -> tuple[str, bool]:
    """Decode the bytes between two escape sequences in the given ISO-2022-JP shift state."""
    if mode == "ascii":
        # SO/SI (CP50221 kana shift) are rare; high bytes here are invalid but decode like a MUA.
        text = seg.decode("cp932", "replace")
        return text, "\ufffd" in text or any(b >= 0x80 for b in seg)
    if mode == "kana":
        kana = bytes(b | 0x80 if 0x21 <= b <= 0x5F else b for b in seg)
        text = kana.decode("cp932", "replace")
        return text, "\ufffd" in text
    if mode == "unknown":
        # Keep line structure; every other byte pair is one unrepresentable character.
        lines = seg.split(b"\n")
        return "\n".join("\ufffd" * (len(line.rstrip(b"\r")) // 2) for line in lines), True
    parts: list[str] = []
    bad = False
    buf = bytearray()
    i = 0
    n = len(seg)
    while i < n:
        b = seg[i]
        if b in (0x0A, 0x0D):  # tolerate line breaks inside a double-byte run
            buf.append(b)
            i += 1
        elif 0x21 <= b <= 0x7E and i + 1 < n and 0x21 <= seg[i + 1] <= 0x7E:
            buf += jis_to_sjis(b, seg[i + 1])
            i += 2
        else:
            parts.append(buf.decode("cp932", "replace"))
            buf.clear()
            parts.append("\ufffd")
            bad = True
            i += 1
    parts.append(buf.decode("cp932", "replace"))
    text = "".join(parts)
    return text, bad or "\ufffd" in text


def _decode_eucjp_ms(data: bytes) -> tuple[str, bool]:
    """Decode EUC-JP as CP51932/eucJP-ms: row-13 NEC and IBM rows via CP932, kana via SS2."""
    parts: list[str] = []
    buf = bytearray()
    bad = False
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            buf.append(b)
            i += 1
        elif b == 0x8E and i + 1 < n and 0xA1 <= data[i + 1] <= 0xDF:
            buf.append(data[i + 1])  # SS2 + half-width kana byte is the same byte in CP932
            i += 2
        elif 0xA1 <= b <= 0xFE and i + 1 < n and 0xA1 <= data[i + 1] <= 0xFE:
            buf += jis_to_sjis(b - 0x80, data[i + 1] - 0x80)
            i += 2
        else:
            # SS3 (JIS X 0212) or a stray byte: no CP932 equivalent.
            parts.append(buf.decode("cp932", "replace"))
            buf.clear()
            parts.append("\ufffd")
            bad = True
            i += 3 if b == 0x8F else 1
    parts.append(buf.decode("cp932", "replace"))
    text = "".join(parts)
    return text, bad or "\ufffd" in text


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def _decode_iso2022jp(data: bytes, label: str) -> Decoded:
    if data.isascii():
        text = _try(data, "iso2022_jp")
        if text is not None:
            return Decoded(text, "iso2022_jp")
        text, bad = _decode_cp50220(data)
        return Decoded(text, "cp50220", bad, "undecodable ISO-2022-JP bytes" if bad else None)
    # 8-bit bytes cannot occur in ISO-2022-JP: some senders label UTF-8 (or CP932) bodies so.
    if _ESC not in data:
        text = _try(data, "utf-8")
        if text is not None:
            return Decoded(text, "utf-8", False, f"labelled {label} but is UTF-8")
        text = _try(data, "cp932")
        if text is not None:
            return Decoded(text, "cp932", False, f"labelled {label} but is Shift_JIS")
    text = data.decode("utf-8", "replace") if _ESC not in data else _decode_cp50220(data)[0]
    return Decoded(text, "iso2022_jp", True, f"8-bit bytes in a {label} part")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_text(data: bytes, label: str | None) -> Decoded:
    """Decode a text part's bytes for its MIME charset label; never raises on bad bytes."""
    decoded = _decode(data, label)
    if decoded.codec == "utf-7" and _LONE_SURROGATE.search(decoded.text):
        # UTF-7, alone of the codecs we map to, decodes "+3jg-" to a lone surrogate, which no
        # encoder takes: such a character is as unreadable as a bad byte.
        text = _LONE_SURROGATE.sub("\ufffd", decoded.text)
        return Decoded(text, decoded.codec, True, decoded.reason or "UTF-7 with lone surrogates")
    return decoded


def _decode(data: bytes, label: str | None) -> Decoded:
    codec = codec_for_label(label)
    shown = (label or "").strip().strip("\"'").lower()
    if codec == "iso2022_jp":
        return _decode_iso2022jp(data, shown)
    if codec == "euc_jp":
        text = _try(data, "euc_jp")
        if text is not None:
            return Decoded(text, "euc_jp")
        text, bad = _decode_eucjp_ms(data)
        return Decoded(text, "cp51932", bad, "undecodable EUC-JP bytes" if bad else None)
    if codec == "ascii":
        if data.isascii():
            return Decoded(data.decode("ascii"), "ascii")
        # Unlabelled-8bit in a us-ascii part: clients guess; UTF-8 is what senders mean today.
        return _guess(data, f"8-bit bytes in a {shown} part")
    if codec is None:
        if label and label.strip():
            return _guess(data, f"unknown charset {shown!r}")
        if data.isascii() and _ESC not in data:
            return Decoded(data.decode("ascii"), "ascii")
        return _guess(data, "no charset label")
    text = _try(data, codec)
    if text is not None:
        return Decoded(text, codec)
    if codec != "utf-8":
        alt = _try(data, "utf-8")
        if alt is not None:
            return Decoded(alt, "utf-8", False, f"labelled {shown} but is UTF-8")
    text = data.decode(codec, "replace")
    return Decoded(text, codec, True, f"undecodable {shown} bytes")


def _guess(data: bytes, why: str) -> Decoded:
    """Decode bytes whose label is missing or useless: UTF-8, ISO-2022-JP, CP932, EUC-JP."""
    text = _try(data, "utf-8")
    if text is not None:
        return Decoded(text, "utf-8", False, why)
    if _ESC in data and data.isascii():
        return _decode_iso2022jp(data, "iso-2022-jp")
    for codec in ("cp932", "euc_jp"):
        text = _try(data, codec)
        # Python's cp932 maps stray 0x80/0xA0/0xFD-0xFF to C1/PUA code points: not a real match.
        if text is not None and not _CP932_JUNK.search(text):
            return Decoded(text, codec, False, why)
    return Decoded(data.decode("utf-8", "replace"), "utf-8", True, why)
