"""Advertising mail sent and complaints received, per sender and UTC day.

Gmail stops mitigating a sender whose spam-complaint rate reaches 0.3 % and asks bulk
senders to stay below 0.1 %; legal.md §5.2 turns that into a guardrail: warn at 0.1 %,
stop at 0.3 % (rule `sender.complaint_rate`, rules/reputation.toml). Both sides of the rate
are counted here: recipients of advertising mail the upstream took, and feedback-loop
reports the opt-out mailbox took (method `complaint`).

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
from typing import TYPE_CHECKING, Any

from gateway.errors import GatewayError
from gateway.store.base import Store

if TYPE_CHECKING:
    from gateway.engine.packs import RuleSet

__all__ = [
    "DAY",
    "SenderDays",
    "SenderStanding",
    "SenderVolume",
    "Standing",
    "Tally",
    "day_of",
    "judge",
    "standings",
]

log = logging.getLogger(__name__)

DAY = 86400
DEFAULT_WINDOW_DAYS = 7
CHECK = "reputation.complaint_rate"
_ADD = (
    "INSERT INTO sender_volume (sender_id, day, sent, complaints) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (sender_id, day) DO UPDATE SET sent = sender_volume.sent + excluded.sent, "
    "complaints = sender_volume.complaints + excluded.complaints"
)
_READ = "SELECT sender_id, day, sent, complaints FROM sender_volume WHERE day >= ?"


def day_of(ts: float) -> int:
    return int(ts // DAY)


@dataclass(frozen=True, slots=True)
class Tally:
    """Sent and complaints over a window of days."""

    sent: int = 0
    complaints: int = 0

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
    days: dict[int, tuple[int, int]]  # day -> (sent, complaints)

    def over(self, window_days: int) -> Tally:
        first = self.today - window_days + 1
        sent = complaints = 0
        for day, (day_sent, day_complaints) in self.days.items():
            if first <= day <= self.today:
                sent += day_sent
                complaints += day_complaints
        return Tally(sent, complaints)


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
        self._stored: dict[str, dict[int, tuple[int, int]]] = {}
        self._sent: Counter[tuple[str, int]] = Counter()
        self._complaints: Counter[tuple[str, int]] = Counter()
        self._task: asyncio.Task[None] | None = None

    # -- the hot path ----------------------------------------------------------------------

    def note_sent(self, sender_id: str, recipients: int) -> None:
        self._sent[sender_id, day_of(self.clock())] += recipients

    def note_complaint(self, sender_id: str) -> None:
        self._complaints[sender_id, day_of(self.clock())] += 1

    def days(self, sender_id: str) -> SenderDays | None:
        """The sender's counts (stored plus not yet added); None before the first read."""
        if self.loaded_at is None:
            return None
        merged = dict(self._stored.get(sender_id, {}))
        for counter, index in ((self._sent, 0), (self._complaints, 1)):
            for (sender, day), n in counter.items():
                if sender == sender_id:
                    pair = list(merged.get(day, (0, 0)))
                    pair[index] += n
                    merged[day] = (pair[0], pair[1])
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
        sent, complaints = self._sent, self._complaints
        self._sent, self._complaints = Counter(), Counter()
        keys = sorted(set(sent) | set(complaints))
        try:
            if keys:
                await self.store.execute_all(
                    [(_ADD, (s, d, sent[s, d], complaints[s, d])) for s, d in keys]
                )
        except BaseException:
            self._sent.update(sent)
            self._complaints.update(complaints)
            raise
        since = day_of(self.clock()) - self.window_days
        rows = await self.store.fetch(_READ, (since,))
        stored: dict[str, dict[int, tuple[int, int]]] = {}
        for row in rows:
            stored.setdefault(str(row["sender_id"]), {})[int(row["day"])] = (
                int(row["sent"]), int(row["complaints"]))
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
        if self._sent or self._complaints:
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
    """One sender's complaint rate as ops see it (CLI, API)."""

    sender_id: str
    window_days: int
    tally: Tally
    standing: Standing | None  # None: no configured rule judges it
    thresholds: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sender_id": self.sender_id,
            "window_days": self.window_days,
            "sent": self.tally.sent,
            "complaints": self.tally.complaints,
            "rate": round(self.tally.rate, 6),
            "standing": self.standing.value if self.standing else None,
            "thresholds": dict(self.thresholds),
        }


async def standings(
    store: Store, rules: RuleSet, sender_ids: Iterable[str], *, now: float | None = None
) -> list[SenderStanding]:
    """Every sender's counts over the configured rule's window, read from the store now."""
    rule = next((r for r in rules.rules if r.check == CHECK), None)
    params = dict(rule.params) if rule else {}
    window = int(params.get("window_days", DEFAULT_WINDOW_DAYS))
    volume = SenderVolume(store, window_days=window,
                          clock=(lambda: now) if now is not None else time.time)
    await volume.sync()
    return [
        SenderStanding(sid, window, tally, judge(tally, params) if rule else None, params)
        for sid, tally in volume.tallies(sender_ids, window).items()
    ]
