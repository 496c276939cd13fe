"""A local sandbox around deploy/example.toml: DNS and an upstream, so `make run` works offline.

Starts, on loopback only:
  * knotd on 127.0.0.1:5300 publishing example.jp's SPF (for the example egress IP),
    DMARC and the DKIM key in var/keys (generated on first use);
  * Postfix's smtp-sink on 127.0.0.1:2526 as the upstream, writing what it receives
    to var/sink/;
  * the unsubscribe-token key file var/unsubscribe.key (generated on first use);
and then the gateway itself. Ctrl-C (or SIGTERM) stops everything.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.auth.dkim_sign import generate_key, load_key, public_key_record  # noqa: E402
from gateway.unsubscribe.tokens import generate_secret_file  # noqa: E402
from tests.dns.server import KnotServer, txt_rdata  # noqa: E402

VAR = ROOT / "var"
CONFIG = ROOT / "deploy" / "example.toml"
DNS_PORT = 5300
SINK_PORT = 2526
KEY = VAR / "keys" / "example.jp.mk2026.pem"

ZONE = """\
@          IN A    203.0.113.1
@          IN MX   10 mx
mx         IN A    203.0.113.25
@          IN TXT  "v=spf1 ip4:203.0.113.5 -all"
bounce     IN TXT  "v=spf1 ip4:203.0.113.5 -all"
_dmarc     IN TXT  "v=DMARC1; p=reject; rua=mailto:dmarc-reports@example.jp"
mk2026._domainkey IN TXT {dkim}
"""


def prepare() -> None:
    (VAR / "keys").mkdir(parents=True, exist_ok=True)
    if not KEY.exists():
        generate_key(KEY, "rsa-sha256")
    secret = VAR / "unsubscribe.key"
    if not secret.exists():
        generate_secret_file(secret)


@contextlib.contextmanager
def infrastructure() -> Iterator[KnotServer]:
    prepare()
    record = public_key_record(load_key(KEY, selector="mk2026", domain="example.jp"))
    workdir = VAR / "sandbox-dns"
    shutil.rmtree(workdir, ignore_errors=True)
    dns = KnotServer(workdir, zones_dir=None)
    dns.port = DNS_PORT
    dns.write_zone("example.jp", ZONE.format(dkim=txt_rdata(record)))
    # the DMARC tree walk asks _dmarc.jp: answer NXDOMAIN, as the internet would
    dns.write_zone("jp", "")
    sink_dir = VAR / "sink"
    sink_dir.mkdir(parents=True, exist_ok=True)
    sink_dir.chmod(0o777)  # smtp-sink drops root privileges before writing
    as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen(
        ["/usr/sbin/smtp-sink", *as_user, "-d", f"{sink_dir}/%Y%m%d%H/%M.",
         f"127.0.0.1:{SINK_PORT}", "100"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        dns.start()
        time.sleep(0.2)
        if sink.poll() is not None:
            raise SystemExit(f"smtp-sink could not listen on 127.0.0.1:{SINK_PORT}")
        yield dns
    finally:
        sink.terminate()
        sink.wait(timeout=5)
        dns.stop()


def main() -> int:
    with infrastructure():
        print(f"sandbox: DNS on 127.0.0.1:{DNS_PORT}, upstream smtp-sink on 127.0.0.1:{SINK_PORT} "
              f"(mail lands in {VAR / 'sink'})", flush=True)
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(CONFIG)], cwd=ROOT
        )

        def stop(signum: int, _frame: object) -> None:
            gateway.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        return gateway.wait()


if __name__ == "__main__":
    raise SystemExit(main())
