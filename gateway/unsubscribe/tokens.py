"""Unsubscribe tokens: AES-GCM-SIV sealed (sender id, suppression key), keys from a rotatable file.

Token layout (base64url, no padding)::

    version (1 byte = 1) | key id (2 bytes) | nonce (12 bytes) | ciphertext + tag (16 bytes)

The plaintext is ``sender_id NUL address_key``; the 3-byte header is the AEAD's associated
data, so the key id cannot be swapped. AES-GCM-SIV both authenticates (a flipped bit never
decodes) and hides the address; it stays safe even if a random nonce repeats, which matters
because a busy sender mints one token per message. A 30-character address gives ~80 chars.

Secret file: one key per line, ``KEYID:BASE64URL-KEY`` (key id 4 hex digits, key 32 random
bytes); ``#`` comments and blank lines are ignored. The FIRST key seals new tokens, every
key opens them, so rotation is: prepend a new line, keep the old ones until mail carrying
their tokens no longer matters (months), then drop them.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

__all__ = ["InvalidToken", "SecretFileError", "TokenCodec", "generate_secret_file",
           "rotate_secret_file"]

VERSION = 1
_HEADER = 3  # version + 2-byte key id
_NONCE = 12
_TAG = 16
MAX_TOKEN_CHARS = 700  # 64-octet local part + 255-octet domain + sender id, with room


class InvalidToken(ValueError):
    """A token that does not open: malformed, tampered with, or sealed with an unknown key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SecretFileError(ValueError):
    """The unsubscribe secret file is missing, unreadable or malformed."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenCodec:
    """Seals and opens unsubscribe tokens; build it once (it caches the cipher objects)."""

    def __init__(self, keys: Iterable[tuple[bytes, bytes]]) -> None:
        """`keys`: (2-byte key id, 32-byte key) pairs, the current key first."""
        self._ciphers: dict[bytes, AESGCMSIV] = {}
        order: list[bytes] = []
        for kid, key in keys:
            if len(kid) != 2:
                raise SecretFileError("a key id is 2 bytes (4 hex digits)")
            if len(key) != 32:
                raise SecretFileError("a key is 32 bytes (256 bits)")
            if kid in self._ciphers:
                raise SecretFileError(f"key id {kid.hex()} appears twice")
            self._ciphers[kid] = AESGCMSIV(key)
            order.append(kid)
        if not order:
            raise SecretFileError("no key")
        self._header = bytes([VERSION]) + order[0]
        self._current = self._ciphers[order[0]]
        self.key_ids = tuple(k.hex() for k in order)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TokenCodec:
        try:
            text = Path(path).read_text(encoding="ascii")
        except FileNotFoundError:
            raise SecretFileError(f"unsubscribe secret file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretFileError(f"cannot read unsubscribe secret file {path}: {exc}") from None
        return cls(parse_secret(text, str(path)))

    def encode(self, sender_id: str, address_key: str) -> str:
        """A fresh token for (sender, suppression key); random nonce, so not deterministic."""
        nonce = os.urandom(_NONCE)
        plain = f"{sender_id}\x00{address_key}".encode()
        sealed = self._current.encrypt(nonce, plain, self._header)
        return _b64encode(self._header + nonce + sealed)

    def decode(self, token: str) -> tuple[str, str]:
        """(sender_id, address_key) of a token, or raise InvalidToken(reason)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("malformed: bad length")
        try:
            raw = _b64decode(token)
        except (binascii.Error, ValueError):
            raise InvalidToken("malformed: not base64url") from None
        # Decoders skip unknown characters and ignore the spare low bits of the last
        # character; only the canonical spelling of the bytes is accepted, so every
        # changed character is a different (and then unauthentic) token, never the same one.
        if _b64encode(raw) != token:
            raise InvalidToken("malformed: not canonical base64url")
        if len(raw) < _HEADER + _NONCE + _TAG + 3:
            raise InvalidToken("malformed: too short")
        if raw[0] != VERSION:
            raise InvalidToken("malformed: unknown version")
        header = raw[:_HEADER]
        cipher = self._ciphers.get(header[1:])
        if cipher is None:
            raise InvalidToken("unknown key")
        nonce = raw[_HEADER:_HEADER + _NONCE]
        try:
            plain = cipher.decrypt(nonce, raw[_HEADER + _NONCE:], header)
        except InvalidTag:
            raise InvalidToken("tampered: authentication failed") from None
        sender_id, sep, address_key = plain.decode("utf-8", "replace").partition("\x00")
        if not sep or not sender_id or not address_key:
            raise InvalidToken("malformed: bad payload")
        return sender_id, address_key


def parse_secret(text: str, where: str = "secret") -> list[tuple[bytes, bytes]]:
    keys: list[tuple[bytes, bytes]] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kid_hex, sep, key_text = line.partition(":")
        try:
            if not sep or len(kid_hex) != 4:
                raise ValueError("expected KEYID:KEY")
            kid = bytes.fromhex(kid_hex)
            key = _b64decode(key_text.strip())
        except (ValueError, binascii.Error) as exc:
            raise SecretFileError(f"{where} line {number}: {exc}") from None
        if len(key) != 32:
            raise SecretFileError(f"{where} line {number}: key is {len(key)} bytes, expected 32")
        keys.append((kid, key))
    if not keys:
        raise SecretFileError(f"{where}: no key")
    return keys


def _key_line(existing: Iterable[bytes] = ()) -> str:
    taken = set(existing)
    kid = secrets.token_bytes(2)
    while kid in taken:
        kid = secrets.token_bytes(2)
    return f"{kid.hex()}:{_b64encode(secrets.token_bytes(32))}\n"


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


_HEADER_COMMENT = (
    "# tokuden gateway unsubscribe token keys: the first seals new tokens, all open them.\n"
)


def generate_secret_file(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a new key file with one random key (mode 0600); refuses to overwrite by default."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; rotate it instead of overwriting")
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_private(target, _HEADER_COMMENT + _key_line())
    return target


def rotate_secret_file(path: str | os.PathLike[str], *, keep: int = 3) -> Path:
    """Prepend a new current key and keep at most `keep` older ones (still opening tokens)."""
    target = Path(path)
    old = parse_secret(target.read_text(encoding="ascii"), str(target))
    lines = [f"{kid.hex()}:{_b64encode(key)}\n" for kid, key in old[:keep]]
    _write_private(target, _HEADER_COMMENT + _key_line(k for k, _ in old) + "".join(lines))
    return target
