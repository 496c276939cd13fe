"""`copy-store`: SQLite into PostgreSQL (and back, and PG to PG), every table, counts verified."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest

from gateway.consent import service
from gateway.consent.model import ConsentStatus
from gateway.errors import StoreUnavailable
from gateway.store import EventFilter, Store, open_store
from gateway.store.consent_rows import consent_row
from tests.integration.store.factories import T0, consent, event
from tests.support import toml
from tests.support.gateway import base_config, cli

pytestmark = pytest.mark.integration

TABLES = (
    "api_tokens", "audit_log", "consent_events", "consent_last_sent", "events", "import_batches", "web_sessions",
)


async def fill(store: Store) -> None:
    """Rows in every table the migrations make, including a foreign-key child."""
    for n in range(1, 121):
        await store.record_event(event(n), f"user{n % 7}@example.com" if n % 2 else "")
    rows = [consent_row(consent(f"bulk{n}@example.com"), f"bulk{n}@example.com", T0, True) for n in range(300)]
    await store.insert_consent_rows(rows)
    await store.append_consent(consent("taro@example.com", ConsentStatus.OPTED_OUT, ref="cmp-1"), "taro@example.com")
    await store.execute(
        "INSERT INTO import_batches (id, sender_id, created_at, created_by, source_name, grants, optouts, status) "
        "VALUES (?, ?, ?, ?, ?, 3, 1, 'approved')",
        ("b1", "sample", T0, "alice", "list.csv"),
    )
    for n in range(4):
        await service.audit(store, "alice", "consent.lookup", f"sample:user{n}@example.com", "ticket")
    await store.execute(
        "INSERT INTO api_tokens (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)",
        ("tk_1", "ops bot", "ops", "ab" * 32, T0),
    )
    await store.execute(
        "INSERT INTO web_sessions (id_hash, token_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        ("cd" * 32, "tk_1", "csrf", T0, T0 + 3600),
    )


async def counts(url: str) -> dict[str, int]:
    store = open_store(url)
    await store.open()
    try:
        return {t: (await store.fetch(f"SELECT count(*) AS n FROM {t}"))[0]["n"] for t in TABLES}
    finally:
        await store.close()


async def snapshot(url: str) -> tuple[list[dict[str, object]], list[object], float | None]:
    store = open_store(url)
    await store.open()
    try:
        events = await store.query_events(EventFilter(limit=1000))
        history = await store.consent_history("sample", "taro@example.com")
        last = await store.last_sent("sample", "user3@example.com")
        return events, list(history), last
    finally:
        await store.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"

    async def make() -> None:
        store = open_store(url)
        await store.open()
        try:
            await fill(store)
        finally:
            await store.close()

    asyncio.run(make())
    return url


def test_sqlite_into_postgres_copies_every_row(sqlite_url: str, pg_url: str) -> None:
    result = cli("copy-store", sqlite_url, pg_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every count matches" in result.stdout
    for table in TABLES:
        assert f"{table} " in result.stdout
    expected = asyncio.run(counts(sqlite_url))
    assert expected["events"] == 120 and expected["consent_events"] == 301 and expected["web_sessions"] == 1
    assert asyncio.run(counts(pg_url)) == expected
    assert asyncio.run(snapshot(pg_url)) == asyncio.run(snapshot(sqlite_url))  # ids and values alike

    async def keeps_working() -> None:
        store = open_store(pg_url)
        await store.open()
        try:  # the sequences moved past the copied ids
            new_id = await store.record_event(event(500))
            assert new_id == 121
            assert await store.append_consent(consent("new@example.com"), "new@example.com")
            assert await store.append_consent(
                consent("taro@example.com", ConsentStatus.OPTED_OUT, ref="cmp-1"), "taro@example.com"
            ) is False  # the copied unique index still holds
            with pytest.raises(StoreUnavailable, match="append-only"):
                await store.execute("DELETE FROM audit_log")
        finally:
            await store.close()

    asyncio.run(keeps_working())


def test_from_url_defaults_to_the_configs_store(sqlite_url: str, pg_url: str, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    cfg = base_config(tmp_path, 2526)
    cfg["store"]["url"] = sqlite_url
    # a maintenance host need not hold the keys and certificates the gateway uses
    cfg["senders"][0]["dkim"] = [{"selector": "s1", "key": str(tmp_path / "not-here.pem")}]
    config.write_text(toml.dumps(cfg), encoding="utf-8")
    result = cli("copy-store", pg_url, "--quiet", config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert asyncio.run(counts(pg_url)) == asyncio.run(counts(sqlite_url))
    three = cli("copy-store", sqlite_url, pg_url, sqlite_url)
    assert three.returncode == 2 and "at most FROM_URL and TO_URL" in three.stderr


def test_a_non_empty_destination_is_refused_unless_forced(sqlite_url: str, pg_url: str) -> None:
    assert cli("copy-store", sqlite_url, pg_url).returncode == 0
    again = cli("copy-store", sqlite_url, pg_url, "--quiet")
    assert again.returncode == 1
    assert "not empty" in again.stdout and "events (120 rows)" in again.stdout
    forced = cli("copy-store", sqlite_url, pg_url, "--force", "--quiet")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert asyncio.run(counts(pg_url)) == asyncio.run(counts(sqlite_url))  # replaced, not doubled


def test_postgres_to_postgres_and_back_to_sqlite(sqlite_url: str, pg_url: str, pg_server: object, tmp_path: Path) -> None:
    from tests.integration.store.pgserver import PgServer

    assert isinstance(pg_server, PgServer)
    assert cli("copy-store", sqlite_url, pg_url).returncode == 0
    second = pg_server.create_database()
    try:
        pg2 = pg_server.url_for(second)
        result = cli("copy-store", pg_url, pg2)
        assert result.returncode == 0, result.stdout + result.stderr
        assert asyncio.run(counts(pg2)) == asyncio.run(counts(sqlite_url))
        back = f"sqlite:///{tmp_path / 'back.sqlite3'}"
        assert cli("copy-store", pg2, back).returncode == 0
        assert asyncio.run(snapshot(back)) == asyncio.run(snapshot(sqlite_url))
        # --force into SQLite lifts the append-only triggers only while emptying
        assert cli("copy-store", pg2, back, "--force").returncode == 0
        assert asyncio.run(counts(back)) == asyncio.run(counts(sqlite_url))

        async def still_append_only() -> None:
            store = open_store(back)
            await store.open()
            try:
                with pytest.raises(StoreUnavailable, match="append-only"):
                    await store.execute("DELETE FROM audit_log")
            finally:
                await store.close()

        asyncio.run(still_append_only())
    finally:
        pg_server.drop_database(second)


def test_a_count_that_differs_rolls_back_and_exits_1(sqlite_url: str, pg_url: str) -> None:
    async def sabotage() -> None:
        store = open_store(pg_url)
        await store.open()  # the schema, then a trigger that silently drops one audit row
        await store.close()
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(
                "CREATE FUNCTION lose_one() RETURNS trigger AS $$ BEGIN "
                "IF NEW.id = 2 THEN RETURN NULL; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; "
                "CREATE TRIGGER lose_one BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION lose_one();"
            )
        finally:
            await conn.close()

    asyncio.run(sabotage())
    result = cli("copy-store", sqlite_url, pg_url, "--quiet")
    assert result.returncode == 1, result.stdout
    assert "DIFFERS" in result.stdout and "audit_log" in result.stdout
    assert "nothing was committed" in result.stdout
    assert asyncio.run(counts(pg_url)) == dict.fromkeys(TABLES, 0)


def test_bad_arguments_exit_2(sqlite_url: str) -> None:
    assert cli("copy-store", sqlite_url, sqlite_url).returncode == 2
    bad = cli("copy-store", sqlite_url, "mysql://x/y")
    assert bad.returncode == 2 and "mysql://x/y" in bad.stderr


def test_an_unreachable_destination_exits_1_with_a_message(sqlite_url: str) -> None:
    from tests.integration.store.pgserver import free_port

    started = time.monotonic()
    result = cli("copy-store", sqlite_url, f"postgresql://gw:hunter2@127.0.0.1:{free_port()}/gateway")
    assert result.returncode == 1
    assert "connection refused" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30
