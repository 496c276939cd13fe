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

A delivery status notification (RFC 3464 DSN) that says a message of ours could not be
delivered because the mailbox does not exist (a status of the suppression rule's
hard_bounce, Action: failed) suppresses that address, as the upstream's own 5.1.1 would
(legal.md §5.1): the MTAs beyond the upstream answer late, in a DSN to the envelope
sender, which ops can route here. The quoted message's token must name the very
recipient the DSN reports, so that no one can suppress an address with a DSN of their
own making. A DSN that says a receiver refused the message for failed authentication
(a status of rule sender.auth_refused: 5.7.26 ...) is counted against the sender and
recorded for ops (legal.md §5.1: "alert auth misconfig"), under the same proof.

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
from gateway.consent import suppression
from gateway.consent.address import InvalidAddress, normalize_address, suppression_key
from gateway.consent.model import ConsentMethod
from gateway.errors import GatewayError
from gateway.store.base import Store
from gateway.unsubscribe.service import record_optout
from gateway.unsubscribe.tokens import InvalidToken, TokenCodec

_TOKEN = re.compile(r"[A-Za-z0-9_-]{40,200}")
_PARSER = email.parser.BytesParser(policy=email.policy.compat32)


@dataclass(frozen=True, slots=True)
class OptOut:
    sender_ids: tuple[str, ...]
    address_key: str
    recorded: bool  # False: a replay of an opt-out the gateway recorded moments ago
    proof: str = "token"  # or the verified signature that stands for the author: "dkim d=..."
    method: ConsentMethod = ConsentMethod.MAILTO  # COMPLAINT for a feedback report


@dataclass(frozen=True, slots=True)
class Bounce:
    """What a DSN about one of our messages reported: a hard bounce (the address is
    suppressed) or a refusal for failed authentication (counted against the sender)."""

    sender_id: str
    address_key: str
    status: str
    added: bool  # False: the address was suppressed already
    kind: str = suppression.HARD_BOUNCE  # or AUTH_REFUSED
    diagnostic: str = ""


AUTH_REFUSED = "auth_refused"


class MailtoOptOut:
    def __init__(self, address: str | None, codec: TokenCodec | None, store: Store,
                 dns: DnsCache | None = None, senders: tuple[str, ...] = (),
                 hard_bounce: frozenset[str] = frozenset(),
                 auth_refusal: frozenset[str] = frozenset()) -> None:
        self.address = address.lower() if address else None
        self.codec = codec
        self.store = store
        self.dns = dns
        self.senders = senders
        self.hard_bounce = hard_bounce
        self.auth_refusal = auth_refusal
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
        headers = _PARSER.parsebytes(raw, headersonly=True)
        subject = headers.get("Subject", "")
        try:
            decoded = str(email.header.make_header(email.header.decode_header(str(subject))))
        except (ValueError, LookupError, email.errors.MessageError):
            # e.g. an encoded-word naming a charset that is no charset (CharsetError): the
            # token is ASCII, so the raw Subject still shows it
            decoded = str(subject)
        found.extend(_TOKEN.findall(decoded))
        return found

    async def receive(self, recipients: list[str], raw: bytes,
                      client_ip: str) -> OptOut | Bounce | None:
        """Record the opt-out the message asks for, or the hard bounce a DSN reports; None
        when it names no valid token."""
        assert self.codec is not None
        status_report = delivery_report(raw)
        if status_report is not None:
            return await self._bounce(status_report)
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

    async def _bounce(self, report: DeliveryReport) -> Bounce | None:
        """Suppress the recipient a DSN reports as unknown, or note the sender whose mail a
        receiver refused for failed authentication, when our token names the recipient."""
        assert self.codec is not None
        named = set()
        for candidate in report.tokens:
            try:
                named.add(self.codec.decode(candidate))
            except InvalidToken:
                continue
        for recipient, status, diagnostic in report.failed:
            if status not in self.hard_bounce and status not in self.auth_refusal:
                continue
            try:
                key = suppression_key(normalize_address(recipient))
            except InvalidAddress:
                continue
            sender_id = next((s for s, k in named if k == key), None)
            if sender_id is None:
                continue  # a report about an address our message did not go to
            if status not in self.hard_bounce:
                return Bounce(sender_id, key, status, True, AUTH_REFUSED, diagnostic)
            added = await suppression.suppress(
                self.store, key, suppression.HARD_BOUNCE,
                f"DSN: {status} {diagnostic}".strip(), sender_id=sender_id)
            return Bounce(sender_id, key, status, added)
        return None

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
        froms = _PARSER.parsebytes(raw, headersonly=True).get_all("From") or []
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


def feedback_report(raw: bytes) -> FeedbackReport | None:
    """The feedback report `raw` is, or None when it is none (RFC 5965 §2)."""
    parts = _report_parts(raw, "feedback-report")
    if parts is None:
        return None
    feedback_type = ""
    quoted: list[str] = []
    for ctype, blocks in parts:
        if ctype == "message/feedback-report":
            feedback_type = str(blocks[0].get("Feedback-Type", "")).strip().lower()
        elif ctype in ("message/rfc822", "text/rfc822-headers"):
            quoted += [str(v) for b in blocks for v in b.get_all("List-Unsubscribe") or []]
    return FeedbackReport(feedback_type, tuple(t for v in quoted for t in _TOKEN.findall(v)))


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What a DSN (RFC 3464) says: the recipients that failed, and the quoted tokens."""

    failed: tuple[tuple[str, str, str], ...]  # (recipient, status, diagnostic)
    tokens: tuple[str, ...]


def delivery_report(raw: bytes) -> DeliveryReport | None:
    """The delivery status notification `raw` is, or None when it is none."""
    parts = _report_parts(raw, "delivery-status")
    if parts is None:
        return None
    failed: list[tuple[str, str, str]] = []
    quoted: list[str] = []
    for ctype, blocks in parts:
        if ctype in ("message/rfc822", "text/rfc822-headers"):
            quoted += [str(v) for b in blocks for v in b.get_all("List-Unsubscribe") or []]
        if ctype != "message/delivery-status":
            continue
        for block in blocks:  # the per-message block, then one per recipient
            action = str(block.get("Action", "")).strip().lower()
            recipient = str(block.get("Final-Recipient", "")).partition(";")[2].strip()
            if action == "failed" and recipient:
                text = str(block.get("Status", "")).strip()  # "5.1.1", or with a comment
                status = suppression.enhanced_status(text) or text
                diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())[:300]
                failed.append((recipient, status, diagnostic))
    return DeliveryReport(tuple(failed), tuple(t for v in quoted for t in _TOKEN.findall(v)))


def _report_parts(raw: bytes, report_type: str
                  ) -> list[tuple[str, list[email.message.Message]]] | None:
    """(content type, header blocks) of each machine-readable part of a multipart/report of
    `report_type`; None when `raw` is no such report."""
    try:
        msg = _PARSER.parsebytes(raw)
    except (email.errors.MessageError, ValueError, LookupError, RecursionError):
        return None
    param = msg.get_param("report-type")
    if (msg.get_content_type() != "multipart/report" or not isinstance(param, str)
            or param.lower() != report_type or not msg.is_multipart()):
        return None
    out: list[tuple[str, list[email.message.Message]]] = []
    for part in msg.get_payload():
        if not isinstance(part, email.message.Message):
            continue
        ctype = part.get_content_type()
        if not (ctype.startswith("message/") or ctype == "text/rfc822-headers"):
            continue
        # The parser reads a message/* body as messages of its own; text/* stays text.
        inner = part.get_payload() if part.is_multipart() else None
        blocks = [m for m in inner if isinstance(m, email.message.Message)] if isinstance(
            inner, list) else []
        if blocks:
            out.append((ctype, blocks))
        else:
            out.append((ctype, [_PARSER.parsebytes(_payload(part), headersonly=True)]))
    return out


def _payload(part: email.message.Message) -> bytes:
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data
    text = part.get_payload()
    return text.encode("utf-8", "replace") if isinstance(text, str) else b""
