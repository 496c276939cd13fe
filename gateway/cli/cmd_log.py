"""`log`: read the event log as a table, or as JSON lines for scripts."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from gateway import config
from gateway.cli import args as args_mod
from gateway.cli.table import render
from gateway.store import EventFilter, open_store


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("log", parents=[common], help="show the event log (newest first)")
    p.add_argument("--since", metavar="WHEN", type=args_mod.moment,
                   help='e.g. "1h", "30m", "2d" or an ISO date-time')
    p.add_argument("--verdict", choices=["accepted", "rejected", "tempfailed"])
    p.add_argument("--phase", choices=["mail", "rcpt", "data"],
                   help="where the decision fell (mail: refused before any recipient)")
    p.add_argument("--rule", metavar="ID", help="only events naming this rule id")
    p.add_argument("--client", metavar="NAME")
    p.add_argument("--sender", metavar="ID")
    p.add_argument("--limit", type=args_mod.at_least(1), default=50,
                   help="at most this many events (default 50)")
    p.add_argument("--json", action="store_true", help="JSON lines with stable keys")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    flt = EventFilter(
        since=args.since,
        verdict=args.verdict,
        phase=args.phase,
        rule=args.rule,
        client=args.client,
        sender_id=args.sender,
        limit=args.limit,
    )
    rows = asyncio.run(_query(cfg.store.url, flt))
    if args.json:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        return 0
    if not rows:
        print("no events match")
        return 0
    table = [
        [
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created_at"])),
            row["verdict"],
            row["phase"],
            ",".join(row["rule_ids"])
            or ("monitor:" + ",".join(row["monitored"]) if row["monitored"] else "-"),
            row["client"],
            row["recipient"] or "-",
            row["reply"],
        ]
        for row in rows
    ]
    print(render(["time", "verdict", "phase", "rules", "client", "recipient", "reply"], table))
    return 0


async def _query(url: str, flt: EventFilter) -> list[dict[str, Any]]:
    store = open_store(url)
    await store.open()
    try:
        return await store.query_events(flt)
    finally:
        await store.close()
