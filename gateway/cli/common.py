"""What several commands share: who is acting, and a store opened for one piece of work."""

from __future__ import annotations

import argparse
import asyncio
import getpass
from collections.abc import Awaitable, Callable

from gateway.config import Config
from gateway.store import Store, open_store


def person_parser() -> argparse.ArgumentParser:
    """A parent parser with --by NAME: the person acting, for the evidence and the audit trail."""
    person = argparse.ArgumentParser(add_help=False)
    person.add_argument(
        "--by", default=None, metavar="NAME",
        help="who is doing this, for the evidence and the audit trail (default: login name)",
    )
    return person


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
