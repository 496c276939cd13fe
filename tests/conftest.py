"""Shared fixtures: a real recording upstream, and the gateway as a real process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.consent import grant_in_process
from tests.support.gateway import GatewayProcess, base_config
from tests.support.sink import RecordingSink


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    server = RecordingSink().start()
    yield server
    server.stop()


@pytest.fixture
def config(tmp_path: Path, sink: RecordingSink) -> dict[str, Any]:
    return base_config(tmp_path, sink.port)


CONSENTED = ("taro@example.com", "hanako@example.com")


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start the gateway process; consent is recorded for CONSENTED unless consent=False."""
    started: list[GatewayProcess] = []

    def start(cfg: dict[str, Any], consent: bool = True) -> GatewayProcess:
        proc = GatewayProcess(tmp_path, cfg).start()
        started.append(proc)
        if consent:
            grant_in_process(proc.config_path, "sample", *CONSENTED)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def gateway(config: dict[str, Any], start_gateway: Callable[..., GatewayProcess]) -> GatewayProcess:
    """The gateway with every rule on, and consent recorded for CONSENTED recipients."""
    return start_gateway(config)
