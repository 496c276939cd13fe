"""The monthly compliance report: mail sent and refused, opt-outs, imports, purges, data access."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.store.base import Store

__all__ = ["DEFAULT_TZ", "compliance_report", "month_bounds", "report_csv"]

DEFAULT_TZ = "Asia/Tokyo"
SLA_SECONDS = 2 * 86400  # Gmail / Yahoo: honour an unsubscribe within two days
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def month_bounds(month: str, tz: str = DEFAULT_TZ) -> tuple[float, float]:
    """[start, end) of a 'YYYY-MM' month in the given time zone, as epoch seconds."""
    match = _MONTH.match(month.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month {month!r} is not like 2026-04")
    year, mon = int(match.group(1)), int(match.group(2))
    zone = ZoneInfo(tz)
    start = datetime(year, mon, 1, tzinfo=zone)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=zone)
    return start.timestamp(), end.timestamp()


def _iso(ts: float | None, tz: str) -> str | None:
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).isoformat() if ts is not None else None


async def compliance_report(store: Store, month: str, tz: str = DEFAULT_TZ) -> dict[str, Any]:
    """Every figure of one month, as a JSON-ready dict with stable keys."""
    start, end = month_bounds(month, tz)
    span = (start, end)

    verdicts: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    tempfailed: Counter[str] = Counter()
    monitored: Counter[str] = Counter()
    for row in await store.fetch(
        "SELECT verdict, rule_ids, monitored, count(*) AS n FROM events "
        "WHERE created_at >= ? AND created_at < ? GROUP BY verdict, rule_ids, monitored", span
    ):
        n = int(row["n"])
        verdicts[row["verdict"]] += n
        target = refused if row["verdict"] == "rejected" else tempfailed
        for rule in filter(None, str(row["rule_ids"]).split(",")):
            if row["verdict"] != "accepted":
                target[rule] += n
        for rule in filter(None, str(row["monitored"]).split(",")):
            monitored[rule] += n

    optouts: dict[str, dict[str, Any]] = {}
    for row in await store.fetch(
        "SELECT method, count(*) AS n, avg(recorded_at - occurred_at) AS avg_delay, "
        "max(recorded_at - occurred_at) AS max_delay, "
        "sum(CASE WHEN recorded_at - occurred_at > ? THEN 1 ELSE 0 END) AS over_sla "
        "FROM consent_events WHERE status = 'opted_out' AND recorded_at >= ? AND recorded_at < ? "
        "GROUP BY method ORDER BY method", (SLA_SECONDS, *span)
    ):
        optouts[row["method"]] = {
            "count": int(row["n"]),
            "avg_seconds_to_effect": round(max(0.0, float(row["avg_delay"] or 0)), 3),
            "max_seconds_to_effect": round(max(0.0, float(row["max_delay"] or 0)), 3),
            "over_two_days": int(row["over_sla"] or 0),
        }

    created = await store.fetch(
        "SELECT id, sender_id, created_at, created_by, source_name, grants, optouts, status, "
        "decided_by, decided_at FROM import_batches WHERE created_at >= ? AND created_at < ? "
        "ORDER BY created_at", span
    )
    decided = await store.fetch(
        "SELECT id, created_at, created_by, decided_by, decided_at FROM import_batches "
        "WHERE status = 'approved' AND decided_by IS NOT NULL AND decided_at >= ? "
        "AND decided_at < ? ORDER BY decided_at", span
    )
    waits = [float(r["decided_at"]) - float(r["created_at"]) for r in decided]
    purges = await store.fetch(
        "SELECT at, actor, subject, reason FROM audit_log WHERE action = 'consent.purge' "
        "AND at >= ? AND at < ? ORDER BY at", span
    )
    access = await store.fetch(
        "SELECT action, count(*) AS n FROM audit_log WHERE at >= ? AND at < ? "
        "GROUP BY action ORDER BY action", span
    )
    suppressed = await store.fetch(
        "SELECT reason, count(*) AS n FROM suppressions WHERE created_at >= ? AND created_at < ? "
        "GROUP BY reason ORDER BY reason", span
    )
    [cleared] = await store.fetch(
        "SELECT count(*) AS n FROM suppressions WHERE cleared_at >= ? AND cleared_at < ?", span
    )
    [in_force] = await store.fetch(
        "SELECT count(*) AS n FROM suppressions WHERE created_at < ? "
        "AND (cleared_at IS NULL OR cleared_at >= ?)", (end, end)
    )
    return {
        "month": month,
        "timezone": tz,
        "from": _iso(start, tz),
        "until": _iso(end, tz),
        "mail": {
            "accepted": verdicts.get("accepted", 0),
            "rejected": verdicts.get("rejected", 0),
            "tempfailed": verdicts.get("tempfailed", 0),
            "refused_by_rule": dict(sorted(refused.items())),
            "tempfailed_by_rule": dict(sorted(tempfailed.items())),
            "monitored_by_rule": dict(sorted(monitored.items())),
        },
        "optouts": {
            "total": sum(v["count"] for v in optouts.values()),
            "by_method": optouts,
        },
        "imports": {
            "batches": len(created),
            "grants": sum(int(r["grants"]) for r in created),
            "optouts": sum(int(r["optouts"]) for r in created),
            "by_status": dict(sorted(Counter(str(r["status"]) for r in created).items())),
            "approved": len(decided),
            "avg_hours_to_approval": (round(sum(waits) / len(waits) / 3600, 2)
                                      if waits else None),
            "list": [
                {**r, "created_at": _iso(r["created_at"], tz),
                 "decided_at": _iso(r["decided_at"], tz)}
                for r in created
            ],
        },
        "purges": [{**r, "at": _iso(r["at"], tz)} for r in purges],
        "suppressions": {
            "added": {str(r["reason"]): int(r["n"]) for r in suppressed},
            "cleared": int(cleared["n"]),
            "in_force_at_end": int(in_force["n"]),
        },
        "personal_data_access": {str(r["action"]): int(r["n"]) for r in access},
    }


def report_csv(report: dict[str, Any]) -> str:
    """The report as CSV rows: section, item, value (UTF-8 with BOM so Excel reads Japanese)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["section", "item", "value", "detail"])
    writer.writerow(["period", "month", report["month"], f"{report['from']} .. {report['until']}"])
    mail = report["mail"]
    for key in ("accepted", "rejected", "tempfailed"):
        writer.writerow(["mail", key, mail[key], ""])
    for rule, n in mail["refused_by_rule"].items():
        writer.writerow(["refused_by_rule", rule, n, ""])
    for rule, n in mail["tempfailed_by_rule"].items():
        writer.writerow(["tempfailed_by_rule", rule, n, ""])
    for rule, n in mail["monitored_by_rule"].items():
        writer.writerow(["monitored_by_rule", rule, n, ""])
    writer.writerow(["optouts", "total", report["optouts"]["total"], ""])
    for method, fig in report["optouts"]["by_method"].items():
        writer.writerow(["optouts", method, fig["count"],
                         f"avg {fig['avg_seconds_to_effect']}s, "
                         f"max {fig['max_seconds_to_effect']}s, "
                         f"over 2 days {fig['over_two_days']}"])
    imports = report["imports"]
    for key in ("batches", "grants", "optouts", "approved", "avg_hours_to_approval"):
        writer.writerow(["imports", key, imports[key] if imports[key] is not None else "", ""])
    for status, n in imports["by_status"].items():
        writer.writerow(["imports_by_status", status, n, ""])
    sup = report["suppressions"]
    for reason, n in sup["added"].items():
        writer.writerow(["suppressions_added", reason, n, ""])
    writer.writerow(["suppressions", "cleared", sup["cleared"], ""])
    writer.writerow(["suppressions", "in_force_at_end", sup["in_force_at_end"], ""])
    for purge in report["purges"]:
        writer.writerow(["purges", purge["at"], purge["subject"], purge["actor"]])
    for action, n in report["personal_data_access"].items():
        writer.writerow(["personal_data_access", action, n, ""])
    return "\ufeff" + out.getvalue()
