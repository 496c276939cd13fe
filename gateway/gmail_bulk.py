"""Gmail's bulk-sender status: about 5,000 messages a day to personal Gmail, and for good.

Gmail counts a sender as a bulk sender from the first day it sends about 5,000 messages to
personal accounts (gmail.com, googlemail.com; not Workspace), and the status never lapses
(legal.md §2.1). A bulk sender must pass SPF and DKIM, publish DMARC with alignment, offer
one-click unsubscribe and keep its complaint rate under 0.3 %. The gateway enforces each of
these with its own rules; legal.md §5.2 asks for a warning when a sender nears the limit
while one of them is unmet. Here "unmet" is what the gateway can know for every message:
a rule the requirement rests on is not loaded, only warns, or is monitored.

The counts ride with the other sender counts (gateway/volume.py, column `gmail_sent`, per
sender and UTC day). Gmail counts per primary domain: "messages sent from the same primary
domain count toward the 5,000 limit". So senders whose From domains share an organisational
domain (by the Public Suffix List: news.example.co.jp and shop.example.co.jp are one) are
counted together, each reading the sum of its group; a sender with From domains in several
organisations joins every group it touches, so a count errs high, never low.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from gateway.auth.dmarc import psl_org_domain
from gateway.model import OnFail

if TYPE_CHECKING:
    from gateway.config import SenderConfig
    from gateway.engine.packs import RuleSet

GMAIL_CHECK: Final = "reputation.gmail_bulk"


@dataclass(frozen=True, slots=True)
class GmailBulk:
    """The rule's parameters, and which of the requirements it names the gateway leaves
    unmet (decided once, at load: they depend on the packs and the mode only)."""

    domains: frozenset[str]
    daily_limit: int
    approach: float
    unmet: tuple[str, ...]
    # sender id -> the ids counted with it (itself included), for senders that share an
    # organisational domain with another; a sender not here is counted alone
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def count(self, recipients: Iterable[str]) -> int:
        """How many of the addresses are at a personal Gmail domain."""
        domains = self.domains
        return sum(1 for a in recipients if a.rpartition("@")[2].lower() in domains)

    @property
    def near(self) -> int:
        """Recipients in a UTC day from which the sender counts as near the limit."""
        return int(self.daily_limit * self.approach)

    def standing(self, sender_id: str, today: int, bulk_since: int | None) -> GmailStanding:
        """A sender's place: `today` recipients at Gmail so far this UTC day, and the first
        day it reached the limit (None: never), both over the senders counted with it."""
        others = tuple(s for s in self.groups.get(sender_id, ()) if s != sender_id)
        return GmailStanding(today, self.daily_limit, self.near, bulk_since, self.unmet, others)


@dataclass(frozen=True, slots=True)
class GmailStanding:
    today: int
    daily_limit: int
    near: int
    bulk_since: int | None  # UTC day number
    unmet: tuple[str, ...]
    counted_with: tuple[str, ...] = ()  # other senders of the same organisational domain

    @property
    def bulk(self) -> bool:
        return self.bulk_since is not None

    @property
    def flagged(self) -> bool:
        """Bulk or near it, while a requirement is unmet: what legal.md §5.2 warns of."""
        return (self.bulk or self.today >= self.near) and bool(self.unmet)

    def describe(self) -> str:
        where = (f"bulk sender at Gmail since {_date(self.bulk_since)}"
                 if self.bulk_since is not None else
                 f"{self.today:,} of Gmail's {self.daily_limit:,} a day to personal accounts today")
        if self.counted_with:
            where += f" (counted with {', '.join(self.counted_with)}: one organisational domain)"
        if not self.unmet:
            return where
        return f"{where}; its requirements not enforced here: {', '.join(self.unmet)}"

    def to_dict(self) -> dict[str, Any]:
        return {"today": self.today, "daily_limit": self.daily_limit, "near": self.near,
                "bulk_since": _date(self.bulk_since) if self.bulk_since is not None else None,
                "unmet": list(self.unmet), "flagged": self.flagged,
                "counted_with": list(self.counted_with)}


def _date(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, UTC).date().isoformat()


def unmet_requirements(
    rules: RuleSet, requires: Iterable[str], *, monitor: bool
) -> tuple[str, ...]:
    """The required rule ids that do not refuse mail: missing, warn-only or monitored."""
    unmet = []
    for rule_id in requires:
        rule = rules.by_id(rule_id)
        if rule is None:
            unmet.append(f"{rule_id} (not loaded)")
        elif rule.on_fail is OnFail.WARN:
            unmet.append(f"{rule_id} (on_fail {rule.on_fail})")
        elif monitor and not rule.always_enforce:
            unmet.append(f"{rule_id} (monitor mode)")
    return tuple(unmet)


def gmail_groups(senders: Sequence[SenderConfig]) -> dict[str, tuple[str, ...]]:
    """Senders whose From domains share an organisational domain, each mapped to its whole
    group (sorted ids); senders alone in theirs are left out.

    Groups join through any shared organisational domain, so one sender with domains of two
    organisations links both organisations' senders: counted together, the sum errs high.
    """
    parent = {s.id: s.id for s in senders}

    def root(sender_id: str) -> str:
        while parent[sender_id] != sender_id:
            parent[sender_id] = parent[parent[sender_id]]
            sender_id = parent[sender_id]
        return sender_id

    first_of: dict[str, str] = {}  # organisational domain -> the first sender seen with it
    for sender in senders:
        for domain in sender.domains:
            org = psl_org_domain(domain) or domain.lower()
            other = first_of.setdefault(org, sender.id)
            parent[root(sender.id)] = root(other)
    members: dict[str, list[str]] = {}
    for sender in senders:
        members.setdefault(root(sender.id), []).append(sender.id)
    return {sid: tuple(sorted(group)) for group in members.values() if len(group) > 1
            for sid in group}


def gmail_bulk(
    rules: RuleSet, *, monitor: bool, senders: Sequence[SenderConfig] = ()
) -> GmailBulk | None:
    """The configured rule's view, or None when no rule watches Gmail volume (nothing is
    counted then); `senders` decides who is counted together."""
    rule = next((r for r in rules.rules if r.check == GMAIL_CHECK), None)
    if rule is None:
        return None
    params: Mapping[str, Any] = rule.params
    return GmailBulk(
        domains=frozenset(str(d).lower() for d in params["domains"]),
        daily_limit=int(params["daily_limit"]),
        approach=float(params["approach"]),
        unmet=unmet_requirements(rules, params["requires"], monitor=monitor),
        groups=gmail_groups(senders),
    )
