"""Value types that flow through the engine: outcomes, rule results, verdicts, events."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from gateway.replies import Reply


class Phase(enum.StrEnum):
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"


class Outcome(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # could not decide now: always temporary, never a pass
    SKIP = "skip"


class OnFail(enum.StrEnum):
    REJECT = "reject"
    TEMPFAIL = "tempfail"
    WARN = "warn"


class Action(enum.StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    TEMPFAIL = "tempfail"


class ClientClass(enum.StrEnum):
    ADVERTISING = "advertising"
    TRANSACTIONAL = "transactional"


class EventVerdict(enum.StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    TEMPFAILED = "tempfailed"


@dataclass(frozen=True, slots=True)
class RuleResult:
    """What one rule found: its outcome and a short machine-readable detail."""

    rule_id: str
    outcome: Outcome
    detail: str = ""
    data: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule_id, "outcome": self.outcome.value}
        if self.detail:
            out["detail"] = self.detail
        if self.data:
            out["data"] = self.data
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """A phase's decision, with every rule's result (not only the one that fired)."""

    action: Action
    reply: Reply | None
    decided_by: tuple[str, ...]
    results: tuple[RuleResult, ...]
    monitored: tuple[str, ...] = ()  # rules that would have refused in monitor mode

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(r.rule_id for r in self.results if r.outcome is Outcome.FAIL)


@dataclass(slots=True)
class Event:
    """One transaction outcome (or one refused recipient), as written to the event log."""

    verdict: EventVerdict
    phase: Phase
    reply: str
    client: str = ""
    client_class: str = ""
    client_ip: str = ""
    sender_id: str = ""
    mail_from: str = ""
    recipient: str = ""
    header_from: str = ""
    message_id: str = ""
    size: int = 0
    rule_ids: tuple[str, ...] = ()
    results: tuple[RuleResult, ...] = ()
    upstream_reply: str = ""
    monitored: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    session_id: str = ""
    event_id: str = ""
    created_at: float = 0.0
