"""The mailto: opt-out mailbox: mail to it is accepted without AUTH, and only mail to it.

施行規則5条: a refusal may arrive by any method, so the List-Unsubscribe mailto:
target must work for recipients who cannot log in. The session is local: nothing
is relayed, so this is no open relay. The opt-out token travels in the Subject
(`unsubscribe TOKEN`, as our mailto: URI sets it) or as `+TOKEN` in the address.
"""

from __future__ import annotations

import email.errors
import email.header
import email.parser
import email.policy
import re
from dataclasses import dataclass

from gateway.consent.model import ConsentMethod
from gateway.store.base import Store
from gateway.unsubscribe.service import record_optout
from gateway.unsubscribe.tokens import InvalidToken, TokenCodec

_TOKEN = re.compile(r"[A-Za-z0-9_-]{40,200}")
_HEADERS = email.parser.BytesParser(policy=email.policy.compat32)


@dataclass(frozen=True, slots=True)
class OptOut:
    sender_id: str
    address_key: str
    recorded: bool  # False: a replay of an opt-out the gateway recorded moments ago


class MailtoOptOut:
    def __init__(self, address: str | None, codec: TokenCodec | None, store: Store) -> None:
        self.address = address.lower() if address else None
        self.codec = codec
        self.store = store
        local, _, domain = (self.address or "").partition("@")
        self._plus = re.compile(
            rf"^{re.escape(local)}\+([A-Za-z0-9_-]+)@{re.escape(domain)}$", re.I
        )

    @property
    def enabled(self) -> bool:
        return self.address is not None and self.codec is not None

    def accepts(self, recipient: str) -> bool:
        recipient = recipient.lower()
        return recipient == self.address or bool(self._plus.match(recipient))

    def _candidates(self, recipients: list[str], raw: bytes) -> list[str]:
        found = [m.group(1) for r in recipients if (m := self._plus.match(r))]
        headers = _HEADERS.parsebytes(raw, headersonly=True)
        subject = headers.get("Subject", "")
        try:
            decoded = str(email.header.make_header(email.header.decode_header(str(subject))))
        except (ValueError, LookupError, email.errors.MessageError):
            # e.g. an encoded-word naming a charset that is no charset (CharsetError): the
            # token is ASCII, so the raw Subject still shows it
            decoded = str(subject)
        found.extend(_TOKEN.findall(decoded))
        return found

    async def receive(self, recipients: list[str], raw: bytes, client_ip: str) -> OptOut | None:
        """Record the opt-out the message asks for; None when it names no valid token."""
        assert self.codec is not None
        for candidate in self._candidates(recipients, raw):
            try:
                sender_id, address_key = self.codec.decode(candidate)
            except InvalidToken:
                continue
            recorded = await record_optout(
                self.store, sender_id, address_key, ConsentMethod.MAILTO, client_ip, None
            )
            return OptOut(sender_id, address_key, recorded)
        return None
