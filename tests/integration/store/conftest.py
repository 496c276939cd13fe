"""Store fixtures: one PostgreSQL server per session, a fresh database per test, both backends."""

from __future__ import annotations

import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.store import Store, open_store
from tests.integration.store.pgserver import BadTestUrl, PgServer

_NO_PG = "\n".join(
    [
        "",
        "!" * 78,
        "!! POSTGRESQL TESTS SKIPPED: no server could be found or started.",
        "!! Set GATEWAY_TEST_PG_URL, run a local PostgreSQL, or install initdb/pg_ctl.",
        "!! Reasons: {reasons}",
        "!" * 78,
    ]
)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """$GATEWAY_TEST_PG_URL, else the local server, else a throwaway initdb cluster."""
    try:
        server = PgServer.find()
    except BadTestUrl as exc:  # asked for explicitly: a broken URL must not turn into a skip
        pytest.fail(str(exc))
    except RuntimeError as exc:
        message = _NO_PG.format(reasons=exc)
        print(message, file=sys.stderr)
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A new, empty database of its own for this test (dropped afterwards)."""
    name = pg_server.create_database()
    try:
        yield pg_server.url_for(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The contract suite runs once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = open_store(store_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
