"""Envelope checks: which identities a client may use, and which address forms are possible."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.engine.context import Facts
from gateway.engine.registry import CheckResult, check
from gateway.model import Outcome, Phase


@check("identity.allowed", phases={Phase.MAIL, Phase.DATA})
def identity_allowed(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """MAIL FROM (at MAIL) and From (at DATA) belong to a sender identity this client may use."""
    if facts.phase is Phase.MAIL:
        if not facts.mail_from:
            return Outcome.FAIL, "null reverse-path: an envelope domain is needed for SPF alignment"
        domain = facts.mail_from.rpartition("@")[2].lower()
        if facts.sender is None:
            return Outcome.FAIL, (
                f"envelope domain {domain!r} is not allowed for client {facts.client.username!r}"
            )
        return Outcome.PASS, f"envelope domain {domain} belongs to {facts.sender.id}"
    address: str | None = facts.extra.get("header_from")
    if not address:
        return Outcome.SKIP, "no usable From (see auth.from_invalid)"
    domain = address.rpartition("@")[2].lower()
    if facts.sender is None:
        return Outcome.FAIL, f"no sender identity for client {facts.client.username!r}"
    if not facts.sender.owns_from_domain(domain):
        return Outcome.FAIL, (
            f"From domain {domain!r} is not one of sender {facts.sender.id!r}'s domains "
            f"({', '.join(facts.sender.domains)})"
        )
    return Outcome.PASS, f"From domain {domain} belongs to {facts.sender.id}"


@check("envelope.recipient_syntax", phases={Phase.RCPT})
def recipient_syntax(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The recipient address is syntactically possible (no DNS is asked)."""
    problem = facts.errors.get("address")
    if problem:
        return Outcome.FAIL, problem
    return Outcome.PASS, ""
