"""Store figures, both backends: consent lookup latency and event commit throughput.

python -m tests.integration.store.bench_store [--rows 200000] [--events 20000] [--concurrency 64]
(PostgreSQL from $GATEWAY_TEST_PG_URL, the local server, or a throwaway cluster, as in the tests.)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from gateway.store import Store, open_store
from gateway.store.consent_rows import consent_row
from tests.integration.store.factories import T0, consent, event
from tests.integration.store.pgserver import PgServer


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def bench(store: Store, label: str, rows: int, events: int, concurrency: int) -> None:
    chunk = 20_000
    for start in range(0, rows, chunk):
        batch = [
            consent_row(consent(f"u{n}@example.com"), f"u{n}@example.com", T0, True)
            for n in range(start, min(rows, start + chunk))
        ]
        await store.insert_consent_rows(batch)
    keys = [f"u{random.randrange(rows)}@example.com" for _ in range(5000)]
    for key in keys[:200]:  # warm the pool / prepared statements / page cache
        await store.consent_history("sample", key)
    lat: list[float] = []
    for key in keys:
        t = time.perf_counter()
        found = await store.consent_history("sample", key)
        lat.append(time.perf_counter() - t)
        assert found
    sem = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with sem:
            await store.record_event(event(n), f"u{n % rows}@example.com")

    commits0 = store.commits  # type: ignore[attr-defined]
    t = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(events)))
    took = time.perf_counter() - t
    commits = store.commits - commits0  # type: ignore[attr-defined]
    print(
        f"{label:9} lookup p50 {pct(lat, 0.5) * 1e6:7.0f} µs  p99 {pct(lat, 0.99) * 1e6:7.0f} µs  "
        f"mean {statistics.mean(lat) * 1e6:7.0f} µs | {events} events x{concurrency}: "
        f"{events / took:8.0f} events/s, {commits} commits ({events / max(commits, 1):.1f}/commit)"
    )


async def run_one(url: str, label: str, args: argparse.Namespace) -> None:
    store = open_store(url)
    await store.open()
    try:
        await bench(store, label, args.rows, args.events, args.concurrency)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run_one(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", "sqlite", args))
    server = PgServer.find()
    name = server.create_database()
    try:
        asyncio.run(run_one(server.url_for(name), f"postgres ({server.origin})", args))
    finally:
        server.drop_database(name)
        server.close()


if __name__ == "__main__":
    main()
