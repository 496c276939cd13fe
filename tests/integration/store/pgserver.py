"""A PostgreSQL server for tests: $GATEWAY_TEST_PG_URL, a local server, or a throwaway cluster.

Order of preference:
1. `$GATEWAY_TEST_PG_URL` (any database on a server where the user may CREATE DATABASE);
2. a local server that answers on 127.0.0.1:5432 or the Debian socket, as `postgres`;
3. a cluster made with `initdb` + `pg_ctl` in a temporary directory on a free loopback port
   (as root, the binaries run as the `postgres` user through `runuser`, since PostgreSQL
   refuses to run as root), stopped and deleted at the end of the session.

Each test gets its own database with a random name, dropped afterwards, so tests can run
in parallel against one server.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

LOCAL_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://postgres@/postgres?host=/var/run/postgresql",
)


async def _answers(url: str, wait: float = 2.0) -> str | None:
    """None when a connection works and CREATE DATABASE is allowed, else why not."""
    try:
        conn = await asyncpg.connect(url, timeout=wait)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        may_create = await conn.fetchval(
            "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        return None if may_create else "the user may not CREATE DATABASE"
    finally:
        await conn.close()


def answers(url: str) -> str | None:
    return asyncio.run(_answers(url))


def with_database(url: str, name: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binaries() -> Path | None:
    """The bin directory holding initdb and pg_ctl (newest version first)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
        reverse=True,
    )
    for initdb in candidates:
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists():
            return bindir
    return None


@dataclass
class ThrowawayCluster:
    """initdb + pg_ctl in a temporary directory; trust auth on 127.0.0.1 only."""

    bindir: Path
    port: int = 0
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tokuden-pg-")))
    run_as: str | None = None  # a user name when we are root

    @classmethod
    def create(cls) -> ThrowawayCluster:
        bindir = find_binaries()
        if bindir is None:
            raise RuntimeError("initdb/pg_ctl not found (install postgresql)")
        run_as = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no `postgres` user") from None
            if shutil.which("runuser") is None:
                raise RuntimeError("running as root and `runuser` is missing")
            run_as = "postgres"
        cluster = cls(bindir=bindir, run_as=run_as)
        try:
            cluster.start()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else list(argv)

    def start(self) -> None:
        if self.run_as:
            info = pwd.getpwnam(self.run_as)
            os.chown(self.root, info.pw_uid, info.pw_gid)
        data = self.root / "data"
        subprocess.run(
            self._cmd(
                str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--no-sync", "--no-instructions",
            ),
            check=True, capture_output=True, text=True, timeout=120,
        )
        last_error = ""
        for _ in range(5):  # the free port may be taken between the probe and the start
            self.port = free_port()
            result = subprocess.run(
                self._cmd(
                    str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.root / "log"),
                    "-w", "-t", "60", "-o",
                    f"-F -p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                    "-c max_connections=200",
                    "start",
                ),
                capture_output=True, text=True, timeout=90,
            )
            if result.returncode == 0:
                return
            last_error = result.stdout + result.stderr
            with contextlib.suppress(OSError):
                last_error += (self.root / "log").read_text()[-2000:]
        raise RuntimeError(f"pg_ctl start failed: {last_error}")

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            subprocess.run(
                self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"),
                          "-m", "immediate", "-w", "stop"),
                capture_output=True, timeout=60,
            )

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class BadTestUrl(RuntimeError):
    """$GATEWAY_TEST_PG_URL is set but does not work: a configuration error, not a skip."""


@dataclass
class PgServer:
    """A server the tests may create databases on."""

    admin_url: str
    origin: str  # env | local | initdb
    cluster: ThrowawayCluster | None = None

    @classmethod
    def find(cls) -> PgServer:
        """$GATEWAY_TEST_PG_URL, else a local server, else a throwaway cluster; RuntimeError
        (with every reason) when none of them works."""
        env = os.environ.get("GATEWAY_TEST_PG_URL")
        if env:
            problem = answers(env)
            if problem:
                raise BadTestUrl(f"$GATEWAY_TEST_PG_URL={env} does not work: {problem}")
            return cls(env, "env")
        reasons: list[str] = []
        for url in LOCAL_CANDIDATES:
            problem = answers(url)
            if problem is None:
                return cls(url, "local")
            reasons.append(f"{url}: {problem}")
        try:
            cluster = ThrowawayCluster.create()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", "") or ""
            reasons.append(f"initdb: {exc} {detail}".strip())
            raise RuntimeError("; ".join(reasons)) from None
        return cls(cluster.url, "initdb", cluster)

    def url_for(self, name: str) -> str:
        return with_database(self.admin_url, name)

    def create_database(self) -> str:
        name = "tokuden_test_" + secrets.token_hex(6)
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
        return name

    def drop_database(self, name: str) -> None:
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.destroy()
