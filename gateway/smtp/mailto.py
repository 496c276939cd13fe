"""The mailto: opt-out mailbox: mail to it is accepted without AUTH, and only mail to it.

施行規則5条: a refusal may arrive by any method, so the List-Unsubscribe mailto:
target must work for recipients who cannot log in. The session is local: nothing
is relayed, so this is no open relay. The opt-out token travels in the Subject
(`unsubscribe TOKEN`, as our mailto: URI sets it) or as `+TOKEN` in the address.

A complaint feedback report (RFC 5965 ARF, "this is spam" at a mailbox provider that
sends its feedback loop to this address) is a refusal by the person it was sent to
(legal.md §5.1, method complaint). The report quotes our message, whose List-Unsubscribe
holds that person's token: the token, which only the gateway can make, names the
sender and the address. The report's own author is the provider, never the person, so
a report opts out no one without a token; one that is not a complaint (e.g. not-spam)
is refused.

A message without a valid token (written by hand, or a mail app that dropped the
Subject) is still a refusal when its author is proven: a DKIM signature that verifies
and whose d= shares the From address's organisational domain (as DMARC would align
it). The opt-out then holds for the senders that mailed that address through the
gateway, or for every sender when none did. Without such proof anyone could opt
anyone out, so the message is refused and says why.
"""

from __future__ import annotations

import email.errors
import email.header
import email.message
import email.parser
import email.policy
import email.utils
import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.auth.dkim_sign import DkimMessageError, DkimVerifyStatus, verify_existing
from gateway.auth.dmarc import psl_org_domain
from gateway.auth.dns import DnsCache
from gateway.consent.address import InvalidAddress, normalize_address, suppression_key
from gateway.consent.model import ConsentMethod
from gateway.errors import GatewayError
from gateway.store.base import Store
from gateway.unsubscribe.service import record_optout
from gateway.unsubscribe.tokens import InvalidToken, TokenCodec

_TOKEN = re.compile(r"[A-Za-z0-9_-]{40,200}")
_HEADERS = email.parser.BytesParser(policy=email.policy.compat32)


@dataclass(frozen=True, slots=True)
class OptOut:
    sender_ids: tuple[str, ...]
    address_key: str
    recorded: bool  # False: a replay of an opt-out the gateway recorded moments ago
    proof: str = "token"  # or the verified signature that stands for the author: "dkim d=..."
    method: ConsentMethod = ConsentMethod.MAILTO  # COMPLAINT for a feedback report


class MailtoOptOut:
    def __init__(self, address: str | None, codec: TokenCodec | None, store: Store,
                 dns: DnsCache | None = None, senders: tuple[str, ...] = ()) -> None:
        self.address = address.lower() if address else None
        self.codec = codec
        self.store = store
        self.dns = dns
        self.senders = senders
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
        report = feedback_report(raw)
        if report is not None:
            # the person the quoted message went to complains; never the report's author
            if report.feedback_type != "abuse":
                return None
            return await self._by_token(report.tokens, ConsentMethod.COMPLAINT, client_ip,
                                        "feedback report (abuse)")
        found = await self._by_token(self._candidates(recipients, raw), ConsentMethod.MAILTO,
                                     client_ip, "token")
        return found or await self._from_proven_author(raw, client_ip)

    async def _by_token(self, candidates: Iterable[str], method: ConsentMethod, client_ip: str,
                        proof: str) -> OptOut | None:
        """The opt-out the first valid token among `candidates` names."""
        assert self.codec is not None
        for candidate in candidates:
            try:
                sender_id, address_key = self.codec.decode(candidate)
            except InvalidToken:
                continue
            recorded = await record_optout(
                self.store, sender_id, address_key, method, client_ip, None
            )
            return OptOut((sender_id,), address_key, recorded, proof, method)
        return None

    async def _from_proven_author(self, raw: bytes, client_ip: str) -> OptOut | None:
        """The From address's refusal, when a signature aligned with it proves the author."""
        if self.dns is None or not self.senders:
            return None
        froms = _HEADERS.parsebytes(raw, headersonly=True).get_all("From") or []
        authors = [a for _, a in email.utils.getaddresses([str(v) for v in froms]) if a]
        if len(authors) != 1:
            return None
        try:
            key = suppression_key(normalize_address(authors[0]))
        except InvalidAddress:
            return None
        org = psl_org_domain(authors[0].rpartition("@")[2])
        if org is None:
            return None
        try:  # only signatures that could prove this author are worth a DNS query
            signatures = await verify_existing(
                self.dns, raw, domains=lambda d: psl_org_domain(d) == org)
        except (DkimMessageError, GatewayError):
            return None
        proof = next((f"dkim d={sig.domain}" for sig in signatures
                      if sig.status is DkimVerifyStatus.PASS), None)
        if proof is None:
            return None
        mailed = tuple([sid for sid in self.senders
                        if await self.store.last_sent(sid, key) is not None])
        recorded = False
        for sender_id in mailed or self.senders:
            recorded |= await record_optout(
                self.store, sender_id, key, ConsentMethod.MAILTO, client_ip, None
            )
        return OptOut(mailed or self.senders, key, recorded, proof)


@dataclass(frozen=True, slots=True)
class FeedbackReport:
    """What an ARF report (RFC 5965) says: its type, and the tokens in the quoted message."""

    feedback_type: str
    tokens: tuple[str, ...]


_ARF = email.parser.BytesParser(policy=email.policy.compat32)


def feedback_report(raw: bytes) -> FeedbackReport | None:
    """The feedback report `raw` is, or None when it is none (RFC 5965 §2)."""
    try:
        msg = _ARF.parsebytes(raw)
    except (email.errors.MessageError, ValueError, LookupError, RecursionError):
        return None
    report_type = msg.get_param("report-type")
    if (msg.get_content_type() != "multipart/report" or not isinstance(report_type, str)
            or report_type.lower() != "feedback-report" or not msg.is_multipart()):
        return None
    feedback_type = ""
    quoted: list[str] = []
    for part in msg.get_payload():
        if not isinstance(part, email.message.Message):
            continue
        ctype = part.get_content_type()
        if ctype not in ("message/feedback-report", "message/rfc822", "text/rfc822-headers"):
            continue
        # The parser reads a message/* body as a message of its own; text/* stays text.
        inner = part.get_payload(0) if part.is_multipart() else None
        if not isinstance(inner, email.message.Message):
            inner = _ARF.parsebytes(_payload(part), headersonly=True)
        if ctype == "message/feedback-report":
            feedback_type = str(inner.get("Feedback-Type", "")).strip().lower()
        else:
            quoted += [str(v) for v in inner.get_all("List-Unsubscribe") or []]
    tokens = tuple(t for value in quoted for t in _TOKEN.findall(value))
    return FeedbackReport(feedback_type, tokens)


def _payload(part: email.message.Message) -> bytes:
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data
    text = part.get_payload()
    return text.encode("utf-8", "replace") if isinstance(text, str) else b""
