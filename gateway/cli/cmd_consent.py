"""`consent import|lookup|batches|approve|discard|export|purge|erase` from the shell."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gateway import config as config_mod
from gateway.cli.args import nonblank
from gateway.cli.common import actor, person_parser, with_store
from gateway.cli.table import render
from gateway.config import Config, SenderConfig
from gateway.consent import erasure, service
from gateway.consent.address import InvalidAddress
from gateway.consent.importer import column_spec_markdown, export_rows
from gateway.errors import ConfigError
from gateway.store import Store


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "consent", help="opt-in records: import, lookup, approve, discard, export, purge, erase"
    )
    actions = p.add_subparsers(dest="consent_command", metavar="ACTION")
    actions.required = True
    person = person_parser()

    imp = actions.add_parser(
        "import",
        parents=[common, person],
        help="bulk import a CSV or JSON-lines file",
        description="Import consent records. Columns:\n\n" + column_spec_markdown(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("--sender", required=True, metavar="ID", help="sender identity")
    imp.add_argument("file", type=Path, help="CSV (UTF-8 or Shift_JIS) or JSON lines")
    imp.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file name")
    imp.add_argument("--encoding", help="override encoding detection (e.g. cp932)")
    imp.add_argument("--skip-invalid", action="store_true", help="import the valid rows anyway")
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    imp.set_defaults(func=run_import)

    look = actions.add_parser("lookup", parents=[common, person], help="status, evidence, history")
    look.add_argument("--sender", required=True, metavar="ID")
    look.add_argument("address")
    look.add_argument("--topic", help="decide for mail on this topic")
    look.add_argument("--reason", default="", help="why you look (kept in the audit trail)")
    look.add_argument("--json", action="store_true")
    look.set_defaults(func=run_lookup)

    batches = actions.add_parser("batches", parents=[common], help="list import batches")
    batches.add_argument("--status", choices=service.BATCH_STATES)
    batches.add_argument("--json", action="store_true")
    batches.set_defaults(func=run_batches)

    approve = actions.add_parser(
        "approve", parents=[common, person], help="approve a pending batch"
    )
    approve.add_argument("batch")
    approve.set_defaults(func=run_approve)

    discard = actions.add_parser(
        "discard",
        parents=[common, person],
        help="remove a batch that never took effect (an import that died while loading)",
        description="Remove the rows of a loading or failed import batch and mark it failed. "
        "Pending and approved batches are refused: their opt-outs are in effect. A loading "
        "batch whose import is still running (it refreshes a heartbeat every "
        f"{service.HEARTBEAT_SECONDS:.0f} s) is refused unless --force, which makes that "
        "import fail at its end. Every import first discards the batches of imports that "
        f"died (no heartbeat for {service.ABANDONED_AFTER:.0f} s) by itself.",
    )
    discard.add_argument("batch")
    discard.add_argument(
        "--force", action="store_true",
        help="discard even a batch whose import is still running (that import fails)",
    )
    discard.set_defaults(func=run_discard)

    export = actions.add_parser("export", parents=[common, person], help="export for an audit")
    export.add_argument("--sender", required=True, metavar="ID")
    export.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    export.add_argument("--output", type=Path, help="file to write (default: stdout)")
    export.add_argument("--reason", default="", help="why (kept in the audit trail)")
    export.set_defaults(func=run_export)

    erase = actions.add_parser(
        "erase", parents=[common, person],
        help="erase a person's address (an erasure request); the refusal stays, hashed",
        description="Delete every consent row, last-send record and suppression of the "
        "address, write it out of the event log, and keep one opt-out per sender under the "
        "address's keyed hash (policy.erasure_key_file), so that a later import cannot mail "
        "the person again. Cannot be undone. The audit trail keeps only the hash.",
    )
    erase.add_argument("address")
    erase.add_argument("--reason", required=True, type=nonblank,
                       help="the request it answers (audited)")
    erase.add_argument("--json", action="store_true")
    erase.set_defaults(func=run_erase)

    purge = actions.add_parser(
        "purge", parents=[common, person], help="delete evidence no rule requires any more"
    )
    purge.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    purge.add_argument("--json", action="store_true")
    purge.set_defaults(func=run_purge)


def _sender(cfg: Config, sender_id: str) -> SenderConfig:
    sender = cfg.sender(sender_id)
    if sender is None:
        known = ", ".join(s.id for s in cfg.senders)
        raise ConfigError(f"unknown sender {sender_id!r} (known: {known})", "--sender")
    return sender


def run_import(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    sender = _sender(cfg, args.sender)
    if not args.file.is_file():
        print(f"tokuden consent import: error: cannot read {args.file}", file=sys.stderr)
        return 2
    total = args.file.stat().st_size
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="import", disable=args.json or None)

    def progress(done: int, _total: int | None) -> None:
        bar.update(done - bar.n)

    async def work(store: Store) -> int:
        started = time.monotonic()
        result = await service.import_file(
            store,
            sender=sender,
            path=args.file,
            recorded_by=actor(args),
            fmt=args.format,
            encoding=args.encoding,
            skip_invalid=args.skip_invalid,
            approval_required=cfg.policy.import_approval,
            on_progress=progress,
            erasure_keys=erasure.configured_keys(cfg),
        )
        bar.close()
        return _print_import(result, time.monotonic() - started, args.json)

    return with_store(cfg, work)


def _print_import(result: service.ImportResult, seconds: float, as_json: bool) -> int:
    report = result.report
    if as_json:
        print(
            json.dumps(
                {
                    "batch": result.batch_id,
                    "state": result.state,
                    "imported": result.imported,
                    "grants": result.grants,
                    "optouts": result.optouts,
                    "skipped_lines": result.skipped,
                    "errors": [str(e) for e in report.errors],
                    "warnings": [str(w) for w in report.warnings],
                    "fatal": None if report.fatal is None else str(report.fatal),
                    "cleaned_batches": result.cleaned,
                    "abandoned_batches": result.abandoned,
                    "seconds": round(seconds, 3),
                },
                ensure_ascii=False,
            )
        )
    else:
        for warning in report.warnings[:50]:
            print(f"warning: {warning}", file=sys.stderr)
        for error in report.errors[:200]:
            print(f"error: {error}", file=sys.stderr)
        if len(report.errors) > 200:
            print(f"... and {report.error_count - 200} more errors", file=sys.stderr)
        for batch_id in result.abandoned:
            print(
                f"discarded batch {batch_id}: its import died while loading (no heartbeat for "
                f"{service.ABANDONED_AFTER:.0f} s); its rows were never in effect"
            )
        for batch_id in result.cleaned:
            print(f"removed the rows left of failed batch {batch_id} (never in effect)")
        print(report.summary())
        if result.state == "failed" and report.error_count:
            print("nothing was imported: fix the rows above, or use --skip-invalid")
        elif result.state == "failed":
            print("nothing was imported")
        else:
            rate = result.imported / seconds if seconds else 0
            print(
                f"batch {result.batch_id}: {result.imported} records in {seconds:.1f}s "
                f"({rate:,.0f}/s); {result.optouts} opt-outs in effect now"
            )
            if result.skipped:
                print(f"skipped lines: {', '.join(map(str, result.skipped[:100]))}")
            if result.state == "pending":
                print(
                    f"{result.grants} consents wait for approval by a second person: "
                    f"tokuden consent approve {result.batch_id}"
                )
    return 1 if result.state == "failed" else 0


def run_lookup(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    sender = _sender(cfg, args.sender)

    async def work(store: Store) -> int:
        try:
            found = await service.lookup(
                store,
                sender,
                args.address,
                actor=actor(args),
                reason=args.reason,
                topic=args.topic,
            )
        except InvalidAddress as exc:
            print(f"tokuden consent lookup: error: {exc}", file=sys.stderr)
            return 2
        data = found.to_dict()
        if args.json:
            print(json.dumps(data, ensure_ascii=False))
            return 0
        print(f"{data['address']} ({sender.id}): {data['status']} — {data['reason']}")
        print(f"last advertising mail: {data['last_sent'] or 'never'}")
        if found.suppression is not None:
            print(f"SUPPRESSED — no advertising mail goes to it: {found.suppression.describe()}"
                  " (tokuden suppression clear ADDRESS --reason WHY ends it)")
        rows = [
            [
                h["occurred_at"],
                h["status"],
                h["method"],
                h["topic"] or "*",
                h["source_system"],
                h["source_ref"] or "",
                h["batch_id"] or "",
                "yes" if h["effective"] else "pending",
            ]
            for h in data["history"]
        ]
        if rows:
            print(
                render(
                    ["when", "status", "method", "topic", "source", "ref", "batch", "effective"],
                    rows,
                )
            )
        return 0

    return with_store(cfg, work)


def run_batches(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)

    async def work(store: Store) -> int:
        rows = await service.list_batches(store, args.status)
        if args.json:
            for row in rows:
                print(json.dumps(row, ensure_ascii=False))
            return 0
        if not rows:
            print("no import batches")
            return 0
        table = [
            [
                r["id"],
                r["sender_id"],
                r["status"] + (" (import died)" if r["abandoned"] else ""),
                str(r["grants"]),
                str(r["optouts"]),
                r["created_by"],
                r["decided_by"] or "",
                _when(r["created_at"]),
                r["source_name"],
            ]
            for r in rows
        ]
        print(
            render(
                [
                    "batch",
                    "sender",
                    "status",
                    "grants",
                    "opt-outs",
                    "by",
                    "approved by",
                    "created",
                    "file",
                ],
                table,
            )
        )
        return 0

    return with_store(cfg, work)


def run_discard(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)

    async def work(store: Store) -> int:
        try:
            removed = await service.discard_batch(
                store, args.batch, actor(args), force=args.force
            )
        except service.DiscardRefused as exc:
            print(f"tokuden consent discard: refused: {exc}", file=sys.stderr)
            return 1
        print(f"batch {args.batch} discarded: {removed} rows removed (they were never in effect)")
        return 0

    return with_store(cfg, work)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def run_approve(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)

    async def work(store: Store) -> int:
        try:
            batch = await service.approve_batch(
                store, args.batch, actor(args), cfg.policy.approvers
            )
        except service.ApprovalRefused as exc:
            print(f"tokuden consent approve: refused: {exc}", file=sys.stderr)
            return 1
        print(
            f"batch {batch['id']} approved by {batch['decided_by']}: "
            f"{batch['grants']} consents in effect now"
        )
        return 0

    return with_store(cfg, work)


def run_export(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    sender = _sender(cfg, args.sender)

    async def work(store: Store) -> int:
        rows = await service.export_records(store, sender, actor=actor(args), reason=args.reason)
        columns = (
            "email",
            "status",
            "method",
            "consented_at",
            "source_system",
            "source_ref",
            "topic",
            "client_ip",
            "user_agent",
        )
        out = args.output.open("wb") if args.output else sys.stdout.buffer
        try:
            for chunk in export_rows(rows, args.format, columns=columns):
                out.write(chunk)
        finally:
            if args.output:
                out.close()
        print(f"exported {len(rows)} records", file=sys.stderr)
        return 0

    return with_store(cfg, work)


def run_erase(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    keys = erasure.configured_keys(cfg)
    if not keys:
        raise ConfigError("not set: erasing needs a key to hash the address with (tokuden "
                          "secret generate FILE makes one)", "policy.erasure_key_file")

    async def work(store: Store) -> int:
        try:
            done = await erasure.erase(store, args.address, senders=[s.id for s in cfg.senders],
                                       keys=keys, actor=actor(args), reason=args.reason)
        except InvalidAddress as exc:
            print(f"tokuden consent erase: error: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(done.to_dict(), ensure_ascii=False))
            return 0
        print(f"erased: {done.consent_rows} consent rows, {done.last_sent_rows} last-send "
              f"records, {done.suppressions} suppressions, {done.events} events rewritten")
        print(f"the refusal stays for {', '.join(done.senders)} as {done.address_hash}")
        return 0

    return with_store(cfg, work)


def run_purge(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)

    async def work(store: Store) -> int:
        now = datetime.now(UTC)
        deleted = 0
        items = [item async for item in service.plan_purge(store, cfg, now)]
        for item in items:
            if item.purgeable and not args.dry_run:
                deleted += await service.purge(store, item)
        if not args.dry_run and deleted:
            await service.audit(store, actor(args), "consent.purge", f"{deleted} rows")
        if args.json:
            for item in items:
                print(
                    json.dumps(
                        {
                            **dataclasses.asdict(item),
                            "deleted": item.purgeable and not args.dry_run,
                        },
                        ensure_ascii=False,
                    )
                )
            return 0
        table = [
            [
                i.sender_id,
                i.address_key,
                str(i.rows),
                "purge" if i.purgeable else "keep",
                i.keep_until,
                i.reason,
            ]
            for i in items
        ]
        if table:
            print(
                render(
                    ["sender", "address", "rows", "action", "keep until", "why"], table, max_col=90
                )
            )
        verb = "would delete" if args.dry_run else "deleted"
        count = sum(i.rows for i in items if i.purgeable)
        print(
            f"{verb} {count if args.dry_run else deleted} rows; "
            f"{sum(1 for i in items if not i.purgeable)} records kept"
        )
        return 0

    return with_store(cfg, work)
