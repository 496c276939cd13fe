"""Independent DKIM verifiers for tests: dkimpy and libopendkim, both asking the loopback knotd."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dkim

from tests.dns.server import KnotServer


def dnsfunc_via(server: KnotServer):  # type: ignore[no-untyped-def]
    """A dkimpy dnsfunc that asks the real server directly (TCP, so long keys are whole)."""

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        response = server.query(name.decode(), "TXT", tcp=True)
        for rrset in response.answer:
            for rdata in rrset:
                return b"".join(rdata.strings)
        return None

    return dnsfunc


def dkimpy_verify_all(message: bytes, server: KnotServer) -> list[bool]:
    n = len(re.findall(rb"(?im)^DKIM-Signature:", message))
    d = dkim.DKIM(message)
    results = []
    for i in range(n):
        try:
            results.append(bool(d.verify(idx=i, dnsfunc=dnsfunc_via(server))))
        except dkim.ValidationError:  # dkimpy raises on a body hash mismatch
            results.append(False)
    return results


@dataclass
class OpenDkim:
    """libopendkim as an independent verifier: `opendkim -t` in test mode, its libunbound
    resolver forwarding to the loopback knotd (ResolverConfiguration names an unbound.conf)."""

    binary: str
    tmp: Path

    def verify(self, message: bytes, server: KnotServer) -> str:
        unbound = self.tmp / "unbound.conf"
        unbound.write_text(
            "server:\n"
            "    do-not-query-localhost: no\n"
            '    module-config: "iterator"\n'
            "forward-zone:\n"
            '    name: "."\n'
            f"    forward-addr: {server.host}@{server.port}\n"
        )
        conf = self.tmp / "opendkim.conf"
        conf.write_text(
            f"Mode v\nSyslog no\nAlwaysAddARHeader yes\nResolverConfiguration {unbound}\n"
        )
        msg = self.tmp / "message.eml"
        msg.write_bytes(message)
        run = subprocess.run(
            [self.binary, "-x", str(conf), "-t", str(msg), "-vvv"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        found = re.search(r"hvalue='(.*?)'", run.stdout + run.stderr, re.S)
        assert found, run.stdout + run.stderr
        return found.group(1)  # the Authentication-Results value opendkim would add
