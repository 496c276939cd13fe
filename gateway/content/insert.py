"""Insert mode: add the display-item footer block to every readable part that lacks items."""

from __future__ import annotations

import base64
import binascii
import html
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.content.charsets import decode_text
from gateway.content.footer import FooterReport, FooterSpec
from gateway.content.parts import decode_transfer, header_params

__all__ = ["FooterTemplate", "InsertError", "insert_footer", "load_footer_template"]

_PLACEHOLDERS = ("{name}", "{postal_address}", "{contact}", "{optout_url}", "{seller_line}")
# {seller_line} becomes this line when the sender has a 特商法 seller name, else nothing.
_SELLER_LINES = {"text": "販売業者: {seller_name}\n", "html": "販売業者: {seller_name}<br>\n"}
# Codecs whose bytes can simply be appended to: the original body stays byte-identical.
_APPENDABLE = {"utf-8": "utf-8", "ascii": "ascii", "iso2022_jp": "iso2022_jp",
               "cp50220": "iso2022_jp", "cp932": "cp932", "euc_jp": "euc_jp",
               "cp51932": "euc_jp"}
_HDR_END = re.compile(rb"\r?\n\r?\n")


class InsertError(ValueError):
    """The message cannot be changed safely (e.g. its MIME structure could not be located)."""


@dataclass(frozen=True, slots=True)
class FooterTemplate:
    """Text and HTML footer blocks with the placeholders in _PLACEHOLDERS.

    `text_seller` and `html_seller` are what {seller_line} becomes for a sender with a
    seller name ({seller_name} inside them); for any other sender it becomes "".
    """

    text: str
    html: str
    text_seller: str = _SELLER_LINES["text"]
    html_seller: str = _SELLER_LINES["html"]

    @property
    def shows_seller(self) -> bool:
        """Whether both blocks carry the seller name of a sender that has one."""
        return "{seller_line}" in self.text and "{seller_line}" in self.html

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FooterTemplate:
        """Build from the parsed rules/footer_template.toml; ValueError names the bad key."""
        out: dict[str, str] = {}
        for key in ("text", "html"):
            section = data.get(key, {})
            tpl = section.get("template")
            if not isinstance(tpl, str) or "{optout_url}" not in tpl:
                raise ValueError(f"{key}.template must be a string containing {{optout_url}}")
            try:
                tpl.format(**{p.strip("{}"): "" for p in _PLACEHOLDERS})
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{key}.template has an unknown placeholder: {exc}") from exc
            line = section.get("seller_line", _SELLER_LINES[key])
            if not isinstance(line, str) or "{seller_name}" not in line:
                raise ValueError(f"{key}.seller_line must be a string containing {{seller_name}}")
            try:
                line.format(seller_name="")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{key}.seller_line has an unknown placeholder: {exc}") from exc
            out[key] = tpl
            out[f"{key}_seller"] = line
        return cls(**out)

    @classmethod
    def from_toml(cls, text: str) -> FooterTemplate:
        return cls.from_mapping(tomllib.loads(text))


def load_footer_template(path: str | Path) -> FooterTemplate:
    """Load rules/footer_template.toml."""
    return FooterTemplate.from_toml(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True, slots=True)
class _Leaf:
    start: int  # first header byte
    header_end: int  # end of the last header line (before the blank line)
    body_start: int
    end: int  # end of the body (before the CRLF that belongs to the next delimiter)
    blank_line: bool = True  # False: the part is all header section, with no body after it


def _header(headers: bytes, name: str) -> str | None:
    m = re.search(rb"(?im)^" + re.escape(name.encode()) + rb"[ \t]*:(.*(?:\r?\n[ \t].*)*)",
                  headers)
    if not m:
        return None
    return re.sub(r"\r?\n[ \t]*", " ", m.group(1).decode("ascii", "replace")).strip()


def _locate(raw: bytes) -> dict[str, _Leaf]:
    """Map IMAP-style part paths to byte ranges, walking boundaries like the email parser."""
    leaves: dict[str, _Leaf] = {}
    stack: list[tuple[int, int, str, int]] = [(0, len(raw), "", 0)]
    while stack:
        start, end, path, depth = stack.pop()
        if depth > 50:
            raise InsertError("MIME nesting too deep to edit")
        if raw.startswith(b"\r\n", start) or raw.startswith(b"\n", start):
            header_end = start
            body_start = start + (2 if raw.startswith(b"\r\n", start) else 1)
            blank_line = True
        else:
            m = _HDR_END.search(raw, start, end)
            blank_line = m is not None
            if m is None:
                header_end = body_start = end
                # Like the matched case, the header section ends before its last line break.
                for brk in (b"\r\n", b"\n"):
                    if raw.endswith(brk, start, end):
                        header_end = end - len(brk)
                        break
            else:
                header_end = m.start()
                body_start = m.end()
        headers = raw[start:header_end]
        ctype, params = header_params(_header(headers, "content-type"))
        if ctype.startswith("multipart/"):
            boundary = params.get("boundary")
            if not boundary:
                raise InsertError(f"{path or 'message'}: multipart without boundary")
            children = _split(raw, body_start, end, boundary.encode("ascii", "replace"))
            prefix = f"{path}." if path else ""
            for i, (cs, ce) in enumerate(children):
                stack.append((cs, ce, f"{prefix}{i + 1}", depth + 1))
        else:
            leaves[path or "1"] = _Leaf(start, header_end, body_start, end, blank_line)
    return leaves


def _split(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    delim = re.compile(rb"(?m)^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$")
    children: list[tuple[int, int]] = []
    child_start: int | None = None
    for m in delim.finditer(raw, start, end):
        line_start = m.start()
        if child_start is not None:
            # The line break before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
            ce = line_start
            if ce > child_start and raw[ce - 1:ce] == b"\n":
                ce -= 1
                if ce > child_start and raw[ce - 1:ce] == b"\r":
                    ce -= 1
            children.append((child_start, max(ce, child_start)))
        if m.group(1):
            return children
        nxt = m.end()
        if raw.startswith(b"\n", nxt):
            nxt += 1
        child_start = nxt
    raise InsertError("multipart without a closing boundary")


def _values(spec: FooterSpec, optout_url: str | None) -> dict[str, str]:
    url = optout_url
    if url is None:
        urls = [o for o in spec.optout if "://" in o and not o.endswith("/")]
        mails = [o for o in spec.optout if "@" in o and "://" not in o]
        url = urls[0] if urls else (f"mailto:{mails[0]}" if mails else None)
    if not url:
        raise InsertError("no usable opt-out URL: pass optout_url= (e.g. the /u/TOKEN link)")
    return {"name": spec.name, "postal_address": spec.postal_address,
            "contact": spec.contacts[0] if spec.contacts else "", "optout_url": url,
            "seller_name": spec.seller_name}


def _fill(template: str, seller_line: str, values: dict[str, str]) -> str:
    seller = seller_line.format(seller_name=values["seller_name"]) if values["seller_name"] else ""
    return template.format(seller_line=seller, **values)


def _in_ascii_mode(data: bytes, pos: int) -> bool:
    """True when ISO-2022-JP bytes at `pos` are in ASCII/Roman mode (not inside a JIS run)."""
    last = data.rfind(b"\x1b", 0, pos)
    return last < 0 or data[last + 1:last + 3] in (b"(B", b"(J")


def _insert_html(data: bytes, footer: bytes, iso2022: bool) -> bytes:
    for tag in (rb"</body", rb"</html"):
        for m in reversed(list(re.finditer(tag, data, re.IGNORECASE))):
            if not iso2022 or _in_ascii_mode(data, m.start()):
                return data[:m.start()] + footer + data[m.start():]
    return data + footer


def _insert_html_text(text: str, footer: str) -> str:
    for tag in ("</body", "</html"):
        k = text.lower().rfind(tag)
        if k >= 0:
            return text[:k] + footer + text[k:]
    return text + footer


def _transfer_encode(data: bytes, cte: str, eol: bytes) -> tuple[bytes, str]:
    if cte == "base64":
        enc = base64.encodebytes(data).replace(b"\n", eol)
        return enc, cte
    if cte == "quoted-printable" or (cte in ("", "7bit") and not data.isascii()):
        enc = binascii.b2a_qp(data.replace(b"\r\n", b"\n"), istext=True)
        return enc.replace(b"\n", eol) + (b"" if enc.endswith(b"\n") else eol), "quoted-printable"
    return data, cte


def _quoted(value: str) -> str:
    """A parameter value's text inside double quotes (RFC 2045 quoted-string)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _set_header(headers: bytes, name: str, value: str, eol: bytes) -> bytes:
    line = f"{name}: {value}".encode("ascii")
    pat = re.compile(rb"(?im)^" + re.escape(name.encode()) + rb"[ \t]*:.*(?:\r?\n[ \t].*)*")
    if pat.search(headers):
        return pat.sub(lambda _m: line, headers, count=1)
    return headers + eol + line if headers else line


def insert_footer(raw: bytes, spec: FooterSpec, report: FooterReport, template: FooterTemplate,
                  *, optout_url: str | None = None) -> bytes:
    """Return `raw` with a footer block added to every part `report` found lacking items.

    Parts that comply, and every byte outside the changed parts, are left untouched. Raises
    InsertError when the message structure cannot be located or no opt-out URL is known.
    """
    if report.malformed:
        raise InsertError("malformed MIME: refusing to edit")
    if not report.parts:
        raise InsertError("no readable text part to add the footer to")
    lacking = {p.path: p for p in report.parts if p.missing()}
    if not lacking:
        return raw
    values = _values(spec, optout_url)
    text_footer = _fill(template.text, template.text_seller, values)
    html_footer = _fill(template.html, template.html_seller,
                        {k: html.escape(v) for k, v in values.items()})
    eol = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
    leaves = _locate(raw)
    edits: list[tuple[_Leaf, bytes]] = []
    for path, part in lacking.items():
        leaf = leaves.get(path)
        if leaf is None:
            raise InsertError(f"part {path} not found in the raw message")
        headers = raw[leaf.start:leaf.header_end]
        ctype, params = header_params(_header(headers, "content-type"))
        ctype = ctype or "text/plain"
        if ctype != part.content_type:
            raise InsertError(f"part {path} is {ctype}, the report says {part.content_type}")
        cte = (_header(headers, "content-transfer-encoding") or "").lower()
        data, problem = decode_transfer(raw[leaf.body_start:leaf.end], cte)
        if problem:
            raise InsertError(f"part {path}: {problem}")
        decoded = decode_text(data, params.get("charset"))
        body_eol = b"\r\n" if b"\r\n" in data or (not data and eol == b"\r\n") else b"\n"
        is_html = ctype == "text/html"
        footer = html_footer if is_html else text_footer
        codec = _APPENDABLE.get(decoded.codec)
        footer_bytes: bytes | None = None
        if codec is not None and not decoded.replaced:
            try:
                footer_bytes = footer.replace("\n", body_eol.decode()).encode(codec)
            except UnicodeEncodeError:
                footer_bytes = None
        new_headers = headers
        if footer_bytes is not None:
            iso2022 = codec == "iso2022_jp"
            if is_html:
                new_data = _insert_html(data, footer_bytes, iso2022)
            else:
                base = data
                if iso2022 and not _in_ascii_mode(base, len(base)):
                    base += b"\x1b(B"  # never append ASCII while the body is still in JIS mode
                if base and not base.endswith(b"\n"):
                    base += body_eol
                new_data = base + footer_bytes
        else:
            # The part's charset cannot carry the footer (or the text was damaged): UTF-8.
            text = decoded.text
            if is_html:
                text = re.sub(r"(?i)(<meta[^>]*charset=[\"']?)[\w-]+", r"\1utf-8", text)
                text = _insert_html_text(text, footer)
            else:
                text = text.rstrip("\r\n") + "\n" + footer
            new_data = text.replace("\r\n", "\n").replace("\n", body_eol.decode()).encode()
            extra = "".join(f'; {k}="{_quoted(v)}"' for k, v in params.items() if k != "charset")
            if not extra.isascii():
                # The rebuilt field would need the 8-bit bytes back, and they were decoded
                # with replacement: leave the part as it is (the check then reports it).
                raise InsertError(f"part {path}: its Content-Type has non-ASCII parameters")
            new_headers = _set_header(new_headers, "Content-Type",
                                      f'{ctype}; charset="UTF-8"{extra}', eol)
        body, new_cte = _transfer_encode(new_data, cte, eol)
        if new_cte != cte:
            new_headers = _set_header(new_headers, "Content-Transfer-Encoding", new_cte, eol)
        separator = raw[leaf.header_end:leaf.body_start]
        if not leaf.blank_line:
            # A part that is all header section (or empty) gets the blank line its new body
            # needs; without it the body would read as more header fields.
            separator = eol + eol if new_headers else eol
        elif new_headers and not headers:
            separator = eol + separator  # the first header field needs its own line end
        edits.append((leaf, new_headers + separator + body))
    out = raw
    for leaf, replacement in sorted(edits, key=lambda e: e[0].start, reverse=True):
        out = out[:leaf.start] + replacement + out[leaf.end:]
    return out
