"""The one check every fault test ends with.

    every message the client saw a 250 for arrived upstream exactly once and is in the
    event log (`python -m gateway log --json`); everything else got a 4xx or 5xx (or, when
    the gateway itself was killed, no reply at all) and arrived upstream at most once;
    nothing arrived upstream that no client sent.

Plus the recovery check: after the fault is gone, a fresh message gets a 250 by itself
within a bound, and the time it took is returned for the figures.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.client import Outcome, message_id_of, send_message
from tests.support.gateway import REVEAL, cli
from tests.support.messages import marketing


@dataclass
class Tally:
    accepted: int = 0
    temporary: int = 0
    permanent: int = 0
    no_reply: int = 0
    codes: collections.Counter[str] = field(default_factory=collections.Counter)

    def __str__(self) -> str:
        return (f"250={self.accepted} 4xx={self.temporary} 5xx={self.permanent} "
                f"no-reply={self.no_reply} {dict(self.codes)}")


def new_message(tag: str = "fault") -> bytes:
    """A compliant marketing message with a fresh Message-ID (the checker's key)."""
    return marketing(extra_headers={"X-Test-Tag": tag}).replace(
        b"Message-ID: <", f"Message-ID: <{tag}-{uuid.uuid4().hex[:8]}-".encode(), 1
    )


def event_log(config: Path, *, limit: int = 100000) -> list[dict[str, object]]:
    result = cli("log", "--json", *REVEAL, "--limit", str(limit), config=config)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _mid(value: object) -> str:
    return str(value or "").strip().strip("<>")


def check_invariant(
    outcomes: Iterable[Outcome],
    delivered: Iterable[bytes],
    config: Path,
    *,
    allow_no_reply: bool = False,
) -> Tally:
    """Assert the invariant; return the tally of what the clients saw."""
    outcomes = list(outcomes)
    arrived = collections.Counter(message_id_of(raw) for raw in delivered)
    logged = collections.Counter(
        _mid(row.get("message_id")) for row in event_log(config)
        if row.get("verdict") == "accepted" and row.get("phase") == "data"
    )
    sent_ids = {o.message_id for o in outcomes}
    tally = Tally()
    problems: list[str] = []
    for o in outcomes:
        key = "none" if o.code is None else str(o.code)
        tally.codes[f"{o.phase}:{key}"] += 1
        if o.accepted:
            tally.accepted += 1
            if arrived[o.message_id] != 1:
                problems.append(f"{o.message_id}: 250 but arrived {arrived[o.message_id]} times")
            if logged[o.message_id] != 1:
                problems.append(f"{o.message_id}: 250 but {logged[o.message_id]} accepted events")
            continue
        if o.code is None:
            tally.no_reply += 1
            if not allow_no_reply:
                problems.append(f"{o.message_id}: no reply in phase {o.phase}: {o.reply}")
        elif 400 <= o.code < 500:
            tally.temporary += 1
        elif 500 <= o.code < 600:
            tally.permanent += 1
        else:
            problems.append(f"{o.message_id}: neither 250 nor 4xx/5xx: {o.reply!r}")
        if arrived[o.message_id] > 1:
            problems.append(f"{o.message_id}: refused but arrived {arrived[o.message_id]} times")
    strays = [mid for mid in arrived if mid not in sent_ids]
    if strays:
        problems.append(f"arrived upstream but never sent by a client: {strays[:5]}")
    assert not problems, "\n".join(problems[:20]) + f"\n({tally})"
    return tally


async def wait_recovered(port: int, *, within: float = 30.0, tag: str = "recover",
                         **kw: object) -> tuple[float, Outcome]:
    """Send fresh messages until one gets a 250; (seconds it took, that outcome)."""
    started = time.monotonic()
    last: Outcome | None = None
    while time.monotonic() - started < within:
        last = await send_message(port, new_message(tag), wait=10, **kw)  # type: ignore[arg-type]
        if last.accepted:
            return time.monotonic() - started, last
        await asyncio.sleep(0.2)
    raise AssertionError(f"no 250 within {within}s; last: {last}")


async def keep_sending(port: int, stop: asyncio.Event, outcomes: list[Outcome], *,
                       tag: str, pause: float = 0.0, wait: float = 20.0) -> None:
    """One client loop: a message per session until `stop` is set."""
    while not stop.is_set():
        outcomes.append(await send_message(port, new_message(tag), wait=wait))
        if outcomes[-1].code is None or not outcomes[-1].accepted:
            await asyncio.sleep(0.05)  # back off a little, as an MA tool would
        if pause:
            await asyncio.sleep(pause)
