"""pytest fixtures around KnotServer: a private server per test and a shared read-only one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dns.server import KnotServer

__all__ = ["dns_server", "shared_dns_server"]


@pytest.fixture
def dns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    """A knotd of this test's own, serving tests/dns/zones/*.zone; free to stop, edit and restart.

    Attributes/methods: .port, .nameserver ("127.0.0.1:port"), .write_zone(origin, text),
    .write_zone_template(origin, values), .reload(), .stop(), .start(), .restart(), .query().
    """
    with KnotServer(tmp_path_factory.mktemp("knot")) as server:
        yield server


@pytest.fixture(scope="session")
def shared_dns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    """One knotd for the session, for tests that only read the stock zones (never stop/edit it)."""
    with KnotServer(tmp_path_factory.mktemp("knot-shared")) as server:
        yield server
