"""The results as markdown: the table users compare, then latency, memory, store, profile."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.client import LatencyResult, SessionsResult
from bench.consent import ImportResult, LookupResult
from bench.profile import Profile
from bench.settings import Settings

# (rate, accept rate, cpu seconds or None, messages, errors) per run
Run = tuple[float, float, float | None, int, str]


@dataclass
class LineStats:
    label: str
    key: str
    messages: int
    runs: dict[int, list[Run]]

    def rates(self, sessions: int) -> list[float]:
        return [r[0] for r in self.runs.get(sessions, [])]

    def median(self, sessions: int) -> float:
        rates = self.rates(sessions)
        return statistics.median(rates) if rates else math.nan

    def cpu_ms(self) -> float | None:
        per = [r[2] / r[3] * 1000 for runs in self.runs.values() for r in runs if r[2] is not None]
        return statistics.median(per) if per else None

    def errors(self) -> list[str]:
        return [r[4] for runs in self.runs.values() for r in runs if r[4]]


@dataclass
class Latency:
    """Interleaved windows at one rate: (client → smtp-sink, client → gateway → smtp-sink)."""

    rate: float
    peak: float
    windows: list[tuple[LatencyResult, LatencyResult]]

    def added(self, p: int) -> list[float]:
        return [gw.pct(p) - base.pct(p) for base, gw in self.windows]

    def median_added(self, p: int) -> float:
        return statistics.median(self.added(p))

    @property
    def failed(self) -> int:
        return sum(gw.failed + base.failed for base, gw in self.windows)


@dataclass
class Memory:
    sessions: SessionsResult
    rss_before_mb: float
    rss_peak_mb: float
    hwm_mb: float


@dataclass
class Results:
    started: dt.datetime
    finished: dt.datetime
    machine: dict[str, str]
    load_before: str
    load_after: str
    settings: Settings
    msg_size: int
    lines: dict[str, LineStats]
    peak_rss: dict[str, float]
    latency: Latency
    peer_latency: Latency | None  # the same at half of the peer's own peak, for context
    memory: Memory
    profile: Profile
    imports: ImportResult
    pg_store: str  # the pg line's server and its durability settings ("" without that line)
    pg_import: ImportResult | None
    lookups: LookupResult
    checks: list[str]
    commands: dict[str, str]


def _cell(stats: LineStats, sessions: int) -> str:
    rates = stats.rates(sessions)
    if not rates:
        return "–"
    return f"**{statistics.median(rates):,.0f}** ({min(rates):,.0f}–{max(rates):,.0f})"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b and not math.isnan(a) and not math.isnan(b) else "–"


def _latency_table(add: Callable[[str], None], lat: Latency, through: str) -> None:
    add(f"| window | sink p50 / p99 ms | {through} p50 / p99 ms | **added p50 / p99 ms** | "
        f"failed | achieved msgs/s | steal ms (sink / {through}) | "
        f"CPU wait ms (sink / {through}) |")
    add("|---|---|---|---|---|---|---|---|")
    stalled = False
    for i, (base, via) in enumerate(lat.windows, 1):
        mark = " †" if base.pct(99) > via.pct(99) else ""
        stalled = stalled or bool(mark)
        add(f"| {i} | {base.pct(50):.2f} / {base.pct(99):.2f}{mark} | {via.pct(50):.2f} / "
            f"{via.pct(99):.2f} | **{via.pct(50) - base.pct(50):.2f} / "
            f"{via.pct(99) - base.pct(99):.2f}** | {base.failed + via.failed} | "
            f"{via.achieved_rate:,.0f} | {_ms(base.steal_ms)} / {_ms(via.steal_ms)} | "
            f"{_ms(base.cpu_wait_ms)} / {_ms(via.cpu_wait_ms)} |")
    p50s, p99s = lat.added(50), lat.added(99)
    add(f"| **median (min–max)** | | | **{lat.median_added(50):.2f} / {lat.median_added(99):.2f}**"
        f" ({min(p50s):.2f}–{max(p50s):.2f} / {min(p99s):.2f}–{max(p99s):.2f}) | | | | |")
    if stalled:
        add(f"\n† The direct window's own tail (a stall of the shared host while it ran) is "
            f"longer than the {through} window's: that window's added p99 is negative and says "
            f"nothing about the {through}. It is kept in the median, as any other window.")


def _ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.0f}"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def targets(r: Results) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    gw, peer = r.lines["w2"], r.lines.get("peer")
    sessions = r.settings.sessions
    if peer is not None:
        for key, what in (("w2", "every rule on, 2 workers"),
                          ("nocache", "the same, body caches off")):
            if key not in r.lines:
                continue
            line = r.lines[key]
            worst = min(line.median(s) / peer.median(s) for s in sessions)
            rows.append((f"≥ 2× the Postfix + OpenDKIM peer ({what})",
                         f"{worst:.2f}× (worst of {'/'.join(map(str, sessions))} sessions)",
                         _met(worst >= 2)))
    best = max(gw.median(s) for s in sessions)
    rows.append(("aim: ≥ 1,000 msgs/s", f"{best:,.0f} msgs/s (best)", _met(best >= 1000)))
    lk = r.lookups
    rows.append((f"consent lookup p99 < 1 ms at {lk.records:,} records",
                 f"p99 {lk.p99_us:,.0f} µs", _met(lk.p99_us < 1000)))
    rows.append(("import ≥ 50,000 rows/s", f"{r.imports.rate:,.0f} rows/s",
                 _met(r.imports.rate >= 50_000)))
    mem = r.memory
    n = mem.sessions.idle + mem.sessions.active
    rows.append((f"< 300 MB RSS with {n} sessions", f"{mem.rss_peak_mb:,.0f} MB (all processes)",
                 _met(mem.rss_peak_mb < 300)))
    lat = r.latency
    added = lat.median_added(99)
    spread = lat.added(99)
    rows.append(("added p99 < 20 ms at half of peak",
                 f"{added:,.1f} ms (median of {len(spread)} windows; "
                 f"{min(spread):,.1f}–{max(spread):,.1f})",
                 _met(added < 20 and lat.failed == 0)))
    return rows


def markdown(r: Results) -> str:
    s = r.settings
    m = r.machine
    out: list[str] = []
    add = out.append
    add("# tokuden gateway — benchmark results\n")
    add(f"- date: {r.started:%Y-%m-%d %H:%M %Z} (took {(r.finished - r.started).seconds // 60} min)"
        f"{' — QUICK run (BENCH_QUICK=1): small counts, indicative only' if s.quick else ''}")
    add(f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']}, Linux {m['kernel']}, "
        f"Python {m['python']}")
    add(f"- load average before / after: {r.load_before} / {r.load_after} "
        "(the machine is shared: compare within this run, as ratios)")
    add(f"- message: {r.msg_size:,} bytes, multipart/alternative (ISO-2022-JP text + base64 "
        "UTF-8 HTML), every Art. 4 item; one message and one recipient per connection")
    add(f"- {s.rounds} interleaved rounds (order rotated per round); each run sized to last "
        f"~{s.run_seconds:.0f} s ({s.min_messages}–{s.max_messages} messages); "
        "median (min–max) of the rounds; rate = messages / time until the last one reached "
        "smtp-sink\n")
    add("## Throughput\n")
    sessions = s.sessions
    head = " | ".join(f"msgs/s @{n}" for n in sessions)
    add(f"| line | {head} | × peer | × ceiling | CPU ms/msg | peak RSS MB | msgs/run |")
    add("|---|" + "---|" * (len(sessions) + 5))
    ceiling = r.lines["ceiling"]
    peer = r.lines.get("peer")
    for key in ("ceiling", "peer", "w2", "nocache", "w1", "dual", "pg"):
        st = r.lines.get(key)
        if st is None:
            continue
        cells = " | ".join(_cell(st, n) for n in sessions)
        vs_peer = (
            " / ".join(_ratio(st.median(n), peer.median(n)) for n in sessions) if peer else "–"
        )
        vs_ceiling = " / ".join(_ratio(st.median(n), ceiling.median(n)) for n in sessions)
        cpu = st.cpu_ms()
        rss = r.peak_rss.get(key)
        add(f"| {st.label} | {cells} | {vs_peer} | {vs_ceiling} | "
            f"{f'{cpu:.2f}' if cpu is not None else '–'} | "
            f"{f'{rss:,.0f}' if rss is not None else '–'} | {st.messages} |")
    add("")
    add("CPU ms/msg: user+system CPU of the server's processes (/proc/PID/stat before and after "
        "each run; the peer counts Postfix's master tree, its reaped children and OpenDKIM); "
        "smtp-source and smtp-sink are not counted. Peak RSS: sum of VmHWM over the gateway's "
        "supervisor and workers after the rounds.")
    if "nocache" in r.lines:
        add("The footer report and the DKIM body hash are cached per body (`server.body_cache`, "
            "512 entries per worker): smtp-source sends one body, so the other gateway lines "
            "decode, check and hash it once per worker, as for a campaign whose body is the "
            "same for every recipient. The line with the caches off does all of it for every "
            "message, as for bodies personalised per recipient.")
    if r.pg_store:
        add(f"The PostgreSQL line's store: {r.pg_store}. Its CPU ms/msg includes the "
            "PostgreSQL server's processes (they serve only this line during its runs).")
    if peer is not None:
        acc = " / ".join(
            f"{statistics.median(x[1] for x in peer.runs[n]):,.0f}" for n in sessions
        )
        add(f"The peer queues: smtp-source saw it accept at {acc} msgs/s (median, "
            f"@{'/'.join(map(str, sessions))}); the table counts until delivery, as for the "
            "gateway, which answers only after the upstream took the message (lockstep).")
    errors = [f"{st.key}: {e}" for st in r.lines.values() for e in st.errors()]
    if errors:
        add("\nRun errors:\n" + "\n".join(f"- {e}" for e in errors[:20]))
    add("\n## Added latency at half of the gateway's peak\n")
    lat = r.latency
    add(f"Fixed-rate client (bench/client.py on uvloop, open loop, one connection per message, "
        f"timed from connect to the reply after the final dot), {lat.rate:,.0f} msgs/s = half of "
        f"{lat.peak:,.0f} (the 2-worker gateway's best median); {len(lat.windows)} pairs of "
        f"{s.latency_seconds:.0f} s windows, each the same client straight to smtp-sink and "
        "then through the gateway. One window's p99 is its 1 % slowest transactions: a single "
        "stall of the shared host sets it, hence several windows and their median.\n")
    _latency_table(add, lat, "gateway")
    add("\nSteal is CPU time the hypervisor gave to other guests while the window ran (from "
        "/proc/stat, 10 ms ticks): a stall no process here caused. CPU wait is the time "
        "runnable tasks here waited for one of the two cores (/proc/pressure/cpu, \"some\"), "
        "our own processes' queueing included.")
    if r.peer_latency is not None:
        peer_lat = r.peer_latency
        add(f"\nThe peer, for context, the same way at half of its own peak "
            f"({peer_lat.rate:,.0f} of {peer_lat.peak:,.0f} msgs/s). Postfix answers the final "
            "dot once the message is in its queue, before it goes on to smtp-sink; the gateway "
            "answers after the "
            "upstream took it, so its figure holds a round trip the peer's does not.\n")
        _latency_table(add, peer_lat, "peer")
    mem = r.memory
    ms = mem.sessions
    add("\n## Memory with many sessions\n")
    add(f"{ms.idle} idle sessions (EHLO, then wait) + {ms.active} active ones sending in a loop "
        f"for {s.memory_seconds:.0f} s against the 2-worker gateway: {ms.opened} idle opened, "
        f"{ms.messages:,} messages sent, {ms.failed} failures. RSS (sum over supervisor and "
        f"workers): {mem.rss_before_mb:,.0f} MB before, **{mem.rss_peak_mb:,.0f} MB peak "
        f"during**; VmHWM sum {mem.hwm_mb:,.0f} MB.")
    add("\n## Consent store\n")
    imp, lk = r.imports, r.lookups
    add("| measurement | result |")
    add("|---|---|")
    add(f"| `consent import` of {imp.rows:,} rows (CSV, approval off, whole CLI command) | "
        f"**{imp.rate:,.0f} rows/s** ({imp.seconds:.1f} s) |")
    if r.pg_import is not None:
        pim = r.pg_import
        add(f"| the same import into PostgreSQL (the pg line's store) | "
            f"{pim.rate:,.0f} rows/s ({pim.seconds:.1f} s) |")
    add(f"| `SqliteStore.consent_history` at {lk.records:,} records, {lk.lookups:,} lookups "
        f"(90% present, random keys) | p50 **{lk.p50_us:,.1f} µs**, p99 **{lk.p99_us:,.1f} µs**, "
        f"max {lk.max_us:,.0f} µs; absent keys p99 {lk.absent_p99_us:,.1f} µs |")
    add(f"| the same, each lookup right after another connection's commit (as the event log "
        f"commits under load) | p50 {lk.after_commit_p50_us:,.1f} µs, "
        f"p99 {lk.after_commit_p99_us:,.1f} µs |")
    add(f"| building the {lk.records:,}-record store (SQL, not timed as a target) | "
        f"{lk.build_seconds:.0f} s |")
    add("\n## Profile of the gateway under load\n")
    p = r.profile
    if p.samples:
        add(f"py-spy record{' --native' if p.native else ''} --subprocesses on the 2-worker "
            f"gateway at 20 sessions, {s.profile_seconds:.0f} s, {p.samples:,} samples of busy "
            "threads (idle not sampled): % of the gateway's CPU samples.\n")
        add("| self (leaf function) | % | | inclusive (function and its callees) | % |")
        add("|---|---|---|---|---|")
        for i in range(max(len(p.self_top), len(p.inclusive_top))):
            a = p.self_top[i] if i < len(p.self_top) else ("", 0.0)
            b = p.inclusive_top[i] if i < len(p.inclusive_top) else ("", 0.0)
            add(f"| `{a[0]}` | {a[1]:.1f} | | `{b[0]}` | {b[1]:.1f} |")
    else:
        add(f"No profile: {p.error}")
    add("\n## Targets (issue 9)\n")
    add("| target | result | |")
    add("|---|---|---|")
    for name, value, verdict in targets(r):
        add(f"| {name} | {value} | {verdict} |")
    add("\n## Checks made before measuring\n")
    add("One probe message through every line, read back from a dumping smtp-sink and verified "
        "with dkimpy against the keys published on knotd:\n")
    for check in r.checks:
        add(f"- {check}")
    add("\n## Commands\n")
    add("`make bench` (= `.venv/bin/python -m bench`; quick: `BENCH_QUICK=1 make bench`). "
        "$WORK is the run's temp directory (removed at the end).\n")
    add("```")
    root = str(Path(__file__).resolve().parents[1]) + "/"
    for name, cmd in r.commands.items():
        add(f"# {name}\n{cmd.replace(root, '')}")  # paths relative to the checkout
    add("```")
    return "\n".join(out) + "\n"
