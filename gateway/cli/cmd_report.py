"""`report --month YYYY-MM`: the monthly compliance report as text, JSON or CSV."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from gateway import config as config_mod
from gateway.access.report import DEFAULT_TZ, compliance_report, month_bounds, report_csv
from gateway.store import open_store


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", parents=[common], help="monthly compliance report")
    p.add_argument("--month", required=True, metavar="YYYY-MM")
    p.add_argument("--tz", default=DEFAULT_TZ,
                   help=f"time zone of the month (default {DEFAULT_TZ})")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON document")
    fmt.add_argument("--csv", action="store_true", help="CSV (UTF-8 with BOM, for Excel)")
    p.set_defaults(func=run)


async def _report(url: str, month: str, tz: str) -> dict[str, Any]:
    store = open_store(url)
    await store.open()
    try:
        return await compliance_report(store, month, tz)
    finally:
        await store.close()


def run(args: argparse.Namespace) -> int:
    try:
        month_bounds(args.month, args.tz)
    except (ValueError, KeyError) as exc:
        print(f"tokuden report: error: --month/--tz: {exc}", file=sys.stderr)
        return 2
    cfg = config_mod.load(args.config)
    report = asyncio.run(_report(cfg.store.url, args.month, args.tz))
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
        return 0
    if args.csv:
        sys.stdout.write(report_csv(report))
        return 0
    mail, optouts, imports = report["mail"], report["optouts"], report["imports"]
    print(f"Compliance report {report['month']} ({report['from']} .. {report['until']})")
    print(f"mail: {mail['accepted']} sent, {mail['rejected']} refused, "
          f"{mail['tempfailed']} temporarily failed")
    for rule, n in mail["refused_by_rule"].items():
        print(f"  refused {rule}: {n}")
    for rule, n in mail["monitored_by_rule"].items():
        print(f"  monitored {rule}: {n}")
    print(f"opt-outs: {optouts['total']}")
    for method, fig in optouts["by_method"].items():
        print(f"  {method}: {fig['count']} (to effect: avg {fig['avg_seconds_to_effect']} s, "
              f"max {fig['max_seconds_to_effect']} s, over 2 days {fig['over_two_days']})")
    print(f"consent imports: {imports['batches']} batches, {imports['grants']} grants, "
          f"{imports['optouts']} opt-outs; {imports['approved']} approved")
    print(f"purges: {len(report['purges'])}")
    for purge in report["purges"]:
        print(f"  {purge['at']} {purge['subject']} by {purge['actor']}")
    for action, n in report["personal_data_access"].items():
        print(f"personal-data access {action}: {n}")
    return 0
