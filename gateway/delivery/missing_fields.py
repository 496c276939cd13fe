"""Message-ID and Date for a message that has none, added before signing.

RFC 5322 §3.6 requires Date; Gmail refuses mail without a Message-ID and SoftBank drops it
(docs: legal.md §2, "add Message-ID if missing"). The rule message.header_fields refuses
a malformed or repeated one; a missing one is added here, as an MTA's cleanup would, and
the event records the Message-ID the recipient's copy carries.
"""

from __future__ import annotations

import email.utils
import secrets
import time

from gateway.checks.message import ADDED_WHEN_MISSING
from gateway.delivery import headers
from gateway.engine.context import Facts


class MissingFields:
    def __init__(self, hostname: str) -> None:
        self.hostname = hostname  # the id's right side when the From has no usable domain

    async def add(self, facts: Facts, raw: bytes) -> bytes:
        message = facts.message
        if message is None:
            return raw
        fields: list[tuple[str, str]] = []
        for name in ADDED_WHEN_MISSING:
            if message.get(name) is not None:
                continue
            if name == "Message-ID":
                domain = facts.extra.get("header_from", "").rpartition("@")[2] or self.hostname
                value = f"<{time.time_ns():x}.{secrets.token_hex(8)}@{domain}>"
                facts.extra["message_id"] = value
            else:
                value = email.utils.formatdate(localtime=True)
            fields.append((name, value))
        return headers.prepend(raw, fields)
