"""Preflight: the DATA-phase content rules on a draft, without sending (`tokuden check`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.config import ClientConfig, Config, SenderConfig
from gateway.content.footer import FooterReport
from gateway.engine import chain
from gateway.engine.context import Facts
from gateway.engine.packs import RuleSet
from gateway.footer_policy import FooterPolicy
from gateway.model import Action, OnFail, Outcome, Phase
from gateway.smtp.message import gather_message_facts

# Rules that need the envelope, the store or DNS say nothing about a draft.
CONTENT_FAMILIES = frozenset({"footer", "message"})
CONTENT_RULES = frozenset({"auth.from_invalid", "auth.from_not_allowed"})


@dataclass(frozen=True, slots=True)
class PreflightResult:
    sender: str
    ok: bool
    failed: tuple[str, ...]
    results: list[dict[str, Any]]
    footer: FooterReport | None
    warned: tuple[str, ...] = ()  # failed rules that only warn (on_fail = "warn")

    def to_dict(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "ok": self.ok,
            "failed": list(self.failed),
            "warned": list(self.warned),
            "rules": self.results,
            "footer": self.footer.to_dict() if self.footer else None,
        }


def preflight(
    config: Config, rules: RuleSet, footer: FooterPolicy, sender: SenderConfig, raw: bytes
) -> PreflightResult:
    client = ClientConfig(username="preflight", networks=("127.0.0.1/32",), senders=(sender.id,))
    facts = Facts(config=config, client=client, client_ip="", phase=Phase.DATA, sender=sender)
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # drafts come with any line ends
    gather_message_facts(facts, raw)
    report = None
    if facts.message is not None:
        report = footer.report_for(sender, raw)
        if report.malformed:
            facts.extra["malformed"] = [*facts.extra.get("malformed", []), *report.problems]
        facts.extra["footer"] = report
    selected = [
        r
        for r in rules.for_phase(Phase.DATA, facts.client_class)
        if r.family in CONTENT_FAMILIES or r.id in CONTENT_RULES
    ]
    verdict = chain.evaluate(selected, facts)
    warn_only = {r.id for r in selected if r.on_fail is OnFail.WARN}
    fails = [r.rule_id for r in verdict.results if r.outcome is Outcome.FAIL]
    failed = tuple(r for r in fails if r not in warn_only)
    return PreflightResult(
        sender.id,
        verdict.action is Action.ACCEPT and not failed,
        failed,
        [r.to_dict() for r in verdict.results],
        report,
        tuple(r for r in fails if r in warn_only),
    )
