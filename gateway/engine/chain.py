"""The chain: run every rule of a phase over the facts, record all results, then decide.

Decision order (all rules are evaluated first, so the log shows every outcome):
1. any FAIL whose rule says `reject` -> REJECT, naming every such rule (one reply
   lists every failing content rule, so a marketer fixes all at once);
2. otherwise any ERROR -> TEMPFAIL with that rule's temporary reply (a rule that
   could not decide never passes);
3. otherwise any FAIL whose rule says `tempfail` -> TEMPFAIL;
4. otherwise ACCEPT. FAIL with `warn` is recorded only.
In monitor mode policy FAILs become warnings, but ERRORs are not downgraded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from gateway.engine import registry
from gateway.engine.context import Facts
from gateway.engine.packs import Rule
from gateway.model import Action, OnFail, Outcome, RuleResult, Verdict
from gateway.replies import Reply

log = logging.getLogger(__name__)


def run_rule(rule: Rule, facts: Facts) -> RuleResult:
    spec = registry.get(rule.check)
    assert spec is not None  # packs.load_packs validated the name
    try:
        result = spec.fn(facts, rule.params)
    except Exception:  # a bug in one check must not turn into a pass or a 500
        log.exception("check %s raised", rule.check)
        return RuleResult(rule.id, Outcome.ERROR, "internal error in check")
    outcome, detail = result[0], result[1]
    data = result[2] if len(result) > 2 else None
    return RuleResult(rule.id, outcome, detail, data)


def evaluate(
    rules: Iterable[Rule],
    facts: Facts,
    *,
    monitor: bool = False,
    monitored_families: frozenset[str] = frozenset(),
    soft_reject: bool = False,
) -> Verdict:
    rules = tuple(rules)
    results = tuple(run_rule(rule, facts) for rule in rules)
    rejecting: list[Rule] = []
    tempfailing: list[Rule] = []
    erroring: list[Rule] = []
    watched: list[str] = []
    for rule, result in zip(rules, results, strict=True):
        if result.outcome is Outcome.ERROR:
            erroring.append(rule)
        elif result.outcome is Outcome.FAIL:
            downgraded = (monitor or rule.family in monitored_families) and not rule.always_enforce
            warn_only = downgraded or rule.on_fail is OnFail.WARN
            if warn_only:
                watched.append(rule.id)
            elif rule.on_fail is OnFail.REJECT:
                rejecting.append(rule)
            else:
                tempfailing.append(rule)
    monitored = tuple(watched)
    if rejecting:
        reply = _combine(rejecting)
        if soft_reject:
            reply = reply.as_temporary()
        return Verdict(Action.REJECT, reply, tuple(r.id for r in rejecting), results, monitored)
    if erroring:
        first = erroring[0]
        reply = first.temp_reply.with_rules(*(r.id for r in erroring))
        return Verdict(Action.TEMPFAIL, reply, tuple(r.id for r in erroring), results, monitored)
    if tempfailing:
        reply = _combine(tempfailing)
        return Verdict(Action.TEMPFAIL, reply, tuple(r.id for r in tempfailing), results, monitored)
    return Verdict(Action.ACCEPT, None, (), results, monitored)


def _combine(rules: list[Rule]) -> Reply:
    first = rules[0].reply
    texts: list[str] = []
    for rule in rules:
        if rule.reply.text not in texts:
            texts.append(rule.reply.text)
    return Reply(first.code, first.status, " | ".join(texts), tuple(r.id for r in rules))
