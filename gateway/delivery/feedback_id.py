"""Feedback-ID for Gmail's feedback loop, added before signing when the message has none.

Gmail's Postmaster Tools report spam complaints per identifier of a DKIM-signed
`Feedback-ID: a:b:c:SenderId` header (legal.md §5.1 lists it among what the gateway may
add). The gateway knows three stable identifiers of every message: the client (the MA tool
or customer), its class (advertising or transactional) and the sender, so it writes
`client:class:sender`, and Postmaster Tools gives the spam rate by each. An MA tool that sets
its own Feedback-ID (with a campaign, say) keeps it; either way it is signed (dkim_sign's
SIGN_IF_PRESENT). Off unless `[policy] feedback_id = true`; config ids must then be
tokens (config validation), so no value can carry a colon or a line break.
"""

from __future__ import annotations

from typing import Final

from gateway.delivery import headers
from gateway.engine.context import Facts

HEADER: Final = "Feedback-ID"


def feedback_id(client: str, client_class: str, sender: str) -> str:
    return f"{client}:{client_class}:{sender}"


class FeedbackId:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    async def add(self, facts: Facts, raw: bytes) -> bytes:
        message, sender = facts.message, facts.sender
        if not self.enabled or message is None or sender is None or HEADER in message:
            return raw
        value = feedback_id(facts.client.username, facts.client.class_, sender.id)
        return headers.prepend(raw, [(HEADER, value)])
