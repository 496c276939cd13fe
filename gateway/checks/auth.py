"""Alignment checks (Art. 5, mailbox-provider rules): SPF, our DKIM keys, DMARC — before sending."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.auth.dkim_sign import (
    DkimVerification,
    DkimVerifyStatus,
    KeyPublication,
    KeyPublicationStatus,
)
from gateway.auth.dmarc import DmarcResult, DmarcStatus, dkim_aligned, spf_aligned
from gateway.auth.spf import SpfResult, SpfVerdict
from gateway.engine.context import Facts
from gateway.engine.registry import CheckResult, check
from gateway.model import Outcome, Phase


def _not_gathered(facts: Facts) -> CheckResult | None:
    if "dns" in facts.errors:
        return Outcome.ERROR, facts.errors["dns"]
    if facts.sender is None or "header_from" not in facts.extra:
        return Outcome.SKIP, "no sender identity or From (see auth.*)"
    return None


@check("auth.spf_pass", phases={Phase.DATA})
def spf_pass(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """SPF of the envelope domain passes for every egress IP receivers will see."""
    if (early := _not_gathered(facts)) is not None:
        return early
    results: list[SpfResult] = facts.extra.get("spf", [])
    if not results:
        return Outcome.FAIL, "no egress_ips configured for this sender: SPF cannot be checked"
    if any(r.verdict is SpfVerdict.TEMPERROR for r in results):
        return Outcome.ERROR, "SPF temperror: " + "; ".join(r.explanation for r in results)
    bad = [r for r in results if not r.passed]
    if bad:
        return Outcome.FAIL, "; ".join(
            f"{r.ip}: {r.verdict.value} for {r.domain}"
            + (f" ({r.explanation})" if r.explanation else "")
            for r in bad
        )
    return Outcome.PASS, ", ".join(f"{r.ip} pass" for r in results)


@check("auth.dkim_published", phases={Phase.DATA})
def dkim_published(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """Every key we sign with has its public half published, unchanged, in DNS."""
    if (early := _not_gathered(facts)) is not None:
        return early
    keys: list[KeyPublication] = facts.extra.get("dkim_keys", [])
    if not keys:
        return Outcome.FAIL, f"no DKIM key configured for {facts.extra.get('dkim_domain')}"
    if any(k.status is KeyPublicationStatus.TEMPERROR for k in keys):
        return Outcome.ERROR, "DNS temporarily failing for a DKIM key record"
    bad = [k for k in keys if not k.ok]
    if bad:
        return (
            Outcome.FAIL,
            "; ".join(f"{k.name}: {k.status.value}; publish TXT {k.expected}" for k in bad),
            {"publish": {k.name: k.expected for k in bad}},
        )
    return Outcome.PASS, ", ".join(k.name for k in keys)


@check("auth.dmarc_aligned", phases={Phase.DATA}, params={"require_spf_alignment": bool})
def dmarc_aligned(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The From domain has a DMARC record, and our signature (and SPF, if asked) will align."""
    if (early := _not_gathered(facts)) is not None:
        return early
    dmarc: DmarcResult | None = facts.extra.get("dmarc")
    if dmarc is None:
        return Outcome.SKIP, "DMARC not gathered"
    if dmarc.status is DmarcStatus.MISSING:
        return Outcome.FAIL, f"no DMARC record for {dmarc.author_domain} (publish _dmarc TXT)"
    if dmarc.status is DmarcStatus.MALFORMED:
        return Outcome.FAIL, f"DMARC record for {dmarc.author_domain} is malformed: {dmarc.error}"
    org: dict[str, str] = facts.extra.get("org_domains", {})

    def org_of(domain: str) -> str:
        return org.get(domain, domain)

    d_domain = str(facts.extra.get("dkim_domain", ""))
    detail = f"p={dmarc.policy.value if dmarc.policy else '?'} adkim={dmarc.adkim.value}"
    if not dkim_aligned(dmarc.author_domain, d_domain, dmarc.adkim, org_of):
        return (
            Outcome.FAIL,
            f"DKIM d={d_domain} does not align with From {dmarc.author_domain} ({detail})",
        )
    if params.get("require_spf_alignment"):
        envelope = facts.mail_from.rpartition("@")[2].lower()
        if not spf_aligned(dmarc.author_domain, envelope, dmarc.aspf, org_of):
            return (
                Outcome.FAIL,
                f"envelope domain {envelope} does not align with From (aspf={dmarc.aspf.value})",
            )
    warnings = "; ".join(dmarc.warnings)
    return Outcome.PASS, detail + (f"; {warnings}" if warnings else "")


@check("auth.existing_dkim", phases={Phase.DATA})
def existing_dkim(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """Signatures the MA tool added verify (recorded; they are kept on the message)."""
    results: list[DkimVerification] | None = facts.extra.get("dkim_existing")
    if not results:
        return Outcome.SKIP, "no DKIM-Signature from the client"
    summary = [
        {
            "d": r.domain,
            "s": r.selector,
            "a": r.algorithm,
            "result": r.status.value,
            "detail": r.detail,
        }
        for r in results
    ]
    text = "; ".join(f"d={r.domain} s={r.selector}: {r.status.value}" for r in results)
    failed = any(r.status is not DkimVerifyStatus.PASS for r in results)
    return (Outcome.FAIL if failed else Outcome.PASS), text, {"signatures": summary}
