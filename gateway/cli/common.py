"""What several commands share: who is acting, and a store opened for one piece of work."""

from __future__ import annotations

import argparse
import asyncio
import getpass
from collections.abc import Awaitable, Callable

from gateway.config import Config
from gateway.store import Store, open_store


def actor(args: argparse.Namespace) -> str:
    """The person named by --by, or the login name: the audit trail's actor."""
    return str(args.by or getpass.getuser())


def with_store(cfg: Config, work: Callable[[Store], Awaitable[int]]) -> int:
    """Open the config's store, run `work` on it, close it; `work`'s exit code."""

    async def run() -> int:
        store = open_store(cfg.store.url)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())
