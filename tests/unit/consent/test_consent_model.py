"""Consent precedence: examples for each rule and hypothesis properties over histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.consent.gate import decide_at_rcpt
from gateway.consent.model import (
    ConsentEvent,
    ConsentMethod,
    ConsentStatus,
    Law,
    Outcome,
    decide,
    status_method_problem,
)

M = ConsentMethod
S = ConsentStatus
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def ev(
    status: S, method: M, day: int, topic: str | None = None, batch: str | None = None
) -> ConsentEvent:
    return ConsentEvent(
        sender_id="s1", address_key="taro@example.jp", status=status, method=method,
        occurred_at=T0 + timedelta(days=day), topic=topic, batch_id=batch,
    )


def test_no_events_is_missing() -> None:
    d = decide([], None, Law.TOKUDEN, NOW)
    assert d.outcome is Outcome.MISSING and d.event is None and not d.allowed


def test_consent_allows() -> None:
    e = ev(S.OPTED_IN, M.DOUBLE_OPT_IN, 1)
    d = decide([e], "news", Law.TOKUDEN, NOW)
    assert d.allowed and d.event == e


def test_opt_out_beats_exemption_and_consent() -> None:
    card = ev(S.EXEMPT, M.BUSINESS_CARD, 1)
    out = ev(S.OPTED_OUT, M.ONE_CLICK, 2)
    later_card = ev(S.EXEMPT, M.BUSINESS_CARD, 3)
    later_import = ev(S.OPTED_IN, M.WEB_FORM, 4, batch="b1")
    d = decide([card, out, later_card, later_import], None, Law.TOKUDEN, NOW)
    assert d.outcome is Outcome.OPTED_OUT and d.event == out


def test_recipient_re_opt_in_lifts_opt_out() -> None:
    out = ev(S.OPTED_OUT, M.ONE_CLICK, 2)
    doi = ev(S.OPTED_IN, M.DOUBLE_OPT_IN, 3)
    assert decide([ev(S.OPTED_IN, M.WEB_FORM, 1), out, doi], None, Law.TOKUDEN, NOW).event == doi


@pytest.mark.parametrize(
    "lifter",
    [
        ev(S.OPTED_IN, M.DOUBLE_OPT_IN, 3, batch="import-7"),  # imported: never lifts
        ev(S.OPTED_IN, M.CMP, 3),
        ev(S.OPTED_IN, M.MANUAL, 3),
        ev(S.OPTED_IN, M.PAPER_FORM, 3),
        ev(S.EXEMPT, M.TRANSACTION, 3),
        ev(S.OPTED_IN, M.DOUBLE_OPT_IN, 2),  # same instant as the opt-out
        ev(S.OPTED_IN, M.DOUBLE_OPT_IN, 400),  # after now
    ],
)
def test_these_do_not_lift_an_opt_out(lifter: ConsentEvent) -> None:
    out = ev(S.OPTED_OUT, M.MAILTO, 2)
    assert decide([out, lifter], None, Law.TOKUDEN, NOW).outcome is Outcome.OPTED_OUT


def test_consent_before_opt_out_not_revived_by_lift_for_other_topic() -> None:
    g = ev(S.OPTED_IN, M.WEB_FORM, 1)  # all topics
    out = ev(S.OPTED_OUT, M.ONE_CLICK, 2)  # all topics
    doi_news = ev(S.OPTED_IN, M.DOUBLE_OPT_IN, 3, topic="news")
    assert decide([g, out, doi_news], "news", Law.TOKUDEN, NOW).event == doi_news
    assert decide([g, out, doi_news], "sale", Law.TOKUDEN, NOW).outcome is Outcome.OPTED_OUT


def test_topic_opt_out_blocks_only_that_topic() -> None:
    g = ev(S.OPTED_IN, M.WEB_FORM, 1)
    out = ev(S.OPTED_OUT, M.UNSUBSCRIBE_PAGE, 2, topic="sale")
    assert decide([g, out], "sale", Law.TOKUDEN, NOW).outcome is Outcome.OPTED_OUT
    assert decide([g, out], "news", Law.TOKUDEN, NOW).allowed
    # untagged mail could be the refused topic: fail closed
    assert decide([g, out], None, Law.TOKUDEN, NOW).outcome is Outcome.OPTED_OUT


def test_global_re_opt_in_does_not_lift_topic_refusal() -> None:
    out = ev(S.OPTED_OUT, M.ONE_CLICK, 2, topic="sale")
    doi = ev(S.OPTED_IN, M.DOUBLE_OPT_IN, 3)
    assert decide([out, doi], "sale", Law.TOKUDEN, NOW).outcome is Outcome.OPTED_OUT
    assert decide([out, doi], "news", Law.TOKUDEN, NOW).allowed


def test_future_opt_out_applies_future_consent_does_not() -> None:
    g = ev(S.OPTED_IN, M.WEB_FORM, 1)
    assert decide([g, ev(S.OPTED_OUT, M.MAILTO, 500)], None, Law.TOKUDEN, NOW).outcome is (
        Outcome.OPTED_OUT
    )
    assert decide([ev(S.OPTED_IN, M.WEB_FORM, 500)], None, Law.TOKUDEN, NOW).outcome is (
        Outcome.MISSING
    )


@pytest.mark.parametrize("method", [M.BUSINESS_CARD, M.PUBLISHED_ADDRESS, M.TRANSACTION])
def test_tokusho_has_no_exemptions(method: M) -> None:
    e = ev(S.EXEMPT, method, 1)
    assert decide([e], None, Law.TOKUDEN, NOW).allowed
    d = decide([e], None, Law.TOKUSHO, NOW)
    assert d.outcome is Outcome.MISSING and d.event == e
    assert d.reason == f"{method.value} does not count as consent under tokusho"


def test_a_staff_entered_consent_does_not_count_under_tokusho() -> None:
    # 特商法 needs the consumer's own request: a staff entry is weak evidence of one
    e = ev(S.OPTED_IN, M.MANUAL, 1)
    assert decide([e], None, Law.TOKUDEN, NOW).allowed
    d = decide([e], None, Law.TOKUSHO, NOW)
    assert d.outcome is Outcome.MISSING
    assert d.reason == "manual does not count as consent under tokusho"
    assert decide([e, ev(S.OPTED_IN, M.WEB_FORM, 2)], None, Law.TOKUSHO, NOW).allowed


def test_event_validation() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ConsentEvent(sender_id="s", address_key="a@b.jp", status=S.OPTED_IN,
                     method=M.WEB_FORM, occurred_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="not an exemption basis"):
        ev(S.EXEMPT, M.WEB_FORM, 1)
    with pytest.raises(ValueError, match="cannot record a consent"):
        ev(S.OPTED_IN, M.ONE_CLICK, 1)
    for m in M:  # opt-outs accept every method
        assert status_method_problem(S.OPTED_OUT, m) is None
    with pytest.raises(ValueError, match="one sender and one address"):
        other = ConsentEvent(sender_id="s2", address_key="taro@example.jp",
                             status=S.OPTED_IN, method=M.WEB_FORM, occurred_at=T0)
        decide([ev(S.OPTED_IN, M.WEB_FORM, 1), other], None, Law.TOKUDEN, NOW)


# --- properties -----------------------------------------------------------------------
_valid_pairs = [(s, m) for s in S for m in M if status_method_problem(s, m) is None]
_events = st.builds(
    lambda pair, day, topic, batch: ev(pair[0], pair[1], day, topic, batch),
    st.sampled_from(_valid_pairs),
    st.integers(0, 12),  # few distinct days -> many same-timestamp ties
    st.sampled_from([None, None, "news", "sale"]),
    st.sampled_from([None, None, "b1"]),
)
_histories = st.lists(_events, max_size=12)
_topics = st.sampled_from([None, "news", "sale"])
_laws = st.sampled_from(list(Law))


@settings(max_examples=800, deadline=None)
@given(_histories, _topics, _laws, st.randoms(use_true_random=False))
def test_order_of_events_never_matters(hist: list[ConsentEvent], topic: str | None,
                                       law: Law, rnd: object) -> None:
    import random

    assert isinstance(rnd, random.Random)
    shuffled = hist[:]
    rnd.shuffle(shuffled)
    assert decide(hist, topic, law, NOW) == decide(shuffled, topic, law, NOW)


@settings(max_examples=800, deadline=None)
@given(_histories, _topics, _laws)
def test_last_recipient_event_in_scope_decides(hist: list[ConsentEvent], topic: str | None,
                                               law: Law) -> None:
    """Single scope (all-topics events only): if the latest of {opt-outs, live recipient
    re-opt-ins} is an opt-out - ties counting as opt-out - the decision is opted_out;
    if it is a re-opt-in, mail is allowed."""
    hist = [e for e in hist if e.topic is None]
    marks = [e for e in hist if e.status is S.OPTED_OUT or e.lifts_opt_out]
    if not marks:
        return
    latest = max(e.occurred_at for e in marks)
    at_latest = [e for e in marks if e.occurred_at == latest]
    d = decide(hist, topic, law, NOW)
    if any(e.status is S.OPTED_OUT for e in at_latest):
        assert d.outcome is Outcome.OPTED_OUT
    elif any(e.status is S.OPTED_OUT for e in marks):
        assert d.allowed  # lifted by the later live re-opt-in, which counts under both laws


@settings(max_examples=800, deadline=None)
@given(_histories, _topics, _laws, st.integers(0, 12), st.sampled_from([None, "news", "sale"]))
def test_imported_consent_never_resurrects(hist: list[ConsentEvent], topic: str | None,
                                           law: Law, day: int, imp_topic: str | None) -> None:
    before = decide(hist, topic, law, NOW)
    imported = ev(S.OPTED_IN, M.DOUBLE_OPT_IN, day, imp_topic, batch="import-9")
    after = decide([*hist, imported], topic, law, NOW)
    if before.outcome is Outcome.OPTED_OUT:
        assert after.outcome is Outcome.OPTED_OUT


@settings(max_examples=800, deadline=None)
@given(_histories, _laws, st.integers(0, 12))
def test_global_opt_out_blocks_all_topics(hist: list[ConsentEvent], law: Law, day: int) -> None:
    hist = [e for e in hist if not e.lifts_opt_out]  # nothing can lift it
    hist.append(ev(S.OPTED_OUT, M.ONE_CLICK, day))
    for topic in (None, "news", "sale", "other"):
        assert decide(hist, topic, law, NOW).outcome is Outcome.OPTED_OUT


@settings(max_examples=800, deadline=None)
@given(_histories, _laws, st.integers(0, 12))
def test_topic_opt_out_blocks_that_topic_only(hist: list[ConsentEvent], law: Law,
                                              day: int) -> None:
    hist = [e for e in hist if e.status is not S.OPTED_OUT]
    base_news = decide(hist, "news", law, NOW)
    hist.append(ev(S.OPTED_OUT, M.UNSUBSCRIBE_PAGE, day, topic="sale"))
    lifted = any(e.lifts_opt_out and e.topic == "sale" and e.occurred_at > T0 + timedelta(days=day)
                 for e in hist)
    if not lifted:
        assert decide(hist, "sale", law, NOW).outcome is Outcome.OPTED_OUT
    assert decide(hist, "news", law, NOW) == base_news


# -- the RCPT gate: the topic is not known yet ---------------------------------------------------


@settings(max_examples=800, deadline=None)
@given(_histories, _laws)
def test_rcpt_refuses_exactly_what_no_topic_allows(hist: list[ConsentEvent], law: Law) -> None:
    """RCPT passes iff DATA could allow the message for some topic (one of the history's,
    or any other, for which only all-topic records count); a refusal names a reason."""
    gate = decide_at_rcpt(hist, law, NOW)
    topics = ["\0some other topic", *sorted({e.topic for e in hist if e.topic})]
    assert gate.allowed == any(decide(hist, t, law, NOW).allowed for t in topics)
    if not gate.allowed:
        assert gate.outcome in (Outcome.MISSING, Outcome.OPTED_OUT) and gate.reason


def test_a_topic_re_opt_in_after_a_global_opt_out_passes_rcpt() -> None:
    """It lifts the refusal for that topic (decide's rule 2); RCPT refused it before DATA
    could see the topic, so the person never got the mail they asked for again."""
    hist = [ev(S.OPTED_IN, M.WEB_FORM, 1), ev(S.OPTED_OUT, M.ONE_CLICK, 2),
            ev(S.OPTED_IN, M.DOUBLE_OPT_IN, 3, topic="news")]
    assert decide_at_rcpt(hist, Law.TOKUDEN, NOW).allowed
    assert decide(hist, "news", Law.TOKUDEN, NOW).allowed
    assert not decide(hist, "sale", Law.TOKUDEN, NOW).allowed
    assert not decide(hist, None, Law.TOKUDEN, NOW).allowed
    assert decide_at_rcpt(hist[:2], Law.TOKUDEN, NOW).outcome is Outcome.OPTED_OUT
