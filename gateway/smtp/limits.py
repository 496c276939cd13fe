"""Per-client limits: concurrent connections and messages per minute, per client IP address.

Counted per process (each worker of `serve` keeps its own counts). Memory is
bounded: one small record per address that currently has connections or sent
within the last minute, and at most `max_messages_per_minute_per_ip` timestamps
per address.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from gateway.config import ServerConfig
from gateway.replies import replies

# The replies of the limits live in replies.py, with every other reply.
TOO_MANY_CONNECTIONS = replies.too_many_connections
TOO_MANY_FROM_IP = replies.too_many_from_ip
MESSAGE_RATE_EXCEEDED = replies.message_rate_exceeded

WINDOW = 60.0  # seconds: the message rate is counted over a sliding minute
_PRUNE_EVERY = 1024  # prune idle addresses after this many rate checks


class ClientLimits:
    """Admission decisions; the caller turns them into 421/451 replies."""

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_connections = config.max_connections
        self.max_per_ip = config.max_connections_per_ip
        self.max_rate = config.max_messages_per_minute_per_ip
        self.clock = clock
        self.total = 0
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._sent: dict[str, collections.deque[float]] = {}
        self._checks = 0

    # -- connections -------------------------------------------------------------------------

    def connect(self, ip: str) -> str | None:
        """Count a new connection; None when admitted, else why not ("total" or "ip")."""
        if self.max_connections and self.total >= self.max_connections:
            return "total"
        if self.max_per_ip and self._per_ip[ip] >= self.max_per_ip:
            return "ip"
        self.total += 1
        self._per_ip[ip] += 1
        return None

    def disconnect(self, ip: str) -> None:
        """Forget an admitted connection (call once per admitted connect)."""
        self.total = max(0, self.total - 1)
        left = self._per_ip[ip] - 1
        if left > 0:
            self._per_ip[ip] = left
        else:
            del self._per_ip[ip]

    def connections(self, ip: str) -> int:
        return self._per_ip.get(ip, 0)

    # -- message rate --------------------------------------------------------------------------

    def message(self, ip: str) -> bool:
        """Count one message (MAIL) from `ip`; False when it is over the per-minute limit."""
        if not self.max_rate:
            return True
        now = self.clock()
        self._checks += 1
        if self._checks % _PRUNE_EVERY == 0:
            self._prune(now)
        sent = self._sent.get(ip)
        if sent is None:
            sent = self._sent[ip] = collections.deque(maxlen=self.max_rate)
        while sent and now - sent[0] >= WINDOW:
            sent.popleft()
        if len(sent) >= self.max_rate:
            return False  # refused attempts are not counted: the window drains on its own
        sent.append(now)
        return True

    def retry_after(self, ip: str) -> float:
        sent = self._sent.get(ip)
        if not sent:
            return 0.0
        return max(0.0, WINDOW - (self.clock() - sent[0]))

    def _prune(self, now: float) -> None:
        stale = [ip for ip, sent in self._sent.items() if not sent or now - sent[-1] >= WINDOW]
        for ip in stale:
            del self._sent[ip]
