"""The post-acceptance pipeline: the ordered transformations before forwarding.

Order matters: every change to the message happens before signing, and nothing
touches the message after it is signed (RFC 6376 §8: later changes break DKIM).
Handlers that changed nothing return the very bytes they were given, so an
untouched message is never re-serialised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from gateway.engine.context import Facts

Step = Callable[[Facts, bytes], Awaitable[bytes]]


class Pipeline:
    def __init__(self, steps: Sequence[Step] = ()) -> None:
        self.steps = tuple(steps)

    async def prepare(self, facts: Facts, raw: bytes) -> bytes:
        for step in self.steps:
            raw = await step(facts, raw)
        return raw
