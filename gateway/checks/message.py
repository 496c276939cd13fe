"""Message checks: well-formedness and the author (From) identity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.engine.context import Facts
from gateway.engine.registry import CheckResult, check
from gateway.model import Outcome, Phase


@check("message.wellformed", phases={Phase.DATA})
def wellformed(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The message parses as RFC 5322/MIME without defects a reader or relay would trip on."""
    problems: list[str] = facts.extra.get("malformed", [])
    if problems:
        return Outcome.FAIL, "; ".join(problems), {"problems": problems}
    return Outcome.PASS, ""


@check("message.single_from", phases={Phase.DATA})
def single_from(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """Exactly one From header holding exactly one well-formed address."""
    if facts.message is None:
        return Outcome.SKIP, "message not parsed (see message.malformed)"
    problem = facts.errors.get("header_from")
    if problem:
        return Outcome.FAIL, problem
    return Outcome.PASS, facts.extra.get("header_from", "")
