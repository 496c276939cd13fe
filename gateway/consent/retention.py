"""Pure retention rule: how long consent evidence must be kept and whether it may be purged."""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Final

from gateway.consent.model import ConsentEvent, ConsentStatus, Law

__all__ = [
    "JST",
    "KEEP_FOREVER",
    "PurgeDecision",
    "add_months",
    "purge_decision",
    "retention_months",
]

JST: Final = timezone(timedelta(hours=9), "JST")
# Sentinel for "never purge" that still compares with aware datetimes.
KEEP_FOREVER: Final = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PurgeDecision:
    purgeable: bool
    keep_until: datetime  # evidence must be kept until this instant (exclusive)
    reason: str


def retention_months(law: Law | None, *, art7_order: bool = False) -> int:
    """Months to keep evidence after the last mail sent under it (legal.md §1.3, §1.7, §5.2).

    特電法 施行規則4条2項: 1 month, or 1 year once an Art. 7 order has been received.
    特商法: 3 years. Unknown law: the safe maximum, 3 years.
    """
    if law is Law.TOKUDEN:
        return 12 if art7_order else 1
    return 36


def add_months(d: date, months: int) -> date:
    """Calendar-month addition clamped to the month's last day (Jan 31 + 1 = Feb 28/29)."""
    total = d.year * 12 + (d.month - 1) + months
    year, month0 = divmod(total, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(d.day, last))


def _period_end(start: datetime, months: int) -> datetime:
    # Periods are counted the way 民法 does (140-143条): the day of the event itself is not
    # counted, the period ends at the end of the day corresponding to the start day in the
    # last month, or at the end of that month if it has no such day. Counting in JST days
    # because the rule is Japanese. Effectively: end of (JST date of start + N months).
    # This keeps evidence slightly longer than naive datetime arithmetic, never shorter.
    d = start.astimezone(JST).date()
    end_day = add_months(d, months)
    return datetime.combine(end_day + timedelta(days=1), time(0), JST)


def purge_decision(
    law: Law | None,
    events: Iterable[ConsentEvent],
    last_sent: datetime | None,
    now: datetime,
    *,
    art7_order: bool = False,
) -> PurgeDecision:
    """Decide whether the evidence for one consent (its *events*) may be deleted at *now*.

    The period runs from the last mail sent under the consent; with no mail sent, from
    the latest consent event. Opt-outs are never purgeable: they must keep blocking, so
    erase the address by replacing it with ``address_hash(suppression_key(...))`` instead.
    """
    evs = list(events)
    if not evs:
        raise ValueError("purge_decision() needs at least one event")
    for t in (now, last_sent):
        if t is not None and t.utcoffset() is None:
            raise ValueError("now and last_sent must be timezone-aware")
    optouts = [e for e in evs if e.status is ConsentStatus.OPTED_OUT]
    if optouts:
        return PurgeDecision(
            False,
            KEEP_FOREVER,
            "contains an opt-out: never purge; the address may be replaced by its keyed hash",
        )
    consent_time = max(e.occurred_at for e in evs)
    # A re-consent after the last send restarts the clock from the newer event.
    start = consent_time if last_sent is None else max(last_sent, consent_time)
    months = retention_months(law, art7_order=art7_order)
    keep_until = _period_end(start, months)
    law_name = law.value if law is not None else "unknown law (safe default)"
    basis = "last send" if last_sent is not None and last_sent >= consent_time else "consent"
    detail = f"{law_name}: {months} month(s) after {basis} at {start.isoformat()}"
    if art7_order and law is Law.TOKUDEN:
        detail += " (Art. 7 order)"
    if now >= keep_until:
        return PurgeDecision(True, keep_until, f"retention elapsed: {detail}")
    return PurgeDecision(False, keep_until, f"retention running: {detail}")
