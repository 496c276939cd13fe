"""Event rows: the one mapping between Event objects and the events table (both backends)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.model import Event, RuleResult
from gateway.store.base import EventFilter, newest_first_page

EVENT_COLUMNS = (
    "event_id",
    "created_at",
    "verdict",
    "phase",
    "client",
    "client_class",
    "client_ip",
    "session_id",
    "sender_id",
    "mail_from",
    "recipient",
    "header_from",
    "message_id",
    "size",
    "rule_ids",
    "monitored",
    "reply",
    "upstream_reply",
    "results",
    "timings",
)


def event_row(event: Event) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.created_at,
        event.verdict.value,
        event.phase.value,
        event.client,
        event.client_class,
        event.client_ip,
        event.session_id,
        event.sender_id,
        event.mail_from,
        event.recipient,
        event.header_from,
        event.message_id,
        event.size,
        "," + ",".join(event.rule_ids) + "," if event.rule_ids else "",
        ",".join(event.monitored),
        event.reply,
        event.upstream_reply,
        results_text(event.results),
        _json(event.timings),
    )


def _json(value: Any) -> str:
    """JSON text as json.dumps(ensure_ascii=False) has it, through orjson: ~1.5 µs for a DATA
    event's ~30 rule results against ~16. Text orjson refuses (a lone surrogate from
    undecodable header bytes) takes json's way, as before."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False)


def results_text(results: Sequence[RuleResult]) -> str:
    """The rule results as stored: one array per result, [rule, outcome], [rule, outcome,
    detail] or [rule, outcome, detail, data].

    As objects, their keys repeated for each of ~30 results, the bench's results took ~2.1 KB
    of a ~2.6 KB row: one row a 4 KB page, 4.1 KB a message on disk. As arrays the row is
    ~1.9 KB, two a page (2.1 KB a message), and each group commit writes less (A/B: CPU a
    message -1.6 %, 6 of 6 pairs). row_dict() turns them back into the objects the CLI and
    API print.
    """
    return _json([
        [r.rule_id, r.outcome.value, r.detail, r.data] if r.data
        else [r.rule_id, r.outcome.value, r.detail] if r.detail
        else [r.rule_id, r.outcome.value]
        for r in results
    ])


def _result_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):  # rows written before the array form
        return item
    out: dict[str, Any] = {"rule": item[0], "outcome": item[1]}
    if len(item) > 2 and item[2]:
        out["detail"] = item[2]
    if len(item) > 3 and item[3]:
        out["data"] = item[3]
    return out


def row_dict(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the stable JSON shape the CLI and API print."""
    out = dict(row)
    # beside the epoch seconds: what a person (or a spreadsheet) can read
    out["created_at_iso"] = datetime.fromtimestamp(float(row["created_at"]), UTC).isoformat(
        timespec="milliseconds")
    out["rule_ids"] = [r for r in str(row.get("rule_ids", "")).split(",") if r]
    out["monitored"] = [r for r in str(row.get("monitored", "")).split(",") if r]
    out["results"] = [_result_dict(r) for r in json.loads(row["results"])] if row.get(
        "results") else []
    out["timings"] = json.loads(row["timings"]) if row.get("timings") else {}
    return out


def events_query(flt: EventFilter) -> tuple[str, list[Any]]:
    """The SELECT for a filter, with `?` placeholders (PostgreSQL's store translates them)."""
    where: list[str] = []
    params: list[Any] = []
    if flt.since is not None:
        where.append("created_at >= ?")
        params.append(float(flt.since))
    if flt.until is not None:
        where.append("created_at < ?")
        params.append(float(flt.until))
    if flt.verdict:
        where.append("verdict = ?")
        params.append(flt.verdict)
    if flt.rule:
        # rule ids are stored as ",a.b,c.d,": LIKE with the wildcards of the id escaped
        needle = flt.rule.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("(rule_ids LIKE ? ESCAPE '\\' OR monitored LIKE ? ESCAPE '\\')")
        params.extend([f"%,{needle},%", f"%{needle}%"])
    for column, value in (
        ("phase", flt.phase),
        ("client", flt.client),
        ("sender_id", flt.sender_id),
        ("recipient", flt.recipient),
    ):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    return newest_first_page("SELECT * FROM events", where, params, flt.before_id, flt.limit)
