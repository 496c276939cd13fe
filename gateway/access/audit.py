"""Personal-data minimisation: address masking, and reading the append-only audit trail."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.store.base import EventFilter, Store, newest_first_page

__all__ = ["AuditFilter", "describe", "mask_address", "mask_event", "mask_suppression",
           "query_audit"]

_EMAIL = re.compile(r"[^\s<>\"',;:()\[\]]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+")


def mask_address(address: str) -> str:
    """'taro@example.jp' -> 't***@example.jp' (the domain stays: it says which provider)."""
    if not address:
        return address
    local, at, domain = address.rpartition("@")
    if not at:
        return address[:1] + "***"
    return f"{local[:1]}***@{domain}"


def _mask_text(text: str, needle: str) -> str:
    if needle and needle.lower() in text.lower():
        text = re.sub(re.escape(needle), mask_address(needle), text, flags=re.IGNORECASE)
    return text


def describe(flt: EventFilter) -> str:
    """An event filter as the audit trail's subject: which events a person looked at."""
    parts = [f"{k}={v}" for k, v in (
        ("since", flt.since), ("until", flt.until), ("verdict", flt.verdict), ("phase", flt.phase),
        ("rule", flt.rule),
        ("client", flt.client), ("sender", flt.sender_id), ("recipient", flt.recipient),
        ("before_id", flt.before_id)) if v is not None]
    return "events " + (" ".join(parts) or "(all)")


def mask_event(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of an event row with the recipient masked everywhere it appears."""
    out = dict(event)
    recipient = str(event.get("recipient") or "")
    out["recipient"] = mask_address(recipient)
    if recipient:
        for key in ("reply", "upstream_reply"):
            out[key] = _mask_text(str(event.get(key) or ""), recipient)
        results = []
        for res in event.get("results") or []:
            res = dict(res)
            if "detail" in res:
                res["detail"] = _mask_text(str(res["detail"]), recipient)
            if res.get("data"):
                res["data"] = {k: _mask_text(v, recipient) if isinstance(v, str) else v
                               for k, v in res["data"].items()}
            results.append(res)
        out["results"] = results
    out["masked"] = True
    return out


def mask_suppression(entry: dict[str, Any]) -> dict[str, Any]:
    """A copy of a suppression with its address masked, in the reply and the notes too."""
    address = str(entry.get("address_key") or "")
    out = {**entry, "address_key": mask_address(address), "masked": True}
    for key in ("detail", "clear_reason"):
        if out.get(key):
            out[key] = _mask_text(str(out[key]), address)
    return out


@dataclass(frozen=True, slots=True)
class AuditFilter:
    since: float | None = None
    until: float | None = None
    actor: str | None = None
    action: str | None = None
    before_id: int | None = None
    limit: int = 100


async def query_audit(store: Store, flt: AuditFilter) -> list[dict[str, Any]]:
    """Audit rows matching the filter, newest first."""
    where: list[str] = []
    params: list[Any] = []
    if flt.since is not None:
        where.append("at >= ?")
        params.append(flt.since)
    if flt.until is not None:
        where.append("at < ?")
        params.append(flt.until)
    if flt.actor:
        where.append("actor = ?")
        params.append(flt.actor)
    if flt.action:
        where.append("action = ?")
        params.append(flt.action)
    sql, params = newest_first_page(
        "SELECT id, at, actor, action, subject, reason FROM audit_log",
        where, params, flt.before_id, flt.limit,
    )
    return await store.fetch(sql, params)
