"""Consent events, the laws they are judged under, and the pure precedence rule `decide`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

__all__ = [
    "CONSENT_METHODS",
    "EXEMPTION_METHODS",
    "LAW_ACCEPTS",
    "OPTOUT_LIFTING_METHODS",
    "ConsentEvent",
    "ConsentMethod",
    "ConsentStatus",
    "Decision",
    "Law",
    "Outcome",
    "decide",
    "status_method_problem",
]


class ConsentStatus(StrEnum):
    OPTED_IN = "opted_in"  # Art. 3(1) item 1: the recipient asked for / agreed to the mail
    OPTED_OUT = "opted_out"  # Art. 3(3): refusal; beats consent and every exemption
    EXEMPT = "exempt"  # Art. 3(1) items 2-4: no consent needed (card, transaction, published)


class ConsentMethod(StrEnum):
    # how a consent was given
    WEB_FORM = "web_form"
    DOUBLE_OPT_IN = "double_opt_in"
    PAPER_FORM = "paper_form"
    CMP = "cmp"  # consent-management platform sync
    MANUAL = "manual"  # entered by staff (phone, counter); also valid for opt-outs
    # exemption bases (status exempt)
    BUSINESS_CARD = "business_card"
    TRANSACTION = "transaction"
    PUBLISHED_ADDRESS = "published_address"
    # how an opt-out arrived (施行規則5条: any method must be honoured)
    ONE_CLICK = "one_click"  # RFC 8058 List-Unsubscribe-Post
    UNSUBSCRIBE_PAGE = "unsubscribe_page"
    MAILTO = "mailto"  # List-Unsubscribe mailto: or a reply asking to stop
    COMPLAINT = "complaint"  # FBL / "report spam": treated as a refusal
    IMPORT_OPTOUT = "import_optout"  # opt-out carried over from another system


class Law(StrEnum):
    TOKUDEN = "tokuden"  # 特定電子メール法
    TOKUSHO = "tokusho"  # 特定商取引法 12-3 / 36-3 / 54-3 (通販 etc. e-mail ads)


CONSENT_METHODS: Final = frozenset(
    {
        ConsentMethod.WEB_FORM,
        ConsentMethod.DOUBLE_OPT_IN,
        ConsentMethod.PAPER_FORM,
        ConsentMethod.CMP,
        ConsentMethod.MANUAL,
    }
)
EXEMPTION_METHODS: Final = frozenset(
    {ConsentMethod.BUSINESS_CARD, ConsentMethod.TRANSACTION, ConsentMethod.PUBLISHED_ADDRESS}
)

# Which grant methods make mail allowed under each law (legal.md §1.2, §1.7).
# 特商法 has no business-card / published-address / transaction-relationship exemption and
# needs the consumer's own request, so only methods where the recipient acted count;
# MANUAL is excluded there because a staff entry is weak evidence of a consumer request.
LAW_ACCEPTS: Final[dict[Law, frozenset[ConsentMethod]]] = {
    Law.TOKUDEN: CONSENT_METHODS | EXEMPTION_METHODS,
    Law.TOKUSHO: frozenset(
        {
            ConsentMethod.WEB_FORM,
            ConsentMethod.DOUBLE_OPT_IN,
            ConsentMethod.PAPER_FORM,
            ConsentMethod.CMP,
        }
    ),
}

# An opt-out can only be lifted by a later opt-in the recipient performed himself through
# one of these methods, recorded live (not imported). Anything else - imports, CMP syncs,
# staff entries, exemptions - cannot resurrect a refusal (legal.md §1.4, §5.2).
OPTOUT_LIFTING_METHODS: Final = frozenset({ConsentMethod.DOUBLE_OPT_IN, ConsentMethod.WEB_FORM})


def status_method_problem(status: ConsentStatus, method: ConsentMethod) -> str | None:
    """Why *method* cannot go with *status*, or None if the pair is consistent.

    Opt-outs accept every method: a refusal must be honoured however it arrived.
    """
    if status is ConsentStatus.OPTED_IN and method not in CONSENT_METHODS:
        return f"method {method.value} cannot record a consent (expected {_names(CONSENT_METHODS)})"
    if status is ConsentStatus.EXEMPT and method not in EXEMPTION_METHODS:
        return (
            f"method {method.value} is not an exemption basis "
            f"(expected {_names(EXEMPTION_METHODS)})"
        )
    return None


def _names(methods: frozenset[ConsentMethod]) -> str:
    names = sorted(m.value for m in methods)
    return ", ".join(names[:-1]) + " or " + names[-1]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentEvent:
    """One append-only consent-log entry for (sender, address[, topic])."""

    sender_id: str
    address_key: str
    status: ConsentStatus
    method: ConsentMethod
    occurred_at: datetime  # timezone-aware
    source_system: str = ""
    source_ref: str | None = None
    topic: str | None = None  # None = all topics
    client_ip: str | None = None
    user_agent: str | None = None
    recorded_by: str = ""
    batch_id: str | None = None  # set for bulk imports

    def __post_init__(self) -> None:
        if self.occurred_at.utcoffset() is None:
            raise ValueError("occurred_at must be timezone-aware")
        if self.topic == "":
            raise ValueError("topic must be None (all topics) or a non-empty name")
        problem = status_method_problem(self.status, self.method)
        if problem is not None:
            raise ValueError(problem)

    @property
    def is_import(self) -> bool:
        return self.batch_id is not None

    @property
    def lifts_opt_out(self) -> bool:
        """True for an opt-in the recipient performed live (can end an earlier opt-out)."""
        return (
            self.status is ConsentStatus.OPTED_IN
            and self.method in OPTOUT_LIFTING_METHODS
            and not self.is_import
        )


class Outcome(StrEnum):
    ALLOWED = "allowed"
    MISSING = "missing"
    OPTED_OUT = "opted_out"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    event: ConsentEvent | None  # the event that decided it (None if there is none)
    reason: str

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED


_STATUS_RANK: Final = {
    ConsentStatus.OPTED_IN: 0,
    ConsentStatus.EXEMPT: 1,
    ConsentStatus.OPTED_OUT: 2,  # at equal timestamps the opt-out counts as the later event
}


def _order_key(e: ConsentEvent) -> tuple[datetime, int, str, str, str, str, str, str, str, str]:
    # A total order over every field: sorting makes the result independent of the order
    # the events arrive in (e.g. import order of same-timestamp rows).
    return (
        e.occurred_at,
        _STATUS_RANK[e.status],
        e.method.value,
        e.topic or "",
        e.source_system,
        e.source_ref or "",
        e.batch_id or "",
        e.recorded_by,
        e.client_ip or "",
        e.user_agent or "",
    )


def _lifts(lifter: ConsentEvent, optout: ConsentEvent, topic: str | None, now: datetime) -> bool:
    if not lifter.lifts_opt_out or lifter.occurred_at > now:
        return False
    if lifter.occurred_at <= optout.occurred_at:
        return False  # same instant: the refusal wins
    # A re-opt-in for the same scope lifts it; a re-opt-in for the topic being asked about
    # lifts a global refusal for that topic only. A global re-opt-in does NOT lift an
    # earlier refusal of one specific topic: that explicit "not this" stands until the
    # recipient opts in to that topic again.
    return lifter.topic == optout.topic or (optout.topic is None and lifter.topic == topic)


def decide(
    events: Iterable[ConsentEvent], topic: str | None, law: Law, now: datetime
) -> Decision:
    """Decide whether mail on *topic* may go to one (sender, address) under *law* at *now*.

    Rules, in order:
      1. Scope: events for all topics (topic None) and for *topic* apply. For mail with
         no topic (``topic=None``) a refusal of ANY topic applies too - we cannot show
         the mail is not about it - but only all-topic grants count.
      2. An opt-out applies unless lifted: a later (strictly, and not after *now*) opt-in
         the recipient performed live via double_opt_in/web_form for the same scope (or
         for *topic*, lifting a global refusal for that topic only). Imports, CMP syncs,
         staff entries and exemptions never lift an opt-out. Future-dated opt-outs apply.
      3. Otherwise a grant counts if it is accepted under *law*, not after *now*, and
         strictly later than every applicable opt-out (lifted ones included), so consent
         given before a refusal is not revived by lifting it.
    Ties at the same instant go to the opt-out; the result does not depend on input order.
    """
    evs = sorted(events, key=_order_key)
    if evs:
        first = evs[0]
        for e in evs:
            if e.sender_id != first.sender_id or e.address_key != first.address_key:
                raise ValueError("decide() needs the events of one sender and one address")
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")

    optouts = [
        e
        for e in evs
        if e.status is ConsentStatus.OPTED_OUT
        and (e.topic is None or e.topic == topic or topic is None)
    ]
    blocking = [o for o in optouts if not any(_lifts(e, o, topic, now) for e in evs)]
    if blocking:
        o = blocking[-1]
        scope = "all topics" if o.topic is None else f"topic {o.topic!r}"
        return Decision(
            Outcome.OPTED_OUT,
            o,
            f"opted out of {scope} via {o.method.value} at {o.occurred_at.isoformat()}",
        )

    cutoff = optouts[-1].occurred_at if optouts else None
    accepted = LAW_ACCEPTS[law]
    candidates = [
        e
        for e in evs
        if e.status is not ConsentStatus.OPTED_OUT
        and (e.topic is None or e.topic == topic)
        and e.occurred_at <= now
        and (cutoff is None or e.occurred_at > cutoff)
    ]
    valid = [e for e in candidates if e.method in accepted]
    if valid:
        g = valid[-1]
        return Decision(
            Outcome.ALLOWED,
            g,
            f"{g.status.value} via {g.method.value} at {g.occurred_at.isoformat()}",
        )
    if candidates:
        g = candidates[-1]
        return Decision(
            Outcome.MISSING,
            g,
            f"{g.method.value} does not count as consent under {law.value}",
        )
    return Decision(Outcome.MISSING, None, "no recorded consent")
