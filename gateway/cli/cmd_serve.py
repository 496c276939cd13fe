"""`serve`: run the SMTP listener until SIGTERM/SIGINT, then drain and exit 0.

With `[server] workers = N > 1` this process opens the SMTP socket and supervises N
worker processes that inherit it and one store; worker 0 also serves HTTP. Migrations
run once, here, before any worker starts.

One accept queue for all workers, not one per worker (SO_REUSEPORT): a worker busy
signing does not accept, so a new connection goes to whichever worker is free instead
of being hashed to one that may be loaded (added p99 at 240 msgs/s: 27.9 -> 15.4 ms in
interleaved pairs; throughput unchanged); and connections waiting in the queue survive
a worker's death.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

import uvloop

from gateway import app, config, logs
from gateway.engine.packs import load_packs, unguarded
from gateway.smtp.server import make_socket
from gateway.store import open_store

log = logging.getLogger(__name__)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="run the gateway until SIGTERM")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    logs.setup(args.log_level)
    if args.worker is None:  # said once, by the process the operator started
        for warning in config.warnings(cfg) + unguarded(load_packs(cfg.policy.rules)):
            log.warning(warning)
    workers = cfg.server.workers
    if workers > 1 and args.worker is None:
        return _supervise(args, workers, cfg)
    cpu = None
    if args.worker is not None and cfg.server.cpu_affinity == "auto":
        cpu = pin_to_cpu(args.worker)  # before any thread starts: threads inherit it
    gateway = app.build(cfg, serve_http=args.worker in (None, 0), listen_fd=args.listen_fd)
    if cfg.server.event_loop == "uvloop":
        return uvloop.run(_serve(gateway, args.worker, cpu))
    return asyncio.run(_serve(gateway, args.worker, cpu))


def pin_to_cpu(worker: int) -> int | None:
    """Pin this process to one of the CPUs it may run on: worker i to the i-th, round robin
    (a container's cpuset is respected: only the CPUs it allows are counted). Where the
    system refuses (a sandbox that forbids the call), say so and run unpinned: a worker
    that died of it would only be restarted to die again."""
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[worker % len(allowed)]
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        log.warning("server.cpu_affinity: cannot pin worker %d to CPU %d (%s); it runs "
                    "unpinned", worker, cpu, exc)
        return None
    return cpu


async def _serve(gateway: app.Gateway, worker: int | None, cpu: int | None = None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    # What start() built (config, rules, caches, modules) lives as long as the process:
    # frozen, the cyclic GC's full collections no longer walk it under load (added p99
    # at 150 msgs/s: 33-61 ms without, 13-26 ms with, interleaved runs).
    gc.collect()
    gc.freeze()
    who = "" if worker is None else f"worker {worker} "
    where = "" if cpu is None else f" (CPU {cpu})"
    print(f"tokuden: {who}listening on port {gateway.port}{where}", flush=True)
    await stop.wait()
    await gateway.stop()
    return 0


def _migrate(url: str) -> None:
    async def go() -> None:
        store = open_store(url)
        await store.open()
        await store.close()

    asyncio.run(go())


def _supervise(args: argparse.Namespace, workers: int, cfg: config.Config) -> int:
    _migrate(cfg.store.url)
    listener = make_socket(cfg.server.listen)
    stopping = False

    def spawn(index: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "serve",
                "--config",
                args.config,
                "--log-level",
                args.log_level,
                "--worker",
                str(index),
                "--listen-fd",
                str(listener.fileno()),
            ],
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=(listener.fileno(),),
        )

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    children = [spawn(i) for i in range(workers)]
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    port = ""
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline()
        if "listening on port" not in line:
            on_signal(signal.SIGTERM, None)
            for other in children:
                try:
                    other.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    other.kill()
            if child.returncode == 2:
                return 2  # a config error, which the worker has named on stderr
            print("tokuden: a worker failed to start", file=sys.stderr)
            return 1
        port = line.split("listening on port ", 1)[1].split()[0]
    print(f"tokuden: listening on port {port} ({workers} workers)", flush=True)
    restarts: list[float] = []
    while True:
        time.sleep(0.2)
        for i, child in enumerate(children):
            code = child.poll()
            if code is None:
                continue
            if stopping:
                continue
            # a worker died on its own: restart it, unless it keeps dying
            restarts = [t for t in restarts if time.monotonic() - t < 60] + [time.monotonic()]
            if len(restarts) > 5 * workers:
                print("tokuden: workers keep dying; giving up", file=sys.stderr)
                on_signal(signal.SIGTERM, None)
                return 1
            print(f"tokuden: worker {i} exited with {code}; restarting", file=sys.stderr)
            children[i] = spawn(i)
        if stopping and all(c.poll() is not None for c in children):
            return max((c.returncode or 0) for c in children)
