"""List the decoded text/plain and text/html parts of a message a reader may see, with problems."""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from email.message import Message

from gateway.content.charsets import decode_text
from gateway.content.html import DEFAULT_VISIBILITY, Link, Visibility, html_to_text

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "AttachmentPart",
    "MessageParts",
    "ReadablePart",
    "attachment_text",
    "decode_transfer",
    "header_params",
    "raw_header",
    "readable_parts",
]

MAX_DEPTH = 12  # real mail nests mixed > alternative > related, plus a forward or two
MAX_PARTS = 200

# Defects that mean the MIME structure itself is broken, not just a sloppy header.
_STRUCTURAL = frozenset(
    {
        "NoBoundaryInMultipartDefect",
        "StartBoundaryNotFoundDefect",
        "CloseBoundaryNotFoundDefect",
        "MultipartInvariantViolationDefect",
        "MissingHeaderBodySeparatorDefect",
        "InvalidMultipartContentTransferEncodingDefect",
        "FirstHeaderLineIsContinuationDefect",
    }
)
_PARAM_RE = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
# What a base64 body may hold (bytes regex \s included); translate() deletes it in C, a regex
# scan for the rest costs ~0.1 ms on a 5 KB part.
_B64_OK = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\n\r\f\v"
_B64_ALPHA = re.compile(rb"[^A-Za-z0-9+/]")


@dataclass(frozen=True, slots=True)
class ReadablePart:
    """One text/plain or text/html leaf a reader may see, decoded to text."""

    path: str
    content_type: str
    charset: str | None
    codec: str
    transfer_encoding: str
    text: str
    hidden_text: str = ""
    links: tuple[Link, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def undecodable(self) -> bool:
        """True when bytes had to be replaced while decoding this part."""
        return any(p.startswith(("undecodable", "invalid base64")) for p in self.problems)


@dataclass(frozen=True, slots=True)
class AttachmentPart:
    """A part a reader does not see in the body: decoded lazily, only when a report needs it."""

    path: str
    content_type: str
    filename: str | None
    charset: str | None
    message: Message = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MessageParts:
    """The readable parts, the attachments and the structural problems of one message."""

    readable: tuple[ReadablePart, ...]
    attachments: tuple[AttachmentPart, ...] = ()
    problems: tuple[str, ...] = ()
    malformed: bool = False


def raw_header(msg: Message, name: str) -> str | None:
    """First header `name`, unfolded, without policy parsing (which is slow and can raise)."""
    lname = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == lname:
            return re.sub(r"\r?\n[ \t]*", " ", str(value)).strip()
    return None


def header_params(value: str | None) -> tuple[str, dict[str, str]]:
    """Split a Content-Type/Disposition value into (lower-cased main value, lower-cased params)."""
    if not value:
        return "", {}
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for m in _PARAM_RE.finditer(";" + rest):
        key = m.group(1).lower()
        val = m.group(2).strip()
        if val.startswith('"'):
            val = re.sub(r"\\(.)", r"\1", val[1:-1] if val.endswith('"') and len(val) > 1
                         else val[1:])
        if key.endswith("*"):  # RFC 2231: charset'lang'value
            key = key.rstrip("*").split("*")[0]
            val = val.split("'", 2)[-1]
        params.setdefault(key, val)
    return main.strip().lower(), params


def _payload_bytes(msg: Message) -> bytes:
    # get_payload(decode=False) lossily re-decodes 8-bit bodies with the declared charset; the raw
    # _payload keeps the original bytes (surrogate-escaped by the bytes parser).
    payload = getattr(msg, "_payload", "")
    if isinstance(payload, bytes):
        return payload
    if not isinstance(payload, str):
        return b""
    return payload.encode("utf-8", "surrogateescape")


def decode_transfer(data: bytes, cte: str) -> tuple[bytes, str | None]:
    """Undo a Content-Transfer-Encoding; returns (bytes, problem or None). Never raises."""
    if cte == "base64":
        problem = "invalid base64 characters" if data.translate(None, _B64_OK) else None
        try:
            return binascii.a2b_base64(data), problem
        except (binascii.Error, ValueError):
            pass
        clean = _B64_ALPHA.sub(b"", data.split(b"=", 1)[0])
        if len(clean) % 4 == 1:
            clean = clean[:-1]
        clean += b"=" * (-len(clean) % 4)
        try:
            return binascii.a2b_base64(clean), "invalid base64 (truncated or bad padding)"
        except (binascii.Error, ValueError):
            return b"", "invalid base64 (undecodable)"
    if cte == "quoted-printable":
        return binascii.a2b_qp(data), None
    if cte in ("", "7bit", "8bit", "binary"):
        return data, None
    return data, f"unknown transfer encoding {cte!r}"


def _defect_names(msg: Message) -> list[str]:
    return [type(d).__name__ for d in getattr(msg, "defects", ())]


def readable_parts(msg: Message, *, max_depth: int = MAX_DEPTH, max_parts: int = MAX_PARTS,
                   visibility: Visibility = DEFAULT_VISIBILITY) -> MessageParts:
    """Walk `msg` (parsed with email.policy.default) and decode every part a reader may see."""
    readable: list[ReadablePart] = []
    attachments: list[AttachmentPart] = []
    problems: list[str] = []
    malformed = False
    count = 0
    # Iterative walk: (message, path, depth). Paths follow IMAP numbering ("1", "1.2").
    stack: list[tuple[Message, str, int]] = [(msg, "", 0)]
    while stack:
        part, path, depth = stack.pop()
        count += 1
        if count > max_parts:
            problems.append(f"more than {max_parts} MIME parts: the rest was not checked")
            malformed = True
            break
        for name in _defect_names(part):
            problems.append(f"{path or 'message'}: {name}")
            malformed = malformed or name in _STRUCTURAL
        ctype, params = header_params(raw_header(part, "content-type"))
        if "/" not in ctype:
            ctype = "text/plain"  # RFC 2045 default, also for unparsable values
        if part.is_multipart():
            children = part.get_payload()
            if not isinstance(children, list):
                continue
            if ctype == "message/rfc822" or not ctype.startswith("multipart/"):
                attachments.append(AttachmentPart(path or "1", ctype, None, None, part))
                continue
            if depth >= max_depth:
                problems.append(f"{path or 'message'}: MIME nesting deeper than {max_depth}")
                malformed = True
                continue
            prefix = f"{path}." if path else ""
            for i in range(len(children) - 1, -1, -1):
                child = children[i]
                if isinstance(child, Message):
                    stack.append((child, f"{prefix}{i + 1}", depth + 1))
            continue
        if ctype.startswith("multipart/"):
            problems.append(f"{path or 'message'}: {ctype} without parts")
            malformed = True
            continue
        path = path or "1"
        disp, dparams = header_params(raw_header(part, "content-disposition"))
        filename = dparams.get("filename") or params.get("name")
        if disp == "attachment" or ctype not in ("text/plain", "text/html"):
            attachments.append(AttachmentPart(path, ctype, filename, params.get("charset"), part))
            continue
        readable.append(_read(part, path, ctype, params.get("charset"), visibility))
    readable.sort(key=lambda p: _path_key(p.path))
    attachments.sort(key=lambda p: _path_key(p.path))
    return MessageParts(tuple(readable), tuple(attachments), tuple(problems), malformed)


def _path_key(path: str) -> list[int]:
    return [int(x) for x in path.split(".") if x.isdigit()]


def _read(part: Message, path: str, ctype: str, charset: str | None,
          visibility: Visibility) -> ReadablePart:
    cte = (raw_header(part, "content-transfer-encoding") or "").lower().strip()
    data, problem = decode_transfer(_payload_bytes(part), cte)
    problems = [problem] if problem else []
    decoded = decode_text(data, charset)
    if decoded.reason:
        problems.append(("undecodable text: " if decoded.replaced else "charset: ")
                        + decoded.reason)
    elif decoded.replaced:
        problems.append("undecodable text")
    if ctype == "text/html":
        rendered = html_to_text(decoded.text, visibility)
        return ReadablePart(path, ctype, charset, decoded.codec, cte or "7bit", rendered.visible,
                            rendered.hidden, rendered.links, tuple(problems))
    return ReadablePart(path, ctype, charset, decoded.codec, cte or "7bit", decoded.text.strip(),
                        "", (), tuple(problems))


def attachment_text(att: AttachmentPart,
                    visibility: Visibility = DEFAULT_VISIBILITY) -> str | None:
    """Visible text of a text/* attachment (HTML rendered), or None for binary attachments."""
    if not att.content_type.startswith("text/"):
        return None
    cte = (raw_header(att.message, "content-transfer-encoding") or "").lower().strip()
    data, _problem = decode_transfer(_payload_bytes(att.message), cte)
    text = decode_text(data, att.charset).text
    if att.content_type == "text/html":
        rendered = html_to_text(text, visibility)
        return rendered.visible
    return text

