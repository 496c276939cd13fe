"""Events and consent events for store tests: every field set, so round trips are checked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.consent.model import ConsentEvent, ConsentMethod, ConsentStatus
from gateway.model import Event, EventVerdict, Outcome, Phase, RuleResult

T0 = 1_780_000_000.0


def event(n: int, **changes: Any) -> Event:
    fields: dict[str, Any] = {
        "verdict": EventVerdict.ACCEPTED,
        "phase": Phase.DATA,
        "reply": "250 2.0.0 Ok",
        "client": "ma-tool",
        "client_class": "advertising",
        "client_ip": "127.0.0.1",
        "sender_id": "sample",
        "mail_from": "news@bounce.example.jp",
        "recipient": f"user{n}@example.com",
        "header_from": "news@example.jp",
        "message_id": f"<m{n}@example.jp>",
        "size": 1000 + n,
        "results": (RuleResult("auth.from_invalid", Outcome.PASS),),
        "timings": {"total": 0.01},
        "session_id": f"s{n}",
        "event_id": f"e{n:06d}",
        "created_at": T0 + n,
    }
    fields.update(changes)
    return Event(**fields)


def consent(
    key: str,
    status: ConsentStatus = ConsentStatus.OPTED_IN,
    *,
    ref: str | None = None,
    when: float = T0,
    topic: str | None = None,
    sender: str = "sample",
) -> ConsentEvent:
    return ConsentEvent(
        sender_id=sender,
        address_key=key,
        status=status,
        method=ConsentMethod.WEB_FORM if status is not ConsentStatus.OPTED_OUT else ConsentMethod.ONE_CLICK,
        occurred_at=datetime.fromtimestamp(when, UTC),
        source_system="form" if ref else "",
        source_ref=ref,
        topic=topic,
        client_ip="192.0.2.1",
        user_agent="ua",
        recorded_by="test",
    )
