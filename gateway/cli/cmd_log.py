"""`log`: read the event log as a table, or as JSON lines for scripts; `log prune`: trim it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime
from typing import Any

from tqdm import tqdm

from gateway import config
from gateway.access.audit import describe, mask_event
from gateway.cli import args as args_mod
from gateway.cli.common import actor, person_parser, with_store
from gateway.cli.table import render
from gateway.consent.service import audit
from gateway.eventlog import PRUNE_BATCH, events_before, prune_events
from gateway.store import EventFilter, Store, open_store


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "log", parents=[common, person_parser()], help="show the event log (newest first)",
        description="The event log, newest first. Recipient addresses are masked (t***@example.jp) "
        "unless --reveal is given with a --reason: that look is audited (events.reveal).")
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
    p.add_argument("--reveal", action="store_true",
                   help="show recipient addresses in full (needs --reason; audited)")
    p.add_argument("--reason", default="", help="why (kept in the audit trail)")
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    # Options given before "prune" must survive: argparse copies a subcommand's defaults
    # over its parent's values, so the ones both have get none here.
    kept = argparse.ArgumentParser(add_help=False)
    kept.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                      help="config file (as for log)")
    kept.add_argument("--by", default=argparse.SUPPRESS, metavar="NAME",
                      help="who is doing this, for the audit trail (default: login name)")
    kept.add_argument("--reason", default=argparse.SUPPRESS, help="why (kept in the audit trail)")
    kept.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                      help="one JSON document")
    prune = actions.add_parser(
        "prune", parents=[kept],
        help="delete events older than a moment (consent evidence and the audit trail stay)",
        description="Delete the events created before WHEN, oldest first, in batches (the "
        "gateway keeps committing in between). Consent evidence, last-sent dates and the "
        "audit trail are other tables and stay. The deletion is audited (events.prune).",
    )
    prune.add_argument("--before", required=True, metavar="WHEN", type=args_mod.moment,
                       help='delete events created before this: "90d" ago or an ISO date-time')
    prune.add_argument("--batch", type=args_mod.at_least(1), default=PRUNE_BATCH,
                       help=f"events deleted per transaction (default {PRUNE_BATCH:,})")
    prune.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    prune.set_defaults(func=run_prune)


def run(args: argparse.Namespace) -> int:
    if args.reveal and not args.reason.strip():
        print("tokuden: --reveal needs --reason: every look at addresses is audited",
              file=sys.stderr)
        return 2
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
    rows = asyncio.run(_query(cfg.store.url, flt, actor(args) if args.reveal else None,
                              args.reason))
    if not args.reveal:
        rows = [mask_event(row) for row in rows]
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


async def _query(
    url: str, flt: EventFilter, revealed_to: str | None, reason: str
) -> list[dict[str, Any]]:
    store = open_store(url)
    await store.open()
    try:
        if revealed_to is not None:  # recorded before anything is shown
            await audit(store, revealed_to, "events.reveal", describe(flt), reason.strip())
        return await store.query_events(flt)
    finally:
        await store.close()


def run_prune(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    before: float = args.before
    if before > time.time():
        print(f"tokuden: --before {_when(before)} is in the future: that would delete "
              "events not yet written", file=sys.stderr)
        return 2

    async def work(store: Store) -> int:
        found = await events_before(store, before)
        deleted = 0
        if not args.dry_run and found:
            bar = tqdm(total=found, unit="event", desc="prune", disable=args.json or None)
            try:
                async for n in prune_events(store, before, args.batch):
                    bar.update(n)
            finally:
                bar.close()
                # Counted afresh, not summed: an interrupt can land while a batch's DELETE
                # is still running on the store's thread, and that batch commits all the same.
                deleted = found - await events_before(store, before)
                if deleted > 0:  # also when interrupted: what went is on record
                    await audit(store, actor(args), "events.prune",
                                f"{deleted} events created before {_when(before)}", args.reason)
        if args.json:
            print(json.dumps({"before": _when(before), "dry_run": args.dry_run,
                              "matched": found, "deleted": deleted}))
        elif args.dry_run:
            print(f"would delete {found:,} events created before {_when(before)}")
        else:
            print(f"deleted {deleted:,} events created before {_when(before)}")
        return 0

    return with_store(cfg, work)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")
