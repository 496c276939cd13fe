"""List-Unsubscribe (RFC 2369 + RFC 8058 one-click) for advertising mail, added before signing."""

from __future__ import annotations

from urllib.parse import quote

from gateway.config import Config
from gateway.delivery import headers
from gateway.engine.context import Facts
from gateway.model import ClientClass
from gateway.unsubscribe.tokens import TokenCodec


class ListUnsubscribe:
    def __init__(self, config: Config, codec: TokenCodec | None) -> None:
        self.codec = codec
        self.base = config.http.public_url.rstrip("/") + "/u/"
        self.mailbox = config.policy.unsubscribe_address
        self.keep_existing = config.policy.list_unsubscribe == "keep"

    def token(self, sender_id: str, address_key: str) -> str | None:
        return self.codec.encode(sender_id, address_key) if self.codec else None

    def url(self, token: str) -> str:
        return self.base + token

    async def add_headers(self, facts: Facts, raw: bytes) -> bytes:
        """Replace (or keep, per config) the MA tool's headers with ours, one-click first."""
        token = facts.extra.get("unsubscribe_token")
        if facts.client_class is not ClientClass.ADVERTISING or not token:
            return raw
        header, _ = headers.split(raw)
        if self.keep_existing and b"\nlist-unsubscribe:" in b"\n" + header.lower():
            return raw
        raw = headers.remove_header(raw, "List-Unsubscribe")
        raw = headers.remove_header(raw, "List-Unsubscribe-Post")
        targets = [f"<{self.url(token)}>"]
        if self.mailbox:
            targets.append(f"<mailto:{self.mailbox}?subject={quote('unsubscribe ' + token)}>")
        # folded after each comma: lines stay short, and relaxed canonicalisation
        # makes the folding irrelevant to the DKIM signature
        return headers.prepend(
            raw,
            [
                ("List-Unsubscribe", ",\r\n ".join(targets)),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ],
        )
