"""Message checks: well-formedness, RFC 5322 header hygiene, the author (From) identity and
what the Subject claims."""

from __future__ import annotations

import email.errors
import email.header
import email.utils
import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from email.message import Message
from typing import Any

from gateway.engine.context import Facts
from gateway.engine.registry import CheckResult, check
from gateway.model import Outcome, Phase


@check("message.wellformed", phases={Phase.DATA})
def wellformed(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The message parses as RFC 5322/MIME without defects a reader or relay would trip on."""
    problems: list[str] = facts.extra.get("malformed", [])
    if problems:
        return Outcome.FAIL, "; ".join(problems), {"problems": problems}
    return Outcome.PASS, ""


@check("message.single_from", phases={Phase.DATA})
def single_from(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """Exactly one From header holding exactly one well-formed address."""
    if facts.message is None:
        return Outcome.SKIP, "message not parsed (see message.malformed)"
    problem = facts.errors.get("header_from")
    if problem:
        return Outcome.FAIL, problem
    return Outcome.PASS, facts.extra.get("header_from", "")


# RFC 5322 §3.6.4 msg-id, simplified to what receivers check: one <left@right>, no spaces.
_MSG_ID = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")
_ADDRESS_FIELDS = ("from", "to", "cc", "bcc", "reply-to", "sender")
_ID_FIELDS = ("message-id", "in-reply-to", "references")
# Missing ones the gateway adds before signing (gateway/delivery/missing_fields.py).
ADDED_WHEN_MISSING = ("Message-ID", "Date")


@check("message.header_fields", phases={Phase.DATA}, params={"at_most_once": list})
def header_fields(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """RFC 5322 header hygiene: single-instance fields once, a valid Message-ID and Date,
    no encoded-word where an address or message id stands, no raw 8-bit text without
    SMTPUTF8."""
    message = facts.message
    if message is None:
        return Outcome.SKIP, "message not parsed (see message.malformed)"
    counts = Counter(name.lower() for name in message.keys())
    problems = [
        f"{name} appears {counts[name.lower()]} times (at most once, RFC 5322 §3.6)"
        for name in params.get("at_most_once", ())
        if counts[name.lower()] > 1
    ]
    message_id = message.get("Message-ID")
    if message_id is not None and not _MSG_ID.fullmatch(str(message_id).strip()):
        problems.append(f"Message-ID {_shown(message_id)} is not one <id@domain>")
    date = message.get("Date")
    if date is not None and not _is_date(str(date)):
        problems.append(f"Date {_shown(date)} is not an RFC 5322 date")
    for name in _ADDRESS_FIELDS:
        if counts[name] and any(_encoded_word_in_address(str(v))
                                for v in message.get_all(name) or []):
            problems.append(f"{name.title()} has an encoded-word inside an address")
    eight_bit = _eight_bit_problem(facts.raw, facts.smtputf8)
    if eight_bit:
        problems.append(eight_bit)
    for name in _ID_FIELDS:
        if counts[name] and any("=?" in str(v) for v in message.get_all(name) or []):
            problems.append(f"{name.title()} has an encoded-word (not allowed in a message id)")
    if problems:
        return Outcome.FAIL, "; ".join(problems), {"problems": problems}
    added = [name for name in ADDED_WHEN_MISSING if not counts[name.lower()]]
    return Outcome.PASS, f"missing, added by the gateway: {', '.join(added)}" if added else ""


def _eight_bit_problem(raw: bytes, smtputf8: bool) -> str:
    """Header fields are ASCII (RFC 5322 §2.2; non-ASCII text goes in RFC 2047 encoded-words)
    unless the transaction uses SMTPUTF8, and then they are UTF-8 (RFC 6532). Gmail refuses
    "Unicode in disallowed headers" with 5.7.1."""
    end = raw.find(b"\r\n\r\n")
    section = raw if end < 0 else raw[:end]
    if section.isascii():
        return ""
    if smtputf8:
        try:
            section.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return ""
        return f"{_fields_with_8bit(section)} not valid UTF-8 (RFC 6532)"
    return (f"8-bit bytes in {_fields_with_8bit(section)} without SMTPUTF8: non-ASCII text "
            "needs encoded-words (RFC 2047)")


def _fields_with_8bit(section: bytes) -> str:
    names: dict[str, None] = {}
    name = "?"
    for line in section.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t"):
            name = line.partition(b":")[0].decode("ascii", "replace").strip() or "?"
        if not line.isascii():
            names[name] = None
    return ", ".join(names)


@check("message.fake_reply", phases={Phase.DATA}, params={"prefixes": list})
def fake_reply(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """A Subject that starts like a reply or a forward ("Re:", "Fwd:", "転送:") belongs to a
    message that answers or forwards one: In-Reply-To or References says which. Gmail's
    sender guidelines forbid fake ones (legal.md §2.1)."""
    message = facts.message
    if message is None:
        return Outcome.SKIP, "message not parsed (see message.malformed)"
    subject = subject_text(message)
    if not subject:
        return Outcome.PASS, ""
    # a counter like "Re[2]:" or "RE(3):" is still a reply
    found = _prefix_pattern(tuple(params.get("prefixes", ()))).match(subject)
    if not found or message.get("In-Reply-To") is not None or message.get("References"):
        return Outcome.PASS, ""
    prefix = found.group().strip()
    return (Outcome.FAIL, f"Subject starts with {prefix!r} but the message has no In-Reply-To "
            "or References: it replies to or forwards nothing", {"prefix": prefix})


@check("message.legacy_label", phases={Phase.DATA}, params={"labels": list})
def legacy_label(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The 「未承諾広告※」 Subject label the law asked for until 2008 (legal.md §1.5): not
    wrong in itself, but the mark of a template older than today's display items."""
    message = facts.message
    if message is None:
        return Outcome.SKIP, "message not parsed (see message.malformed)"
    subject = subject_text(message)
    label = next((w for w in params.get("labels", ())
                  if unicodedata.normalize("NFKC", w) in subject), None)
    if label is None:
        return Outcome.PASS, ""
    return (Outcome.FAIL, f"Subject carries {label!r}, the label required before 2008: a "
            "legacy template? Check it against today's display items", {"label": label})


def subject_text(message: Message) -> str:
    """The Subject as the reader sees it (encoded-words decoded, NFKC), or ""."""
    subject = message.get("Subject")
    if subject is None:
        return ""
    if isinstance(subject, email.header.Header):  # raw 8-bit text (UTF-8 with SMTPUTF8)
        subject = "".join(part.decode("utf-8", "replace") if isinstance(part, bytes) else part
                          for part, _charset in email.header.decode_header(subject))
    return _readable(str(subject))


@functools.lru_cache(maxsize=256)
def _readable(subject: str) -> str:
    try:
        text = str(email.header.make_header(email.header.decode_header(subject)))
    except (ValueError, LookupError, email.errors.MessageError):  # CharsetError among them
        text = subject  # an unknown charset: what is plain text still reads
    return unicodedata.normalize("NFKC", text)  # "Ｒｅ：" reads as "Re:"


@functools.lru_cache(maxsize=16)
def _prefix_pattern(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    words = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
    return re.compile(rf"\s*(?:{words})\s*(?:\[\d+\]|\(\d+\))?\s*:", re.IGNORECASE)


# A campaign repeats its From, and messages stamped in the same second share a Date: the
# two parses below (6 µs and 19 µs) are cached by the field's text.
@functools.lru_cache(maxsize=256)
def _is_date(value: str) -> bool:
    try:
        return email.utils.parsedate_to_datetime(value) is not None
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: huge numbers
        return False


def _encoded_word_in_address(value: str) -> bool:
    """An encoded-word in an addr-spec (one in a display name is fine)."""
    return "=?" in value and _encoded_word_in_parsed_address(value)


@functools.lru_cache(maxsize=256)
def _encoded_word_in_parsed_address(value: str) -> bool:
    return any("=?" in addr for _, addr in email.utils.getaddresses([value]))


def _shown(value: object, limit: int = 60) -> str:
    text = " ".join(str(value).split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
