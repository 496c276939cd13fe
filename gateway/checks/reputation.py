"""Sender standing at the receivers: complaints (legal.md §2.1, §5.2), hard bounces (§1.6
Art. 6, §2.4), refusals for failed authentication (§5.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.engine.context import Facts
from gateway.engine.registry import CheckResult, check
from gateway.gmail_bulk import GMAIL_CHECK, GmailBulk
from gateway.model import Outcome, Phase
from gateway.replies import ENHANCED_STATUS
from gateway.volume import AUTH_CHECK, RATE_CHECK, RATE_OF, SenderDays, Standing, judge

PARAMS = {"of": str, "window_days": int, "min_sent": int, "warn": float, "stop": float}
AUTH_PARAMS = {"statuses": list, "window_days": int, "at_least": int}
GMAIL_PARAMS = {"domains": list, "daily_limit": int, "approach": float, "requires": list}


def _window_problem(params: Mapping[str, Any]) -> str:
    return "" if 1 <= params["window_days"] <= 90 else "window_days must be 1 to 90"


def _params_problem(params: Mapping[str, Any]) -> str:
    if params["of"] not in RATE_OF:
        return f"of must be one of {', '.join(RATE_OF)}"
    if problem := _window_problem(params):
        return problem
    if params["min_sent"] < 1:
        return "min_sent must be at least 1"
    if not 0 < params["warn"] <= params["stop"] < 1:
        return "rates must satisfy 0 < warn <= stop < 1 (0.003 is 0.3 %)"
    return ""


def _auth_params_problem(params: Mapping[str, Any]) -> str:
    if problem := _window_problem(params):
        return problem
    if params["at_least"] < 1:
        return "at_least must be at least 1"
    bad = [s for s in params["statuses"] if not ENHANCED_STATUS.fullmatch(str(s))]
    if bad or not params["statuses"]:
        return f"statuses must be enhanced status codes like 5.7.26, not {bad or 'none'}"
    return ""


def _gmail_params_problem(params: Mapping[str, Any]) -> str:
    domains = params["domains"]
    if not domains or not all(isinstance(d, str) and "." in d for d in domains):
        return "domains must name mail domains, like gmail.com"
    if params["daily_limit"] < 1:
        return "daily_limit must be at least 1"
    if not 0 < params["approach"] <= 1:
        return "approach must be over 0 and at most 1 (0.8 is 80 % of daily_limit)"
    if not all(isinstance(r, str) and "." in r for r in params["requires"]):
        return "requires must list rule ids, like align.dmarc"
    return ""


def _sender_days(facts: Facts) -> SenderDays | tuple[Outcome, str]:
    if "sender_volume" in facts.errors:
        return Outcome.ERROR, facts.errors["sender_volume"]
    days = facts.extra.get("sender_volume")
    if not isinstance(days, SenderDays):
        return Outcome.SKIP, "no counts for this sender"
    return days


@check(RATE_CHECK, phases={Phase.MAIL}, params=PARAMS,
       required=frozenset(PARAMS), validate=_params_problem)
def rate(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The sender's complaints (or hard bounces) per recipient stay below the stop rate."""
    days = _sender_days(facts)
    if not isinstance(days, SenderDays):
        return days
    window = int(params["window_days"])
    tally = days.over(window)
    detail = tally.describe(params["of"], window)
    standing = judge(tally, params)
    if standing is Standing.TOO_FEW:
        return Outcome.PASS, f"{detail}; too few to judge (min_sent {params['min_sent']:,})"
    if standing is Standing.STOP:
        return Outcome.FAIL, f"{detail} >= stop {params['stop']:.2%}"
    if standing is Standing.WARN:
        return Outcome.PASS, f"{detail} >= warn {params['warn']:.2%}"
    return Outcome.PASS, detail


@check(AUTH_CHECK, phases={Phase.MAIL}, params=AUTH_PARAMS, required=frozenset(AUTH_PARAMS),
       validate=_auth_params_problem)
def auth_refusals(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """No receiver refused the sender's mail for failed authentication in the last days."""
    days = _sender_days(facts)
    if not isinstance(days, SenderDays):
        # Recorded only: counts not read yet must not hold mail back, as an ERROR would.
        return Outcome.SKIP, days[1]
    window = int(params["window_days"])
    refusals = days.over(window).auth_refusals
    detail = f"{refusals:,} refusal(s) for failed authentication by receivers in {window} day(s)"
    if refusals >= params["at_least"]:
        return Outcome.FAIL, f"{detail}: check SPF, DKIM and DMARC (tokuden dns check)"
    return Outcome.PASS, detail


@check(GMAIL_CHECK, phases={Phase.MAIL}, params=GMAIL_PARAMS,
       required=frozenset(GMAIL_PARAMS), validate=_gmail_params_problem)
def gmail_bulk(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """A sender at or near Gmail's bulk limit has every bulk requirement enforced."""
    days = _sender_days(facts)
    bulk = facts.extra.get("gmail_bulk")
    if not isinstance(days, SenderDays):
        return Outcome.SKIP, days[1]  # recorded only, as for sender.auth_refused
    if not isinstance(bulk, GmailBulk):
        return Outcome.SKIP, "Gmail volume not counted"
    sender_id = facts.sender.id if facts.sender is not None else ""
    standing = bulk.standing(sender_id, days.over(1).gmail_sent, days.gmail_bulk_since)
    return (Outcome.FAIL if standing.flagged else Outcome.PASS), standing.describe()
