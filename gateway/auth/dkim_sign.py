"""DKIM: keys loaded once, signing (dkimpy canonicalises, OpenSSL signs), key checks, verifying."""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import dkim
import dkim.util
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from gateway import errors
from gateway.auth.dkim_canon import (
    hash_headers,
    relaxed_body,
    relaxed_headers,
    rfc822_parse,
    split_message,
)
from gateway.auth.dns import DnsCache, DnsNameError, DnsTempError
from gateway.lru import Lru

__all__ = [
    "SIGNED_HEADERS",
    "SIGN_IF_PRESENT",
    "DkimAlgorithm",
    "DkimKey",
    "DkimMessageError",
    "DkimSigner",
    "DkimVerification",
    "DkimVerifyStatus",
    "KeyPublication",
    "KeyPublicationStatus",
    "PrivateKey",
    "SigningKeyError",
    "generate_key",
    "load_key",
    "public_key_record",
    "published_key_matches",
    "verify_existing",
]

log = logging.getLogger(__name__)

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

# Signed, and over-signed (each listed once more than it occurs, absent ones once), so a copy added
# in transit breaks the signature (RFC 6376 8.15). Feedback-ID only when the message has one.
SIGNED_HEADERS: tuple[str, ...] = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
SIGN_IF_PRESENT: tuple[str, ...] = ("feedback-id",)

_MIN_RSA_BITS = 1024  # RFC 8301: verifiers must not accept less
_FOLD = 76


# A signing key that is missing, unreadable or unusable: the gateway answers 451 4.3.0 and
# never relays the message unsigned. One class for the whole gateway (gateway/errors.py).
SigningKeyError = errors.SigningKeyError


class DkimMessageError(ValueError):
    """The message's header section cannot be parsed, so it cannot be signed (550 5.6.0)."""


class DkimAlgorithm(enum.StrEnum):
    RSA_SHA256 = "rsa-sha256"
    ED25519_SHA256 = "ed25519-sha256"


@dataclass(frozen=True, slots=True)
class DkimKey:
    """A private key with the selector and domain it signs for, parsed once at load time."""

    selector: str
    domain: str
    algorithm: DkimAlgorithm
    private_key: PrivateKey
    path: str | None = None

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


# --- keys ---------------------------------------------------------------------------------------


def _algorithm_of(key: PrivateKey) -> DkimAlgorithm:
    if isinstance(key, rsa.RSAPrivateKey):
        return DkimAlgorithm.RSA_SHA256
    return DkimAlgorithm.ED25519_SHA256


def _parse_private_key(data: bytes) -> PrivateKey:
    stripped = data.strip()
    if not stripped.startswith(b"-----BEGIN"):
        # dkimpy's dknewkey writes an Ed25519 key as the base64 of its 32-byte seed.
        try:
            raw = base64.b64decode(stripped, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) == 32:
            return ed25519.Ed25519PrivateKey.from_private_bytes(raw)
        raise SigningKeyError("not a PEM private key")
    try:
        key = serialization.load_pem_private_key(stripped, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"cannot parse private key: {exc}") from exc
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            raise SigningKeyError(f"RSA key of {key.key_size} bits: at least 1024 required")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise SigningKeyError(f"unsupported key type {type(key).__name__}: RSA or Ed25519 only")


def load_key(
    path: str | os.PathLike[str],
    *,
    selector: str,
    domain: str,
    algorithm: DkimAlgorithm | str | None = None,
) -> DkimKey:
    """Read and parse a private key file once. Raises SigningKeyError (never OSError/ValueError)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read DKIM key {path}: {exc.strerror or exc}") from exc
    try:
        key = _parse_private_key(data)
    except SigningKeyError as exc:
        raise SigningKeyError(f"DKIM key {path}: {exc}") from exc
    return make_key(key, selector=selector, domain=domain, algorithm=algorithm, path=str(path))


def make_key(
    key: PrivateKey,
    *,
    selector: str,
    domain: str,
    algorithm: DkimAlgorithm | str | None = None,
    path: str | None = None,
) -> DkimKey:
    """Wrap an in-memory key; `algorithm`, if given, must match the key type."""
    actual = _algorithm_of(key)
    if algorithm is not None and DkimAlgorithm(algorithm) is not actual:
        raise SigningKeyError(
            f"DKIM key {path or selector}: configured as {algorithm} but the key is {actual}"
        )
    selector = selector.strip().lower()
    domain = domain.strip().rstrip(".").lower()
    if not selector or not domain or ";" in selector or ";" in domain:
        raise SigningKeyError(f"bad selector/domain {selector!r}/{domain!r}")
    return DkimKey(selector=selector, domain=domain, algorithm=actual, private_key=key, path=path)


def _public_bytes(key: PrivateKey) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        # SubjectPublicKeyInfo, as RFC 6376 3.6.1 and every verifier expect in p=.
        return key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    # RFC 8463 3: the raw 32-byte public key.
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_record(key: DkimKey | PrivateKey) -> str:
    """The TXT value to publish at <selector>._domainkey.<domain> (one logical string)."""
    private = key.private_key if isinstance(key, DkimKey) else key
    kind = "rsa" if isinstance(private, rsa.RSAPrivateKey) else "ed25519"
    return f"v=DKIM1; k={kind}; p={base64.b64encode(_public_bytes(private)).decode('ascii')}"


def generate_key(
    path: str | os.PathLike[str],
    algorithm: DkimAlgorithm | str = DkimAlgorithm.RSA_SHA256,
    *,
    bits: int = 2048,
) -> str:
    """Create a new private key file (PKCS#8 PEM, mode 0600, never overwriting) and return the
    TXT record to publish for it."""
    algorithm = DkimAlgorithm(algorithm)
    key: PrivateKey
    if algorithm is DkimAlgorithm.RSA_SHA256:
        if bits < 2048:
            raise ValueError("RSA keys for new selectors must have at least 2048 bits")
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # O_EXCL: an existing key is never clobbered; 0600 from creation, so the key is never
    # readable by others even for a moment (fchmod as well, in case of an unusual umask).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)
    return public_key_record(key)


# --- signing ------------------------------------------------------------------------------------


class DkimSigner:
    """Signs with keys loaded once; the private-key operation is OpenSSL's (via `cryptography`).

    Per domain it signs with one active key per algorithm, so RSA + Ed25519 gives dual signing
    (RFC 8463 6). Several selectors per domain may be loaded for rotation: by default the key
    added last for an algorithm is active; `set_active()` chooses explicitly.

    Why not dkimpy's sign(): its RSA is pure Python (~6 ms, not constant-time) and it re-parses
    the PEM on every call. gateway/auth/dkim_canon.py parses, canonicalises and hashes exactly
    as dkimpy does (tested against it; dkimpy's own parser and b= pattern underneath). This
    class builds the tag list and signs the digest.
    """

    def __init__(
        self,
        keys: Iterable[DkimKey] = (),
        *,
        signed_headers: Sequence[str] = SIGNED_HEADERS,
        sign_if_present: Sequence[str] = SIGN_IF_PRESENT,
        clock: Callable[[], float] = time.time,
        body_cache: int = 512,
    ) -> None:
        self._keys: dict[str, list[DkimKey]] = {}
        self._active: dict[str, tuple[DkimKey, ...]] = {}
        self._signed = tuple(h.lower() for h in signed_headers)
        self._if_present = tuple(h.lower() for h in sign_if_present)
        if "from" not in self._signed:
            raise ValueError("From must be signed (RFC 6376 5.4)")
        self._clock = clock
        self._body_hashes: Lru[bytes, bytes] = Lru(body_cache)
        for key in keys:
            self.add_key(key)

    def add_key(self, key: DkimKey) -> None:
        same = [k for k in self._keys.get(key.domain, []) if k.selector != key.selector]
        self._keys[key.domain] = [*same, key]
        self._active.pop(key.domain, None)  # recomputed: the newest key per algorithm

    def set_active(self, domain: str, selectors: Sequence[str]) -> None:
        """Sign `domain` with exactly these selectors (e.g. after the new one is published)."""
        domain = domain.lower().rstrip(".")
        by_selector = {k.selector: k for k in self._keys.get(domain, [])}
        missing = [s for s in selectors if s.lower() not in by_selector]
        if missing or not selectors:
            raise SigningKeyError(f"no loaded key for {domain} selector(s) {missing or selectors}")
        self._active[domain] = tuple(by_selector[s.lower()] for s in selectors)

    def keys(self, domain: str) -> tuple[DkimKey, ...]:
        return tuple(self._keys.get(domain.lower().rstrip("."), []))

    def active_keys(self, domain: str) -> tuple[DkimKey, ...]:
        domain = domain.lower().rstrip(".")
        active = self._active.get(domain)
        if active is None:
            newest: dict[DkimAlgorithm, DkimKey] = {}
            for key in self._keys.get(domain, []):
                newest[key.algorithm] = key
            # RSA first: the signature every receiver understands comes first in the header.
            active = tuple(sorted(newest.values(), key=lambda k: k.algorithm != "rsa-sha256"))
            self._active[domain] = active
        return active

    @property
    def domains(self) -> frozenset[str]:
        return frozenset(self._keys)

    def header_list(self, headers: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
        """The h= list for a message: each configured field once more than it occurs."""
        counts: dict[bytes, int] = {}
        for name, _value in headers:
            low = name.lower()
            counts[low] = counts.get(low, 0) + 1
        out: list[bytes] = []
        for field_name in self._signed:
            bname = field_name.encode("ascii")
            out.extend([bname] * (counts.get(bname, 0) + 1))
        for field_name in self._if_present:
            bname = field_name.encode("ascii")
            if counts.get(bname):
                out.extend([bname] * (counts[bname] + 1))
        return out

    def signature_headers(self, message: bytes, domain: str) -> list[bytes]:
        """DKIM-Signature header fields (with line ending) for `message`, one per active key.

        Raises SigningKeyError when `domain` has no usable key, DkimMessageError for an
        unparseable header section.
        """
        keys = self.active_keys(domain)
        if not keys:
            raise SigningKeyError(f"no DKIM key for {domain}")
        # Match the message's own line ending so the prepended fields do not mix the two.
        first_nl = message.find(b"\n")
        linesep = b"\n" if first_nl > 0 and message[first_nl - 1] != 0x0D else b"\r\n"
        try:
            headers, body = split_message(message)
        except dkim.MessageFormatError as exc:
            raise DkimMessageError(f"cannot parse the header section: {exc}") from exc
        if not any(name.lower() == b"from" for name, _ in headers):
            raise DkimMessageError("no From header field to sign")
        include = self.header_list(headers)
        # Body and headers are canonicalised once, shared by every signature.
        body_hash = self._body_hash(body)
        cheaders = relaxed_headers(headers)
        timestamp = str(int(self._clock())).encode("ascii")
        return [
            self._sign_one(key, cheaders, include, body_hash, timestamp, linesep) for key in keys
        ]

    def _body_hash(self, body: bytes) -> bytes:
        # Canonicalising a 10 KB body costs more than signing it; a campaign signs the same
        # body for every recipient, so bh= is remembered per body (blake2b: ~10 µs).
        key = hashlib.blake2b(body, digest_size=20).digest()
        cached = self._body_hashes.get(key)
        if cached is None:
            cached = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
            self._body_hashes.put(key, cached)
        return cached

    def sign(self, message: bytes, domain: str) -> bytes:
        """`message` with its DKIM-Signature header fields prepended."""
        return b"".join(self.signature_headers(message, domain)) + message

    def _sign_one(
        self,
        key: DkimKey,
        cheaders: list[tuple[bytes, bytes]],
        include: list[bytes],
        body_hash: bytes,
        timestamp: bytes,
        linesep: bytes,
    ) -> bytes:
        tags = [
            b"v=1",
            b"a=" + key.algorithm.value.encode("ascii"),
            b"c=relaxed/relaxed",
            b"d=" + key.domain.encode("ascii"),
            b"s=" + key.selector.encode("ascii"),
            b"t=" + timestamp,
            b"h=" + b":".join(include),
            b"bh=" + body_hash,
        ]
        prefix = _fold_tags(tags, linesep) + b";" + linesep + b" b="
        hasher = hashlib.sha256()
        hash_headers(hasher, cheaders, include, prefix + linesep)
        digest = hasher.digest()
        try:
            if isinstance(key.private_key, rsa.RSAPrivateKey):
                signature = key.private_key.sign(
                    digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())
                )
            else:
                # RFC 8463 3: Ed25519 (pure) over the SHA-256 digest of the header hash input.
                signature = key.private_key.sign(digest)
        except Exception as exc:  # an OpenSSL failure must not turn into an unsigned relay
            raise SigningKeyError(f"signing with {key.dns_name} failed: {exc}") from exc
        b64 = base64.b64encode(signature)
        folded = (linesep + b" ").join(b64[i : i + 72] for i in range(0, len(b64), 72))
        return b"DKIM-Signature:" + prefix + folded + linesep


def _fold_tags(tags: Sequence[bytes], linesep: bytes) -> bytes:
    """The tag list as a header value (leading space included), "; "-separated and folded before
    column 76. The long h= list may wrap after a colon (FWS is allowed there, RFC 6376 3.5)."""
    out = bytearray()
    col = len(b"DKIM-Signature:")
    for i, tag in enumerate(tags):
        end = b";" if i < len(tags) - 1 else b""
        if tag.startswith(b"h="):
            atoms = tag.split(b":")
            words = [atom + b":" for atom in atoms[:-1]] + [atoms[-1] + end]
        else:
            words = [tag + end]
        for j, word in enumerate(words):
            lead = b" " if j == 0 else b""
            if col + len(lead) + len(word) > _FOLD:
                out += linesep + b" "
                col, lead = 1, b""
            out += lead + word
            col += len(lead) + len(word)
    return bytes(out)


# --- checking what is published -----------------------------------------------------------------


class KeyPublicationStatus(enum.StrEnum):
    MATCH = "match"
    MISSING = "missing"
    DIFFERENT = "different"
    REVOKED = "revoked"
    MALFORMED = "malformed"
    TEMPERROR = "temperror"


@dataclass(frozen=True, slots=True)
class KeyPublication:
    """Is our public key at `name`? If not, `expected` is the TXT record to publish there."""

    status: KeyPublicationStatus
    name: str
    expected: str
    published: tuple[str, ...]
    detail: str

    @property
    def ok(self) -> bool:
        return self.status is KeyPublicationStatus.MATCH


def _same_public_key(private: PrivateKey, kind: bytes, p: bytes) -> bool:
    try:
        der = base64.b64decode(b"".join(p.split()), validate=True)
    except binascii.Error:
        return False
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return kind == b"ed25519" and der == _public_bytes(private)
    if kind != b"rsa":
        return False
    try:
        published = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        try:  # some publish the bare PKCS#1 RSAPublicKey; verifiers accept both
            published = serialization.load_der_public_key(_pkcs1_to_spki(der))
        except (ValueError, UnsupportedAlgorithm):
            return False
    return (
        isinstance(published, rsa.RSAPublicKey)
        and published.public_numbers() == private.public_key().public_numbers()
    )


def _pkcs1_to_spki(der: bytes) -> bytes:
    # AlgorithmIdentifier rsaEncryption + BIT STRING wrapping the PKCS#1 key.
    alg = bytes.fromhex("300d06092a864886f70d0101010500")
    bitstring = b"\x03" + _der_len(len(der) + 1) + b"\x00" + der
    body = alg + bitstring
    return b"\x30" + _der_len(len(body)) + body


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


async def published_key_matches(
    cache: DnsCache, selector: str, domain: str, key: DkimKey | PrivateKey
) -> KeyPublication:
    """Compare the TXT record at <selector>._domainkey.<domain> with our public key."""
    private = key.private_key if isinstance(key, DkimKey) else key
    name = f"{selector.lower()}._domainkey.{domain.lower().rstrip('.')}"
    expected = public_key_record(private)
    try:
        texts = await cache.txt(name)
    except DnsTempError as exc:
        return KeyPublication(KeyPublicationStatus.TEMPERROR, name, expected, (), str(exc))
    except DnsNameError as exc:
        return KeyPublication(KeyPublicationStatus.MALFORMED, name, expected, (), str(exc))
    published = tuple(texts)
    if not texts:
        return KeyPublication(
            KeyPublicationStatus.MISSING, name, expected, published, f"no TXT record at {name}"
        )
    problems: list[str] = []
    revoked = False
    for text in texts:
        try:
            tags = dkim.util.parse_tag_value(text.encode("utf-8", "replace"))
        except dkim.util.InvalidTagValueList as exc:
            problems.append(f"unparseable record: {exc}")
            continue
        if tags.get(b"v", b"DKIM1") != b"DKIM1" or b"p" not in tags:
            problems.append("not a DKIM key record (v=DKIM1 with p= expected)")
            continue
        if not tags[b"p"].strip():
            revoked = True
            continue
        if _same_public_key(private, tags.get(b"k", b"rsa").strip().lower(), tags[b"p"]):
            return KeyPublication(
                KeyPublicationStatus.MATCH, name, expected, published, "published key matches"
            )
        problems.append("a different public key is published")
    if revoked and not problems:
        return KeyPublication(
            KeyPublicationStatus.REVOKED, name, expected, published, f"key at {name} is revoked"
        )
    status = (
        KeyPublicationStatus.DIFFERENT
        if "a different public key is published" in problems
        else KeyPublicationStatus.MALFORMED
    )
    return KeyPublication(status, name, expected, published, "; ".join(problems))


# --- verifying signatures already on a message --------------------------------------------------


class DkimVerifyStatus(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOKEY = "nokey"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class DkimVerification:
    index: int
    domain: str | None
    selector: str | None
    algorithm: str | None
    status: DkimVerifyStatus
    detail: str


# Signatures verified per message at most: each costs a DNS query and an RSA operation, and
# the sender chooses how many there are (the opt-out mailbox takes mail from anyone).
MAX_VERIFIED = 8


async def verify_existing(
    cache: DnsCache, message: bytes, *, domains: Callable[[str], bool] | None = None
) -> list[DkimVerification]:
    """Verify the DKIM-Signatures on `message` (topmost first, at most MAX_VERIFIED; with
    `domains`, only those whose d= it accepts), keys read through the cache.

    The keys are fetched first (async, cached); dkimpy then verifies each signature with a
    dnsfunc that only reads what was fetched, so its own resolver is never used.
    """
    try:
        headers, _body = rfc822_parse(message)
    except dkim.MessageFormatError as exc:
        raise DkimMessageError(f"cannot parse the header section: {exc}") from exc
    sigs = [value for name, value in headers if name.lower() == b"dkim-signature"]
    results: list[DkimVerification] = []
    for index, value in enumerate(sigs):
        if len(results) == MAX_VERIFIED:
            break
        if domains is not None and not domains(_signing_domain(value)):
            continue
        results.append(await _verify_one(cache, message, index, value))
    return results


def _signing_domain(value: bytes) -> str:
    found = re.search(rb"(?:^|;)\s*d\s*=\s*([^;\s]+)", value)
    return found.group(1).decode("ascii", "replace").lower() if found else ""


async def _verify_one(
    cache: DnsCache, message: bytes, index: int, value: bytes
) -> DkimVerification:
    try:
        tags = dkim.util.parse_tag_value(b" ".join(value.split()))
    except dkim.util.InvalidTagValueList as exc:
        return DkimVerification(
            index, None, None, None, DkimVerifyStatus.PERMERROR, f"bad tag list: {exc}"
        )
    domain = tags.get(b"d", b"").decode("ascii", "replace").lower() or None
    selector = tags.get(b"s", b"").decode("ascii", "replace").lower() or None
    algorithm = tags.get(b"a", b"").decode("ascii", "replace") or None

    def result(status: DkimVerifyStatus, detail: str) -> DkimVerification:
        return DkimVerification(index, domain, selector, algorithm, status, detail)

    if domain is None or selector is None:
        return result(DkimVerifyStatus.PERMERROR, "signature lacks d= or s=")
    name = f"{selector}._domainkey.{domain}"
    try:
        texts = await cache.txt(name)
    except DnsTempError as exc:
        return result(DkimVerifyStatus.TEMPERROR, str(exc))
    except DnsNameError as exc:
        return result(DkimVerifyStatus.PERMERROR, str(exc))
    records = [t for t in texts if "p=" in t]
    if not records:
        return result(DkimVerifyStatus.NOKEY, f"no key record at {name}")
    record = records[0].encode("utf-8", "replace")
    try:
        pub = dkim.util.parse_tag_value(record)
    except dkim.util.InvalidTagValueList as exc:
        return result(DkimVerifyStatus.PERMERROR, f"bad key record at {name}: {exc}")
    if not pub.get(b"p", b"").strip():
        return result(DkimVerifyStatus.PERMERROR, f"key at {name} is revoked (empty p=)")
    try:
        dkim.evaluate_pk(name, record)
    except dkim.DKIMException as exc:
        return result(DkimVerifyStatus.PERMERROR, f"unusable key at {name}: {exc}")

    def dnsfunc(_qname: bytes, timeout: float = 5) -> bytes:
        return record

    verifier = dkim.DKIM(message, minkey=_MIN_RSA_BITS)
    try:
        ok = verifier.verify(idx=index, dnsfunc=dnsfunc)
    except dkim.ValidationError as exc:
        if "body hash mismatch" in str(exc):
            return result(DkimVerifyStatus.FAIL, "body hash mismatch")
        return result(DkimVerifyStatus.PERMERROR, str(exc))
    except dkim.DKIMException as exc:
        return result(DkimVerifyStatus.PERMERROR, str(exc))
    except Exception as exc:
        # dkimpy reads the client's signature with plain library calls that raise their own
        # errors on hostile values (binascii.Error for a bh= of the right length that is not
        # base64: dkimpy 1.1.8 checks bh= with b='s pattern). A signature that cannot be
        # processed is a permanent error (RFC 6376 6.1), not our failure.
        return result(DkimVerifyStatus.PERMERROR,
                      f"signature cannot be processed: {type(exc).__name__}: {exc}")
    if ok:
        return result(DkimVerifyStatus.PASS, "signature verified")
    return result(DkimVerifyStatus.FAIL, "signature does not verify")
