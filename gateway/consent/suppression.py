"""Suppressions: addresses no advertising mail goes to, whatever their consent says.

An upstream that answers 5.1.1 says the mailbox does not exist (a hard bounce); mailing it
again harms the sender's reputation and, at volume, looks like the 架空アドレス mailing of
Art. 6 (legal.md §5.1). Unlike an opt-out, which only the person can lift, a suppression
can be wrong (an upstream misconfigured to answer 5.1.1 for everyone), so ops clear it.
The row stays, with who cleared it, when and why.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from gateway.engine.packs import RuleSet
from gateway.store.base import Store
from gateway.store.consent_rows import SELECT_SUPPRESSION, SUPPRESSION_COLUMNS

__all__ = [
    "HARD_BOUNCE",
    "INSERT",
    "MANUAL",
    "Suppression",
    "clear",
    "clear_hard_bounces_since",
    "enhanced_status",
    "hard_bounce_statuses",
    "is_hard_bounce",
    "listing",
    "suppress",
]

Reason = Literal["hard_bounce", "manual"]
HARD_BOUNCE: Final[Reason] = "hard_bounce"  # an upstream said the mailbox does not exist
MANUAL: Final[Reason] = "manual"  # entered by ops
GATEWAY_ACTOR = "gateway"

_STATUS = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
# Suppress an address unless a suppression is in force: (key, reason, detail, sender, at,
# by, key).
INSERT = (
    "INSERT INTO suppressions (address_key, reason, detail, sender_id, created_at, created_by) "
    "SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS "
    "(SELECT 1 FROM suppressions WHERE address_key = ? AND cleared_at IS NULL)"
)
_AUDIT = "INSERT INTO audit_log (at, actor, action, subject, reason) SELECT ?, ?, ?, ?, ?"
_CLEAR = (
    "UPDATE suppressions SET cleared_at = ?, cleared_by = ?, clear_reason = ? "
    "WHERE address_key = ? AND cleared_at IS NULL"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Suppression:
    """One row of the suppressions table."""

    id: int
    address_key: str
    reason: str
    detail: str
    sender_id: str
    created_at: float
    created_by: str
    cleared_at: float | None = None
    cleared_by: str | None = None
    clear_reason: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Suppression:
        return cls(**{k: row[k] for k in SUPPRESSION_COLUMNS})

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    def describe(self) -> str:
        """One line for a refusal's event detail."""
        what = "hard bounce" if self.reason == HARD_BOUNCE else "entered by hand"
        when = datetime.fromtimestamp(self.created_at, UTC).isoformat(timespec="seconds")
        return f"suppressed ({what}) since {when}" + (f": {self.detail}" if self.detail else "")

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in SUPPRESSION_COLUMNS}
        for key in ("created_at", "cleared_at"):
            ts = data[key]
            data[f"{key}_iso"] = (
                datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None
            )
        data["active"] = self.active
        return data


def hard_bounce_statuses(rules: RuleSet) -> frozenset[str]:
    """The statuses that suppress an address: those of every rule that checks suppressions
    (empty when no rule does, and then nothing is recorded either)."""
    return frozenset(str(status) for r in rules.rules if r.check == "consent.not_suppressed"
                     for status in r.params.get("hard_bounce", ()))


def enhanced_status(text: str) -> str | None:
    """The RFC 3463 status at the start of a reply's text ("5.1.1 User unknown" → "5.1.1")."""
    m = _STATUS.match(text)
    return m.group(1) if m else None


def is_hard_bounce(code: int, text: str, statuses: Collection[str]) -> bool:
    """A permanent reply whose enhanced status says the mailbox does not exist."""
    return 500 <= code < 600 and enhanced_status(text) in statuses


async def suppress(store: Store, address_key: str, reason: Reason, detail: str, *,
                   sender_id: str = "", actor: str = GATEWAY_ACTOR) -> bool:
    """Suppress an address; False when a suppression is already in force (nothing added).

    A person's entry is audited in the same transaction; the gateway's own are events.
    """
    now = time.time()
    statements: list[tuple[str, tuple[Any, ...]]] = [
        (INSERT, (address_key, reason, detail[:500], sender_id, now, actor, address_key))]
    if actor != GATEWAY_ACTOR:
        statements.append((_AUDIT + " WHERE EXISTS (SELECT 1 FROM suppressions WHERE "
                           "address_key = ? AND created_at = ? AND created_by = ?)",
                           (now, actor, "suppression.add", address_key, detail,
                            address_key, now, actor)))
    changed = await store.execute_all(statements)
    return changed[0] > 0


async def clear(store: Store, address_key: str, actor: str, reason: str) -> int:
    """End the suppression in force, audited; the entries cleared (0: there was none)."""
    now = time.time()
    changed = await store.execute_all([
        (_AUDIT + " WHERE EXISTS (SELECT 1 FROM suppressions WHERE address_key = ? "
         "AND cleared_at IS NULL)", (now, actor, "suppression.clear", address_key, reason,
                                     address_key)),
        (_CLEAR, (now, actor, reason, address_key)),
    ])
    return changed[1]


async def clear_hard_bounces_since(store: Store, since: float, actor: str, reason: str) -> int:
    """End every hard-bounce suppression recorded since `since`, audited once with the count.

    For an upstream that answered 5.1.1 for mailboxes that exist: its wrong bounces are the
    ones recorded after it went wrong, and clearing them one by one would take all day.
    """
    now = time.time()
    window = ("WHERE reason = 'hard_bounce' AND cleared_at IS NULL AND created_at >= ?")
    [row] = await store.fetch(f"SELECT count(*) AS n FROM suppressions {window}", (since,))
    if not int(row["n"]):
        return 0
    when = datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds")
    changed = await store.execute_all([  # the change and its audit entry, all or nothing
        ("INSERT INTO audit_log (at, actor, action, subject, reason) VALUES (?, ?, ?, ?, ?)",
         (now, actor, "suppression.clear", f"(hard bounces since {when}: {row['n']})", reason)),
        (f"UPDATE suppressions SET cleared_at = ?, cleared_by = ?, clear_reason = ? {window}",
         (now, actor, reason, since)),
    ])
    return changed[1]


async def listing(store: Store, *, address_key: str | None = None, include_cleared: bool = False,
                  limit: int = 1000) -> list[Suppression]:
    """Suppressions, newest first: those in force, or every one with include_cleared."""
    where: list[str] = []
    params: list[Any] = []
    if address_key is not None:
        where.append("address_key = ?")
        params.append(address_key)
    if not include_cleared:
        where.append("cleared_at IS NULL")
    sql = SELECT_SUPPRESSION + (" WHERE " + " AND ".join(where) if where else "")
    rows = await store.fetch(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
    return [Suppression.from_row(r) for r in rows]
