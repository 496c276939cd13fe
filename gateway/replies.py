"""SMTP replies: the one place codes come from, and the one function that vets them.

Every reply the gateway sends on its own account is a `Reply` built here; policy
refusals carry the rule id in square brackets right after the enhanced status code
(contract.md), so the MA tool's bounce log leads straight to the event log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

ENHANCED_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
MAX_TEXT: Final = 510


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply line: `code status [rule ids] text`."""

    code: int
    status: str
    text: str
    rule_ids: tuple[str, ...] = ()

    @property
    def is_success(self) -> bool:
        return 200 <= self.code < 300

    @property
    def is_temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return 500 <= self.code < 600

    def with_rules(self, *rule_ids: str) -> Reply:
        return Reply(self.code, self.status, self.text, tuple(rule_ids))

    def with_text(self, text: str) -> Reply:
        return Reply(self.code, self.status, text, self.rule_ids)

    def as_temporary(self) -> Reply:
        """The 4xx twin of a 5xx refusal (soft_reject rollout switch)."""
        if not self.is_permanent:
            return self
        return Reply(self.code - 100, "4" + self.status[1:], self.text, self.rule_ids)

    def __str__(self) -> str:
        parts = [str(self.code)]
        if self.status:
            parts.append(self.status)
        if self.rule_ids:
            parts.append("[" + ",".join(self.rule_ids) + "]")
        if self.text:
            parts.append(self.text)
        return " ".join(parts)


def finalize(reply: Reply, *, utf8: bool = False) -> str:
    """Validate a reply and render the line sent on the wire.

    Invalid replies are programming errors, so they fail loudly in tests; in
    production the text is made safe (printable, one line, bounded) rather than
    letting a config value inject a second reply line. Reply texts are written
    "日本語 / English": the Japanese half is sent only to a client that asked for
    SMTPUTF8 (RFC 6531 §3.7.4); everyone else gets the ASCII half.
    """
    if not utf8 and not reply.text.isascii():
        reply = Reply(reply.code, reply.status, ascii_text(reply.text), reply.rule_ids)
    if not 200 <= reply.code <= 599:
        raise ValueError(f"reply code out of range: {reply.code}")
    if reply.status:
        if not ENHANCED_STATUS.match(reply.status):
            raise ValueError(f"malformed enhanced status code: {reply.status!r}")
        if reply.status[0] != str(reply.code)[0]:
            raise ValueError(f"enhanced status {reply.status} does not match {reply.code}")
    line = " ".join(str(reply).split())  # one line: folds CR, LF, tabs
    line = "".join(ch for ch in line if ch.isprintable())
    encoded = line.encode("utf-8")
    if len(encoded) > MAX_TEXT:
        line = encoded[: MAX_TEXT - 3].decode("utf-8", "ignore") + "..."
    return line


def ascii_text(text: str) -> str:
    """The English halves of "日本語 / English" texts (several joined by " | ")."""
    segments = []
    for segment in text.split(" | "):
        halves = [h.strip() for h in segment.split(" / ") if h.strip().isascii() and h.strip()]
        if halves:
            segments.append(" / ".join(halves))
    return " | ".join(segments) or "Refused by policy"


def parse(line: str) -> Reply:
    """Parse a reply line as written in a rule pack: `550 5.7.1 text`."""
    match = re.match(r"^([245]\d\d)(?:\s+([245]\.\d{1,3}\.\d{1,3}))?(?:\s+(.*))?$", line.strip())
    if not match:
        raise ValueError(f"not an SMTP reply: {line!r}")
    code, status, text = match.groups()
    reply = Reply(int(code), status or "", text or "")
    finalize(reply)
    return reply


class _Replies:
    """Named replies, one per condition (contract.md's table, in code)."""

    relay_denied: Final = Reply(530, "5.7.0", "Authentication required / 認証が必要です")
    auth_invalid: Final = Reply(535, "5.7.8", "Authentication credentials invalid")
    auth_throttled: Final = Reply(
        454, "4.7.0", "Too many failed authentication attempts, try again later"
    )
    auth_needs_tls: Final = Reply(
        538, "5.7.11", "Encryption required for requested authentication mechanism"
    )
    auth_ok: Final = Reply(235, "2.7.0", "Authentication successful")
    auth_in_transaction: Final = Reply(
        503, "5.5.1", "AUTH is not permitted during a mail transaction (RFC 4954)"
    )
    one_recipient_per_transaction: Final = Reply(
        452,
        "4.5.3",
        "Advertising mail carries one recipient per transaction; "
        "send this one in a new transaction / 1通につき宛先は1件です",
    )
    too_many_recipients: Final = Reply(452, "4.5.3", "Too many recipients")
    message_too_large: Final = Reply(552, "5.3.4", "Message too large / メールが大きすぎます")
    malformed_message: Final = Reply(550, "5.6.0", "Malformed message / メール形式が不正です")
    temp_failure: Final = Reply(451, "4.3.0", "Temporary local problem, try again later")
    store_unavailable: Final = Reply(
        451, "4.3.0", "Consent store unavailable, try again later / 一時的な障害"
    )
    dns_temp_failure: Final = Reply(451, "4.4.3", "DNS temporarily failing, try again later")
    signing_key_unusable: Final = Reply(
        451, "4.3.0", "Signing key unusable; message not sent unsigned, try again later"
    )
    upstream_unavailable: Final = Reply(451, "4.4.1", "Upstream MTA unavailable, try again later")
    upstream_timeout: Final = Reply(451, "4.4.2", "Upstream MTA timed out, try again later")
    upstream_busy: Final = Reply(451, "4.4.5", "All upstream connections busy, try again later")
    shutting_down: Final = Reply(421, "4.3.2", "Service shutting down, try again later")
    too_many_connections: Final = Reply(421, "4.3.2", "Too many connections, try again later")
    too_many_from_ip: Final = Reply(
        421, "4.7.0", "Too many connections from your address, try again later"
    )
    message_rate_exceeded: Final = Reply(
        451, "4.7.1", "Message rate limit exceeded for your address, try again later",
        ("limit.message_rate",),
    )
    bad_sender: Final = Reply(553, "5.1.7", "Malformed sender address",
                              ("address.sender_invalid",))
    malformed_recipient: Final = Reply(
        553, "5.1.3", "Malformed recipient address", ("address.invalid",)
    )
    need_mail: Final = Reply(503, "5.5.1", "Error: need MAIL command")
    bad_sequence: Final = Reply(503, "5.5.1", "Bad sequence of commands")
    sender_ok: Final = Reply(250, "2.1.0", "Sender OK")
    recipient_ok: Final = Reply(250, "2.1.5", "Recipient OK")
    queued: Final = Reply(250, "2.0.0", "Accepted by upstream")
    monitor_would_reject: Final = Reply(250, "2.0.0", "Accepted (monitor mode)")
    optout_recorded: Final = Reply(
        250, "2.0.0", "配信停止を受け付けました / Opt-out recorded; no further mail will be sent"
    )
    bounce_recorded: Final = Reply(
        250, "2.0.0", "宛先不明を記録し、この宛先への送信を停止しました / Hard bounce recorded; "
        "the address is suppressed"
    )
    auth_refusal_recorded: Final = Reply(
        250, "2.0.0", "認証の失敗による拒否を記録しました / Refusal for failed authentication "
        "recorded for ops"
    )
    optout_no_token: Final = Reply(
        550,
        "5.7.1",
        "配信停止のトークンがなく、送信者も確認できません / No valid unsubscribe token, and no "
        "DKIM signature of the From domain proves the sender; use the link in the message",
        ("unsubscribe.mailto",),
    )


replies: Final = _Replies()
