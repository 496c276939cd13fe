"""Consent checks (特定電子メール法 第3条): a recorded opt-in or exemption, and no opt-out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.consent.model import Decision
from gateway.consent.model import Outcome as ConsentOutcome
from gateway.consent.suppression import Suppression
from gateway.engine.context import Facts
from gateway.engine.registry import CheckResult, check
from gateway.model import Outcome, Phase


def _decision(facts: Facts) -> Decision | None:
    decision = facts.extra.get("consent")
    return decision if isinstance(decision, Decision) else None


@check("consent.recorded", phases={Phase.RCPT, Phase.DATA})
def recorded(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The recipient consented, or a legal exemption applies under the sender's law."""
    if "consent" in facts.errors:
        return Outcome.ERROR, facts.errors["consent"]
    decision = _decision(facts)
    if decision is None:
        return Outcome.SKIP, "no consent lookup for this recipient"
    if decision.outcome is ConsentOutcome.MISSING:
        return Outcome.FAIL, decision.reason
    return Outcome.PASS, decision.reason


@check("consent.not_refused", phases={Phase.RCPT, Phase.DATA})
def not_refused(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The recipient has not refused mail from this sender (an opt-out stops mail at once)."""
    if "consent" in facts.errors:
        return Outcome.ERROR, facts.errors["consent"]
    decision = _decision(facts)
    if decision is None:
        return Outcome.SKIP, "no consent lookup for this recipient"
    if decision.outcome is ConsentOutcome.OPTED_OUT:
        return Outcome.FAIL, decision.reason
    return Outcome.PASS, ""


@check("consent.not_suppressed", phases={Phase.RCPT, Phase.DATA},
       params={"hard_bounce": list})
def not_suppressed(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The address is not suppressed: no earlier hard bounce, no entry by ops."""
    if "suppression" in facts.errors:
        return Outcome.ERROR, facts.errors["suppression"]
    if "suppression" not in facts.extra:
        return Outcome.SKIP, "no suppression lookup for this recipient"
    found = facts.extra["suppression"]
    if isinstance(found, Suppression):
        return Outcome.FAIL, found.describe()
    return Outcome.PASS, ""
