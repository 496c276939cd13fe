"""`make bench`: the gateway with every rule on vs. Postfix + OpenDKIM vs. the loopback ceiling.

Every line is driven by the same load generator (Postfix's smtp-source, one message per
connection, ~11 KB Japanese multipart mail) and ends in the same smtp-sink. Rounds are
interleaved (each round runs every line at 20 and at 100 sessions, in a rotated order), and
the median with min–max is reported. Then: added latency at half of the gateway's peak
(as many interleaved window pairs as rounds, median with min–max)
(our own fixed-rate client, the same client straight to smtp-sink as the baseline), memory
with 500 sessions, a py-spy profile under load, the consent import rate and the lookup
latency at 10,000,000 records. Everything listens on 127.0.0.1 and is cleaned up on exit.

The `pg` line is the 2-worker gateway on a PostgreSQL store (a fresh database on the
server the tests use; bench/postgres.py): the shared store that several instances use.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import email
import os
import shlex
import smtplib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dkim
import dns.resolver
import uvloop

from bench import client, consent, message, postgres, profile, report
from bench.gateway_line import GatewayServer
from bench.gateway_line import config as gateway_config
from bench.peer import PostfixPeer
from bench.procs import (
    cleanup_all,
    cpu_seconds,
    host_wait_seconds,
    install_handlers,
    loadavg,
    machine,
    peak_rss_mb,
    rss_mb,
    temp_dir,
    tree_cpu_seconds,
    which,
)
from bench.progress import say, step
from bench.settings import KNOBS, Settings
from bench.sink import SmtpSink
from tests.support import authenv
from tests.support.authenv import RSA_SELECTOR

LABELS = {
    "ceiling": "ceiling: smtp-source → smtp-sink",
    "peer": "peer: Postfix + OpenDKIM (RSA-2048)",
    "w2": "gateway, every rule on, RSA-2048, 2 workers",
    "nocache": "gateway, every rule on, RSA-2048, 2 workers, body caches off",
    "w1": "gateway, every rule on, RSA-2048, 1 worker",
    "dual": "gateway, every rule on, RSA-2048 + Ed25519, 2 workers",
    "pg": "gateway, every rule on, RSA-2048, 2 workers, PostgreSQL store",
}


@dataclass
class Line:
    key: str
    port: int
    cpu: Callable[[], float] | None = None  # CPU seconds of the server's processes so far
    pids: Callable[[], list[int]] | None = None
    drain: Callable[[float], bool] | None = None  # wait until queued mail left (Postfix)
    messages: int = 0  # per run, sized by the warm-up
    runs: dict[int, list[RunResult]] = field(default_factory=dict)


@dataclass
class RunResult:
    messages: int
    accept_seconds: float  # smtp-source's wall time: the last message was accepted
    seconds: float  # until the last message arrived at the sink
    cpu_seconds: float | None
    delivered: int
    errors: str

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def accept_rate(self) -> float:
        return self.messages / self.accept_seconds


class Bench:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.work = temp_dir("tokuden-bench-")
        self.msg_file = self.work / "message.eml"
        self.msg_size = message.write_for_smtp_source(self.msg_file)
        self.lines: dict[str, Line] = {}
        self.gateways: dict[str, GatewayServer] = {}
        self.peer: PostfixPeer | None = None
        self.sink: SmtpSink | None = None
        self.commands: dict[str, str] = {}
        self.checks: list[str] = []
        self.started = dt.datetime.now().astimezone()
        self.pg: postgres.PgStore | None = None
        self.pg_import: consent.ImportResult | None = None
        self.load_before = loadavg()

    # -- set-up --------------------------------------------------------------------------

    def setup(self) -> None:
        say("DNS: knotd on loopback with SPF, DMARC and freshly generated DKIM keys")
        self.auth = authenv.start(self.work / "auth")
        from bench.procs import on_cleanup

        on_cleanup(self.auth.dns.stop)
        dump = self.work / "probe"
        dump.mkdir()
        dump.chmod(0o777)
        self.work.chmod(0o711)  # smtp-sink runs as nobody and must reach the dump folder
        self.sink = SmtpSink(dump=dump)
        self.commands["sink"] = shlex.join(self.sink.argv).replace(f" -d {dump}/%H%M%S.", "")
        sqlite_url = f"sqlite:///{self.work / 'store.sqlite3'}"
        if "pg" in self.s.lines:
            with step("PostgreSQL: a fresh database for the pg line"):
                self.pg = postgres.create()
            say(f"pg line store: {self.pg.describe()}")
        variants = {"w2": (2, False), "nocache": (2, False), "w1": (1, False), "dual": (2, True),
                    "pg": (2, False)}
        for key, (workers, dual) in variants.items():
            if key not in self.s.lines:
                continue
            url = self.pg.url if key == "pg" and self.pg else sqlite_url
            cfg = gateway_config(self.work / key, store_url=url, upstream_port=self.sink.port,
                                 auth=self.auth, workers=workers, dual=dual)
            if key == "nocache":
                # every body checked and hashed anew, as for mail personalised per recipient
                cfg["server"]["body_cache"] = 0
            self.gateways[key] = GatewayServer(key, self.work / key, cfg)
        csv_path = self.work / "consent.csv"
        with step(f"consent CSV: {self.s.import_rows:,} rows"):
            consent.write_csv(csv_path, self.s.import_rows)
        self.import_result = self._import(self.gateways["w2"].config_path, csv_path)
        if "pg" in self.gateways:
            self.pg_import = self._import(self.gateways["pg"].config_path, csv_path)
        csv_path.unlink()
        for key, gw in self.gateways.items():
            say(f"starting {LABELS[key]}")
            gw.start()
            cpu = self._gw_cpu(gw)
            if key == "pg" and self.pg is not None:
                cpu = self._with_server_cpu(cpu, self.pg)
            self.lines[key] = Line(key, gw.port, cpu=cpu, pids=gw.pids)
        argv = self.gateways["w2"].argv
        self.commands["gateway"] = shlex.join(argv).replace(str(self.work), "$WORK")
        if "peer" in self.s.lines:
            say("starting the peer: private Postfix instance + OpenDKIM milter")
            self.peer = PostfixPeer(self.work / "postfix", self.sink.port, self.auth.rsa_key,
                                    RSA_SELECTOR)
            self.peer.start()
            peer = self.peer
            self.lines["peer"] = Line(
                "peer", peer.port, cpu=lambda: self._peer_cpu(peer), pids=lambda: [],
                drain=peer.wait_drained,
            )
            self.commands["peer"] = (
                f"{shlex.join(peer.postfix_cmd)} start  (opendkim -f -x "
                f"{peer.opendkim_conf})".replace(str(self.work), "$WORK")
            )
        self.lines["ceiling"] = Line("ceiling", self.sink.port)
        self._probe(dump)
        # the probe sink dumps every message to a file; the measured one does not
        port = self.sink.port
        self.sink.stop()
        self.sink = SmtpSink(port=port)
        self.commands["smtp-source"] = shlex.join(self._source_argv(0, 20, 1000)).replace(
            f"127.0.0.1:{port}", "127.0.0.1:PORT"
        ).replace(str(self.work), "$WORK")

    def _gw_cpu(self, gw: GatewayServer) -> Callable[[], float]:
        return lambda: cpu_seconds(gw.pids())

    def _peer_cpu(self, peer: PostfixPeer) -> float:
        master = peer.master_pid()
        total = tree_cpu_seconds(master) if master else 0.0
        if peer.opendkim is not None:
            total += tree_cpu_seconds(peer.opendkim.pid)
        return total

    @staticmethod
    def _with_server_cpu(cpu: Callable[[], float], pg: postgres.PgStore) -> Callable[[], float]:
        # the store's server works for this line only: its CPU is part of the line's cost
        return lambda: cpu() + pg.cpu_seconds()

    def _import(self, config: Path, csv_path: Path) -> consent.ImportResult:
        rows = self.s.import_rows
        store = "PostgreSQL" if config.parent.name == "pg" else "SQLite"
        say(f"consent import of {rows:,} rows into {store} through the CLI (approval off) ...")
        result = consent.cli_import(config, csv_path, rows)
        say(f"consent import: {result.rate:,.0f} rows/s ({result.seconds:.1f} s)")
        self.commands["import"] = result.command
        return result

    def _probe(self, dump: Path) -> None:
        """One message through every line, checked at the sink: delivered, signed, verified."""
        assert self.sink is not None
        raw = message.message(to="taro@example.com")
        files: list[Path] = []
        for key, line in self.lines.items():
            before = set(dump.iterdir())
            with smtplib.SMTP("127.0.0.1", line.port, timeout=30) as smtp:
                smtp.ehlo("probe.bench.test")
                smtp.sendmail(message.ENVELOPE_FROM, [consent.recipient(1)], raw)
            if line.drain is not None:
                line.drain(30)
            # one line at a time, each matched to the file it left: two files written
            # within the file system's mtime granularity once swapped lines
            deadline = time.monotonic() + 30
            while not (new := set(dump.iterdir()) - before):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"probe: nothing from {key} arrived")
                time.sleep(0.02)
            if len(new) > 1:
                raise RuntimeError(f"probe: {len(new)} messages arrived from {key}, not one")
            files.append(new.pop())
        if not self.sink.wait_for(len(self.lines), 30):
            raise RuntimeError(f"probe: {self.sink.delivered} of {len(self.lines)} counted")
        order = list(self.lines)
        resolver = dns.resolver.Resolver(configure=False)
        host, port = self.auth.nameserver.rsplit(":", 1)
        resolver.nameservers, resolver.port = [host], int(port)

        def txt(name: bytes, timeout: int = 5) -> bytes:
            answer = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
            return b"".join(b"".join(r.strings) for r in answer)

        for key, path in zip(order, files, strict=True):
            received = _strip_sink_headers(path.read_bytes())
            parsed = email.message_from_bytes(received)
            sigs = parsed.get_all("DKIM-Signature") or []
            algos = sorted(
                part.split("=", 1)[1].strip()
                for sig in sigs for part in str(sig).replace("\r\n", "").split(";")
                if part.strip().startswith("a=")
            )
            verified = [dkim.verify(received, dnsfunc=txt)] if sigs else []
            for i in range(1, len(sigs)):
                verified.append(dkim.DKIM(received).verify(idx=i, dnsfunc=txt))
            unsub = "yes" if parsed.get("List-Unsubscribe") else "no"
            ok = bool(sigs) and all(verified) and (key in ("ceiling", "peer") or unsub == "yes")
            if key == "ceiling":
                ok = True
            self.checks.append(
                f"{LABELS[key]}: delivered; DKIM {', '.join(algos) or 'none'}"
                f" verified={all(verified) if verified else '-'}; List-Unsubscribe {unsub}"
            )
            if not ok:
                raise RuntimeError(f"probe through {key} failed: {self.checks[-1]}")
        say("probe: every line delivers; signatures verify against the knotd keys")

    # -- load ------------------------------------------------------------------------------

    def _source_argv(self, port: int, sessions: int, messages: int) -> list[str]:
        return [which("smtp-source"), "-N", "-s", str(sessions), "-m", str(messages),
                "-f", message.ENVELOPE_FROM, "-t", "u@example.com", "-F", str(self.msg_file),
                "-M", "loadgen.bench.test", f"127.0.0.1:{port}"]

    def load(self, line: Line, sessions: int, messages: int) -> RunResult:
        assert self.sink is not None
        base = self.sink.delivered
        cpu0 = line.cpu() if line.cpu else None
        started = time.monotonic()
        limit = 60 + messages / 20  # bounded: a stalled line cannot hold the run
        try:
            done = subprocess.run(self._source_argv(line.port, sessions, messages),
                                  capture_output=True, text=True, timeout=limit)
            errors = (done.stderr.strip().splitlines() or [""])[-1]
            if done.returncode:
                errors = f"exit {done.returncode}: {errors}"
        except subprocess.TimeoutExpired:
            errors = f"smtp-source timed out after {limit:.0f}s"
        accept = time.monotonic() - started
        self.sink.wait_for(base + messages, 60)
        if line.drain is not None:
            line.drain(60)
        end = time.monotonic() - started
        delivered = self.sink.delivered - base
        cpu = line.cpu() - cpu0 if line.cpu and cpu0 is not None else None
        if delivered < messages:
            errors = f"{messages - delivered} not delivered; {errors}".strip("; ")
        return RunResult(messages, accept, end, cpu, delivered, errors)

    def warm_up(self) -> None:
        """One short run per line, which also sizes its runs to ~run_seconds each."""
        s = self.s
        with step("warm-up and sizing", total=len(self.lines)) as bar:
            for line in self.lines.values():
                probe_n = max(100, s.min_messages // 2)
                result = self.load(line, 20, probe_n)
                line.messages = int(min(s.max_messages, max(s.min_messages,
                                                             result.rate * s.run_seconds)))
                say(f"warm-up {line.key}: {result.rate:,.0f} msgs/s -> {line.messages} "
                    f"messages per run {result.errors}")
                bar.update()

    def rounds(self) -> None:
        keys = list(self.lines)
        total = self.s.rounds * len(self.s.sessions) * len(keys)
        with step("interleaved rounds", total=total, unit="run") as bar:
            for r in range(self.s.rounds):
                for sessions in self.s.sessions:
                    shift = (r * len(self.s.sessions) + self.s.sessions.index(sessions)) % len(keys)
                    for key in keys[shift:] + keys[:shift]:  # rotate: nobody always runs first
                        line = self.lines[key]
                        result = self.load(line, sessions, line.messages)
                        line.runs.setdefault(sessions, []).append(result)
                        bar.set_postfix_str(f"{key}@{sessions}: {result.rate:,.0f}/s")
                        if result.errors:
                            say(f"round {r + 1} {key}@{sessions}: {result.errors}")
                        bar.update()

    # -- the other measurements ------------------------------------------------------------

    def latency(self, key: str = "w2") -> report.Latency:
        """Added latency through one line at half of that line's own peak."""
        line = self.lines[key]
        peak = max(statistics.median(r.rate for r in runs) for runs in line.runs.values())
        rate = max(5.0, peak / 2)
        assert self.sink is not None
        say(f"latency through {key} at {rate:,.0f} msgs/s (half of its peak {peak:,.0f}) ...")
        # The client shares the two cores with what it measures: on uvloop it costs
        # ~0.65 instead of ~1 ms of CPU a transaction (the same loop for both paths).
        windows = []
        with step(f"latency windows ({key})", total=self.s.rounds) as bar:
            for _ in range(self.s.rounds):
                base = _window(self.sink.port, rate, self.s.latency_seconds)
                through = _window(line.port, rate, self.s.latency_seconds)
                windows.append((base, through))
                bar.set_postfix_str(f"added p99 {through.pct(99) - base.pct(99):.1f} ms")
                bar.update()
        if line.drain is not None:
            line.drain(60)  # the peer's queue, before anything else is measured
        return report.Latency(rate, peak, windows)

    def memory(self) -> report.Memory:
        gw = self.gateways["w2"]
        peak = [0.0]

        def sample() -> None:
            peak[0] = max(peak[0], rss_mb(gw.pids()))

        before = rss_mb(gw.pids())
        idle, active = self.s.idle_sessions, self.s.active_sessions
        say(f"memory: {idle} idle + {active} active sessions for {self.s.memory_seconds:.0f}s")
        result = asyncio.run(client.many_sessions(gw.port, idle, active, self.s.memory_seconds,
                                                  sample, self.s.import_rows))
        return report.Memory(result, before, peak[0], peak_rss_mb(gw.pids()))

    def profile(self) -> profile.Profile:
        gw = self.gateways["w2"]
        assert gw.proc is not None
        out = self.work / "profile.txt"
        seconds = self.s.profile_seconds
        n = max(200, int(statistics.median(r.rate for r in self.lines["w2"].runs[20]) * seconds))
        for native in ((True, False) if self.s.native else (False,)):
            out.unlink(missing_ok=True)
            spy = profile.start(gw.proc.pid, out, seconds + 2, native)
            if spy is None:
                return profile.Profile(0, False, error="py-spy not installed")
            time.sleep(1.0)
            say(f"profile: py-spy{' --native' if native else ''} while {n} messages go through")
            self.load(self.lines["w2"], 20, n)
            profile.finish(spy, seconds + 30)
            if out.exists() and out.stat().st_size:
                result = profile.analyse(out, native)
                if result.samples:
                    return result
        err = out.with_suffix(".stderr")
        text = err.read_text(errors="replace")[-300:] if err.exists() else ""
        return profile.Profile(0, False, error=f"py-spy produced no samples: {text}")

    def lookups(self) -> consent.LookupResult:
        return consent.lookup_benchmark(self.work, self.s.lookup_records, self.s.lookups)

    def peak_rss(self) -> dict[str, float]:
        return {k: peak_rss_mb(gw.pids()) for k, gw in self.gateways.items()}

    def stop_servers(self) -> None:
        for gw in self.gateways.values():
            gw.stop()
        if self.peer is not None:
            self.peer.stop()


def _window(port: int, rate: float, seconds: float) -> client.LatencyResult:
    """One fixed-rate window, with what the host took from it (steal, waits for a CPU)."""
    steal0, wait0 = host_wait_seconds()
    result = uvloop.run(client.fixed_rate(port, rate, seconds))
    steal1, wait1 = host_wait_seconds()
    result.steal_ms = (steal1 - steal0) * 1000
    result.cpu_wait_ms = (wait1 - wait0) * 1000
    return result


def _strip_sink_headers(raw: bytes) -> bytes:
    """smtp-sink's dump starts with X-Client-*, X-Helo/Mail/Rcpt-Args and its own Received."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    i = 0
    while i < len(lines) and lines[i].startswith(b"X-"):
        i += 1
    if i < len(lines) and lines[i].startswith(b"Received:") and b"smtp-sink" in b"".join(
        lines[i : i + 3]
    ):
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
    return b"\r\n".join(lines[i:])


def run(settings: Settings) -> int:
    bench = Bench(settings)
    kind = "quick" if settings.quick else "full"
    say(f"tokuden bench ({kind}): lines {', '.join(settings.lines)}; "
        f"load average {bench.load_before}")
    bench.setup()
    bench.warm_up()
    bench.rounds()
    peak = bench.peak_rss()
    latency = bench.latency()
    peer_latency = bench.latency("peer") if "peer" in bench.lines else None
    memory = bench.memory()
    prof = bench.profile()
    bench.stop_servers()
    say(f"consent lookups at {settings.lookup_records:,} records ...")
    lookups = bench.lookups()
    results = report.Results(
        started=bench.started,
        finished=dt.datetime.now().astimezone(),
        machine=machine(),
        load_before=bench.load_before,
        load_after=loadavg(),
        settings=settings,
        msg_size=bench.msg_size,
        lines={k: report.LineStats(LABELS[k], k, line.messages,
                                   {s: [(r.rate, r.accept_rate, r.cpu_seconds, r.messages,
                                         r.errors) for r in runs]
                                    for s, runs in line.runs.items()})
               for k, line in bench.lines.items()},
        peak_rss=peak,
        latency=latency,
        peer_latency=peer_latency,
        memory=memory,
        profile=prof,
        imports=bench.import_result,
        pg_store=bench.pg.describe() if bench.pg else "",
        pg_import=bench.pg_import,
        lookups=lookups,
        checks=bench.checks,
        commands=bench.commands,
    )
    text = report.markdown(results)
    settings.output.write_text(text, encoding="utf-8")
    print(text)
    say(f"written to {settings.output}")
    return 0


def _parse_args(argv: list[str] | None) -> None:
    """Only --help: every knob is an environment variable, so `make bench` passes them on."""
    knobs = "\n".join(f"  {name:<23}{text}" for name, text in KNOBS.items())
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The gateway with every rule on vs. Postfix + OpenDKIM vs. the loopback "
                    "ceiling; writes the results table (about 8 minutes; `make bench`).",
        epilog=f"environment variables:\n{knobs}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    _parse_args(argv)
    if os.geteuid() != 0:
        print("bench: the Postfix peer runs as its own users: run as root", file=sys.stderr)
    settings = Settings.from_env()
    install_handlers()
    try:
        return run(settings)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        cleanup_all()


if __name__ == "__main__":
    sys.exit(main())
