"""PostgreSQL-only behaviour: placeholders, error messages, racing migrations, outages, drain."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from gateway.errors import StoreUnavailable
from gateway.store import EventFilter, open_store
from gateway.store.migrations import migrations
from gateway.store.postgres import PostgresStore, redact, to_dollar
from tests.integration.store.factories import consent, event
from tests.integration.store.pgserver import (
    PgServer,
    ThrowawayCluster,
    find_binaries,
    with_database,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = $1 AND b = $2"),
        ("SELECT '?' , ? FROM t", "SELECT '?' , $1 FROM t"),
        ("SELECT 'it''s ?', \"we?ird\" FROM t WHERE x = ?", "SELECT 'it''s ?', \"we?ird\" FROM t WHERE x = $1"),
        ("SELECT 1 -- what?\nWHERE a = ?", "SELECT 1 -- what?\nWHERE a = $1"),
        ("SELECT /* ? */ a - ? / 2 FROM t", "SELECT /* ? */ a - $1 / 2 FROM t"),
        ("UPDATE t SET a = ?, b = ? WHERE c = ?", "UPDATE t SET a = $1, b = $2 WHERE c = $3"),
        ("SELECT 1", "SELECT 1"),
    ],
)
def test_question_marks_become_numbered_placeholders(sql: str, expected: str) -> None:
    assert to_dollar(sql) == expected


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://gw:s3cret@db.internal:5432/gateway") == "postgresql://gw:***@db.internal:5432/gateway"
    assert redact("postgresql://gw@db/gateway") == "postgresql://gw@db/gateway"


async def test_open_says_what_is_wrong(pg_server: PgServer, pg_url: str) -> None:
    missing = PostgresStore(with_database(pg_url, "no_such_database_here"))
    with pytest.raises(StoreUnavailable, match="database missing") as caught:
        await missing.open()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no driver traceback
    nobody = PostgresStore(pg_url.replace("postgres@", "nobody_here:pw@", 1))
    if "nobody_here" in nobody.url:
        with pytest.raises(StoreUnavailable, match="nobody_here") as caught:
            await nobody.open()
        assert ":pw@" not in str(caught.value)
    with pytest.raises(StoreUnavailable, match="cannot open"):
        await PostgresStore("postgresql://[bad").open()


async def test_instances_starting_together_migrate_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url, pool_min=1) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        applied = sorted((s.applied for s in stores), key=len)
        assert applied[:3] == [[], [], []]  # exactly one instance migrated
        assert applied[3] == [name for name, _ in migrations("postgres")]
        rows = await stores[0].fetch("SELECT count(*) AS n FROM schema_migrations")
        assert rows[0]["n"] == len(applied[3])
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_outage_is_store_unavailable_and_the_writer_survives(pg_server: PgServer, pg_url: str) -> None:
    store = open_store(pg_url)
    await store.open()
    try:
        await store.record_event(event(1))
        admin = await asyncpg.connect(pg_server.admin_url)
        try:  # the database disappears under the running store
            name = pg_url.rsplit("/", 1)[1]
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        with pytest.raises(StoreUnavailable):
            await store.consent_history("sample", "taro@example.com")
        for n in (2, 3):  # twice: the writer task is still there and still answers
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(store.record_event(event(n)), 30)
        with pytest.raises(StoreUnavailable):
            await store.query_events(EventFilter())
    finally:
        await store.close()


async def test_close_commits_everything_queued(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    pending = [asyncio.ensure_future(store.record_event(event(n))) for n in range(200)]
    await asyncio.sleep(0)  # every write is queued, few are committed
    await store.close()
    ids = await asyncio.gather(*pending)
    assert len(set(ids)) == 200
    check = PostgresStore(pg_url)
    await check.open()
    try:
        assert (await check.fetch("SELECT count(*) AS n FROM events"))[0]["n"] == 200
    finally:
        await check.close()
    with pytest.raises(StoreUnavailable):
        await store.record_event(event(999))


async def test_a_consent_hot_path_row_written_by_one_instance_is_seen_by_another(pg_url: str) -> None:
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    await a.open()
    await b.open()
    try:
        assert await b.consent_history("sample", "taro@example.com") == []
        assert await a.append_consent(consent("taro@example.com", ref="x1"), "taro@example.com")
        [seen] = await b.consent_history("sample", "taro@example.com")
        assert seen.source_ref == "x1"
        assert await b.append_consent(consent("taro@example.com", ref="x1"), "taro@example.com") is False
    finally:
        await a.close()
        await b.close()


def test_throwaway_cluster_starts_and_stops() -> None:
    """The fallback CI uses when no server runs: initdb + pg_ctl on a free loopback port."""
    if find_binaries() is None:
        pytest.skip("initdb/pg_ctl not installed")
    cluster = ThrowawayCluster.create()
    try:
        server = PgServer(cluster.url, "initdb", cluster)
        name = server.create_database()

        async def roundtrip() -> list[str]:
            store = PostgresStore(server.url_for(name))
            await store.open()
            try:
                await store.record_event(event(1))
                return [r["event_id"] for r in await store.query_events(EventFilter())]
            finally:
                await store.close()

        assert asyncio.run(roundtrip()) == ["e000001"]
        server.drop_database(name)
    finally:
        cluster.destroy()
    assert not cluster.root.exists()
