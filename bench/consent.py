"""Consent store: fill it through the real CLI import (timed), and time the hot-path lookup at 10M.

The recipients smtp-source sends to with `-N -t u@example.com` are `1u@example.com`,
`2u@example.com`, ...: the import grants consent to `{n}u@example.com` for n = 1..rows.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.progress import step
from gateway.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[1]
CSV_HEADER = "email,status,method,consented_at,source_system\n"


def recipient(n: int) -> str:
    return f"{n}u@example.com"


def write_csv(path: Path, rows: int) -> None:
    line = ",opted_in,double_opt_in,2026-01-10T10:00:00+09:00,bench\n"
    with path.open("w", encoding="utf-8") as out:
        out.write(CSV_HEADER)
        for start in range(1, rows + 1, 100_000):
            end = min(start + 100_000, rows + 1)
            out.write("".join(recipient(n) + line for n in range(start, end)))


@dataclass(frozen=True)
class ImportResult:
    rows: int
    seconds: float
    command: str

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def cli_import(config: Path, csv_path: Path, rows: int) -> ImportResult:
    """`python -m gateway consent import` (approval off), wall time of the whole command."""
    argv = [sys.executable, "-m", "gateway", "consent", "import", "--sender", "sample",
            str(csv_path), "--by", "bench", "--json", "--config", str(config)]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"consent import failed ({done.returncode}): {done.stderr[-2000:]}")
    return ImportResult(rows, seconds, "python -m gateway consent import --sender sample "
                        "FILE.csv --by bench --json --config CONFIG")


# -- lookup micro-benchmark -----------------------------------------------------------------


@dataclass(frozen=True)
class LookupResult:
    records: int
    lookups: int
    p50_us: float
    p99_us: float
    max_us: float
    build_seconds: float
    absent_p99_us: float
    # each lookup right after another connection committed, as the event log does under load
    after_commit_p50_us: float = 0.0
    after_commit_p99_us: float = 0.0


_FILL = """
WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
INSERT INTO consent_events (sender_id, address_key, address, status, method, topic,
    occurred_at, recorded_at, source_system, recorded_by, effective)
SELECT 'sample', printf('u%09d@example.com', i), printf('u%09d@example.com', i), 'opted_in',
    'double_opt_in', NULL, 1768000000.0 + i, 1768000000.0, 'bench', 'bench', 1 FROM n
"""


def _key(i: int) -> str:
    return f"u{i:09d}@example.com"


async def _lookups(
    path: Path, records: int, lookups: int
) -> tuple[list[float], list[float], list[float]]:
    store = SqliteStore(str(path))
    await store.open()
    try:
        rng = random.Random(42)
        for _ in range(1000):  # warm the connection and the statement cache
            await store.consent_history("sample", _key(rng.randint(1, records)))
        present: list[float] = []
        absent: list[float] = []
        clock = time.perf_counter_ns
        for i in range(lookups):
            key = _key(rng.randint(1, records)) if i % 10 else f"x{i}@example.com"
            t0 = clock()
            rows = await store.consent_history("sample", key)
            elapsed = (clock() - t0) / 1000
            (present if i % 10 else absent).append(elapsed)
            if i % 10 and len(rows) != 1:
                raise RuntimeError(f"lookup of {key} found {len(rows)} rows")
        after = await _after_commits(store, path, records, rng, lookups // 4)
        return present, absent, after
    finally:
        await store.close()


async def _after_commits(store: SqliteStore, path: Path, records: int, rng: random.Random,
                         lookups: int) -> list[float]:
    """Lookups each right after a commit by another connection (only the lookup timed):
    under load the event log commits between nearly every two lookups."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE IF NOT EXISTS bench_commits (at REAL)")
    clock = time.perf_counter_ns
    timed: list[float] = []
    try:
        for _ in range(lookups):
            writer.execute("INSERT INTO bench_commits VALUES (?)", (time.time(),))
            key = _key(rng.randint(1, records))
            t0 = clock()
            await store.consent_history("sample", key)
            timed.append((clock() - t0) / 1000)
    finally:
        writer.close()
    return timed


def lookup_benchmark(workdir: Path, records: int, lookups: int) -> LookupResult:
    """SqliteStore.consent_history p50/p99 over a store of `records` consent events."""
    path = workdir / "consent10m.sqlite3"
    started = time.monotonic()

    async def create() -> None:
        store = SqliteStore(str(path))
        await store.open()  # schema through the store's own migrations
        await store.close()

    asyncio.run(create())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    chunk = 1_000_000
    with step(f"consent store: {records:,} records", total=records) as bar:
        for start in range(1, records + 1, chunk):
            end = min(start + chunk - 1, records)
            conn.execute("BEGIN")
            conn.execute(_FILL, (start, end))
            conn.execute("COMMIT")
            bar.update(end - start + 1)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("ANALYZE")
    conn.close()
    build = time.monotonic() - started
    present, absent, after = asyncio.run(_lookups(path, records, lookups))
    path.unlink(missing_ok=True)
    q = statistics.quantiles(present, n=100)
    qa = statistics.quantiles(absent, n=100)
    qc = statistics.quantiles(after, n=100)
    return LookupResult(records, lookups, q[49], q[98], max(present), build, qa[98],
                        qc[49], qc[98])
