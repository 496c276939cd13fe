"""Fault tests: real gateway, upstream and DNS processes; a fault, then the invariant check."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than ~20 s (still part of make test)")
