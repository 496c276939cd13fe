"""Store faults: another process holds the SQLite write lock; the store's disk is full.

Both: new transactions get 451 4.3.0 (never a hang past the busy timeout); messages the
upstream already took wait for the store and are logged; the gateway recovers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.client import Outcome, send_message
from tests.faults.invariant import check_invariant, keep_sending, new_message, wait_recovered
from tests.support.gateway import GatewayProcess
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e

StartGateway = Callable[..., GatewayProcess]
BUSY_TIMEOUT = 5.0  # gateway/store/sqlite.py: PRAGMA busy_timeout=5000 on the writer

_LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    db.execute("BEGIN IMMEDIATE")  # the write lock, held until COMMIT
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    db.execute("COMMIT")
""")


def _store_path(cfg: dict[str, Any]) -> str:
    return str(cfg["store"]["url"]).removeprefix("sqlite:///")


async def _load(port: int, outcomes: list[Outcome], tag: str, *, fault: Callable[[], Any],
                probe_after: float, heal: Callable[[], Any], heal_after: float) -> None:
    """Four client loops; `fault()`; `probe_after` s later fresh sessions; `heal()`."""
    stop = asyncio.Event()
    loops = [asyncio.create_task(keep_sending(port, stop, outcomes, tag=f"{tag}{i}", wait=60))
             for i in range(4)]
    await asyncio.sleep(1.0)
    await fault()
    started = time.monotonic()
    await asyncio.sleep(probe_after)
    # The loops' sessions may all sit in DATA waiting for the store: new sessions now.
    # The fault heals on schedule whatever the probes see (a probe that got into DATA
    # waits for the store, which only the heal can give it).
    probes = asyncio.gather(
        *(send_message(port, new_message(f"{tag}-probe"), wait=60) for _ in range(4))
    )
    await asyncio.sleep(max(0.0, heal_after - (time.monotonic() - started)))
    await heal()
    outcomes.extend(await probes)
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*loops), 90)


def test_store_write_lock_held_by_another_process(
    config: dict[str, Any], start_gateway: StartGateway, sink: RecordingSink
) -> None:
    gw = start_gateway(config)
    hold = 8.0  # longer than the busy timeout
    outcomes: list[Outcome] = []
    locker: subprocess.Popen[str] | None = None

    async def take_lock() -> None:
        nonlocal locker
        locker = await asyncio.to_thread(
            subprocess.Popen, [sys.executable, "-c", _LOCKER, _store_path(config), str(hold)],
            stdout=subprocess.PIPE, text=True,
        )
        assert locker.stdout is not None
        assert (await asyncio.to_thread(locker.stdout.readline)).strip() == "locked"

    async def released() -> None:
        assert locker is not None
        await asyncio.to_thread(locker.wait, 30)

    async def scenario() -> float:
        await _load(gw.port, outcomes, "lock", fault=take_lock, probe_after=BUSY_TIMEOUT + 1.0,
                    heal=released, heal_after=hold)
        recovered, ok = await wait_recovered(gw.port, within=15)
        outcomes.append(ok)
        return recovered

    try:
        recovered = asyncio.run(scenario())
    finally:
        if locker is not None:
            locker.kill()
            locker.wait(timeout=10)
    tally = check_invariant(outcomes, [r.data for r in sink.received], gw.config_path)
    refused = [o for o in outcomes if o.code == 451]
    assert refused and all("4.3.0" in o.reply for o in refused), tally
    # fail fast: a refusal never waited longer than one busy timeout (plus slack)
    assert max(o.seconds for o in refused) < BUSY_TIMEOUT + 2.0, max(o.seconds for o in refused)
    # a message the upstream took waited for the lock, then was logged (checked above)
    assert max(o.seconds for o in outcomes) < hold + 4.0
    assert tally.accepted >= 4 and tally.permanent == 0
    assert recovered < 5
    print(f"FIGURE store locked {hold}s: {tally}; slowest reply "
          f"{max(o.seconds for o in outcomes):.1f}s; slowest 451 "
          f"{max(o.seconds for o in refused):.2f}s")


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(directory: Path) -> Path:
    """Write a file until the file system is full; return it (unlink it to free space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 16, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def test_store_disk_full(
    tmp_path: Path, config: dict[str, Any], start_gateway: StartGateway, sink: RecordingSink
) -> None:
    """A real full file system: the store on a 16 MiB tmpfs, filled up by another file
    (room for a WAL near its 4 MiB auto-checkpoint size plus the checkpoint itself)."""
    mount = tmp_path / "small"
    with _tmpfs(mount, "16m"):
        config["store"] = {"url": f"sqlite:///{mount / 'gateway.sqlite3'}"}
        gw = start_gateway(config)
        store = _store_path(config)
        outcomes: list[Outcome] = []
        filler: Path | None = None

        async def fill() -> None:
            nonlocal filler
            # Checkpoint and truncate the WAL first, so the next commit needs new blocks.
            await asyncio.to_thread(subprocess.run, [sys.executable, "-c", (
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=10); "
                "c.execute('PRAGMA wal_checkpoint(TRUNCATE)')"), store], check=True)
            filler = _fill(mount)
            assert os.statvfs(mount).f_bavail == 0

        freed = 0.0

        async def free() -> None:
            nonlocal freed
            assert filler is not None
            await asyncio.to_thread(filler.unlink)  # the operator frees space
            freed = time.monotonic()

        async def scenario() -> float:
            await _load(gw.port, outcomes, "full", fault=fill, probe_after=1.0, heal=free,
                        heal_after=4.0)
            _, ok = await wait_recovered(gw.port, within=15)
            outcomes.append(ok)
            return time.monotonic() - freed

        recovered = asyncio.run(scenario())
        tally = check_invariant(outcomes, [r.data for r in sink.received], gw.config_path)
        gw.stop()
    refused = [o for o in outcomes if o.code == 451]
    assert refused and all("4.3.0" in o.reply for o in refused), tally
    assert tally.accepted >= 2 and tally.permanent == 0
    assert recovered < 8
    print(f"FIGURE disk full (tmpfs): {tally}; slowest reply "
          f"{max(o.seconds for o in outcomes):.1f}s; recovered {recovered:.2f}s after freeing")


def test_health_probe_needs_room_for_an_event(tmp_path: Path) -> None:
    """On a disk with room for a page or two but not for an event's commit, the health
    probe must fail (a one-page no-op UPDATE once passed here and let sessions in)."""
    from gateway.errors import StoreUnavailable
    from gateway.smtp.storehealth import StoreHealth
    from gateway.store.sqlite import SqliteStore
    from tests.integration.store.factories import event

    mount = tmp_path / "tiny"
    with _tmpfs(mount, "16m"):
        db = str(mount / "gateway.sqlite3")

        def squeeze() -> Path:
            with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            filler = _fill(mount)
            # leave ~8 KiB: a page or two, less than the probe's 16 KiB padding
            os.truncate(filler, os.path.getsize(filler) - 8192)
            free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
            assert 0 < free <= 16384, free
            return filler

        async def scenario() -> None:
            store = SqliteStore(db)
            await store.open()
            health = StoreHealth(store, interval=0.0)
            try:
                for n in range(50):
                    await store.record_event(event(n))
                filler = await asyncio.to_thread(squeeze)
                health.failed(StoreUnavailable("disk full"))
                await health._run_probe()
                assert health.failing, "probe passed on a disk with no room for an event"
                await asyncio.to_thread(filler.unlink)
                await health._run_probe()
                assert not health.failing
                await store.record_event(event(999))
            finally:
                await health.close()
                await store.close()

        asyncio.run(scenario())
