"""The PostgreSQL store for the `pg` line: a fresh database on the server the tests use.

Where the server comes from follows tests/integration/store/pgserver.py: $GATEWAY_TEST_PG_URL,
else a local server on 127.0.0.1:5432 or the Debian socket, else a throwaway initdb cluster.
The run reports which, and the server's durability settings, next to the figures: a
cluster started with fsync off would flatter the line.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.procs import on_cleanup, tree_cpu_seconds
from tests.integration.store.pgserver import PgServer


@dataclass(frozen=True)
class PgStore:
    url: str
    origin: str  # env | local | initdb
    version: str
    settings: str  # "fsync on, synchronous_commit on, ..."
    postmaster: int  # pid, for the server's CPU; 0 when the server is not on this machine

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.postmaster) if self.postmaster else 0.0

    def describe(self) -> str:
        where = {"env": "$GATEWAY_TEST_PG_URL", "local": "the local server",
                 "initdb": "a throwaway initdb cluster"}[self.origin]
        return f"PostgreSQL {self.version} ({where}; {self.settings})"


def create() -> PgStore:
    """A new empty database, dropped (and a throwaway cluster stopped) when the bench ends."""
    server = PgServer.find()
    name = server.create_database()

    def drop() -> None:
        try:
            server.drop_database(name)
        finally:
            server.close()

    on_cleanup(drop)
    url = server.url_for(name)
    version, settings, backend = asyncio.run(_inspect(url))
    return PgStore(url, server.origin, version, settings, _parent_pid(backend))


async def _inspect(url: str) -> tuple[str, str, int]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        version = await conn.fetchval("SHOW server_version")
        names = ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers")
        values = [f"{n} {await conn.fetchval(f'SHOW {n}')}" for n in names]
        backend = await conn.fetchval("SELECT pg_backend_pid()")
    finally:
        await conn.close()
    return str(version).split()[0], ", ".join(values), int(backend)


def _parent_pid(pid: int) -> int:
    """The postmaster: the parent of our backend, if that backend runs on this machine."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
    try:
        exe = os.readlink(f"/proc/{ppid}/exe")
    except OSError:
        return 0
    return ppid if "postgres" in exe else 0
