"""Footer checks (特定電子メール法 第4条): each display item in every part a reader may see."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.content.footer import ITEM_IDS, FooterReport
from gateway.engine.context import Facts
from gateway.engine.registry import CheckResult, check
from gateway.model import Outcome, Phase


@check("footer.item", phases={Phase.DATA}, params={"item": str})
def item_present(facts: Facts, params: Mapping[str, Any]) -> CheckResult:
    """The configured display item appears in every readable part of the message."""
    item = str(params.get("item", ""))
    if item not in ITEM_IDS:
        return Outcome.ERROR, f"unknown footer item {item!r}"
    if "footer" in facts.errors:
        return Outcome.ERROR, facts.errors["footer"]
    report = facts.extra.get("footer")
    if not isinstance(report, FooterReport):
        return Outcome.SKIP, "message not checked (malformed or not advertising)"
    if item not in report.required:
        return Outcome.SKIP, "not a display item of this sender (no seller_name configured)"
    failing = []
    for part in report.parts:
        result = part.item(item)
        if not result.present:
            failing.append(
                f"part {part.path} ({part.content_type}): {result.reason.value}"
                + (f" — {result.detail}" if result.detail else "")
            )
    if not report.parts:
        return Outcome.FAIL, "no readable text part", {"where": []}
    if failing:
        return Outcome.FAIL, "; ".join(failing), {"where": failing}
    return Outcome.PASS, ""
