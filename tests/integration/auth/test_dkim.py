"""DKIM signing verified by independent verifiers over the loopback knotd; key checks; verification."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.auth.dkim_sign import (
    DkimAlgorithm,
    DkimKey,
    DkimMessageError,
    DkimSigner,
    DkimVerifyStatus,
    KeyPublicationStatus,
    SigningKeyError,
    generate_key,
    load_key,
    make_key,
    public_key_record,
    published_key_matches,
    verify_existing,
)
from tests.dns.server import KnotServer, txt_rdata
from tests.support.verifiers import OpenDkim, dkimpy_verify_all

from .conftest import CacheFactory

pytestmark = pytest.mark.integration

DOMAIN = "example.jp"
MESSAGE = (
    "From: =?UTF-8?B?5qCq5byP5Lya56S+44K144Oz44OX44Or?= <news@example.jp>\r\n"
    "To: user@example.test\r\n"
    "Subject: =?UTF-8?B?44K744O844Or44Gu44GK55+l44KJ44Gb?=\r\n"
    "Date: Sun, 22 Nov 2026 10:00:00 +0900\r\n"
    "Message-ID: <campaign-1@example.jp>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "List-Unsubscribe: <https://example.jp/u/abc>\r\n"
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    "Feedback-ID: c1:news:example.jp\r\n"
    "\r\n"
    "本日のお知らせです。\r\n"
    "配信停止をご希望の方は https://example.jp/u/abc からお手続きください。\r\n"
).encode()


@dataclass
class Keys:
    rsa: DkimKey
    ed: DkimKey


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """Keys generated for this run, written with generate_key() and read back with load_key()."""
    tmp = tmp_path_factory.mktemp("keys")
    generate_key(tmp / "rsa.pem", "rsa-sha256")
    generate_key(tmp / "ed.pem", "ed25519-sha256")
    return Keys(
        rsa=load_key(tmp / "rsa.pem", selector="mk2026", domain=DOMAIN, algorithm="rsa-sha256"),
        ed=load_key(tmp / "ed.pem", selector="mk2026e", domain=DOMAIN),
    )


@pytest.fixture
def published(dns_server: KnotServer, keys: Keys) -> KnotServer:
    """The per-test knotd with both public keys in _domainkey.example.jp (from the template)."""
    dns_server.write_zone_template(
        "_domainkey.example.jp",
        {
            "rsa_selector": keys.rsa.selector,
            "rsa_record": txt_rdata(public_key_record(keys.rsa)),
            "ed_selector": keys.ed.selector,
            "ed_record": txt_rdata(public_key_record(keys.ed)),
        },
    )
    return dns_server


@pytest.fixture
def opendkim(tmp_path: Path) -> Iterator[OpenDkim]:
    binary = shutil.which("opendkim") or "/usr/sbin/opendkim"
    if not Path(binary).exists():
        pytest.fail("opendkim not installed: run scripts/install-system-deps.sh")
    yield OpenDkim(binary, tmp_path)




def test_rsa_signature_verifies_independently(
    published: KnotServer, keys: Keys, opendkim: OpenDkim
) -> None:
    signed = DkimSigner([keys.rsa]).sign(MESSAGE, DOMAIN)
    assert signed.count(b"DKIM-Signature:") == 1
    assert dkimpy_verify_all(signed, published) == [True]
    ar = opendkim.verify(signed, published)
    assert "dkim=pass" in ar and "header.s=mk2026 " in ar and "rsa-sha256" in ar


@pytest.mark.parametrize("body_cache", [512, 0], ids=["body-cache", "no-body-cache"])
def test_body_hash_cache_signs_as_without_it(
    published: KnotServer, keys: Keys, opendkim: OpenDkim, body_cache: int
) -> None:
    signer = DkimSigner([keys.rsa], body_cache=body_cache)
    first = signer.sign(MESSAGE, DOMAIN)
    same_body = signer.sign(MESSAGE.replace(b"To: user@", b"To: other@", 1), DOMAIN)
    new_body = signer.sign(MESSAGE + b"P.S. one more line\r\n", DOMAIN)
    for signed in (first, same_body, new_body):
        assert dkimpy_verify_all(signed, published) == [True]
    assert "dkim=pass" in opendkim.verify(new_body, published)

    def body_hash(signed: bytes) -> bytes:
        return signed.split(b"bh=", 1)[1].split(b";", 1)[0]

    assert body_hash(first) == body_hash(same_body) != body_hash(new_body)


def test_ed25519_signature_verifies_independently(
    published: KnotServer, keys: Keys, opendkim: OpenDkim
) -> None:
    signed = DkimSigner([keys.ed]).sign(MESSAGE, DOMAIN)
    assert b"a=ed25519-sha256" in signed
    assert dkimpy_verify_all(signed, published) == [True]
    ar = opendkim.verify(signed, published)
    assert "dkim=pass" in ar and "header.a=ed25519-sha256" in ar


def test_dual_signing_prepends_two_signatures(
    published: KnotServer, keys: Keys, opendkim: OpenDkim
) -> None:
    signed = DkimSigner([keys.rsa, keys.ed]).sign(MESSAGE, DOMAIN)
    assert signed.endswith(MESSAGE)
    head = signed[: -len(MESSAGE)]
    assert head.startswith(b"DKIM-Signature:") and head.count(b"DKIM-Signature:") == 2
    assert b"a=rsa-sha256" in head.split(b"DKIM-Signature:")[1]  # RSA first
    assert dkimpy_verify_all(signed, published) == [True, True]
    ar = opendkim.verify(signed, published)
    assert ar.count("dkim=pass") == 2


def test_tampering_is_detected_by_the_independent_verifiers(
    published: KnotServer, keys: Keys, opendkim: OpenDkim
) -> None:
    signed = DkimSigner([keys.rsa]).sign(MESSAGE, DOMAIN)
    tampered = signed.replace("本日".encode(), "明日".encode())
    assert dkimpy_verify_all(tampered, published) == [False]
    assert "dkim=fail" in opendkim.verify(tampered, published)


def test_h_oversigns_from_and_list_unsubscribe(keys: Keys) -> None:
    signed = DkimSigner([keys.rsa]).sign(MESSAGE, DOMAIN)
    sig = signed.split(b"\r\nFrom:")[0]
    tags = dkim.util.parse_tag_value(b" ".join(sig.split(b":", 1)[1].split()))
    h = [x.strip() for x in tags[b"h"].split(b":")]
    assert h.count(b"from") == 2
    assert h.count(b"list-unsubscribe") == 2
    assert h.count(b"list-unsubscribe-post") == 2
    assert h.count(b"feedback-id") == 2  # present, so signed (and over-signed)
    assert h.count(b"cc") == 1 and h.count(b"reply-to") == 1  # absent: signed as null
    assert tags[b"c"] == b"relaxed/relaxed"
    assert b"l" not in tags


def test_added_from_or_list_unsubscribe_breaks_the_signature(
    published: KnotServer, keys: Keys
) -> None:
    signed = DkimSigner([keys.rsa]).sign(MESSAGE, DOMAIN)
    for extra in (
        b"From: attacker@example.test\r\n",
        b"List-Unsubscribe: <https://x.test/>\r\n",
        b"Reply-To: attacker@example.test\r\n",
    ):
        # Added at the top: verifiers pick instances bottom-up, so without over-signing the
        # original (bottom) copy would still be the one checked and the signature would pass.
        injected = extra + signed
        assert dkimpy_verify_all(injected, published) == [False], extra
    # An unsigned header field may be added (e.g. Received): still valid.
    end = signed.index(b"\r\n\r\n") + 2
    benign = signed[:end] + b"X-Mailer: relay\r\n" + signed[end:]
    assert dkimpy_verify_all(benign, published) == [True]


def test_relaxed_canonicalisation_survives_refolding(
    published: KnotServer, keys: Keys, opendkim: OpenDkim
) -> None:
    signed = DkimSigner([keys.rsa, keys.ed]).sign(MESSAGE, DOMAIN)
    refolded = signed.replace(b"Subject: =?UTF-8?B?", b"Subject:\r\n  \t=?UTF-8?B?").replace(
        b"To: user@example.test", b"To:    user@example.test   "
    )
    refolded = refolded.replace("お知らせです。".encode(), "お知らせです。   ".encode())
    assert refolded != signed
    assert dkimpy_verify_all(refolded, published) == [True, True]
    assert opendkim.verify(refolded, published).count("dkim=pass") == 2


def test_lf_line_endings_are_kept(published: KnotServer, keys: Keys) -> None:
    lf = MESSAGE.replace(b"\r\n", b"\n")
    signed = DkimSigner([keys.rsa]).sign(lf, DOMAIN)
    assert b"\r" not in signed
    assert dkimpy_verify_all(signed, published) == [True]


async def test_rotated_selector(
    dns_server: KnotServer, keys: Keys, make_cache: CacheFactory, tmp_path: Path
) -> None:
    generate_key(tmp_path / "new.pem")
    new = load_key(tmp_path / "new.pem", selector="mk2027", domain=DOMAIN)
    dns_server.write_zone(
        "_domainkey.example.jp",
        f"mk2026 IN TXT {txt_rdata(public_key_record(keys.rsa))}\n"
        f"mk2027 IN TXT {txt_rdata(public_key_record(new))}\n",
    )
    signer = DkimSigner([keys.rsa, new])  # config order: the newest last
    assert [k.selector for k in signer.active_keys(DOMAIN)] == ["mk2027"]
    signed = signer.sign(MESSAGE, DOMAIN)
    assert b"s=mk2027;" in signed and b"s=mk2026;" not in signed
    assert dkimpy_verify_all(signed, dns_server) == [True]

    # Before switching, the gateway can check that the new selector is really published.
    cache = make_cache(dns_server)
    assert (await published_key_matches(cache, "mk2027", DOMAIN, new)).ok

    signer.set_active(DOMAIN, ["mk2026"])  # roll back
    assert b"s=mk2026;" in signer.sign(MESSAGE, DOMAIN)
    with pytest.raises(SigningKeyError):
        signer.set_active(DOMAIN, ["nope"])


async def test_published_key_states(
    published: KnotServer, keys: Keys, make_cache: CacheFactory, tmp_path: Path
) -> None:
    cache = make_cache(published)
    match = await published_key_matches(cache, "mk2026", DOMAIN, keys.rsa)
    assert match.status is KeyPublicationStatus.MATCH
    assert (await published_key_matches(cache, "mk2026e", DOMAIN, keys.ed)).ok

    missing = await published_key_matches(cache, "unpublished", DOMAIN, keys.rsa)
    assert missing.status is KeyPublicationStatus.MISSING
    assert missing.name == "unpublished._domainkey.example.jp"
    assert missing.expected == public_key_record(keys.rsa)  # what to publish

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    different = await published_key_matches(cache, "mk2026", DOMAIN, other)
    assert different.status is KeyPublicationStatus.DIFFERENT
    assert different.expected == public_key_record(other)
    # An Ed25519 key against the RSA record is different too.
    wrong_type = await published_key_matches(cache, "mk2026", DOMAIN, keys.ed)
    assert wrong_type.status is KeyPublicationStatus.DIFFERENT

    revoked = await published_key_matches(cache, "revoked", DOMAIN, keys.rsa)
    assert revoked.status is KeyPublicationStatus.REVOKED

    published.stop()
    temp = await published_key_matches(make_cache(published), "mk2026", DOMAIN, keys.rsa)
    assert temp.status is KeyPublicationStatus.TEMPERROR


async def test_verify_existing_per_signature(
    published: KnotServer, keys: Keys, make_cache: CacheFactory
) -> None:
    stranger = make_key(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        selector="unpublished",
        domain=DOMAIN,
    )
    revoked = make_key(keys.rsa.private_key, selector="revoked", domain=DOMAIN)
    message = DkimSigner([keys.ed]).sign(MESSAGE, DOMAIN)
    message = DkimSigner([stranger]).sign(message, DOMAIN)
    message = DkimSigner([revoked]).sign(message, DOMAIN)
    message = DkimSigner([keys.rsa]).sign(message, DOMAIN)
    cache = make_cache(published)
    results = await verify_existing(cache, message)
    assert [(r.selector, r.status) for r in results] == [
        ("mk2026", DkimVerifyStatus.PASS),
        ("revoked", DkimVerifyStatus.PERMERROR),
        ("unpublished", DkimVerifyStatus.NOKEY),
        ("mk2026e", DkimVerifyStatus.PASS),
    ]

    with pytest.raises(DkimMessageError, match="continuation line"):
        await verify_existing(cache, b" folded\r\n" + message)

    tampered = message.replace("本日".encode(), "明日".encode())
    statuses = [r.status for r in await verify_existing(cache, tampered)]
    assert statuses[0] is DkimVerifyStatus.FAIL and statuses[3] is DkimVerifyStatus.FAIL

    published.stop()
    cold = await verify_existing(make_cache(published), message)
    assert {r.status for r in cold} == {DkimVerifyStatus.TEMPERROR}
    warm = await verify_existing(cache, message)  # keys cached: still verifiable
    assert warm[0].status is DkimVerifyStatus.PASS


def test_key_errors(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="cannot read"):
        load_key(tmp_path / "absent.pem", selector="s", domain=DOMAIN)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SigningKeyError, match="cannot parse"):
        load_key(garbage, selector="s", domain=DOMAIN)
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SigningKeyError, match="RSA or Ed25519"):
        load_key(ec_key, selector="s", domain=DOMAIN)
    # cryptography will not generate a key this small; openssl still does.
    small = tmp_path / "small.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(small), "768"], check=True, capture_output=True
    )
    with pytest.raises(SigningKeyError, match="1024"):
        load_key(small, selector="s", domain=DOMAIN)
    generate_key(tmp_path / "ed.pem", "ed25519-sha256")
    with pytest.raises(SigningKeyError, match="configured as rsa-sha256"):
        load_key(tmp_path / "ed.pem", selector="s", domain=DOMAIN, algorithm="rsa-sha256")


def test_no_key_for_domain_or_unparseable_message(keys: Keys) -> None:
    signer = DkimSigner([keys.rsa])
    with pytest.raises(SigningKeyError):
        signer.sign(MESSAGE, "example.test")
    with pytest.raises(DkimMessageError):
        signer.sign(b"not a header line\r\n\r\nbody", DOMAIN)
    with pytest.raises(DkimMessageError):
        signer.sign(b"To: a@example.test\r\n\r\nno From", DOMAIN)
    # Found by the fuzzer: dkimpy's parser raised IndexError here (the gateway answered 451).
    for leading_fold in (b" A\r\nFrom: a@example.test\r\n\r\nbody", b"\tx\nFrom: a@b\n\nbody"):
        with pytest.raises(DkimMessageError, match="continuation line"):
            signer.sign(leading_fold, DOMAIN)


def test_generate_key_is_private_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    record = generate_key(path, DkimAlgorithm.ED25519_SHA256)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert record.startswith("v=DKIM1; k=ed25519; p=")
    key = load_key(path, selector="s", domain=DOMAIN)
    assert public_key_record(key) == record
    with pytest.raises(FileExistsError):
        generate_key(path)
    rsa_record = generate_key(tmp_path / "r.pem")
    assert rsa_record.startswith("v=DKIM1; k=rsa; p=MIIBIjAN")  # SPKI of a 2048-bit key


def test_dkimpy_ed25519_seed_format_is_accepted(tmp_path: Path) -> None:
    import base64

    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    path = tmp_path / "dkimpy.key"
    path.write_bytes(base64.b64encode(seed) + b"\n")
    loaded = load_key(path, selector="s", domain=DOMAIN)
    assert loaded.algorithm is DkimAlgorithm.ED25519_SHA256
    assert public_key_record(loaded) == public_key_record(key)


def test_signing_is_much_faster_than_dkimpy(keys: Keys) -> None:
    """Loose guard that the OpenSSL path is in use (real figures: bench_signing.py)."""
    import time

    pem = keys.rsa.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    signer = DkimSigner([keys.rsa])

    def best(fn: object, n: int = 5) -> float:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - t)
        return min(times)

    ours = best(lambda: signer.sign(MESSAGE, DOMAIN))
    theirs = best(
        lambda: dkim.sign(MESSAGE, b"s", b"example.jp", pem, canonicalize=(b"relaxed", b"relaxed"))
    )
    assert ours * 2 < theirs, (ours, theirs)
