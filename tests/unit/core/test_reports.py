"""Feedback reports (RFC 5965) and delivery status notifications (RFC 3464) as parsed."""

from __future__ import annotations

from pathlib import Path

from gateway.smtp.mailto import delivery_report, feedback_report

SEEDS = Path(__file__).resolve().parents[2] / "fuzz" / "seeds" / "reports"
DSN = (SEEDS / "hard_bounce_dsn").read_bytes()
ARF = (SEEDS / "complaint").read_bytes()
TOKEN = "A" * 60


def test_a_dsn_names_each_failed_recipient_and_the_quoted_token() -> None:
    report = delivery_report(DSN)
    assert report is not None and report.tokens == (TOKEN,)
    assert report.failed == (("taro@example.com", "5.1.1", "smtp; 550 5.1.1 user unknown"),)
    # a status with a comment still reads as its code; a delayed recipient has not failed
    commented = delivery_report(DSN.replace(b"Status: 5.1.1", b"Status: 5.1.1 (unknown)"))
    assert commented is not None and commented.failed[0][1] == "5.1.1"
    delayed = delivery_report(DSN.replace(b"Action: failed", b"Action: delayed"))
    assert delayed is not None and delayed.failed == ()


def test_each_report_is_only_its_own_kind() -> None:
    assert feedback_report(DSN) is None and delivery_report(ARF) is None
    report = feedback_report(ARF)
    assert report is not None and (report.feedback_type, report.tokens) == ("abuse", (TOKEN,))
    plain = b"From: a@example.com\r\nSubject: unsubscribe\r\n\r\nplease stop\r\n"
    assert feedback_report(plain) is None and delivery_report(plain) is None
