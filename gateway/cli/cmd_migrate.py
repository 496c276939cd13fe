"""`migrate`: apply pending store migrations and say which."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from gateway import config
from gateway.store import open_store


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("migrate", parents=[common], help="apply store migrations")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    return asyncio.run(_migrate(cfg.store.url))


async def _migrate(url: str) -> int:
    store = open_store(url)
    await store.open()  # open() applies what is pending
    applied = store.applied
    await store.close()
    print("store is up to date" if not applied else "applied: " + ", ".join(applied))
    return 0
