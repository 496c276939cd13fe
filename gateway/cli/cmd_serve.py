"""`serve`: run the SMTP listener until SIGTERM/SIGINT, then drain and exit 0."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from gateway import app, config, logs


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="run the gateway until SIGTERM")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    logs.setup(args.log_level)
    gateway = app.build(cfg)
    return asyncio.run(_serve(gateway))


async def _serve(gateway: app.Gateway) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    print(f"tokuden: listening on port {gateway.port}", flush=True)
    await stop.wait()
    await gateway.stop()
    return 0
