"""aiosmtpd hooks: translate SMTP events into engine calls and verdicts into replies.

No policy lives here. Each hook gathers facts, asks the chain for a verdict,
forwards to the upstream in lockstep when the verdict allows, records the
outcome, and answers with the reply the chain or the upstream gave.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, AuthResult, Envelope, Session

from gateway import replies as replies_mod
from gateway.consent import suppression
from gateway.consent.address import InvalidAddress, normalize_address, suppression_key
from gateway.consent.gate import decide_at_rcpt
from gateway.consent.model import ConsentEvent, ConsentMethod, Law, decide
from gateway.consent.suppression import Suppression, is_hard_bounce
from gateway.content.insert import InsertError
from gateway.delivery.client_signatures import note_removed
from gateway.engine import chain
from gateway.engine.context import Facts
from gateway.errors import GatewayError, StoreUnavailable, UpstreamError
from gateway.eventlog import new_id
from gateway.model import (
    Action,
    ClientClass,
    Event,
    EventVerdict,
    Outcome,
    Phase,
    RuleResult,
    Verdict,
)
from gateway.replies import Reply, replies
from gateway.smtp.limits import MESSAGE_RATE_EXCEEDED, ClientLimits
from gateway.smtp.mailto import AUTH_REFUSED, Bounce
from gateway.smtp.message import gather_message_facts
from gateway.smtp.storehealth import StoreHealth
from gateway.volume import auth_refusal_statuses

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.delivery.upstream import UpstreamReply
    from gateway.smtp.server import ConnectionState, GatewaySMTP

log = logging.getLogger(__name__)

# After the upstream took a message, its decision must reach the event log: a 4xx now
# would make the client send it twice. Retry the commit for this long before giving up
# (the decision line is then only in the JSON log on stderr).
ACCEPTED_RECORD_PATIENCE = 30.0
# NUL and other control characters have no place in an envelope address (RFC 5321 §4.1.2);
# the upstream client would refuse to send them, so say so before anything happens.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BAD_SENDER = replies.bad_sender
_RECORD_RETRY_PAUSE = 0.25


def _plausible_sender(address: str) -> bool:
    """The null reverse-path, or local@domain. aiosmtpd passes on what it could not parse
    ("MAIL FROM:<bad" arrives as "bad"), which the rules would call a foreign domain."""
    local, at, domain = address.rpartition("@")
    return address == "<>" or bool(local and at and domain)


def _printable(text: str, limit: int = 320) -> str:
    """An envelope address as the event log keeps it: control characters shown as \\xNN
    (PostgreSQL refuses NUL in text), at most `limit` characters."""
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _retrieve(task: asyncio.Future[str]) -> None:
    """Consume the outcome of a delivery whose client left (it was logged already)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("delivery after disconnect ended with %r", task.exception())


def _line(reply: Reply, utf8: bool = False) -> str:
    return replies_mod.finalize(reply, utf8=utf8)


class Handler:
    """The hook object aiosmtpd calls; one instance serves every connection."""

    def __dir__(self) -> list[str]:
        # aiosmtpd scans dir(handler) for handle_* and auth_* hooks on every connection
        return _HOOK_NAMES

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.limits = ClientLimits(gateway.config.server)
        self.store_health = StoreHealth(gateway.store)
        # Suppressions are looked up and recorded only where a rule checks them.
        self.suppressing = any(r.check == "consent.not_suppressed" for r in gateway.rules.rules)
        self.hard_bounce = suppression.hard_bounce_statuses(gateway.rules)
        self.auth_refusals = auth_refusal_statuses(gateway.rules)

    # -- greeting and AUTH --------------------------------------------------------------

    async def handle_EHLO(
        self,
        server: GatewaySMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        await server.state.end_transaction()
        # PIPELINING: aiosmtpd reads commands one line at a time, so pipelined
        # commands are answered in order; advertise it before the final line.
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_HELO(
        self, server: GatewaySMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        session.host_name = hostname
        await server.state.end_transaction()  # HELO resets like RSET (RFC 5321 4.1.4)
        return f"250 {server.hostname}"

    async def auth_PLAIN(self, server: GatewaySMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        assert isinstance(blob, bytes)
        parts = blob.split(b"\0")
        if len(parts) != 3:
            await server.push("501 5.5.2 Cannot split AUTH PLAIN value")
            return AuthResult(success=False, handled=True)
        return await self._authenticate(server, parts[1], parts[2])

    async def auth_LOGIN(self, server: GatewaySMTP, args: list[str]) -> AuthResult:
        if len(args) == 2:
            try:
                login: Any = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        else:
            login = await server.challenge_auth("Username:")
        if login is MISSING:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth("Password:")
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._authenticate(server, login, password)

    async def _authenticate(self, server: GatewaySMTP, login: bytes, password: bytes) -> AuthResult:
        ip = server.state.client_ip
        if self.gw.authenticator.throttled(ip):
            self.gw.metrics.session_refusal("auth_throttled")
            await server.push(_line(replies.auth_throttled))
            return AuthResult(success=False, handled=True)
        try:
            username, secret = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        client = await self.gw.authenticator.verify(ip, username, secret)
        if client is None:
            self.gw.metrics.session_refusal("auth_failed")
            log.warning("auth failed", extra={"fields": {"client_ip": ip, "username": username}})
            return AuthResult(success=False, handled=False, message=_line(replies.auth_invalid))
        server.state.client = client
        return AuthResult(success=True, auth_data=username, message=_line(replies.auth_ok))

    # -- MAIL ----------------------------------------------------------------------------

    async def handle_MAIL(
        self,
        server: GatewaySMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        state = server.state
        try:
            return await self._mail(state, envelope, address, mail_options)
        except Exception as error:  # nothing of a half-begun transaction may carry over
            line = self._error_line(error)
            await state.end_transaction()
            return line

    async def _mail(
        self, state: ConnectionState, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if self.gw.draining:
            return await self.refused_before_rules(state, replies.shutting_down, "draining",
                                                   address)
        if not self.limits.message(state.client_ip):
            log.warning(
                "message rate limit", extra={"fields": {"client_ip": state.client_ip}}
            )
            return await self.refused_before_rules(state, MESSAGE_RATE_EXCEEDED,
                                                   "message_rate", address)
        if (
            not _plausible_sender(address)
            or _CONTROL.search(address)
            or any(_CONTROL.search(o) for o in mail_options)
        ):
            return await self.refused_before_rules(state, BAD_SENDER, "sender_invalid", address)
        client = state.client
        if client is None:
            if not self.gw.mailto.enabled:
                self.gw.metrics.session_refusal("relay_denied")
                return _line(replies.relay_denied)
            # Only the opt-out mailbox may be reached without AUTH (checked at RCPT).
            state.begin_transaction()
            state.mailto = True
            envelope.mail_from = address
            return _line(replies.sender_ok)
        if not self.store_health.ok():
            # nothing may be relayed whose decision cannot be logged: fail fast
            self.gw.metrics.session_refusal("store_unavailable")
            return _line(replies.store_unavailable)
        state.begin_transaction()
        state.utf8 = "SMTPUTF8" in mail_options
        facts = state.facts = Facts(
            config=self.gw.config,
            client=client,
            client_ip=state.client_ip,
            phase=Phase.MAIL,
            mail_from=address,
            smtputf8=state.utf8,
        )
        facts.sender = self.gw.sender_for_envelope(client, address)
        if facts.sender is not None:
            self._gather_volume(facts, facts.sender.id)
        verdict = self._evaluate(Phase.MAIL, facts)
        if verdict.action is not Action.ACCEPT:
            return await self._refuse(state, Phase.MAIL, verdict, facts)
        started = time.perf_counter()
        try:
            link = await state.upstream()
            answer = await link.mail(address, mail_options)
        except UpstreamError as exc:
            return await self._upstream_failed(state, Phase.MAIL, exc, facts)
        state.timings["upstream_mail"] = time.perf_counter() - started
        if not answer.ok:
            self.gw.metrics.upstream_error(answer.kind)
            await state.end_transaction()
            return answer.line()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        state.monitored.extend(verdict.monitored)
        state.results.extend(verdict.results)
        return answer.line()

    # -- RCPT ----------------------------------------------------------------------------

    async def handle_RCPT(
        self,
        server: GatewaySMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        state = server.state
        if state.mailto:
            if not self.gw.mailto.accepts(address):
                self.gw.metrics.session_refusal("relay_denied")
                return _line(replies.relay_denied)
            envelope.rcpt_tos.append(address)
            return _line(replies.recipient_ok)
        facts = state.facts
        if facts is None or not envelope.mail_from:
            return _line(replies.need_mail)
        advertising = facts.client_class is ClientClass.ADVERTISING
        if advertising and state.accepted_rcpts >= 1:
            return _line(replies.one_recipient_per_transaction)
        if state.accepted_rcpts >= self.gw.config.server.max_recipients:
            return _line(replies.too_many_recipients)
        facts.phase = Phase.RCPT
        facts.recipient = address
        started = time.perf_counter()
        await self._gather_recipient(facts, address)
        verdict = self._evaluate(Phase.RCPT, facts)
        state.timings["rcpt_rules"] = time.perf_counter() - started
        if verdict.action is not Action.ACCEPT:
            return await self._refuse(state, Phase.RCPT, verdict, facts, recipient=address)
        started = time.perf_counter()
        try:
            link = await state.upstream()
            answer = await link.rcpt(address, rcpt_options)
        except UpstreamError as exc:
            return await self._upstream_failed(state, Phase.RCPT, exc, facts, recipient=address)
        state.timings["upstream_rcpt"] = time.perf_counter() - started
        if answer.ok:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            state.accepted_rcpts += 1
            state.monitored.extend(verdict.monitored)
            state.results.extend(verdict.results)
        else:
            # The upstream refused this recipient: relay its answer, and record it,
            # so no recipient disappears without a trace.
            self.gw.metrics.upstream_error(answer.kind)
            await self._note_refusal(facts, address, answer)
            await self._record(
                state,
                Phase.RCPT,
                EventVerdict.REJECTED if answer.code >= 500 else EventVerdict.TEMPFAILED,
                answer.line(),
                facts,
                recipient=address,
                upstream_reply=answer.line(),
            )
        return answer.line()

    # -- DATA ----------------------------------------------------------------------------

    async def handle_DATA(self, server: GatewaySMTP, session: Session, envelope: Envelope) -> str:
        state = server.state
        try:
            return await self._data(state, server, envelope)
        except Exception as error:  # whatever failed, this transaction must end here
            return await self._data_failed(state, envelope, error)

    async def _data(self, state: ConnectionState, server: GatewaySMTP, envelope: Envelope) -> str:
        if state.mailto:
            return await self._mailto_optout(state, envelope)
        facts = state.facts
        if facts is None:
            return _line(replies.bad_sequence)
        server.restart_idle_timer()
        raw = envelope.original_content or b""
        recipients = ",".join(envelope.rcpt_tos)
        facts.phase = Phase.DATA
        facts.recipient = recipients
        facts.recipient_count = len(envelope.rcpt_tos)
        started = time.perf_counter()
        gather_message_facts(facts, raw)
        facts.extra["received"] = raw  # as the client sent it, before any repair
        if facts.message is not None:
            topic = facts.message.get(self.gw.config.policy.topic_header)
            facts.extra["topic"] = str(topic).strip() or None if topic is not None else None
            raw = self._gather_footer(facts, raw)
            await self.gw.auth.gather(facts)
        await self._reread_consent(facts)
        self._gather_topic_consent(facts)
        verdict = self._evaluate(Phase.DATA, facts)
        state.timings["data_rules"] = time.perf_counter() - started
        state.monitored.extend(verdict.monitored)
        if verdict.action is not Action.ACCEPT:
            # _refuse adds the verdict's results to the event (once)
            reply = await self._refuse(state, Phase.DATA, verdict, facts, recipient=recipients)
            await state.end_transaction()
            return reply
        state.results.extend(verdict.results)
        started = time.perf_counter()
        try:
            outgoing = await self.gw.pipeline.prepare(facts, raw)
        except GatewayError as exc:
            return await self._finish_with(
                state, facts, exc.reply, EventVerdict.TEMPFAILED, recipients, str(exc)
            )
        state.timings["prepare"] = time.perf_counter() - started
        note_removed(state.results, facts.extra.get("client_dkim_removed"))
        if not self.store_health.ok():
            # the store stopped committing during this transaction: do not relay
            return await self._finish_with(
                state, facts, replies.store_unavailable, EventVerdict.TEMPFAILED, recipients,
                "event store failing",
            )
        # From the upstream's DATA to the record, finish even if the client goes away:
        # a message the upstream took must be in the event log.
        delivery = state.delivery = asyncio.ensure_future(
            self._deliver(state, facts, outgoing, recipients)
        )
        delivery.add_done_callback(_retrieve)
        return await asyncio.shield(delivery)

    async def _deliver(
        self, state: ConnectionState, facts: Facts, outgoing: bytes, recipients: str
    ) -> str:
        started = time.perf_counter()
        try:
            link = await state.upstream()
            answer = await link.data(outgoing)
        except UpstreamError as exc:
            state.timings["upstream_data"] = time.perf_counter() - started
            self.gw.metrics.upstream_error(exc.kind)
            return await self._finish_with(
                state, facts, exc.reply, EventVerdict.TEMPFAILED, recipients, str(exc)
            )
        state.timings["upstream_data"] = time.perf_counter() - started
        if answer.ok:
            verdict_name = EventVerdict.ACCEPTED
        else:
            self.gw.metrics.upstream_error(answer.kind)
            verdict_name = EventVerdict.REJECTED if answer.code >= 500 else EventVerdict.TEMPFAILED
            # with several recipients the reply does not say whose mailbox is unknown
            await self._note_refusal(facts, recipients, answer,
                                     one_recipient=facts.recipient_count == 1)
        sent_key = ""
        if answer.ok and facts.client_class is ClientClass.ADVERTISING:
            sent_key = facts.extra.get("address_key", "")
            if facts.sender is not None:
                self.gw.volume.note_sent(facts.sender.id, facts.recipient_count)
        if answer.ok and facts.sender is not None and self.gw.gmail_bulk is not None:
            # Gmail counts every message of a sender, receipts too
            self.gw.volume.note_gmail(facts.sender.id,
                                      self.gw.gmail_bulk.count(recipients.split(",")))
        deadline = time.monotonic() + ACCEPTED_RECORD_PATIENCE
        started = time.perf_counter()
        while True:
            try:
                await self._record(
                    state,
                    Phase.DATA,
                    verdict_name,
                    answer.line(),
                    facts,
                    recipient=recipients,
                    upstream_reply=answer.line(),
                    size=len(outgoing),
                    sent_key=sent_key,
                )
                break
            except Exception as exc:
                if not answer.ok:
                    await state.end_transaction()
                    raise
                if time.monotonic() >= deadline or not isinstance(exc, GatewayError):
                    # The upstream already took the message: a 4xx now would make the
                    # client send it twice. A store failure left the decision on stderr
                    # ("decision not stored"); any other error would only repeat, and its
                    # traceback goes with this line.
                    log.error(
                        "accepted message not in the event log",
                        exc_info=None if isinstance(exc, GatewayError) else exc,
                        extra={"fields": {"session": state.session_id, "reply": answer.line()}},
                    )
                    break
                await asyncio.sleep(_RECORD_RETRY_PAUSE)
        # not in the event's own timings: they are committed with it
        self.gw.metrics.stage("commit", time.perf_counter() - started)
        await state.end_transaction()
        return answer.line()

    async def _mailto_optout(self, state: Any, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            optout = await self.gw.mailto.receive(list(envelope.rcpt_tos), raw, state.client_ip)
        except GatewayError as exc:
            await state.end_transaction()
            return _line(exc.reply)
        if isinstance(optout, Bounce):
            return await self._mailto_bounce(state, envelope, raw, optout)
        reply = replies.optout_recorded if optout else replies.optout_no_token
        line = _line(reply)
        for sender_id in optout.sender_ids if optout else ("",):  # an event per sender
            event = Event(
                verdict=EventVerdict.ACCEPTED if optout else EventVerdict.REJECTED,
                phase=Phase.DATA,
                reply=line,
                client="(mailto opt-out)",
                client_ip=state.client_ip,
                sender_id=sender_id,
                mail_from=envelope.mail_from or "",
                recipient=optout.address_key if optout else ",".join(envelope.rcpt_tos),
                size=len(raw),
                rule_ids=("unsubscribe.mailto",),
                results=(RuleResult("unsubscribe.mailto", Outcome.PASS, optout.proof),)
                if optout else (),
                session_id=state.session_id,
            )
            try:
                await self.gw.eventlog.record(event)
            except GatewayError:
                pass  # the opt-out itself is in the consent store already
        if optout:
            self.gw.metrics.unsubscribe(optout.method.value)
            if optout.method is ConsentMethod.COMPLAINT:
                for sender_id in optout.sender_ids:
                    self.gw.volume.note_complaint(sender_id)
        await state.end_transaction()
        return line

    async def _mailto_bounce(self, state: Any, envelope: Envelope, raw: bytes,
                             bounce: Bounce) -> str:
        """A DSN about one of our messages, acted on already (a hard bounce suppressed) or
        now (a refusal for failed authentication counted); say so and record it."""
        if bounce.kind == AUTH_REFUSED:
            rule_id, reply = "sender.auth_refused", replies.auth_refusal_recorded
            detail = f"DSN {bounce.status}: {bounce.diagnostic}".strip()
            self._note_auth_refusal(bounce.sender_id, bounce.status, detail)
        else:
            rule_id, reply = "address.suppressed", replies.bounce_recorded
            detail = (f"DSN {bounce.status}: "
                      + ("suppressed" if bounce.added else "suppressed already"))
            self.gw.volume.note_hard_bounce(bounce.sender_id)  # rule sender.bounce_rate
            if bounce.added:
                self.gw.metrics.suppression_added(suppression.HARD_BOUNCE)
        line = _line(reply)
        event = Event(
            verdict=EventVerdict.ACCEPTED, phase=Phase.DATA, reply=line,
            client="(mailto delivery report)", client_ip=state.client_ip,
            sender_id=bounce.sender_id, mail_from=envelope.mail_from or "",
            recipient=bounce.address_key, size=len(raw), rule_ids=(rule_id,),
            results=(RuleResult(rule_id, Outcome.PASS, detail),),
            session_id=state.session_id,
        )
        try:
            await self.gw.eventlog.record(event)
        except GatewayError:
            pass  # the suppression or the count is taken already
        await state.end_transaction()
        return line

    def _note_auth_refusal(self, sender_id: str, status: str, detail: str) -> None:
        """A receiver refused the sender's mail for failed authentication: count it, and
        tell ops at once (legal.md §5.1: "alert auth misconfig")."""
        self.gw.volume.note_auth_refusal(sender_id)
        self.gw.metrics.auth_refusal(status)
        log.error("a receiver refused mail for failed authentication; check SPF, DKIM and "
                  "DMARC (tokuden dns check)", extra={"fields": {
                      "sender_id": sender_id, "status": status, "detail": detail}})

    async def handle_RSET(self, server: GatewaySMTP, session: Session, envelope: Envelope) -> str:
        await server.state.end_transaction()
        return "250 2.0.0 OK"

    async def handle_exception(self, error: Exception) -> str:
        return self._error_line(error)

    def _error_line(self, error: Exception) -> str:
        """The 4xx for an error no step handled where it arose: the reply carries a
        reference to the log line with the traceback, and the error is counted
        (tokuden_session_errors_total) so that ops see it without reading logs."""
        ref = new_id()
        log.error("session error", exc_info=error, extra={"fields": {"ref": ref}})
        self.gw.metrics.session_error(type(error).__name__)
        reply = error.reply if isinstance(error, GatewayError) else replies.temp_failure
        return _line(reply.with_text(f"{reply.text} ref={ref}"))

    async def refused_before_rules(
        self, state: ConnectionState, reply: Reply, reason: str, address: str = ""
    ) -> str:
        """A MAIL the session refused before any rule ran (the gateway draining, the
        message rate, an unparsable sender): counted by reason
        (tokuden_session_refusals_total) and, for a client that logged in, recorded as an
        event of its own, so that the MA tool's operator finds the refusal in the event log.
        Unauthenticated attempts stay a count: a stranger must not fill the log. So does a
        MAIL refused inside an open transaction (aiosmtpd parses the path before it sees the
        nesting): that transaction goes on untouched."""
        self.gw.metrics.session_refusal(reason)
        line = _line(reply, state.utf8)
        client = state.client
        if client is None or state.busy or not self.store_health.ok():
            return line
        state.begin_transaction()  # an attempted transaction: no leftovers of the last one
        facts = Facts(config=self.gw.config, client=client, client_ip=state.client_ip,
                      mail_from=_printable(address))
        verdict = EventVerdict.TEMPFAILED if reply.is_temporary else EventVerdict.REJECTED
        with contextlib.suppress(GatewayError):  # the reply is a refusal already
            await self._record(state, Phase.MAIL, verdict, line, facts,
                               rule_ids=reply.rule_ids)
        await state.end_transaction()
        return line

    async def data_refused(self, state: ConnectionState, reply: str, rule_id: str) -> None:
        """DATA the protocol layer refused (too large, a line too long): its event, and the
        end of the transaction."""
        facts = state.facts
        if facts is not None:
            with contextlib.suppress(GatewayError):  # the reply is a refusal already
                await self._record(state, Phase.DATA, EventVerdict.REJECTED, reply, facts,
                                   recipient=facts.recipient, rule_ids=(rule_id,))
        await state.end_transaction()

    async def _data_failed(
        self, state: ConnectionState, envelope: Envelope, error: Exception
    ) -> str:
        """DATA ended in an error no step handled: a 4xx (the client keeps the message and
        tries again), the outcome in the event log if the store takes it, and the
        transaction ended, so that the session's next MAIL starts afresh and the upstream
        link (mid-transaction there) goes back to the pool."""
        line = self._error_line(error)
        facts = state.facts
        if facts is not None and not isinstance(error, StoreUnavailable):
            with contextlib.suppress(GatewayError):
                await self._record(
                    state, Phase.DATA, EventVerdict.TEMPFAILED, line, facts,
                    recipient=",".join(envelope.rcpt_tos),
                    upstream_reply=f"{type(error).__name__} in the gateway",
                )
        await state.end_transaction()
        return line

    # -- fact gathering ---------------------------------------------------------------------

    async def _note_refusal(self, facts: Facts, address: str, answer: UpstreamReply, *,
                            one_recipient: bool = True) -> None:
        """Count a refusal for failed authentication against the sender; suppress a
        recipient whose mailbox the upstream says does not exist.

        The reply goes to the client as the upstream gave it whatever happens here: a store
        that cannot take the entry costs the suppression, not the answer.
        """
        status = suppression.enhanced_status(answer.message) if answer.code >= 500 else None
        if status is not None and status in self.auth_refusals and facts.sender is not None:
            self._note_auth_refusal(facts.sender.id, status, answer.line())
        if not one_recipient or not self.hard_bounce or not is_hard_bounce(
                answer.code, answer.message, self.hard_bounce):
            return
        if facts.sender is not None and facts.client_class is ClientClass.ADVERTISING:
            self.gw.volume.note_hard_bounce(facts.sender.id)  # rule sender.bounce_rate
        try:
            key = suppression_key(normalize_address(address))
            added = await suppression.suppress(
                self.gw.store, key, suppression.HARD_BOUNCE, answer.line(),
                sender_id=facts.sender.id if facts.sender else "")
        except Exception as exc:
            # The upstream's answer must still be relayed and recorded; an unforeseen error
            # keeps its traceback in the log line.
            log.warning("hard bounce not suppressed", exc_info=None if isinstance(
                exc, InvalidAddress | GatewayError) else exc, extra={"fields": {
                    "recipient": address, "reply": answer.line(), "error": str(exc)}})
            return
        if added:
            self.gw.metrics.suppression_added(suppression.HARD_BOUNCE)

    async def _gather_recipient(self, facts: Facts, address: str) -> None:
        for name in ("address", "consent", "suppression"):
            facts.errors.pop(name, None)
        for name in (
            "address_key",
            "consent",
            "consent_events",
            "suppression",
            "unsubscribe_token",
            "unsubscribe_url",
        ):
            facts.extra.pop(name, None)
        try:
            normalized = normalize_address(address)
        except InvalidAddress as exc:
            facts.errors["address"] = f"{address!r}: {exc.reason}"
            return
        key = suppression_key(normalized)
        facts.extra["address_key"] = key
        if facts.client_class is not ClientClass.ADVERTISING or facts.sender is None:
            return
        token = self.gw.unsubscribe.token(facts.sender.id, key)
        if token:
            facts.extra["unsubscribe_token"] = token
            facts.extra["unsubscribe_url"] = self.gw.unsubscribe.url(token)
        if self.suppressing:
            events = await self._read_recipient(facts, facts.sender.id, key)
        else:
            events = await self._read_consent(facts, facts.sender.id, key)
        if events is not None:
            facts.extra["consent"] = decide_at_rcpt(events, Law(facts.sender.law), self.gw.now())

    def _gather_volume(self, facts: Facts, sender_id: str) -> None:
        days = self.gw.volume.days(sender_id)
        if days is None:
            why = self.gw.volume.last_error or "the first read has not finished"
            facts.errors["sender_volume"] = f"sender counts not read from the store: {why}"
        else:
            facts.extra["sender_volume"] = days
        if self.gw.gmail_bulk is not None:
            facts.extra["gmail_bulk"] = self.gw.gmail_bulk

    def _gather_footer(self, facts: Facts, raw: bytes) -> bytes:
        """The display-item report; in insert mode, first repair what is missing."""
        sender = facts.sender
        message = facts.message
        if sender is None or message is None or facts.client_class is not ClientClass.ADVERTISING:
            return raw
        footer = self.gw.footer
        report = footer.report_for(sender, raw)
        if report.malformed:
            facts.extra["malformed"] = [*facts.extra.get("malformed", []), *report.problems]
        if sender.footer == "insert" and not report.ok and not report.malformed:
            try:
                repaired = footer.repair(sender, raw, report, facts.extra.get("unsubscribe_url"))
            except InsertError as exc:
                facts.extra["footer_insert_error"] = str(exc)
            else:
                gather_message_facts(facts, repaired)
                if facts.message is not None:
                    raw = repaired
                    report = footer.report_for(sender, repaired)
                    facts.extra["footer_inserted"] = True
        facts.extra["footer"] = report
        return raw

    async def _reread_consent(self, facts: Facts) -> None:
        """The consent history again, at DATA: an opt-out recorded since RCPT stops this
        message too (Art. 3(3): at once), and so does a suppression (a hard bounce another
        session saw). One more indexed read: SQLite 8 us, PostgreSQL one round trip."""
        key = facts.extra.get("address_key")
        if facts.sender is None or not key or "consent_events" not in facts.extra:
            return
        if "suppression" in facts.extra:
            await self._read_recipient(facts, facts.sender.id, key)
        else:
            await self._read_consent(facts, facts.sender.id, key)

    async def _read_consent(
        self, facts: Facts, sender_id: str, key: str
    ) -> list[ConsentEvent] | None:
        """The recipient's consent history into the facts; None (and a fact that fails the
        consent rules closed) when the store cannot answer."""
        try:
            events = await self.gw.store.consent_history(sender_id, key)
        except StoreUnavailable as exc:
            facts.errors["consent"] = f"consent store unavailable: {exc}"
            facts.extra.pop("consent_events", None)
            return None
        facts.extra["consent_events"] = events
        return events

    async def _read_recipient(
        self, facts: Facts, sender_id: str, key: str
    ) -> list[ConsentEvent] | None:
        """_read_consent() and the address's suppression, in one lookup."""
        try:
            events, found = await self.gw.store.recipient_state(sender_id, key)
        except StoreUnavailable as exc:
            facts.errors["consent"] = facts.errors["suppression"] = (
                f"consent store unavailable: {exc}")
            return None
        facts.extra["consent_events"] = events
        facts.extra["suppression"] = Suppression.from_row(found) if found else None
        return events

    def _gather_topic_consent(self, facts: Facts) -> None:
        """At DATA the topic is known: decide again over the events fetched at RCPT."""
        events = facts.extra.get("consent_events")
        if events is None or facts.sender is None:
            return
        topic = facts.extra.get("topic")
        facts.extra["consent"] = decide(events, topic, Law(facts.sender.law), self.gw.now())

    # -- helpers --------------------------------------------------------------------------

    def _evaluate(self, phase: Phase, facts: Facts) -> Verdict:
        rules = self.gw.rules.for_phase(phase, facts.client_class)
        sender = facts.sender
        monitored_families = (
            frozenset({"footer"}) if sender and sender.footer == "monitor" else frozenset()
        )
        return chain.evaluate(
            rules,
            facts,
            monitor=self.gw.config.policy.mode == "monitor",
            monitored_families=monitored_families,
            soft_reject=self.gw.config.policy.soft_reject,
        )

    async def _refuse(
        self, state: Any, phase: Phase, verdict: Verdict, facts: Facts, recipient: str = ""
    ) -> str:
        assert verdict.reply is not None
        line = _line(verdict.reply, state.utf8)
        event_verdict = (
            EventVerdict.REJECTED if verdict.action is Action.REJECT else EventVerdict.TEMPFAILED
        )
        state.results.extend(verdict.results)
        try:
            await self._record(
                state,
                phase,
                event_verdict,
                line,
                facts,
                recipient=recipient,
                rule_ids=verdict.decided_by,
            )
        except GatewayError as exc:
            if phase is Phase.MAIL:
                await state.end_transaction()
            return _line(exc.reply)
        if phase is Phase.MAIL:
            await state.end_transaction()
        return line

    async def _upstream_failed(
        self, state: Any, phase: Phase, exc: UpstreamError, facts: Facts, recipient: str = ""
    ) -> str:
        self.gw.metrics.upstream_error(exc.kind)
        line = _line(exc.reply)
        try:
            await self._record(
                state,
                phase,
                EventVerdict.TEMPFAILED,
                line,
                facts,
                recipient=recipient,
                upstream_reply=str(exc),
            )
        except GatewayError:
            pass  # the reply is a 4xx already
        if phase is Phase.MAIL:
            await state.end_transaction()
        return line

    async def _finish_with(
        self,
        state: Any,
        facts: Facts,
        reply: Reply,
        verdict: EventVerdict,
        recipients: str,
        detail: str,
    ) -> str:
        line = _line(reply)
        try:
            await self._record(
                state, Phase.DATA, verdict, line, facts, recipient=recipients, upstream_reply=detail
            )
        except GatewayError:
            pass
        await state.end_transaction()
        return line

    async def _record(
        self,
        state: Any,
        phase: Phase,
        verdict: EventVerdict,
        reply: str,
        facts: Facts,
        *,
        recipient: str = "",
        upstream_reply: str = "",
        rule_ids: tuple[str, ...] = (),
        size: int = 0,
        sent_key: str = "",
    ) -> None:
        event = Event(
            verdict=verdict,
            phase=phase,
            reply=reply,
            client=facts.client.username,
            client_class=facts.client.class_,
            client_ip=state.client_ip,
            sender_id=facts.sender.id if facts.sender else "",
            mail_from=facts.mail_from,
            recipient=recipient,
            header_from=facts.extra.get("header_from", ""),
            message_id=facts.extra.get("message_id", ""),
            size=size or len(facts.raw),
            rule_ids=rule_ids,
            results=tuple(state.results),
            upstream_reply=upstream_reply,
            monitored=tuple(dict.fromkeys(state.monitored)),
            timings={k: round(v, 6) for k, v in state.timings.items()},
            session_id=state.session_id,
        )
        try:
            await self.gw.eventlog.record(event, sent_key)
        except StoreUnavailable as exc:
            self.store_health.failed(exc)
            raise
        self.store_health.succeeded()


_HOOK_NAMES = sorted(name for name in vars(Handler) if name.startswith(("handle_", "auth_")))
