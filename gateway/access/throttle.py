"""Failed-authentication throttling per client address (in memory, per process)."""

from __future__ import annotations

import time
from collections import deque


class FailureThrottle:
    """After `limit` failures within `window` seconds an address is refused until they age out."""

    def __init__(self, limit: int = 10, window: float = 300.0, max_tracked: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_tracked = max_tracked
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] > self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def blocked(self, key: str, now: float | None = None) -> bool:
        times = self._recent(key, time.monotonic() if now is None else now)
        return times is not None and len(times) >= self.limit

    def retry_after(self, key: str, now: float | None = None) -> int:
        moment = time.monotonic() if now is None else now
        times = self._recent(key, moment)
        if not times:
            return 0
        return max(1, int(self.window - (moment - times[0])) + 1)

    def failure(self, key: str, now: float | None = None) -> None:
        moment = time.monotonic() if now is None else now
        if len(self._failures) >= self.max_tracked and key not in self._failures:
            # bounded memory under a spray of addresses: forget the oldest entry
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(key, deque(maxlen=self.limit * 2)).append(moment)

    def success(self, key: str) -> None:
        self._failures.pop(key, None)
