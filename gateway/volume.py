"""What receivers make of each sender's mail: counts per sender and UTC day.

Gmail stops mitigating a sender whose spam-complaint rate reaches 0.3 % and asks bulk
senders to stay below 0.1 %; legal.md §5.2 turns that into a guardrail: warn at 0.1 %,
stop at 0.3 % (rule `sender.complaint_rate`, rules/reputation.toml). Carriers block senders
with many unknown users (legal.md §2.4), and a list with many of them looks like the
架空アドレス mailing of Art. 6: rule `sender.bounce_rate`. Counted here: recipients of
advertising mail the upstream took, feedback-loop reports the opt-out mailbox took (method
`complaint`), hard bounces (the upstream's 5.1.1, or a DSN's), and refusals for failed
authentication (5.7.26 ...), by DSN or by the upstream's own reply: legal.md §5.1 asks for
an "auth misconfig" alert (rule `sender.auth_refused`). And recipients at personal Gmail
addresses, of every client class: Gmail's bulk-sender status (gateway/gmail_bulk.py, rule
`sender.gmail_bulk`).

The hot path only adds to a dict. Every `interval` each process adds its counts to the
store (table `sender_volume`, one row per sender and day) and reads the sums of every
process back, so instances that share a PostgreSQL store see one rate. Counts not yet added
when a process dies are lost: the rate then reads a little high, never low.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from gateway.errors import GatewayError
from gateway.gmail_bulk import GmailStanding, gmail_bulk
from gateway.store.base import Store

if TYPE_CHECKING:
    from gateway.config import SenderConfig
    from gateway.engine.packs import Rule, RuleSet

__all__ = [
    "AUTH_CHECK",
    "DAY",
    "RATE_CHECK",
    "RATE_OF",
    "RateStanding",
    "SenderDays",
    "SenderStanding",
    "SenderVolume",
    "Standing",
    "Tally",
    "auth_refusal_statuses",
    "day_of",
    "judge",
    "rate_rules",
    "read_window",
    "standings",
]

log = logging.getLogger(__name__)

DAY = 86400
DEFAULT_WINDOW_DAYS = 7
RATE_CHECK: Final = "reputation.rate"
AUTH_CHECK: Final = "reputation.auth_refusals"
# gmail_sent counts every client class's mail, sent the rest advertising mail only
FIELDS: Final = ("sent", "complaints", "auth_refusals", "hard_bounces", "gmail_sent")
_SENT, _COMPLAINTS, _AUTH_REFUSALS, _HARD_BOUNCES, _GMAIL_SENT = range(len(FIELDS))
RATE_OF: Final = ("complaints", "hard_bounces")  # what a rate rule may count per recipient
_ADD = (
    f"INSERT INTO sender_volume (sender_id, day, {', '.join(FIELDS)}) "
    f"VALUES (?, ?, {', '.join('?' for _ in FIELDS)}) "
    "ON CONFLICT (sender_id, day) DO UPDATE SET "
    + ", ".join(f"{f} = sender_volume.{f} + excluded.{f}" for f in FIELDS)
)
_READ = f"SELECT sender_id, day, {', '.join(FIELDS)} FROM sender_volume WHERE day >= ?"
# Gmail's bulk status never lapses: the first day at or over the limit, however long ago
_BULK_SINCE = ("SELECT sender_id, min(day) AS day FROM sender_volume WHERE gmail_sent >= ? "
               "GROUP BY sender_id")
# ... and for senders counted together, the first day their sum reached it
_GROUP_BULK_SINCE = ("SELECT min(day) AS day FROM (SELECT day FROM sender_volume WHERE "
                     "sender_id IN ({}) GROUP BY day HAVING sum(gmail_sent) >= ?) AS reached")
_NAMES = {"complaints": ("complaint", "complaints"), "hard_bounces": ("bounce", "hard bounces")}

Counts = tuple[int, ...]  # one per FIELDS, in its order
_ZERO: Final[Counts] = (0,) * len(FIELDS)


def day_of(ts: float) -> int:
    return int(ts // DAY)


def _added(counts: Counts, more: Iterable[int]) -> Counts:
    return tuple(a + b for a, b in zip(counts, more, strict=True))


@dataclass(frozen=True, slots=True)
class Tally:
    """The counts over a window of days."""

    sent: int = 0
    complaints: int = 0
    auth_refusals: int = 0
    hard_bounces: int = 0
    gmail_sent: int = 0

    def rate(self, of: str) -> float:
        """Complaints or hard bounces per recipient."""
        count: int = getattr(self, of)
        return count / self.sent if self.sent else 0.0

    def describe(self, of: str, days: int) -> str:
        what, many = _NAMES[of]
        return (f"{what} rate {self.rate(of):.3%}: {getattr(self, of):,} {many} for "
                f"{self.sent:,} recipients in {days} days")


class Standing(StrEnum):
    TOO_FEW = "too_few"  # fewer than min_sent recipients: the rate says too little
    OK = "ok"
    WARN = "warn"  # at or over `warn`: mail goes, ops are told
    STOP = "stop"  # at or over `stop`: advertising mail is refused


def judge(tally: Tally, params: Mapping[str, Any]) -> Standing:
    """Where a tally stands against a rate rule's thresholds."""
    if tally.sent < params["min_sent"]:
        return Standing.TOO_FEW
    rate = tally.rate(params["of"])
    if rate >= params["stop"]:
        return Standing.STOP
    return Standing.WARN if rate >= params["warn"] else Standing.OK


@dataclass(frozen=True, slots=True)
class SenderDays:
    """One sender's counts by UTC day, as a check reads them: no I/O left to do."""

    today: int
    days: dict[int, Counts]
    gmail_bulk_since: int | None = None  # the first UTC day at Gmail's bulk limit

    def over(self, window_days: int) -> Tally:
        first = self.today - window_days + 1
        sums = [0] * len(FIELDS)
        for day, counts in self.days.items():
            if first <= day <= self.today:
                for i, n in enumerate(counts):
                    sums[i] += n
        return Tally(*sums)


def rate_rules(rules: RuleSet) -> list[Rule]:
    return [r for r in rules.rules if r.check == RATE_CHECK]


def read_window(rules: RuleSet) -> int:
    """The longest window a rule looks at: the days each process reads back."""
    windows = [int(r.params["window_days"]) for r in rules.rules
               if r.check in (RATE_CHECK, AUTH_CHECK)]
    return max(windows, default=DEFAULT_WINDOW_DAYS)


def auth_refusal_statuses(rules: RuleSet) -> frozenset[str]:
    """The enhanced statuses a receiver refuses our mail with for failed authentication
    (empty when no rule watches them, and then nothing is counted either)."""
    return frozenset(str(status) for r in rules.rules if r.check == AUTH_CHECK
                     for status in r.params.get("statuses", ()))


class SenderVolume:
    """In-memory counts, added to the store and read back every `interval` seconds."""

    def __init__(
        self,
        store: Store,
        *,
        window_days: int = DEFAULT_WINDOW_DAYS,
        interval: float = 30.0,
        gmail_limit: int = 0,
        gmail_groups: Mapping[str, tuple[str, ...]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.gmail_limit = gmail_limit  # Gmail's bulk limit a day (0: not watched)
        # senders counted together at Gmail (one organisational domain): gateway/gmail_bulk.py
        self.gmail_groups: Mapping[str, tuple[str, ...]] = gmail_groups or {}
        self.window_days = window_days
        self.interval = interval
        self.clock = clock
        self.loaded_at: float | None = None  # the last successful read (epoch seconds)
        self.last_error = ""
        self._stored: dict[str, dict[int, Counts]] = {}
        self._bulk_since: dict[str, int] = {}  # by sender, or by group for those in one
        # Not yet added to the store: sender -> day -> counts in the order of FIELDS. Keyed
        # by sender first, so a MAIL's lookup reads its own sender's few days only.
        self._pending: dict[str, dict[int, list[int]]] = {}
        self._task: asyncio.Task[None] | None = None

    # -- the hot path ----------------------------------------------------------------------

    def _note(self, sender_id: str, index: int, n: int) -> None:
        self._note_on(sender_id, day_of(self.clock()), index, n)

    def _note_on(self, sender_id: str, day: int, index: int, n: int) -> None:
        days = self._pending.setdefault(sender_id, {})
        days.setdefault(day, [0] * len(FIELDS))[index] += n

    def note_sent(self, sender_id: str, recipients: int) -> None:
        self._note(sender_id, _SENT, recipients)

    def note_complaint(self, sender_id: str) -> None:
        self._note(sender_id, _COMPLAINTS, 1)

    def note_auth_refusal(self, sender_id: str) -> None:
        self._note(sender_id, _AUTH_REFUSALS, 1)

    def note_hard_bounce(self, sender_id: str) -> None:
        self._note(sender_id, _HARD_BOUNCES, 1)

    def note_gmail(self, sender_id: str, recipients: int) -> None:
        if recipients:
            self._note(sender_id, _GMAIL_SENT, recipients)

    def _merged(self, sender_id: str) -> dict[int, Counts]:
        merged = dict(self._stored.get(sender_id, {}))
        for day, counts in self._pending.get(sender_id, {}).items():
            merged[day] = _added(merged.get(day, _ZERO), counts)
        return merged

    def days(self, sender_id: str) -> SenderDays | None:
        """The sender's counts (stored plus not yet added); None before the first read.

        Its Gmail count is its group's (the senders of one organisational domain), since
        Gmail counts per primary domain; every other count is the sender's own.
        """
        if self.loaded_at is None:
            return None
        merged = self._merged(sender_id)
        group = self.gmail_groups.get(sender_id, ())
        bulk_since = self._bulk_since.get(sender_id)
        if len(group) > 1:
            gmail: dict[int, int] = {}
            for member in group:
                for day, counts in (merged if member == sender_id
                                    else self._merged(member)).items():
                    gmail[day] = gmail.get(day, 0) + counts[_GMAIL_SENT]
            for day, n in gmail.items():
                counts = merged.get(day, _ZERO)
                merged[day] = (*counts[:_GMAIL_SENT], n, *counts[_GMAIL_SENT + 1 :])
        if self.gmail_limit:  # a day of this process's own may reach it before the store says
            reached = [d for d, c in merged.items() if c[_GMAIL_SENT] >= self.gmail_limit]
            if bulk_since is not None:
                reached.append(bulk_since)
            bulk_since = min(reached, default=None)
        return SenderDays(day_of(self.clock()), merged, bulk_since)

    def tallies(self, sender_ids: Iterable[str], window_days: int) -> dict[str, Tally]:
        """Each sender's tally over the window (zero for a sender with no counts)."""
        tallies: dict[str, Tally] = {}
        for sender_id in sender_ids:
            days = self.days(sender_id)
            tallies[sender_id] = days.over(window_days) if days else Tally()
        return tallies

    # -- the store ---------------------------------------------------------------------------

    async def sync(self) -> None:
        """Add this process's counts to the store, then read every process's sums back.

        Raises GatewayError when the store cannot be reached; counts not added stay for
        the next attempt.
        """
        pending, self._pending = self._pending, {}
        rows = [(s, d, *counts) for s, days in sorted(pending.items())
                for d, counts in sorted(days.items())]
        try:
            if rows:
                await self.store.execute_all([(_ADD, row) for row in rows])
        except BaseException:
            for sender_id, days in pending.items():  # kept for the next attempt
                for day, counts in days.items():
                    for index, n in enumerate(counts):
                        self._note_on(sender_id, day, index, n)
            raise
        # Added: until the read below succeeds they stand in the view this process has,
        # so a failed read leaves its own counts counted (the rates never read low).
        for sender_id, days in pending.items():
            mine = self._stored.setdefault(sender_id, {})
            for day, counts in days.items():
                mine[day] = _added(mine.get(day, _ZERO), counts)
        since = day_of(self.clock()) - self.window_days
        stored: dict[str, dict[int, Counts]] = {}
        for row in await self.store.fetch(_READ, (since,)):
            stored.setdefault(str(row["sender_id"]), {})[int(row["day"])] = tuple(
                int(row[f]) for f in FIELDS)
        if self.gmail_limit:
            bulk_since = {str(row["sender_id"]): int(row["day"]) for row in
                          await self.store.fetch(_BULK_SINCE, (self.gmail_limit,))}
            for group in set(self.gmail_groups.values()):
                sql = _GROUP_BULK_SINCE.format(", ".join("?" for _ in group))
                reached = await self.store.fetch(sql, (*group, self.gmail_limit))
                first_day = reached[0]["day"] if reached else None
                for sender_id in group:
                    bulk_since.pop(sender_id, None)
                    if first_day is not None:
                        bulk_since[sender_id] = int(first_day)
            self._bulk_since = bulk_since
        self._stored = stored
        self.loaded_at = self.clock()
        self.last_error = ""

    async def start(self) -> None:
        """Read the sums once (a failure is logged: checks answer 451 until a read works)."""
        await self._sync_logged()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop the background task and add what is left to the store."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pending:
            await self._sync_logged()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._sync_logged()

    async def _sync_logged(self) -> None:
        try:
            await self.sync()
        except (GatewayError, OSError) as exc:
            if self.last_error != str(exc):
                log.warning("sender volume not synced with the store: %s", exc)
            self.last_error = str(exc)
        except Exception as exc:
            # Anything else must not end the background task: the rates would stand still
            # for the life of the process without a word.
            log.exception("sender volume not synced with the store")
            self.last_error = str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class RateStanding:
    """One sender against one rate rule."""

    rule_id: str
    tally: Tally  # over the rule's window
    standing: Standing
    params: Mapping[str, Any]

    @property
    def of(self) -> str:
        return str(self.params["of"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "of": self.of,
            "window_days": self.params["window_days"],
            "sent": self.tally.sent,
            "count": getattr(self.tally, self.of),
            "rate": round(self.tally.rate(self.of), 6),
            "standing": self.standing.value,
            "thresholds": {k: self.params[k] for k in ("min_sent", "warn", "stop")},
        }


@dataclass(frozen=True, slots=True)
class SenderStanding:
    """One sender's standing at the receivers as ops see it (CLI, API, dashboard)."""

    sender_id: str
    rates: tuple[RateStanding, ...]  # one per configured rate rule
    auth_refusals: int  # over the auth rule's window
    auth_params: Mapping[str, Any]
    gmail: GmailStanding | None = None  # None: no rule watches Gmail's bulk limit

    @property
    def auth_flagged(self) -> bool | None:
        if not self.auth_params:
            return None
        return self.auth_refusals >= int(self.auth_params["at_least"])

    @property
    def stopped(self) -> bool:
        return any(r.standing is Standing.STOP for r in self.rates)

    @property
    def flagged(self) -> bool:
        """Stopped, refused for authentication, or near Gmail's bulk limit unprepared."""
        return (self.stopped or bool(self.auth_flagged)
                or (self.gmail is not None and self.gmail.flagged))

    def to_dict(self) -> dict[str, Any]:
        return {
            "sender_id": self.sender_id,
            "rates": [r.to_dict() for r in self.rates],
            "auth_refusals": {
                "window_days": self.auth_params.get("window_days", DEFAULT_WINDOW_DAYS),
                "count": self.auth_refusals,
                "at_least": self.auth_params.get("at_least"),
                "flagged": self.auth_flagged,
            },
            "gmail": self.gmail.to_dict() if self.gmail is not None else None,
        }


async def standings(
    store: Store, rules: RuleSet, senders: Sequence[SenderConfig], *, monitor: bool = False,
    now: float | None = None,
) -> list[SenderStanding]:
    """Every sender's counts over the configured rules' windows, read from the store now
    (`monitor`: policy.mode is monitor, so no rule's requirement is enforced)."""
    auth_rule = next((r for r in rules.rules if r.check == AUTH_CHECK), None)
    auth = {k: v for k, v in auth_rule.params.items() if k != "statuses"} if auth_rule else {}
    bulk = gmail_bulk(rules, monitor=monitor, senders=senders)
    volume = SenderVolume(store, window_days=read_window(rules),
                          gmail_limit=bulk.daily_limit if bulk else 0,
                          gmail_groups=bulk.groups if bulk else None,
                          clock=(lambda: now) if now is not None else time.time)
    await volume.sync()
    out = []
    for sender_id in (s.id for s in senders):
        days = volume.days(sender_id)
        assert days is not None  # read just now
        rates = []
        for rule in rate_rules(rules):
            tally = days.over(int(rule.params["window_days"]))
            rates.append(RateStanding(rule.id, tally, judge(tally, rule.params), rule.params))
        refusals = days.over(int(auth.get("window_days", DEFAULT_WINDOW_DAYS))).auth_refusals
        gmail = (bulk.standing(sender_id, days.over(1).gmail_sent, days.gmail_bulk_since)
                 if bulk else None)
        out.append(SenderStanding(sender_id, tuple(rates), refusals, auth, gmail))
    return out
