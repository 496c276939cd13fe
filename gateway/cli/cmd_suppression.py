"""`suppression list|add|clear`: addresses that hard-bounced, and ops' own entries."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway import config as config_mod
from gateway.cli.args import at_least, moment, nonblank
from gateway.cli.common import actor, person_parser, with_store
from gateway.cli.table import render
from gateway.consent import service, suppression
from gateway.consent.address import InvalidAddress, normalize_address, suppression_key
from gateway.consent.suppression_import import import_suppressions, read_suppression_file
from gateway.store import Store


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "suppression",
        help="addresses no advertising mail goes to: hard bounces (5.1.1) and manual entries",
        description="An upstream that answers 5.1.1 to a recipient suppresses the address for "
        "every sender (rule address.suppressed) until ops clear it. Every listing and change "
        "is kept in the audit trail.",
    )
    actions = p.add_subparsers(dest="suppression_command", metavar="ACTION")
    actions.required = True
    person = person_parser()

    show = actions.add_parser("list", parents=[common, person], help="list suppressions")
    show.add_argument("address", nargs="?", help="only this address")
    show.add_argument("--all", action="store_true", help="cleared entries too")
    show.add_argument("--limit", type=at_least(1), default=1000, metavar="N",
                      help="at most N entries, newest first (default: 1000)")
    show.add_argument("--reason", default="", help="why you look (kept in the audit trail)")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    show.set_defaults(func=run_list)

    add = actions.add_parser("add", parents=[common, person], help="suppress an address by hand")
    add.add_argument("address")
    add.add_argument("--note", required=True, type=nonblank,
                     help="why (kept with the entry and audited)")
    add.set_defaults(func=run_add)

    lift = actions.add_parser(
        "clear", parents=[common, person],
        help="end an address's suppression, or every hard bounce since a moment",
        description="End the suppression in force for an address: mail to it is judged by "
        "consent alone again. The entry stays, with who cleared it, when and why. With "
        "--since instead of an address, end every hard-bounce suppression recorded since then "
        "(an upstream that answered 5.1.1 for mailboxes that exist); manual entries stay.",
    )
    lift.add_argument("address", nargs="?")
    lift.add_argument("--since", type=moment, metavar="WHEN",
                      help="every hard bounce recorded since: 2h, 30m, 1d or an ISO date-time")
    lift.add_argument("--reason", required=True, type=nonblank,
                      help="why (kept with the entry and audited)")
    lift.set_defaults(func=run_clear)

    load = actions.add_parser(
        "import", parents=[common, person],
        help="suppress every address of a file (an MA tool's bounce list, at go-live)",
        description="Suppress the addresses of a CSV (UTF-8 or Shift_JIS; the address column "
        "named email, メールアドレス ..., or the first column without a header) or a plain "
        "list. Every row is checked first: one invalid row writes nothing unless "
        "--skip-invalid. The entries are manual ones (cleared with `suppression clear`); one "
        "audit entry names the file. Exit 1 when invalid rows stopped the import.",
    )
    load.add_argument("file", type=Path, metavar="FILE")
    load.add_argument("--note", required=True, type=nonblank,
                      help="why (kept with every entry and audited)")
    load.add_argument("--skip-invalid", action="store_true",
                      help="suppress the valid addresses even when some rows are invalid")
    load.add_argument("--dry-run", action="store_true", help="check the file; write nothing")
    load.add_argument("--json", action="store_true", help="the result as one JSON object")
    load.set_defaults(func=run_import)


def _key(address: str, command: str) -> str | None:
    try:
        return suppression_key(normalize_address(address))
    except InvalidAddress as exc:
        print(f"tokuden suppression {command}: error: {exc}", file=sys.stderr)
        return None


def run_list(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    key = None
    if args.address is not None:
        key = _key(args.address, "list")
        if key is None:
            return 2

    async def work(store: Store) -> int:
        found = await suppression.listing(
            store, address_key=key, include_cleared=args.all, limit=args.limit)
        await service.audit(store, actor(args), "suppression.list", key or "(all)", args.reason)
        if args.json:
            for entry in found:
                print(json.dumps(entry.to_dict(), ensure_ascii=False))
            return 0
        if not found:
            print("no suppressions" + ("" if args.all else " in force"))
            return 0
        rows = [
            [e.address_key, e.reason, e.to_dict()["created_at_iso"], e.created_by,
             e.sender_id or "-", "in force" if e.active else f"cleared by {e.cleared_by}",
             e.detail if e.active else (e.clear_reason or "")]
            for e in found
        ]
        print(render(["address", "reason", "since", "by", "sender", "state", "detail"], rows,
                     max_col=60))
        return 0

    return with_store(cfg, work)


def _change(args: argparse.Namespace, command: str,
            apply: Callable[[Store, str], Awaitable[bool]], done: str, nothing: str) -> int:
    """Run one audited change on an address: exit 0 when it changed, 1 when nothing did."""
    cfg = config_mod.load(args.config)
    key = _key(args.address, command)
    if key is None:
        return 2

    async def work(store: Store) -> int:
        changed = await apply(store, key)
        print(f"{key}: {done if changed else nothing}")
        return 0 if changed else 1

    return with_store(cfg, work)


def run_add(args: argparse.Namespace) -> int:
    async def apply(store: Store, key: str) -> bool:
        return await suppression.suppress(
            store, key, suppression.MANUAL, args.note, actor=actor(args))

    return _change(args, "add", apply, "suppressed", "already suppressed; nothing added")


def run_clear(args: argparse.Namespace) -> int:
    if (args.address is None) == (args.since is None):
        print("tokuden suppression clear: error: give an ADDRESS or --since, not both",
              file=sys.stderr)
        return 2
    if args.since is not None:
        cfg = config_mod.load(args.config)

        async def bulk(store: Store) -> int:
            n = await suppression.clear_hard_bounces_since(store, args.since, actor(args),
                                                           args.reason)
            print(f"{n} hard-bounce suppression(s) cleared")
            return 0 if n else 1

        return with_store(cfg, bulk)

    async def apply(store: Store, key: str) -> bool:
        return await suppression.clear(store, key, actor(args), args.reason) > 0

    return _change(args, "clear", apply, "suppression cleared; consent alone decides again",
                   "no suppression in force; nothing cleared")


def run_import(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    try:
        found = read_suppression_file(args.file)
    except ValueError as exc:
        print(f"tokuden suppression import: error: {exc}", file=sys.stderr)
        return 2
    blocked = found.invalid > 0 and not args.skip_invalid
    added = 0
    if found.keys and not blocked and not args.dry_run:
        async def work(store: Store) -> int:
            return await import_suppressions(store, found.keys, args.note, actor(args),
                                             found.name)

        added = with_store(cfg, work)
    result = {**found.to_dict(), "added": added, "already": 0 if blocked or args.dry_run
              else len(found.keys) - added, "dry_run": args.dry_run}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 1 if blocked else 0
    print(f"{found.name} ({found.encoding}): {found.rows:,} rows, {len(found.keys):,} "
          f"addresses, {found.duplicates:,} duplicates, {found.invalid:,} invalid")
    for line in found.error_lines()[:20]:
        print(f"  {line}")
    if found.invalid > 20:
        print(f"  ... and {found.invalid - 20:,} more")
    if blocked:
        print("nothing suppressed: fix the invalid rows, or give --skip-invalid")
        return 1
    if args.dry_run:
        print("dry run: nothing suppressed")
        return 0
    print(f"{added:,} suppressed ({result['already']:,} were already)")
    return 0
