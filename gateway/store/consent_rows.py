"""Consent rows: the one mapping between ConsentEvent objects and consent_events rows.

Rows are written to the table and read through the `consent_records` view, whose
`effective` column says whether a row is in effect (an imported row's batch decides).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.consent.model import ConsentEvent, ConsentMethod, ConsentStatus

CONSENT_COLUMNS = (
    "sender_id",
    "address_key",
    "address",
    "status",
    "method",
    "topic",
    "occurred_at",
    "recorded_at",
    "source_system",
    "source_ref",
    "client_ip",
    "user_agent",
    "recorded_by",
    "batch_id",
    "effective",
)
SELECT_CONSENT = (
    "SELECT sender_id, address_key, status, method, topic, occurred_at, source_system, "
    "source_ref, client_ip, user_agent, recorded_by, batch_id FROM consent_records"
)

INSERT_CONSENT = (
    f"INSERT INTO consent_events ({', '.join(CONSENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in CONSENT_COLUMNS)})"
)
SUPPRESSION_COLUMNS = (
    "id", "address_key", "reason", "detail", "sender_id", "created_at", "created_by",
    "cleared_at", "cleared_by", "clear_reason",
)
SELECT_SUPPRESSION = f"SELECT {', '.join(SUPPRESSION_COLUMNS)} FROM suppressions"
# The newest entry in force for one address (`?`: its suppression_key()).
ACTIVE_SUPPRESSION = (
    SELECT_SUPPRESSION + " WHERE address_key = ? AND cleared_at IS NULL ORDER BY id DESC LIMIT 1"
)


def consent_row(
    event: ConsentEvent, address: str, recorded_at: float, effective: bool
) -> tuple[Any, ...]:
    return (
        event.sender_id,
        event.address_key,
        address,
        event.status.value,
        event.method.value,
        event.topic,
        event.occurred_at.timestamp(),
        recorded_at,
        event.source_system,
        event.source_ref,
        event.client_ip,
        event.user_agent,
        event.recorded_by,
        event.batch_id,
        1 if effective else 0,
    )


def row_event(row: Any, at: int = 0) -> ConsentEvent:
    """The event in a SELECT_CONSENT row, whose columns start at index `at`."""
    return ConsentEvent(
        sender_id=row[at],
        address_key=row[at + 1],
        status=ConsentStatus(row[at + 2]),
        method=ConsentMethod(row[at + 3]),
        topic=row[at + 4],
        occurred_at=datetime.fromtimestamp(row[at + 5], UTC),
        source_system=row[at + 6] or "",
        source_ref=row[at + 7],
        client_ip=row[at + 8],
        user_agent=row[at + 9],
        recorded_by=row[at + 10] or "",
        batch_id=row[at + 11],
    )
