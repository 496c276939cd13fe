"""A real gateway in the test's own process: real SQLite store, real knotd, a real aiosmtpd
upstream (the `sink` fixture), and taro@example.com opted in to the sample sender."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway, build
from gateway.config import from_dict
from gateway.consent.address import normalize_address, suppression_key
from gateway.consent.model import ConsentEvent, ConsentMethod, ConsentStatus
from tests.support.gateway import StartInProcess, base_config
from tests.support.sink import RecordingSink


@pytest.fixture
async def start_gateway(tmp_path: Path, sink: RecordingSink) -> AsyncIterator[StartInProcess]:
    """start_gateway(**server_settings): a started gateway, stopped after the test unless
    the test stopped it itself."""
    started: list[Gateway] = []

    async def start(**server: Any) -> Gateway:
        raw: dict[str, Any] = base_config(tmp_path, sink.port)
        raw["server"].update(server)
        gw = build(from_dict(raw, base_dir=tmp_path), serve_http=False)
        await gw.start()
        started.append(gw)
        key = suppression_key(normalize_address("taro@example.com"))
        await gw.store.append_consent(ConsentEvent(
            sender_id="sample", address_key=key, status=ConsentStatus.OPTED_IN,
            method=ConsentMethod.DOUBLE_OPT_IN, occurred_at=datetime(2026, 1, 10, tzinfo=UTC),
            source_system="tests", recorded_by="tests",
        ), "taro@example.com")
        return gw

    yield start
    for gw in started:
        if not gw.draining:
            await gw.stop()


@pytest.fixture
async def gateway(start_gateway: StartInProcess) -> Gateway:
    return await start_gateway()
