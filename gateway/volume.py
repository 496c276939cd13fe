"""What receivers make of each sender's mail: counts per sender and UTC day.

Gmail stops mitigating a sender whose spam-complaint rate reaches 0.3 % and asks bulk
senders to stay below 0.1 %; legal.md §5.2 turns that into a guardrail: warn at 0.1 %,
stop at 0.3 % (rule `sender.complaint_rate`, rules/reputation.toml). Both sides of the rate
are counted here: recipients of advertising mail the upstream took, and feedback-loop
reports the opt-out mailbox took (method `complaint`). A third count is of receivers that
refused a message for failed authentication (5.7.26 ...), by DSN or by the upstream's own
reply: legal.md §5.1 asks for an "auth misconfig" alert (rule `sender.auth_refused`).

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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from gateway.errors import GatewayError
from gateway.store.base import Store

if TYPE_CHECKING:
    from gateway.engine.packs import Rule, RuleSet

__all__ = [
    "AUTH_CHECK",
    "COMPLAINT_CHECK",
    "DAY",
    "SenderDays",
    "SenderStanding",
    "SenderVolume",
    "Standing",
    "Tally",
    "auth_refusal_statuses",
    "day_of",
    "judge",
    "read_window",
    "standings",
]

log = logging.getLogger(__name__)

DAY = 86400
DEFAULT_WINDOW_DAYS = 7
COMPLAINT_CHECK: Final = "reputation.complaint_rate"
AUTH_CHECK: Final = "reputation.auth_refusals"
FIELDS: Final = ("sent", "complaints", "auth_refusals")
_ADD = (
    "INSERT INTO sender_volume (sender_id, day, sent, complaints, auth_refusals) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sender_id, day) DO UPDATE SET "
    "sent = sender_volume.sent + excluded.sent, "
    "complaints = sender_volume.complaints + excluded.complaints, "
    "auth_refusals = sender_volume.auth_refusals + excluded.auth_refusals"
)
_READ = "SELECT sender_id, day, sent, complaints, auth_refusals FROM sender_volume WHERE day >= ?"

Counts = tuple[int, int, int]  # in the order of FIELDS


def day_of(ts: float) -> int:
    return int(ts // DAY)


@dataclass(frozen=True, slots=True)
class Tally:
    """The counts over a window of days."""

    sent: int = 0
    complaints: int = 0
    auth_refusals: int = 0

    @property
    def rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    def describe(self, days: int) -> str:
        return (f"complaint rate {self.rate:.3%}: {self.complaints:,} complaints for "
                f"{self.sent:,} recipients in {days} days")


class Standing(StrEnum):
    TOO_FEW = "too_few"  # fewer than min_sent recipients: the rate says too little
    OK = "ok"
    WARN = "warn"  # at or over `warn`: mail goes, ops are told
    STOP = "stop"  # at or over `stop`: advertising mail is refused


def judge(tally: Tally, params: Mapping[str, Any]) -> Standing:
    """Where a tally stands against a complaint-rate rule's thresholds."""
    if tally.sent < params["min_sent"]:
        return Standing.TOO_FEW
    if tally.rate >= params["stop"]:
        return Standing.STOP
    return Standing.WARN if tally.rate >= params["warn"] else Standing.OK


@dataclass(frozen=True, slots=True)
class SenderDays:
    """One sender's counts by UTC day, as a check reads them: no I/O left to do."""

    today: int
    days: dict[int, Counts]

    def over(self, window_days: int) -> Tally:
        first = self.today - window_days + 1
        sums = [0, 0, 0]
        for day, counts in self.days.items():
            if first <= day <= self.today:
                for i, n in enumerate(counts):
                    sums[i] += n
        return Tally(*sums)


def _rule(rules: RuleSet, check: str) -> Rule | None:
    return next((r for r in rules.rules if r.check == check), None)


def read_window(rules: RuleSet) -> int:
    """The longest window a rule looks at: the days each process reads back."""
    windows = [int(r.params["window_days"]) for r in rules.rules
               if r.check in (COMPLAINT_CHECK, AUTH_CHECK)]
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.window_days = window_days
        self.interval = interval
        self.clock = clock
        self.loaded_at: float | None = None  # the last successful read (epoch seconds)
        self.last_error = ""
        self._stored: dict[str, dict[int, Counts]] = {}
        self._pending: dict[str, Counter[tuple[str, int]]] = {f: Counter() for f in FIELDS}
        self._task: asyncio.Task[None] | None = None

    # -- the hot path ----------------------------------------------------------------------

    def note_sent(self, sender_id: str, recipients: int) -> None:
        self._pending["sent"][sender_id, day_of(self.clock())] += recipients

    def note_complaint(self, sender_id: str) -> None:
        self._pending["complaints"][sender_id, day_of(self.clock())] += 1

    def note_auth_refusal(self, sender_id: str) -> None:
        self._pending["auth_refusals"][sender_id, day_of(self.clock())] += 1

    def days(self, sender_id: str) -> SenderDays | None:
        """The sender's counts (stored plus not yet added); None before the first read."""
        if self.loaded_at is None:
            return None
        merged = dict(self._stored.get(sender_id, {}))
        for index, field in enumerate(FIELDS):
            for (sender, day), n in self._pending[field].items():
                if sender == sender_id:
                    counts = list(merged.get(day, (0, 0, 0)))
                    counts[index] += n
                    merged[day] = (counts[0], counts[1], counts[2])
        return SenderDays(day_of(self.clock()), merged)

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
        pending = self._pending
        self._pending = {f: Counter() for f in FIELDS}
        keys = sorted({key for counter in pending.values() for key in counter})
        try:
            if keys:
                await self.store.execute_all([
                    (_ADD, (s, d, *(pending[f][s, d] for f in FIELDS))) for s, d in keys
                ])
        except BaseException:
            for field in FIELDS:
                self._pending[field].update(pending[field])
            raise
        since = day_of(self.clock()) - self.window_days
        stored: dict[str, dict[int, Counts]] = {}
        for row in await self.store.fetch(_READ, (since,)):
            stored.setdefault(str(row["sender_id"]), {})[int(row["day"])] = (
                int(row["sent"]), int(row["complaints"]), int(row["auth_refusals"]))
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
        if any(self._pending.values()):
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


@dataclass(frozen=True, slots=True)
class SenderStanding:
    """One sender's standing at the receivers as ops see it (CLI, API, dashboard)."""

    sender_id: str
    complaints: Tally  # over the complaint rule's window
    standing: Standing | None  # None: no configured rule judges it
    complaint_params: Mapping[str, Any]
    auth_refusals: int  # over the auth rule's window
    auth_params: Mapping[str, Any]

    @property
    def auth_flagged(self) -> bool | None:
        if not self.auth_params:
            return None
        return self.auth_refusals >= int(self.auth_params["at_least"])

    def to_dict(self) -> dict[str, Any]:
        complaint_window = self.complaint_params.get("window_days", DEFAULT_WINDOW_DAYS)
        return {
            "sender_id": self.sender_id,
            "complaints": {
                "window_days": complaint_window,
                "sent": self.complaints.sent,
                "complaints": self.complaints.complaints,
                "rate": round(self.complaints.rate, 6),
                "standing": self.standing.value if self.standing else None,
                "thresholds": dict(self.complaint_params),
            },
            "auth_refusals": {
                "window_days": self.auth_params.get("window_days", DEFAULT_WINDOW_DAYS),
                "count": self.auth_refusals,
                "at_least": self.auth_params.get("at_least"),
                "flagged": self.auth_flagged,
            },
        }


async def standings(
    store: Store, rules: RuleSet, sender_ids: Iterable[str], *, now: float | None = None
) -> list[SenderStanding]:
    """Every sender's counts over the configured rules' windows, read from the store now."""
    complaint_rule, auth_rule = _rule(rules, COMPLAINT_CHECK), _rule(rules, AUTH_CHECK)
    complaint = dict(complaint_rule.params) if complaint_rule else {}
    auth = {k: v for k, v in auth_rule.params.items() if k != "statuses"} if auth_rule else {}
    volume = SenderVolume(store, window_days=read_window(rules),
                          clock=(lambda: now) if now is not None else time.time)
    await volume.sync()
    out = []
    for sender_id in sender_ids:
        days = volume.days(sender_id)
        assert days is not None  # read just now
        tally = days.over(int(complaint.get("window_days", DEFAULT_WINDOW_DAYS)))
        refusals = days.over(int(auth.get("window_days", DEFAULT_WINDOW_DAYS))).auth_refusals
        out.append(SenderStanding(sender_id, tally, judge(tally, complaint) if complaint
                                  else None, complaint, refusals, auth))
    return out
