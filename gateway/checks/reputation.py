"""Sender reputation at the mailbox providers: the spam-complaint rate (legal.md §2.1, §5.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.engine.context import Facts
from gateway.engine.registry import CheckResult, check
from gateway.model import Outcome, Phase
from gateway.volume import SenderDays, Standing, judge

PARAMS = {"window_days": int, "min_sent": int, "warn": float, "stop": float}


def _params_problem(params: Mapping[str, Any]) -> str:
    if not 1 <= params["window_days"] <= 90:
        return "window_days must be 1 to 90"
    if params["min_sent"] < 1:
        return "min_sent must be at least 1"
    if not 0 < params["warn"] <= params["stop"] < 1:
        return "rates must satisfy 0 < warn <= stop < 1 (0.003 is 0.3 %)"
    return ""


@check("reputation.complaint_rate", phases={Phase.MAIL}, params=PARAMS,
       required=frozenset(PARAMS), validate=_params_problem)
def complaint_rate(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The sender's complaint rate over the last days stays below the stop threshold."""
    if "sender_volume" in facts.errors:
        return Outcome.ERROR, facts.errors["sender_volume"]
    days = facts.extra.get("sender_volume")
    if not isinstance(days, SenderDays):
        return Outcome.SKIP, "no counts for this sender"
    window = int(params["window_days"])
    tally = days.over(window)
    detail = tally.describe(window)
    standing = judge(tally, params)
    if standing is Standing.TOO_FEW:
        return Outcome.PASS, f"{detail}; too few to judge (min_sent {params['min_sent']:,})"
    if standing is Standing.STOP:
        return Outcome.FAIL, f"{detail} >= stop {params['stop']:.2%}"
    if standing is Standing.WARN:
        return Outcome.PASS, f"{detail} >= warn {params['warn']:.2%}"
    return Outcome.PASS, detail
