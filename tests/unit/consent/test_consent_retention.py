"""Retention periods and purge decisions, including calendar-month edge cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.consent.model import ConsentEvent, ConsentMethod, ConsentStatus, Law
from gateway.consent.retention import JST, KEEP_FOREVER, add_months, purge_decision


def ev(at: datetime, status: ConsentStatus = ConsentStatus.OPTED_IN,
       method: ConsentMethod = ConsentMethod.WEB_FORM) -> ConsentEvent:
    return ConsentEvent(sender_id="s", address_key="a@example.jp", status=status,
                        method=method, occurred_at=at)


@pytest.mark.parametrize(
    ("d", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
        (date(2026, 5, 31), 36, date(2029, 5, 31)),
    ],
)
def test_add_months(d: date, months: int, expected: date) -> None:
    assert add_months(d, months) == expected


def test_tokuden_one_month_after_last_send_jan31() -> None:
    consent = datetime(2025, 6, 1, tzinfo=JST)
    last = datetime(2026, 1, 31, 10, 0, tzinfo=JST)
    keep = datetime(2026, 3, 1, 0, 0, tzinfo=JST)  # end of Feb 28 (JST)
    d = purge_decision(Law.TOKUDEN, [ev(consent)], last, keep - timedelta(microseconds=1))
    assert not d.purgeable and d.keep_until == keep
    d = purge_decision(Law.TOKUDEN, [ev(consent)], last, keep)
    assert d.purgeable and d.reason.startswith("retention elapsed: tokuden: 1 month(s) after last")


def test_day_is_counted_in_jst() -> None:
    # 2026-01-31 20:00 UTC is already Feb 1 in Japan -> period ends at the end of Mar 1 JST
    last = datetime(2026, 1, 31, 20, 0, tzinfo=UTC)
    d = purge_decision(Law.TOKUDEN, [ev(datetime(2025, 1, 1, tzinfo=UTC))], last, last)
    assert d.keep_until == datetime(2026, 3, 2, tzinfo=JST)


def test_art7_order_and_other_laws() -> None:
    last = datetime(2026, 1, 15, 12, tzinfo=JST)
    events = [ev(datetime(2025, 1, 1, tzinfo=JST))]
    assert purge_decision(Law.TOKUDEN, events, last, last, art7_order=True).keep_until == (
        datetime(2027, 1, 16, tzinfo=JST)
    )
    assert purge_decision(Law.TOKUSHO, events, last, last).keep_until == (
        datetime(2029, 1, 16, tzinfo=JST)
    )
    assert purge_decision(None, events, last, last).keep_until == datetime(2029, 1, 16, tzinfo=JST)


def test_no_send_counts_from_consent_and_reconsent_restarts() -> None:
    consent = datetime(2026, 4, 10, 9, tzinfo=JST)
    assert purge_decision(Law.TOKUDEN, [ev(consent)], None, consent).keep_until == (
        datetime(2026, 5, 11, tzinfo=JST)
    )
    # a newer consent event than the last send restarts the clock
    events = [ev(datetime(2025, 1, 1, tzinfo=JST)), ev(consent)]
    d = purge_decision(Law.TOKUDEN, events, datetime(2026, 1, 1, tzinfo=JST), consent)
    assert d.keep_until == datetime(2026, 5, 11, tzinfo=JST)


def test_opt_outs_never_purgeable() -> None:
    events = [ev(datetime(2020, 1, 1, tzinfo=JST)),
              ev(datetime(2020, 2, 1, tzinfo=JST), ConsentStatus.OPTED_OUT, ConsentMethod.MAILTO)]
    d = purge_decision(Law.TOKUDEN, events, None, datetime(2040, 1, 1, tzinfo=UTC))
    assert not d.purgeable and d.keep_until == KEEP_FOREVER
    assert "keyed hash" in d.reason


def test_input_validation() -> None:
    with pytest.raises(ValueError):
        purge_decision(Law.TOKUDEN, [], None, datetime.now(UTC))
    with pytest.raises(ValueError):
        purge_decision(Law.TOKUDEN, [ev(datetime(2025, 1, 1, tzinfo=JST))], None,
                       datetime(2026, 1, 1))
