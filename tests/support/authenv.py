"""The authentication world of the tests: DKIM keys made at run time, published on a real knotd.

One process-wide DNS server serves the stock zones (tests/dns/zones) plus the DKIM
keys generated here, so every gateway a test starts can check SPF, DKIM and DMARC
against 127.0.0.1 and never asks the internet. Tests that stop or edit DNS start
their own server (tests/dns/fixtures.py: dns_server).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gateway.auth.dkim_sign import generate_key
from tests.dns.server import KnotServer, txt_rdata

EGRESS_IP = "192.0.2.10"  # authorised by bounce.example.jp's SPF in tests/dns/zones/example.jp.zone
RSA_SELECTOR = "mk2026"
ED_SELECTOR = "ed2026"


@dataclass(frozen=True)
class AuthEnv:
    dns: KnotServer
    rsa_key: Path
    ed_key: Path
    rsa_record: str
    ed_record: str

    @property
    def nameserver(self) -> str:
        return self.dns.nameserver

    def dkim_config(self) -> list[dict[str, str]]:
        return [
            {"selector": RSA_SELECTOR, "key": str(self.rsa_key), "algorithm": "rsa-sha256"},
            {"selector": ED_SELECTOR, "key": str(self.ed_key), "algorithm": "ed25519-sha256"},
        ]


def make_keys(directory: Path) -> tuple[Path, Path, str, str]:
    rsa_key, ed_key = directory / "rsa.pem", directory / "ed25519.pem"
    rsa_record = generate_key(rsa_key, "rsa-sha256")
    ed_record = generate_key(ed_key, "ed25519-sha256")
    return rsa_key, ed_key, rsa_record, ed_record


def publish(server: KnotServer, rsa_record: str, ed_record: str) -> None:
    server.write_zone_template(
        "_domainkey.example.jp",
        {
            "rsa_selector": RSA_SELECTOR,
            "ed_selector": ED_SELECTOR,
            "rsa_record": txt_rdata(rsa_record),
            "ed_record": txt_rdata(ed_record),
        },
    )


def start(workdir: Path) -> AuthEnv:
    """A new DNS server with freshly generated keys published (caller stops .dns)."""
    keys = workdir / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    rsa_key, ed_key, rsa_record, ed_record = make_keys(keys)
    server = KnotServer(workdir / "knot")
    server.start()
    publish(server, rsa_record, ed_record)
    return AuthEnv(server, rsa_key, ed_key, rsa_record, ed_record)


_shared: AuthEnv | None = None


def shared() -> AuthEnv:
    """The process-wide environment, started on first use and stopped at exit."""
    global _shared
    if _shared is None:
        workdir = Path(tempfile.mkdtemp(prefix="tokuden-auth-"))
        _shared = start(workdir)
        atexit.register(_shared.dns.stop)
        atexit.register(shutil.rmtree, workdir, True)
    return _shared
