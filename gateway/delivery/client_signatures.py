"""DKIM signatures of the MA tool that the gateway's own changes broke are removed before
signing (legal.md §5.1: "strip DKIM signatures we cannot keep").

The gateway drops its topic header, replaces or adds List-Unsubscribe, adds a missing
Message-ID or Date and, in insert mode, adds a footer. A client signature over any of them
no longer verifies: a receiver treats it as no signature at all (RFC 6376 §6.1), and ours,
aligned with From, is what DMARC uses. Only signatures whose signed fields or body differ
from the message as it was received are removed; the others are kept as they are.
"""

from __future__ import annotations

import re
from collections import defaultdict

import dkim.util

from gateway.delivery import headers
from gateway.engine.context import Facts
from gateway.model import RuleResult

_FIELD = re.compile(rb"[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-case name, the whole field with its continuation lines and CRLFs)."""
    return [(m.group().partition(b":")[0].strip().lower(), m.group())
            for m in _FIELD.finditer(head)]


def _by_name(fields: list[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = defaultdict(list)
    for name, field in fields:
        found[name].append(field)
    return found


def _tags(field: bytes) -> dict[bytes, bytes] | None:
    value = field.partition(b":")[2]
    try:
        return dict(dkim.util.parse_tag_value(b" ".join(value.split())))
    except dkim.util.InvalidTagValueList:
        return None


async def strip_broken(facts: Facts, raw: bytes) -> bytes:
    """`raw` without the client signatures the gateway's changes broke (a pipeline step)."""
    received: bytes | None = facts.extra.get("received")
    if received is None or received is raw:
        return raw
    head, body = headers.split(raw)
    if b"dkim-signature:" not in head.lower():
        return raw
    old_head, old_body = headers.split(received)
    old = _by_name(_fields(old_head))
    fields = _fields(head)
    new = _by_name(fields)
    theirs = set(old.get(b"dkim-signature", ()))
    kept: list[bytes] = []
    removed: list[str] = []
    for name, field in fields:
        tags = _tags(field) if name == b"dkim-signature" and field in theirs else None
        if tags is not None:
            signed = {n.strip().lower() for n in tags.get(b"h", b"").split(b":") if n.strip()}
            changed = sorted(n.decode("ascii", "replace") for n in signed
                             if old.get(n, []) != new.get(n, []))
            if changed or old_body != body:
                what = ", ".join(changed + (["body"] if old_body != body else []))
                removed.append(f"d={tags.get(b'd', b'?').decode('ascii', 'replace')} "
                               f"s={tags.get(b's', b'?').decode('ascii', 'replace')} ({what})")
                continue
        kept.append(field)
    if not removed:
        return raw
    facts.extra["client_dkim_removed"] = removed
    return b"".join(kept) + body


def note_removed(results: list[RuleResult], removed: list[str] | None) -> None:
    """Say in the client-signature check's result which signatures were removed and why."""
    if not removed:
        return
    for i, result in enumerate(results):
        if result.data and "signatures" in result.data:
            results[i] = RuleResult(
                result.rule_id, result.outcome,
                f"{result.detail}; removed, the gateway changed what they sign: "
                + "; ".join(removed),
                {**result.data, "removed": removed},
            )
