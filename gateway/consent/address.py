"""Recipient address normalisation, canonical lookup keys and keyed hashes for erased opt-outs."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from typing import Final, NamedTuple

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

__all__ = [
    "HASH_PREFIX",
    "MAX_RAW_LENGTH",
    "InvalidAddress",
    "NormalizedAddress",
    "address_hash",
    "address_key",
    "normalize_address",
    "suppression_key",
]

# Inputs longer than this are refused before NFKC: NFKC can expand a character up to 18x,
# so an unbounded input would let one RCPT TO or import cell burn CPU. RFC 5321 caps a
# path at 256 octets; 1000 leaves room for whitespace and full-width characters.
MAX_RAW_LENGTH: Final = 1000

# Versioned so that a future algorithm or salt rotation can coexist in the store.
HASH_PREFIX: Final = "hs1:"


class InvalidAddress(ValueError):
    """The address cannot be used as a recipient; the SMTP layer maps it to 553 5.1.3."""

    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(f"invalid address {raw!r} ({reason})")
        self.raw = raw
        self.reason = reason


class NormalizedAddress(NamedTuple):
    """A syntactically valid mailbox: local part as given, domain in ASCII (A-label) form.

    A NamedTuple rather than a frozen dataclass: construction is half the cost, and the
    fast path below runs on every RCPT TO and every import row.
    """

    local: str
    domain: str  # lower-case ASCII; IDNs as A-labels (xn--...)
    domain_unicode: str  # U-label form, for display only

    @property
    def address(self) -> str:
        """The form to put on the wire (SMTPUTF8 is only needed if the local part is non-ASCII)."""
        return f"{self.local}@{self.domain}"

    @property
    def display(self) -> str:
        return f"{self.local}@{self.domain_unicode}"

    @property
    def needs_smtputf8(self) -> bool:
        return not self.local.isascii()

    def __str__(self) -> str:
        return self.address


# --- fast path --------------------------------------------------------------------------
# email-validator costs ~130 µs per call on the target machine; RCPT TO needs < 20 µs.
# The fast path accepts only a conservative subset of plain ASCII addresses and returns
# None for everything else, which then goes through email-validator. It never rejects, so
# it cannot make the gateway stricter; the hypothesis test
# tests/unit/consent/test_address.py::test_fast_path_equivalent proves that whatever it
# accepts, email-validator accepts with the identical result.
#  - local part: dot-atom over letters, digits and "_+-=" only (no "%" or "!", which the
#    policy rejects anyway, and no rarely-used atext that could hide surprises);
#  - domain: LDH labels, no "--" anywhere (that excludes A-labels, which need an IDNA
#    round-trip check, and the reserved "ab--" form), an alphabetic TLD of >= 2 letters.
_FAST_RE: Final = re.compile(
    r"([A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*)@((?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63})"
)
# Hyphen at a label edge is invalid; "--" anywhere also covers A-labels and "ab--" forms.
_BAD_HYPHEN: Final = re.compile(r"--|-\.|\.-|^-")
_SPECIAL_USE: Final = frozenset(("arpa", "invalid", "local", "localhost", "onion", "test"))
_CASE_INSENSITIVE: Final = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_WS_STRIP: Final = " \t\r\n\f\v"
_new_address = tuple.__new__  # skips NamedTuple's generated __new__ (~0.3 µs per call)


def _fast_path(text: str) -> NormalizedAddress | None:
    if len(text) > 200 or not text.isascii():
        return None
    m = _FAST_RE.fullmatch(text)
    if m is None:
        return None
    local, domain = m.groups()
    domain = domain.lower()
    if (
        len(local) > 64
        or ("-" in domain and _BAD_HYPHEN.search(domain) is not None)
        or domain.rpartition(".")[2] in _SPECIAL_USE
        or local.lower() in _CASE_INSENSITIVE
    ):
        return None
    return _new_address(NormalizedAddress, (local, domain, domain))


# --- policy checks that email-validator does not make (or words less precisely) ---------
def _policy_reason(text: str) -> str | None:
    """Return why *text* is refused on policy grounds, before full syntax validation."""
    if not text:
        return "empty address"
    if "@" not in text:
        return "no @ sign"
    if text.startswith("@"):
        # RFC 5321 source route "@relay:user@domain" is obsolete and a relay-test form.
        return "source route is not accepted" if ":" in text else "no local part"
    if text.startswith('"'):
        return "quoted local part is not accepted"
    local, _, domain = text.rpartition("@")
    if not domain:
        return "no domain"
    if domain.startswith("["):
        return "IP-literal domain is not accepted"
    if "%" in local:
        return "percent-hack relay form (user%host@domain) is not accepted"
    if "!" in local:
        return "bang-path relay form (host!user@domain) is not accepted"
    if "@" in local:
        return "more than one @ sign"
    if len(local.encode("utf-8")) > 64:
        # RFC 5321 §4.5.3.1.1; email-validator only enforces this in strict mode.
        return "local part longer than 64 octets"
    return None


def _strip(text: str) -> str:
    text = text.strip(_WS_STRIP)
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip(_WS_STRIP)
    return text


def normalize_address(raw: str) -> NormalizedAddress:
    """Normalise a recipient address or raise :class:`InvalidAddress`.

    Steps: strip whitespace and one pair of angle brackets; NFKC over the whole address
    (full-width "ＡＢＣ＠ｅｘ．ｊｐ" becomes "ABC@ex.jp"); validate with email-validator
    (no DNS; SMTPUTF8 local parts allowed; quoted local parts, IP literals, source routes,
    "%" and "!" relay forms refused); domain lower-cased and IDNA (UTS-46) encoded. The
    local part keeps its case (RFC 5321 §2.4), except the role names email-validator
    folds (postmaster, abuse, ...), which RFC 5321 itself treats as case-insensitive.
    """
    if len(raw) > MAX_RAW_LENGTH:
        raise InvalidAddress(raw[:40] + "...", f"longer than {MAX_RAW_LENGTH} characters")
    text = _strip(raw)
    fast = _fast_path(text)
    if fast is not None:
        return fast
    text = _strip(unicodedata.normalize("NFKC", text))
    # Full-width ASCII ("ＡＢＣ＠ｅｘ．ｊｐ") is plain ASCII after NFKC: try the fast path again.
    fast = _fast_path(text)
    if fast is not None:
        return fast
    reason = _policy_reason(text)
    if reason is not None:
        raise InvalidAddress(raw, reason)
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp") for ch in text):
        raise InvalidAddress(raw, "contains whitespace or control characters")
    try:
        v = validate_email(
            text,
            allow_smtputf8=True,
            allow_empty_local=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            strict=False,
            check_deliverability=False,
            test_environment=False,
            globally_deliverable=True,
        )
    except EmailNotValidError as e:
        raise InvalidAddress(raw, _short_reason(str(e))) from None
    ascii_domain = v.ascii_domain
    if not ascii_domain:  # pragma: no cover - domain literals are refused above
        raise InvalidAddress(raw, "no domain")
    return NormalizedAddress(v.local_part, ascii_domain.lower(), v.domain)


def _short_reason(message: str) -> str:
    # email-validator messages are full sentences; keep them but drop the final period so
    # they read well inside "invalid address 'x' (reason)".
    return message.rstrip(".")


def address_key(addr: NormalizedAddress) -> str:
    """Canonical consent lookup key: ``local@a-label-domain``, local-part case preserved."""
    return f"{addr.local}@{addr.domain}"


def suppression_key(addr: NormalizedAddress) -> str:
    """Key for opt-out / suppression matching: the local part is case-folded as well.

    RFC 5321 lets a server treat "Taro" and "taro" as different mailboxes, but practically
    every provider does not. An opt-out must fail closed, so suppression entries match
    case-insensitively; over-blocking a mailbox differing only by case is the safe error.
    """
    return f"{addr.local.lower()}@{addr.domain}"


def address_hash(key: str, salt: bytes) -> str:
    """Keyed hash (HMAC-SHA256) of a key for opt-outs whose address must be erased.

    Pass :func:`suppression_key` output so the hashed entry still blocks every case
    variant. The salt is a secret held by the deployment (not stored next to the hashes):
    without it, hashes of guessable addresses could be reversed by dictionary attack.
    """
    if len(salt) < 16:
        raise ValueError("salt must be at least 16 bytes")
    digest = hmac.new(salt, key.encode("utf-8"), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest
