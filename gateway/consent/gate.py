"""The consent gate's two moments: RCPT (topic not known yet) and DATA (topic known)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.consent.model import ConsentEvent, Decision, Law, decide


def decide_at_rcpt(events: Sequence[ConsentEvent], law: Law, now: datetime) -> Decision:
    """At RCPT the message's topic is unknown: refuse only what no topic could allow.

    A recipient who may receive some topic passes, and DATA decides for the actual topic
    (advertising transactions carry one recipient, so that refusal is exact). Refused:
    no usable consent for any scope, and a global opt-out, unless the person opted in to
    a topic again since (that lifts the refusal for that topic only; it was refused here
    before DATA could see the topic).
    """
    topics = sorted({e.topic for e in events if e.topic is not None})
    global_decision = decide(events, "\0no-topic-yet", law, now)  # scopes: global only
    if global_decision.allowed:
        return global_decision
    for topic in topics:
        scoped = decide(events, topic, law, now)
        if scoped.allowed:
            return scoped
    return global_decision
