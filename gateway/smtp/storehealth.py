"""Fail fast while the event store cannot commit, so nothing is relayed that cannot be logged.

The decision of a relayed message is committed after the upstream took it; if the
store cannot commit then, the gateway must not answer 4xx (the client would send
the message twice), so it retries the commit for a while. To keep that window
small, a failed commit marks the store as failing: new transactions get
451 4.3.0 at MAIL and before the upstream sees DATA, at once and without waiting
for a busy timeout. A background probe (a write bigger than an event's, at most one per
`interval`) notices when the store commits again; any successful commit does too.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.errors import GatewayError
from gateway.store.base import Store

log = logging.getLogger(__name__)

# A write at least as big as an event's commit: 16 KiB of padding, so the probe
# needs fresh pages (WAL frames, table and overflow pages) as an event insert does.
PROBE_PAD = bytes(16 * 1024)
_PROBE_DELETE = "DELETE FROM store_probe"
_PROBE_INSERT = "INSERT INTO store_probe (id, pad, at) VALUES (1, ?, ?)"


class StoreHealth:
    def __init__(self, store: Store, *, interval: float = 1.0) -> None:
        self.store = store
        self.interval = interval
        self.failing_since: float | None = None
        self.failures = 0
        self._probe: asyncio.Task[None] | None = None
        self._last_probe = 0.0

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def ok(self) -> bool:
        """True when new transactions may proceed; while failing, probe in the background."""
        if self.failing_since is None:
            return True
        self._maybe_probe()
        return False

    def failed(self, error: Exception) -> None:
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error("event store failing; new transactions get 451 until it commits: %s", error)

    def succeeded(self) -> None:
        if self.failing_since is not None:
            down = time.monotonic() - self.failing_since
            self.failing_since = None
            log.warning("event store commits again after %.1fs", down)

    def _maybe_probe(self) -> None:
        if self._probe is not None and not self._probe.done():
            return
        now = time.monotonic()
        if now - self._last_probe < self.interval:
            return
        self._last_probe = now
        self._probe = asyncio.get_running_loop().create_task(self._run_probe())

    async def _run_probe(self) -> None:
        try:
            await self.store.execute_all(
                [(_PROBE_DELETE, ()), (_PROBE_INSERT, (PROBE_PAD, time.time()))]
            )
        except (GatewayError, OSError) as exc:
            log.debug("event store probe failed: %s", exc)
            return
        self.succeeded()

    async def close(self) -> None:
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            try:
                await self._probe
            except (asyncio.CancelledError, Exception):
                pass
