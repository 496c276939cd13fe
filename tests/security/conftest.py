"""Security checks as tests: relay, AUTH, STARTTLS, injection, the admin API."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than ~20 s (still part of make test)")
