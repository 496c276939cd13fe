"""Consent operations over the store: imports with four-eyes approval, lookup, export, purge.

The CLI and the HTTP API are thin over these functions. Every look at personal
data by a person (lookup, export) writes an audit row first.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty
from typing import Any

from gateway.config import Config, SenderConfig
from gateway.consent import erasure
from gateway.consent.address import normalize_address, suppression_key
from gateway.consent.importer import ImportReader, ImportReport, ImportRow, RowError, validate_file
from gateway.consent.model import (
    ConsentEvent,
    ConsentMethod,
    ConsentStatus,
    Decision,
    Law,
    decide,
)
from gateway.consent.retention import purge_decision
from gateway.consent.suppression import Suppression
from gateway.errors import StoreUnavailable
from gateway.store.base import Store
from gateway.store.consent_rows import SELECT_CONSENT, row_event

CHUNK = 20_000
# A running import refreshes its batch's heartbeat this often; a `loading` batch silent for
# ABANDONED_AFTER belongs to an import that died (15 missed beats: a busy store or a slow
# chunk delays a beat, it does not stop it).
HEARTBEAT_SECONDS = 2.0
ABANDONED_AFTER = 30.0


def _db_now(store: Store) -> str:
    """SQL for the database's clock in epoch seconds. Heartbeats are written and judged by
    this one clock, so imports run on hosts whose clocks differ (one PostgreSQL, several
    gateways) still agree on which import died."""
    if getattr(store, "backend", "") == "postgres":
        return "EXTRACT(EPOCH FROM clock_timestamp())::double precision"
    return "((julianday('now') - 2440587.5) * 86400.0)"


@dataclass(slots=True)
class ImportResult:
    batch_id: str
    report: ImportReport
    imported: int = 0
    grants: int = 0
    optouts: int = 0
    state: str = ""  # approved | pending | failed
    skipped: list[int] = field(default_factory=list)
    # failed batches whose leftover rows this import removed first (finish_discards)
    cleaned: list[str] = field(default_factory=list)
    # loading batches of imports that died, discarded first (sweep_abandoned)
    abandoned: list[str] = field(default_factory=list)


def new_batch_id() -> str:
    return time.strftime("b%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


# Enum.value is a descriptor call (~0.3 µs); a dict lookup is ~0.03 µs, and this runs per row.
_DB_VALUE: dict[ConsentStatus | ConsentMethod, str] = {
    member: member.value for enum in (ConsentStatus, ConsentMethod) for member in enum
}


def _row_tuple(
    row: ImportRow, sender_id: str, batch_id: str, by: str, now: float
) -> tuple[Any, ...]:
    # Built straight from the validated row: the importer already checked status/method.
    addr = row.address
    return (
        sender_id,
        suppression_key(addr),
        addr.address,
        _DB_VALUE[row.status],
        _DB_VALUE[row.method],
        row.topic,
        row.consented_at.timestamp(),
        now,
        row.source_system or "import",
        row.source_ref,
        row.client_ip,
        row.user_agent,
        by,
        batch_id,
        0,  # in effect as its batch's state says (the consent_records view)
    )


PARALLEL_BYTES = 4 * 1024 * 1024  # bigger files are parsed in a second process
POLL_SECONDS = 0.2  # how long a wait for the parser's next chunk blocks before looking round


@dataclass(frozen=True, slots=True)
class _ParseJob:
    path: str
    options: dict[str, Any]
    skip: list[int]
    sender_id: str
    batch_id: str
    recorded_by: str
    now: float
    all_or_nothing: bool  # the first invalid row fails the import: build no more rows


@dataclass(frozen=True, slots=True)
class _Chunk:
    rows: list[tuple[Any, ...]]
    bytes_read: int
    total_bytes: int | None


@dataclass(frozen=True, slots=True)
class _Done:
    report: ImportReport
    grants: int
    optouts: int


def _parse(job: _ParseJob, emit: Callable[[_Chunk | _Done], None]) -> None:
    """Parse and validate the file into store rows, CHUNK at a time (runs in either process)."""
    progress = [0, 0]

    def note(done: int, total: int | None) -> None:
        progress[0], progress[1] = done, total or 0

    reader = ImportReader(job.path, skip_lines=job.skip, on_progress=note, **job.options)
    chunk: list[tuple[Any, ...]] = []
    grants = optouts = 0
    report = reader.report
    failing = False  # all or nothing, and an invalid row was seen: store nothing more
    for item in reader:
        if isinstance(item, RowError):
            continue
        if item.status is ConsentStatus.OPTED_OUT:
            optouts += 1
        else:
            grants += 1
        failing = failing or (job.all_or_nothing and not report.ok)
        if failing:
            chunk = []  # read on only to report every error; progress still moves
            if (grants + optouts) % CHUNK == 0:
                emit(_Chunk([], progress[0], progress[1] or None))
            continue
        chunk.append(_row_tuple(item, job.sender_id, job.batch_id, job.recorded_by, job.now))
        if len(chunk) >= CHUNK:
            emit(_Chunk(chunk, progress[0], progress[1] or None))
            chunk = []
    if chunk:
        emit(_Chunk(chunk, progress[0], progress[1] or None))
    emit(_Done(reader.report, grants, optouts))


def _parse_in_child(job: _ParseJob, out: Any) -> None:
    try:
        _parse(job, out.put)
    except BaseException as exc:  # the parent reports it; nothing is imported
        out.put(RuntimeError(f"import parser failed: {type(exc).__name__}: {exc}"))


async def _parsed_chunks(job: _ParseJob, *, parallel: bool) -> AsyncIterator[_Chunk | _Done]:
    """Parsed chunks in order. For big files the parsing runs in a second process, so it
    uses the other core while this one inserts (both are CPU-bound Python)."""
    if not parallel:
        items: list[_Chunk | _Done] = []
        _parse(job, items.append)  # small files: not worth a process
        for item in items:
            yield item
        return
    context = multiprocessing.get_context("spawn")  # no fork of a threaded process
    queue = context.Queue(maxsize=4)  # backpressure: at most 4 chunks in flight
    child = context.Process(target=_parse_in_child, args=(job, queue), daemon=True)
    child.start()
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    receiving: asyncio.Future[_Chunk | _Done | BaseException] | None = None
    try:
        while True:
            receiving = loop.run_in_executor(None, _receive, queue, child, stop)
            # shielded: when the import is cancelled (Ctrl-C) the thread's read goes on, and
            # the clean-up below waits for it before it stops the child
            message = await asyncio.shield(receiving)
            if isinstance(message, BaseException):
                raise message
            yield message
            if isinstance(message, _Done):
                return
    finally:
        stop.set()
        if receiving is not None:
            # Stopping the child while the thread reads one of its chunks would leave the
            # thread waiting for the rest of it, and the program's exit waiting for the thread.
            await asyncio.wait({receiving}, timeout=30)
        if child.is_alive():
            child.terminate()
        await loop.run_in_executor(None, child.join, 10)


def _receive(queue: Any, child: Any, stop: threading.Event) -> _Chunk | _Done | BaseException:
    """The next message from the parser process, waiting in short steps: a blocking get
    would keep its thread (and the program's exit) waiting forever once the import is
    cancelled or the child dies without a word."""
    while True:
        try:
            message: _Chunk | _Done | BaseException = queue.get(timeout=POLL_SECONDS)
            return message
        except Empty:
            if stop.is_set():
                return RuntimeError("import cancelled")
            if not child.is_alive() and queue.empty():
                return RuntimeError(f"import parser exited with code {child.exitcode}")


async def import_file(
    store: Store,
    *,
    sender: SenderConfig,
    path: Path,
    recorded_by: str,
    fmt: str | None = None,
    encoding: str | None = None,
    skip_invalid: bool = False,
    approval_required: bool = True,
    on_progress: Callable[[int, int | None], None] | None = None,
    erasure_keys: Sequence[bytes] = (),
) -> ImportResult:
    """Import a CSV/JSONL file all-or-nothing.

    Rows go into a batch that is invisible while loading, in short transactions so a
    running gateway keeps committing. At the end, a file with errors is removed again
    (unless skip_invalid); otherwise one update of the batch's state puts its opt-outs
    in effect at once, and its grants too unless they wait for a second person's approval.
    An address erased before (erasure.py) gets its refusal back, in the same batch.
    """
    batch_id = new_batch_id()
    skip: list[int] = []
    options: dict[str, Any] = {"format": fmt, "encoding": encoding}
    abandoned = await sweep_abandoned(store, recorded_by)
    cleaned = await finish_discards(store)
    if skip_invalid:
        # Conflicts are found on their second line, so the lines to skip are known
        # only after a full pass.
        first = validate_file(path, **options)
        if first.fatal is not None:
            return ImportResult(batch_id, first, state="failed")
        skip = list(first.skipped_lines)
    now = time.time()
    await store.execute(
        "INSERT INTO import_batches (id, sender_id, created_at, created_by, source_name, grants, "
        f"optouts, status, heartbeat_at) VALUES (?, ?, ?, ?, ?, 0, 0, 'loading', {_db_now(store)})",
        (batch_id, sender.id, now, recorded_by, path.name),
    )
    job = _ParseJob(
        str(path), options, skip, sender.id, batch_id, recorded_by, now, not skip_invalid
    )
    result = ImportResult(
        batch_id, ImportReport(), skipped=skip, cleaned=cleaned, abandoned=abandoned
    )
    size = path.stat().st_size  # noqa: ASYNC240 - one stat per import, not per row
    erased = await erasure.erased_refusals(store, sender.id) if erasure_keys else {}
    reattached: set[str] = set()
    beat = asyncio.create_task(_heartbeat(store, batch_id), name=f"heartbeat {batch_id}")
    try:
        async for message in _parsed_chunks(job, parallel=size > PARALLEL_BYTES):
            if isinstance(message, _Chunk):
                if message.rows:
                    refusals = erasure.refusal_rows(message.rows, erased, erasure_keys,
                                                    reattached)
                    await store.insert_consent_rows([*message.rows, *refusals])
                result.imported += len(message.rows)
                if on_progress is not None:
                    on_progress(message.bytes_read, message.total_bytes)
            else:
                result.report, result.grants, result.optouts = (
                    message.report,
                    message.grants,
                    message.optouts,
                )
    except BaseException:
        # Interrupted (Ctrl-C, the parser or the store failing): leave no rows behind.
        with contextlib.suppress(StoreUnavailable):
            await _discard(store, batch_id)
        raise
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    report = result.report
    if report.fatal is not None or (not report.ok and not skip_invalid):
        await _discard(store, batch_id)
        result.state, result.imported = "failed", 0
        return result
    pending = approval_required and result.grants > 0
    result.state = "pending" if pending else "approved"
    # One row: the batch's state decides which of its rows are in effect (consent_records).
    # Guarded: a batch discarded while it loaded (`consent discard`) must not come back.
    finished = await store.execute(
        "UPDATE import_batches SET status = ?, grants = ?, optouts = ?, decided_at = ? "
        "WHERE id = ? AND status = 'loading'",
        (result.state, result.grants, result.optouts, None if pending else time.time(), batch_id),
    )
    if not finished:
        await _discard(store, batch_id)  # rows written after the discard removed the others
        report.fatal = RowError(None, None, "the batch was discarded while it was loading", "")
        result.state, result.imported = "failed", 0
    return result


async def _heartbeat(store: Store, batch_id: str) -> None:
    """Tell other imports and `consent discard` that this batch's import is alive."""
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        with contextlib.suppress(StoreUnavailable):  # a missed beat; the next may pass
            await store.execute(
                f"UPDATE import_batches SET heartbeat_at = {_db_now(store)} "
                "WHERE id = ? AND status = 'loading'",
                (batch_id,),
            )


def _silent_for(batch: dict[str, Any], db_now: float) -> float:
    """Seconds since the batch's last heartbeat (batches from before the heartbeat count
    from their creation)."""
    beat = batch.get("heartbeat_at") or batch.get("created_at") or 0.0
    return db_now - float(beat)


def _abandoned(batch: dict[str, Any], db_now: float) -> bool:
    return batch.get("status") == "loading" and _silent_for(batch, db_now) > ABANDONED_AFTER


async def _discard(store: Store, batch_id: str) -> int:
    """Mark the batch failed, then delete its rows CHUNK at a time: they were never in
    effect, and one statement for a million rows would hold the write lock for seconds.
    Returns the rows deleted."""
    await store.execute("UPDATE import_batches SET status = 'failed' WHERE id = ?", (batch_id,))
    removed = 0
    while deleted := await store.execute(
        "DELETE FROM consent_events WHERE id IN "
        "(SELECT id FROM consent_events WHERE batch_id = ? LIMIT ?)",
        (batch_id, CHUNK),
    ):
        removed += deleted
    return removed


class DiscardRefused(Exception):
    """The batch cannot be discarded: unknown, or its records are in effect or awaiting approval."""


async def discard_batch(store: Store, batch_id: str, actor: str, *, force: bool = False) -> int:
    """Remove a batch that never took effect: an import that died while loading (killed, the
    machine lost) or a failed one whose clean-up was cut short. Returns the rows removed.

    Pending and approved batches are refused: their opt-outs are in effect and their rows
    are consent evidence. A `loading` batch whose import is still beating is refused unless
    `force`: that import then fails at its end instead of finishing (see import_file).
    """
    rows = await store.fetch(
        f"SELECT status, created_at, heartbeat_at, {_db_now(store)} AS db_now "
        "FROM import_batches WHERE id = ?", (batch_id,)
    )
    if not rows:
        raise DiscardRefused(f"no import batch {batch_id!r}")
    status = rows[0]["status"]
    if status not in ("loading", "failed"):
        raise DiscardRefused(
            f"batch {batch_id} is {status}: its records are consent evidence "
            "(opt-outs in effect); only a loading or failed batch can be discarded")
    if status == "loading" and not force and not _abandoned(rows[0], rows[0]["db_now"]):
        silent = max(0.0, _silent_for(rows[0], rows[0]["db_now"]))
        raise DiscardRefused(
            f"batch {batch_id} belongs to an import that is still running (last heartbeat "
            f"{silent:.0f} s ago); wait for it to finish or fail, "
            "or force the discard (the import then fails)")
    changed = await store.execute(
        "UPDATE import_batches SET status = 'failed' WHERE id = ? "
        "AND status IN ('loading', 'failed')", (batch_id,))
    if not changed:
        raise DiscardRefused(f"batch {batch_id} changed state meanwhile; look again")
    removed = await _discard(store, batch_id)
    await audit(store, actor, "consent.discard", batch_id, f"{removed} rows removed")
    return removed


async def sweep_abandoned(store: Store, actor: str) -> list[str]:
    """Discard the batches of imports that died while loading (no heartbeat for
    ABANDONED_AFTER seconds); each import starts by doing this. Audited as `actor`'s."""
    silent = f"COALESCE(heartbeat_at, created_at) < {_db_now(store)} - ?"
    stale = await store.fetch(
        f"SELECT id FROM import_batches WHERE status = 'loading' AND {silent}",
        (ABANDONED_AFTER,))
    swept: list[str] = []
    for row in stale:
        # Guarded by the same test: an import that beat meanwhile keeps its batch.
        if not await store.execute(
            "UPDATE import_batches SET status = 'failed' WHERE id = ? AND status = 'loading' "
            f"AND {silent}", (row["id"], ABANDONED_AFTER)):
            continue
        removed = await _discard(store, row["id"])
        await audit(store, actor, "consent.discard", row["id"],
                    f"abandoned import (no heartbeat for {ABANDONED_AFTER:.0f} s): "
                    f"{removed} rows removed")
        swept.append(row["id"])
    return swept


async def finish_discards(store: Store) -> list[str]:
    """Delete what is left of failed batches (a clean-up cut short by a second Ctrl-C or a
    store failure). Their rows were never in effect; each import starts by doing this."""
    left = await store.fetch(
        "SELECT id FROM import_batches b WHERE status = 'failed' AND EXISTS "
        "(SELECT 1 FROM consent_events c WHERE c.batch_id = b.id)")
    for row in left:
        await _discard(store, row["id"])
    return [row["id"] for row in left]


# The states of import_batches.status: loading (an import running or dead), pending (waiting
# for approval: only its opt-outs in effect), approved, failed (never took effect).
BATCH_STATES = ("loading", "pending", "approved", "failed")


async def list_batches(store: Store, status: str | None = None) -> list[dict[str, Any]]:
    """Batches newest first, each with `abandoned` (its import died while loading)."""
    sql = f"SELECT *, {_db_now(store)} AS db_now FROM import_batches"
    params: tuple[Any, ...] = ()
    if status:
        sql += " WHERE status = ?"
        params = (status,)
    rows = await store.fetch(sql + " ORDER BY created_at DESC", params)
    for row in rows:
        row["abandoned"] = _abandoned(row, row.pop("db_now"))
    return rows


class ApprovalRefused(Exception):
    """The approval is not allowed (same person, unknown batch, not pending, no role)."""


async def approve_batch(
    store: Store, batch_id: str, approver: str, approvers: Sequence[str] = ()
) -> dict[str, Any]:
    """Four eyes: a pending batch's grants take effect when someone else approves it."""
    rows = await store.fetch("SELECT * FROM import_batches WHERE id = ?", (batch_id,))
    if not rows:
        raise ApprovalRefused(f"no import batch {batch_id!r}")
    batch = rows[0]
    if approvers and approver not in approvers:
        raise ApprovalRefused(f"{approver!r} does not have the approver role")
    if batch["created_by"] == approver:
        raise ApprovalRefused(
            f"{approver!r} imported batch {batch_id}; a second person must approve it"
        )
    # Guarded by the status: of concurrent approvals exactly one changes the row (no lost
    # update). The batch's grants are in effect from that commit on (consent_records).
    changed = await store.execute(
        "UPDATE import_batches SET status = 'approved', decided_by = ?, decided_at = ? "
        "WHERE id = ? AND status = 'pending'",
        (approver, time.time(), batch_id),
    )
    if not changed:
        raise ApprovalRefused(f"batch {batch_id} is {batch['status']}, not pending")
    return (await store.fetch("SELECT * FROM import_batches WHERE id = ?", (batch_id,)))[0]


async def audit(store: Store, actor: str, action: str, subject: str, reason: str = "") -> None:
    await store.execute(
        "INSERT INTO audit_log (at, actor, action, subject, reason) VALUES (?, ?, ?, ?, ?)",
        (time.time(), actor, action, subject, reason),
    )


@dataclass(frozen=True, slots=True)
class Lookup:
    sender_id: str
    address: str
    key: str
    decision: Decision
    history: list[dict[str, Any]]
    last_sent: float | None
    suppression: Suppression | None = None  # in force: advertising mail is refused anyway

    def to_dict(self) -> dict[str, Any]:
        decided = self.decision.event
        return {
            "suppression": self.suppression.to_dict() if self.suppression else None,
            "sender": self.sender_id,
            "address": self.address,
            "status": self.decision.outcome.value,
            "reason": self.decision.reason,
            "decided_by": _event_dict(decided) if decided else None,
            "last_sent": _iso(self.last_sent),
            "history": [
                {
                    **{k: v for k, v in row.items() if k not in ("occurred_at", "recorded_at")},
                    "occurred_at": _iso(row["occurred_at"]),
                    "recorded_at": _iso(row["recorded_at"]),
                    "effective": bool(row["effective"]),
                }
                for row in self.history
            ],
        }


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


def _event_dict(event: ConsentEvent) -> dict[str, Any]:
    return {
        "status": event.status.value,
        "method": event.method.value,
        "topic": event.topic,
        "occurred_at": event.occurred_at.isoformat(),
        "source_system": event.source_system,
        "source_ref": event.source_ref,
        "batch_id": event.batch_id,
    }


async def other_event_under_ref(store: Store, event: ConsentEvent) -> str:
    """Why the event already recorded under this source_ref is another one ("" if it is
    this one, resent). A resend is answered 200; anything else was not recorded, and an
    answer of "already recorded" would hide a lost refusal (a CMP that reuses its
    subscription id as the ref for the opt-in and then the opt-out)."""
    rows = await store.fetch(
        "SELECT address_key, status, method, topic, occurred_at FROM consent_events "
        "WHERE sender_id = ? AND source_system = ? AND source_ref = ? AND batch_id IS NULL",
        (event.sender_id, event.source_system, event.source_ref),
    )
    if not rows:
        return ""
    row = rows[0]
    differs = [
        name
        for name, column, mine in (("address", "address_key", event.address_key),
                                   ("status", "status", event.status.value),
                                   ("method", "method", event.method.value),
                                   ("topic", "topic", event.topic))
        if row[column] != mine
    ]
    if abs(float(row["occurred_at"]) - event.occurred_at.timestamp()) > 0.001:
        differs.append("occurred_at")
    if not differs:
        return ""
    return (f"source_ref {event.source_ref!r} of {event.source_system!r} already records "
            f"another event ({', '.join(differs)} differ): this {event.status.value} event "
            "was NOT recorded; send it with a source_ref of its own")


async def lookup(
    store: Store,
    sender: SenderConfig,
    address: str,
    *,
    actor: str,
    reason: str = "",
    topic: str | None = None,
) -> Lookup:
    """Status, evidence, full history and last send of one address; audited."""
    key = suppression_key(normalize_address(address))
    await audit(store, actor, "consent.lookup", f"{sender.id}:{key}", reason)
    events = await store.consent_history(sender.id, key)
    decision = decide(events, topic, Law(sender.law), datetime.now(UTC))
    history = await store.consent_records(sender.id, key)
    found = await store.active_suppression(key)
    return Lookup(sender.id, address, key, decision, history, await store.last_sent(sender.id, key),
                  Suppression.from_row(found) if found else None)


async def export_records(
    store: Store, sender: SenderConfig, *, actor: str, reason: str = ""
) -> list[dict[str, Any]]:
    """Every consent row of a sender (for audits); audited."""
    await audit(store, actor, "consent.export", sender.id, reason)
    rows = await store.fetch(
        "SELECT address AS email, status, method, occurred_at, source_system, source_ref, topic, "
        "client_ip, user_agent, recorded_by, batch_id, effective FROM consent_records "
        "WHERE sender_id = ? ORDER BY id",
        (sender.id,),
    )
    for row in rows:
        row["consented_at"] = datetime.fromtimestamp(row.pop("occurred_at"), UTC).isoformat()
    return rows


@dataclass(frozen=True, slots=True)
class PurgeItem:
    sender_id: str
    address_key: str
    rows: int
    purgeable: bool
    keep_until: str
    reason: str


async def plan_purge(store: Store, config: Config, now: datetime) -> AsyncIterator[PurgeItem]:
    """What the retention rules allow to delete, and why everything else stays."""
    groups = await store.fetch(
        "SELECT sender_id, address_key, count(*) AS n FROM consent_records "
        "WHERE effective = 1 GROUP BY sender_id, address_key"
    )
    for group in groups:
        sender = config.sender(group["sender_id"])
        rows = await store.fetch(
            SELECT_CONSENT + " WHERE sender_id = ? AND address_key = ? AND effective = 1",
            (group["sender_id"], group["address_key"]),
        )
        events = [row_event(tuple(r.values())) for r in rows]
        last = await store.last_sent(group["sender_id"], group["address_key"])
        decision = purge_decision(
            Law(sender.law) if sender else None,  # unknown sender: the safe 3 years
            events,
            datetime.fromtimestamp(last, UTC) if last is not None else None,
            now,
            art7_order=sender.art7_order if sender else False,
        )
        yield PurgeItem(
            group["sender_id"],
            group["address_key"],
            group["n"],
            decision.purgeable,
            decision.keep_until.isoformat() if decision.keep_until.year < 9999 else "forever",
            decision.reason,
        )


async def purge(store: Store, item: PurgeItem) -> int:
    deleted = await store.execute(
        "DELETE FROM consent_events WHERE id IN (SELECT id FROM consent_records "
        "WHERE sender_id = ? AND address_key = ? AND effective = 1 AND status != 'opted_out')",
        (item.sender_id, item.address_key),
    )
    await store.execute(
        "DELETE FROM consent_last_sent WHERE sender_id = ? AND address_key = ?",
        (item.sender_id, item.address_key),
    )
    return deleted
