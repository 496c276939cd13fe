"""Signing cost of a 10 KB message, dkimpy as shipped vs DkimSigner: python -m <this module>."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from gateway.auth.dkim_sign import SIGNED_HEADERS, DkimSigner, make_key


def message_10k() -> bytes:
    head = (
        b"From: News <news@example.jp>\r\nTo: user@example.test\r\nSubject: bench\r\n"
        b"Date: Sun, 22 Nov 2026 10:00:00 +0900\r\nMessage-ID: <bench@example.jp>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
        b"List-Unsubscribe: <https://example.jp/u/x>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n"
    )
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
    return head + line * (10240 // len(line))


def per_call_ms(fn: Callable[[], object], n: int) -> float:
    rounds = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - t) / n * 1000)
    return statistics.median(rounds)


def main() -> None:
    msg = message_10k()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    rsa_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    import base64

    ed_seed = base64.b64encode(
        ed_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    )
    include = [h.encode() for h in SIGNED_HEADERS]
    canon = (b"relaxed", b"relaxed")

    def dkimpy_rsa() -> object:
        return dkim.sign(
            msg, b"s", b"example.jp", rsa_pem, canonicalize=canon, include_headers=include
        )

    def dkimpy_ed() -> object:
        return dkim.sign(
            msg,
            b"e",
            b"example.jp",
            ed_seed,
            canonicalize=canon,
            include_headers=include,
            signature_algorithm=b"ed25519-sha256",
        )

    rk = make_key(rsa_key, selector="s", domain="example.jp")
    ek = make_key(ed_key, selector="e", domain="example.jp")
    ours_rsa = DkimSigner([rk])
    ours_ed = DkimSigner([ek])
    ours_dual = DkimSigner([rk, ek])
    print(f"message: {len(msg)} bytes")
    print(f"dkimpy RSA-2048 : {per_call_ms(dkimpy_rsa, 50):7.3f} ms/signature")
    print(f"ours   RSA-2048 : {per_call_ms(lambda: ours_rsa.sign(msg, 'example.jp'), 300):7.3f} ms")
    print(f"dkimpy Ed25519  : {per_call_ms(dkimpy_ed, 300):7.3f} ms/signature")
    print(f"ours   Ed25519  : {per_call_ms(lambda: ours_ed.sign(msg, 'example.jp'), 1000):7.3f} ms")
    print(
        f"ours   dual     : {per_call_ms(lambda: ours_dual.sign(msg, 'example.jp'), 300):7.3f} ms"
    )


if __name__ == "__main__":
    main()
