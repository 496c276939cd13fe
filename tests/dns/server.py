"""A real authoritative DNS server (Debian's knotd) on 127.0.0.1, free port, UDP+TCP, for tests."""

from __future__ import annotations

import contextlib
import itertools
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
from dns.rdtypes.ANY.SOA import SOA

__all__ = [
    "ZONES_DIR",
    "KnotServer",
    "render_template",
    "running_server",
    "txt_rdata",
]

ZONES_DIR = Path(__file__).parent / "zones"
HOST = "127.0.0.1"
_START_TIMEOUT = 10.0
_TEMPLATE_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Serials only need to grow within one server's life; starting from the clock keeps them growing
# across a stop()/start() too.
_serials = itertools.count(int(time.time()) % 2_000_000_000)


def render_template(text: str, values: Mapping[str, str]) -> str:
    """Replace {{name}} placeholders; a placeholder without a value is an error, not a blank."""

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"zone template needs a value for {{{{{key}}}}}")
        return values[key]

    return _TEMPLATE_VAR.sub(sub, text)


def txt_rdata(value: str) -> str:
    """A TXT value as zone-file rdata: quoted and split into <=255-octet strings (RFC 1035 3.3.14).

    Long DKIM keys (RSA-2048 is ~400 characters) must be split; verifiers join the strings.
    """
    data = value.encode("ascii")
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    escaped = [c.decode("ascii").replace("\\", "\\\\").replace('"', '\\"') for c in chunks]
    return "( " + " ".join(f'"{c}"' for c in escaped) + " )"


def _free_port() -> int:
    """A port that is free for both UDP and TCP on the loopback address right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((HOST, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for the test DNS server")


def _find(binary: str) -> str:
    found = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None
    )
    if found is None:
        raise RuntimeError(
            f"{binary} not found: install Debian's knot package (scripts/install-system-deps.sh)"
        )
    return found


class KnotServer:
    """knotd on a free port serving `workdir/zones`, seeded from `zones_dir` (*.zone).

    Zone files hold plain records; the origin comes from the file name (`example.jp.zone`) and a
    SOA/NS pair is added when the file has none. Use as a context manager or call start()/stop().
    stop() and start() keep the port, so a client configured once sees an outage and a recovery.
    """

    def __init__(
        self,
        workdir: Path,
        zones_dir: Path | None = ZONES_DIR,
        *,
        default_ttl: int = 300,
        negative_ttl: int = 60,
    ) -> None:
        self.workdir = Path(workdir)
        self.host = HOST
        self.port = _free_port()
        self.default_ttl = default_ttl
        self.negative_ttl = negative_ttl
        self._knotd_bin = _find("knotd")
        self._knotc_bin = _find("knotc")
        self._zone_dir = self.workdir / "zones"
        self._zone_dir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "db").mkdir(exist_ok=True)
        self._conf = self.workdir / "knot.conf"
        self._socket = self.workdir / "knot.sock"
        self._log = self.workdir / "knotd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        # origin -> the serial write_zone() put in; None when the zone file brought its own SOA.
        self._serials: dict[str, int | None] = {}
        if zones_dir is not None:
            for path in sorted(zones_dir.glob("*.zone")):
                self.write_zone(path.name.removesuffix(".zone"), path.read_text(encoding="utf-8"))

    # -- addressing ---------------------------------------------------------------------------

    @property
    def nameserver(self) -> str:
        """ "host:port", the form the gateway's `[dns] nameservers` takes."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def zones(self) -> list[str]:
        return sorted(self._serials)

    # -- zone data ----------------------------------------------------------------------------

    def write_zone(self, origin: str, records: str, *, reload: bool = True) -> None:
        """Create or replace zone `origin` with `records` (zone-file text relative to the origin).

        If the server runs, it is reloaded and this returns once the new data is served.
        """
        origin = origin.rstrip(".").lower()
        serial = next(_serials)
        has_soa = re.search(r"\sSOA\s", records, re.IGNORECASE) is not None
        self._serials[origin] = None if has_soa else serial
        head = [f"$ORIGIN {origin}.", f"$TTL {self.default_ttl}"]
        if not has_soa:
            head += [
                f"@ {self.default_ttl} IN SOA ns.{origin}. hostmaster.{origin}. "
                f"{serial} 3600 600 86400 {self.negative_ttl}",
                f"@ {self.default_ttl} IN NS ns.{origin}.",
                f"ns {self.default_ttl} IN A {self.host}",
            ]
        (self._zone_dir / f"{origin}.zone").write_text(
            "\n".join(head) + "\n" + records.rstrip("\n") + "\n", encoding="utf-8"
        )
        if reload and self.running:
            self._write_conf()
            self._knotc("reload")
            self._knotc("zone-reload", f"{origin}.")
            self._wait_serial(origin, self._serials[origin])

    def write_zone_template(
        self, origin: str, values: Mapping[str, str], template: Path | None = None
    ) -> None:
        """Render `zones/<origin>.zone.tmpl` (or `template`) with {{name}} values and serve it."""
        path = template or ZONES_DIR / f"{origin}.zone.tmpl"
        self.write_zone(origin, render_template(path.read_text(encoding="utf-8"), values))

    def remove_zone(self, origin: str) -> None:
        origin = origin.rstrip(".").lower()
        self._serials.pop(origin, None)
        (self._zone_dir / f"{origin}.zone").unlink(missing_ok=True)
        if self.running:
            self.reload()

    def reload(self) -> None:
        """Re-read the configuration and every zone file."""
        self._write_conf()
        if self.running:
            self._knotc("reload")
            for origin, serial in self._serials.items():
                self._wait_serial(origin, serial)

    # -- process ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start knotd in the foreground as a child process; return once every zone answers."""
        if self.running:
            return
        self._write_conf()
        with contextlib.suppress(FileNotFoundError):
            self._socket.unlink()
        log = self._log.open("ab")
        try:
            self._proc = subprocess.Popen(
                [self._knotd_bin, "-c", str(self._conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own process group: a Ctrl-C aimed at pytest must not kill it mid-test, and
                # stop() ends exactly this process.
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + _START_TIMEOUT
        for origin, serial in self._serials.items():
            self._wait_serial(origin, serial, deadline=deadline)

    def stop(self) -> None:
        """Stop knotd (SIGTERM, then SIGKILL after 5 s). Clients then see timeouts."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> KnotServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- client helpers -----------------------------------------------------------------------

    def query(
        self, name: str, rdtype: str = "TXT", *, tcp: bool = False, timeout: float = 1.0
    ) -> dns.message.Message:
        """A direct query to this server (test assertions, readiness)."""
        q = dns.message.make_query(name, rdtype)
        if tcp:
            return dns.query.tcp(q, self.host, port=self.port, timeout=timeout)
        return dns.query.udp(q, self.host, port=self.port, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self._log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- internals ----------------------------------------------------------------------------

    def _write_conf(self) -> None:
        zones = "".join(f"  - domain: {origin}.\n" for origin in sorted(self._serials))
        zone_section = f"zone:\n{zones}" if zones else ""
        # Paths are quoted; knotd runs as the invoking user (no `user:`), so this works unprivileged
        # and as root alike, and all state lives under workdir.
        self._conf.write_text(
            f"""server:
    rundir: "{self.workdir}"
    listen: {self.host}@{self.port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{self.workdir / "db"}"
control:
    listen: "{self._socket}"
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: "{self._zone_dir}"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
{zone_section}""",
            encoding="utf-8",
        )

    def _knotc(self, *args: str) -> None:
        result = subprocess.run(
            [self._knotc_bin, "-s", str(self._socket), "-t", "5", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=15,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"knotc {' '.join(args)} failed: {result.stdout}{result.stderr}\n{self.log_tail()}"
            )

    def _wait_serial(
        self, origin: str, serial: int | None, *, deadline: float | None = None
    ) -> None:
        """Poll until `origin` answers with `serial` (any serial when None)."""
        deadline = deadline or time.monotonic() + _START_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"knotd exited ({self._proc.returncode}):\n{self.log_tail()}")
            try:
                # Short timeout: before knotd binds, a UDP query just goes unanswered.
                response = self.query(origin, "SOA", timeout=0.1)
            except (dns.exception.DNSException, OSError) as exc:
                last = str(exc)
            else:
                if response.rcode() == dns.rcode.NOERROR:
                    for rrset in response.answer:
                        for rdata in rrset:
                            if isinstance(rdata, SOA):
                                if serial is None or rdata.serial == serial:
                                    return
                                last = f"serial {rdata.serial}, want {serial}"
                else:
                    last = dns.rcode.to_text(response.rcode())
            time.sleep(0.02)
        raise RuntimeError(f"zone {origin} not served ({last}):\n{self.log_tail()}")


@contextlib.contextmanager
def running_server(workdir: Path, zones_dir: Path | None = ZONES_DIR) -> Iterator[KnotServer]:
    """`with running_server(tmp) as server:` for code outside pytest (benchmarks, scripts)."""
    server = KnotServer(workdir, zones_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


if __name__ == "__main__":  # pragma: no cover - `python -m tests.dns.server`: a smoke test
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as srv:
        print(f"knotd serving {', '.join(srv.zones)} on {srv.nameserver}")
        print(srv.query("example.jp", "SOA").answer)
