"""The gateway with every rule on, as a real `python -m gateway serve` process."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import message
from bench.procs import free_port, kill_group, process_tree, spawn
from gateway.config import ServerConfig
from gateway.unsubscribe.tokens import generate_secret_file
from tests.support import toml
from tests.support.authenv import EGRESS_IP, AuthEnv

_SERVER_KEYS = {f.name for f in dataclasses.fields(ServerConfig)}
ROOT = Path(__file__).resolve().parents[1]
PACKS = ("baseline", "tokuden", "alignment", "reputation")
LOADGEN_CLIENT = {
    "username": "loadgen",
    "networks": ["127.0.0.0/8"],  # smtp-source speaks no AUTH: authorised by source network
    "senders": ["sample"],
    "class": "advertising",
}


def config(
    workdir: Path, *, store_url: str, upstream_port: int, auth: AuthEnv, workers: int,
    dual: bool
) -> dict[str, Any]:
    """Rules baseline + tokuden + alignment, footer enforced, List-Unsubscribe, DKIM, event log."""
    secret = workdir.parent / "unsubscribe.key"
    if not secret.exists():
        generate_secret_file(secret)
    http_port = free_port()
    dkim = auth.dkim_config() if dual else [auth.dkim_config()[0]]  # [0] is the RSA-2048 key
    server: dict[str, Any] = {}
    if "max_connections_per_ip" in _SERVER_KEYS:
        server["max_connections_per_ip"] = 0  # all load comes from 127.0.0.1
    if workers > 1 and "cpu_affinity" in _SERVER_KEYS:
        server["cpu_affinity"] = "auto"  # one worker a core, as on a host of its own
    return {
        "server": server | {
            "listen": f"127.0.0.1:{free_port()}",
            "hostname": "gw.bench.test",
            "auth_require_tls": False,
            "idle_timeout": 60,
            "shutdown_grace": 5,
            "workers": workers,
        },
        "upstream": {"host": "127.0.0.1", "port": upstream_port, "timeout": 30},
        "store": {"url": store_url},
        "dns": {"nameservers": [auth.nameserver], "timeout": 2.0},
        "http": {"listen": f"127.0.0.1:{http_port}", "public_url": f"http://127.0.0.1:{http_port}"},
        "policy": {
            "mode": "enforce",
            "unsubscribe_secret_file": str(secret),
            "import_approval": False,
            "rules": [str(ROOT / "rules" / f"{p}.toml") for p in PACKS],
        },
        "clients": [LOADGEN_CLIENT],
        "senders": [{**message.SENDER, "egress_ips": [EGRESS_IP], "dkim": dkim}],
    }


class GatewayServer:
    def __init__(self, name: str, workdir: Path, cfg: dict[str, Any]) -> None:
        self.name = name
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "gateway.toml"
        self.config_path.write_text(toml.dumps(cfg), encoding="utf-8")
        self.workers = int(cfg["server"]["workers"])
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = workdir / "gateway.stderr"

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "gateway", "serve", "--config", str(self.config_path),
                "--log-level", "WARNING"]

    def start(self, timeout: float = 60.0) -> None:
        self.proc = spawn(self.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr_file=self.stderr,
                          env={"PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        found: list[int] = []

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                m = re.search(rb"listening on port (\d+)", line)
                if m and (self.workers == 1 or b"workers" in line):
                    found.append(int(m.group(1)))

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.stderr.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"gateway {self.name} did not start:\n{tail}")
            time.sleep(0.05)
        self.port = found[0]

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc is not None else []

    def worker_pids(self) -> list[int]:
        tree = self.pids()
        return tree[1:] if self.workers > 1 else tree

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc, grace=15)
