"""`copy-store FROM_URL TO_URL`: copy a whole store (e.g. SQLite into PostgreSQL), counts verified.

Both stores are first brought to the current schema (the same migrations the
gateway applies at start). Every table the migrations created is copied, ids
included, from one consistent snapshot of the source, into one transaction on
the destination: a failed copy leaves the destination as it was. The row counts
of every table are compared before COMMIT; any difference rolls back and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from tqdm import tqdm

from gateway import config
from gateway.cli import args as args_mod
from gateway.cli.table import render
from gateway.errors import StoreUnavailable
from gateway.store import open_store

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
SKIP_TABLES = frozenset({"schema_migrations", "store_probe"})  # bookkeeping, not data


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "copy-store",
        parents=[common],
        usage="tokuden copy-store [FROM_URL] TO_URL [--config FILE] [--force] [--batch-size N]",
        help="copy a whole store, e.g. SQLite into PostgreSQL (counts verified)",
        description="Copy every table of the store at FROM_URL (default: the config's "
        "store.url) into the store at TO_URL. Stop the gateways writing to either store "
        "first. The destination must be empty unless --force (which empties it first).",
    )
    p.add_argument("urls", nargs="+", metavar="URL",
                   help="[FROM_URL] TO_URL: sqlite:///path or postgresql://...")
    p.add_argument("--force", action="store_true", help="empty a non-empty destination first")
    p.add_argument("--batch-size", type=args_mod.at_least(1), default=5000, metavar="N",
                   help="rows per batch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if len(args.urls) > 2:
        print("tokuden copy-store: error: give at most FROM_URL and TO_URL", file=sys.stderr)
        return EXIT_USAGE
    if len(args.urls) == 2:
        args.from_url, args.to_url = args.urls
    else:
        # Only store.url is read: a maintenance host need not hold the gateway's key files.
        source = config.load(args.config, validate=False).store.url
        args.from_url, args.to_url = source, args.urls[0]
    for url in (args.from_url, args.to_url):
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            print(
                f"tokuden copy-store: error: {url!r}: must start with sqlite:/// or postgresql://",
                file=sys.stderr,
            )
            return EXIT_USAGE
    if args.from_url == args.to_url:
        print("tokuden copy-store: error: FROM_URL and TO_URL are the same", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(
        copy_store(
            args.from_url,
            args.to_url,
            force=args.force,
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
    )


# -- the two kinds of store, seen as plain tables --------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    types: dict[str, str] = field(default_factory=dict)  # column -> declared type (lower case)
    key: tuple[str, ...] = ()  # primary key columns, for a stable order


class Side(Protocol):
    """One end of the copy: schema facts, a snapshot to read, a transaction to write."""

    label: str

    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def migrations(self) -> list[str]: ...
    async def tables(self) -> dict[str, Table]: ...
    async def depends_on(self) -> dict[str, set[str]]: ...
    async def count(self, table: str) -> int: ...
    async def begin_snapshot(self) -> None: ...
    def rows(
        self, table: Table, columns: Sequence[str], batch: int
    ) -> AsyncIterator[list[Any]]: ...
    async def begin_write(self) -> None: ...
    async def clear(self, tables: Sequence[str]) -> None: ...
    async def insert(self, table: Table, columns: Sequence[str], rows: list[Any]) -> None: ...
    async def finish_write(self) -> None: ...
    async def rollback(self) -> None: ...


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteSide:
    def __init__(self, url: str) -> None:
        self.path = url.removeprefix("sqlite:///")
        self.label = url
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("not connected")
        return self._conn

    async def connect(self) -> None:
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None)
            self._conn.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from None

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def migrations(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM schema_migrations ORDER BY name")]

    async def tables(self) -> dict[str, Table]:
        names = [
            r[0]
            for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        out: dict[str, Table] = {}
        for name in names:
            info = self.conn.execute(f"PRAGMA table_info({_quote(name)})").fetchall()
            columns = tuple(str(r[1]) for r in info)
            types = {str(r[1]): str(r[2]).lower() for r in info}
            key = tuple(str(r[1]) for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
            out[name] = Table(name, columns, types, key)
        return out

    async def depends_on(self) -> dict[str, set[str]]:
        deps: dict[str, set[str]] = {}
        for name in await self.tables():
            fks = self.conn.execute(f"PRAGMA foreign_key_list({_quote(name)})").fetchall()
            deps[name] = {str(r[2]) for r in fks} - {name}
        return deps

    async def count(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()[0])

    async def begin_snapshot(self) -> None:
        self.conn.execute("BEGIN")  # a read transaction: one snapshot for every table

    async def rows(
        self, table: Table, columns: Sequence[str], batch: int
    ) -> AsyncIterator[list[Any]]:
        order = ", ".join(map(_quote, table.key)) if table.key else "rowid"
        cursor = self.conn.execute(
            f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(table.name)} ORDER BY {order}"
        )
        while chunk := cursor.fetchmany(batch):
            yield chunk

    async def begin_write(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    async def clear(self, tables: Sequence[str]) -> None:
        # the append-only triggers forbid DELETE; lift them for this transaction only
        triggers = self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
        ).fetchall()
        for name, _ in triggers:
            self.conn.execute(f"DROP TRIGGER {_quote(name)}")
        for table in tables:
            self.conn.execute(f"DELETE FROM {_quote(table)}")
        for _, sql in triggers:
            self.conn.execute(sql)

    async def insert(self, table: Table, columns: Sequence[str], rows: list[Any]) -> None:
        self.conn.executemany(
            f"INSERT INTO {_quote(table.name)} ({', '.join(map(_quote, columns))}) "
            f"VALUES ({', '.join('?' for _ in columns)})",
            [tuple(r) for r in rows],
        )

    async def finish_write(self) -> None:
        self.conn.execute("COMMIT")

    async def rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


_PG_FLOAT = {"double precision", "real", "numeric"}
_PG_INT = {"integer", "bigint", "smallint"}


class PostgresSide:
    def __init__(self, url: str) -> None:
        self.url = url
        from gateway.store.postgres import redact

        self.label = redact(url)
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._tx: Any = None

    @property
    def conn(self) -> asyncpg.Connection[asyncpg.Record]:
        if self._conn is None:
            raise StoreUnavailable("not connected")
        return self._conn

    async def connect(self) -> None:
        from gateway.store.postgres import describe

        try:
            self._conn = await asyncpg.connect(self.url, timeout=10)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"{self.label}: {describe(exc)}") from None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def migrations(self) -> list[str]:
        rows = await self.conn.fetch("SELECT name FROM schema_migrations ORDER BY 1")
        return [r[0] for r in rows]

    async def tables(self) -> dict[str, Table]:
        rows = await self.conn.fetch(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_schema = c.table_schema "
            "AND t.table_name = c.table_name "
            "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
            "ORDER BY c.table_name, c.ordinal_position"
        )
        keys = await self.conn.fetch(
            "SELECT i.indrelid::regclass::text AS tbl, a.attname, "
            "array_position(i.indkey::int2[], a.attnum) AS pos FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "JOIN pg_class c ON c.oid = i.indrelid "
            "WHERE i.indisprimary AND c.relnamespace = current_schema()::regnamespace "
            "ORDER BY 1, 3"
        )
        columns: dict[str, list[str]] = {}
        types: dict[str, dict[str, str]] = {}
        for r in rows:
            columns.setdefault(r["table_name"], []).append(r["column_name"])
            types.setdefault(r["table_name"], {})[r["column_name"]] = str(r["data_type"]).lower()
        key: dict[str, list[str]] = {}
        for r in keys:
            key.setdefault(str(r["tbl"]).strip('"'), []).append(r["attname"])
        return {
            name: Table(name, tuple(cols), types[name], tuple(key.get(name, ())))
            for name, cols in columns.items()
        }

    async def depends_on(self) -> dict[str, set[str]]:
        deps: dict[str, set[str]] = {name: set() for name in await self.tables()}
        for r in await self.conn.fetch(
            "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent "
            "FROM pg_constraint WHERE contype = 'f' "
            "AND connamespace = current_schema()::regnamespace"
        ):
            child, parent = str(r["child"]).strip('"'), str(r["parent"]).strip('"')
            if child != parent:
                deps.setdefault(child, set()).add(parent)
        return deps

    async def count(self, table: str) -> int:
        return int(await self.conn.fetchval(f"SELECT count(*) FROM {_quote(table)}"))

    async def begin_snapshot(self) -> None:
        self._tx = self.conn.transaction(isolation="repeatable_read", readonly=True)
        await self._tx.start()

    async def rows(
        self, table: Table, columns: Sequence[str], batch: int
    ) -> AsyncIterator[list[Any]]:
        order = f" ORDER BY {', '.join(map(_quote, table.key))}" if table.key else ""
        sql = f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(table.name)}{order}"
        chunk: list[Any] = []
        async for record in self.conn.cursor(sql, prefetch=batch):
            chunk.append(tuple(record))
            if len(chunk) >= batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    async def begin_write(self) -> None:
        self._tx = self.conn.transaction()
        await self._tx.start()

    async def clear(self, tables: Sequence[str]) -> None:
        # TRUNCATE does not fire the row-level append-only triggers
        if tables:
            await self.conn.execute(
                f"TRUNCATE {', '.join(map(_quote, tables))} RESTART IDENTITY CASCADE"
            )

    async def insert(self, table: Table, columns: Sequence[str], rows: list[Any]) -> None:
        # COPY's binary format wants each value in the column's own Python type
        casts = [_caster(table.types.get(c, "")) for c in columns]
        records = [
            tuple(
                v if v is None or cast is None else cast(v)
                for v, cast in zip(r, casts, strict=True)
            )
            for r in rows
        ]
        await self.conn.copy_records_to_table(table.name, records=records, columns=list(columns))

    async def finish_write(self) -> None:
        # ids were copied as they were: move each serial column's sequence past them
        for r in await self.conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'"
        ):
            table, column = _quote(r["table_name"]), _quote(r["column_name"])
            await self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence($1, $2), "
                f"COALESCE((SELECT max({column}) FROM {table}), 0) + 1, false)",
                r["table_name"],
                r["column_name"],
            )
        await self._tx.commit()
        self._tx = None

    async def rollback(self) -> None:
        if self._tx is not None and self._conn is not None and not self._conn.is_closed():
            await self._tx.rollback()
            self._tx = None


def _caster(pg_type: str) -> Callable[[Any], Any] | None:
    if pg_type in _PG_FLOAT:
        return float
    if pg_type in _PG_INT:
        return int
    if pg_type == "text":
        return str
    return None


def side(url: str) -> Side:
    return SqliteSide(url) if url.startswith("sqlite:///") else PostgresSide(url)


# -- the copy ------------------------------------------------------------------------------------


def _ordered(names: Sequence[str], deps: dict[str, set[str]]) -> list[str]:
    """Parents before children (foreign keys), otherwise alphabetical."""
    done: list[str] = []
    pending = sorted(names)
    while pending:
        ready = [n for n in pending if not (deps.get(n, set()) & set(pending)) - {n}]
        if not ready:  # a cycle: keep the rest in name order
            ready = pending[:1]
        for name in ready:
            done.append(name)
            pending.remove(name)
    return done


async def copy_store(
    from_url: str,
    to_url: str,
    *,
    force: bool = False,
    batch_size: int = 5000,
    progress: bool = True,
    out: Callable[[str], None] = print,
) -> int:
    """Copy every table; 0 when every count matches, 1 when refused or a count differs."""
    for url, role in ((from_url, "source"), (to_url, "destination")):
        store = open_store(url)
        await store.open()  # the current schema on both ends
        if store.applied:
            out(f"{role}: applied migrations {', '.join(store.applied)}")
        await store.close()
    src, dst = side(from_url), side(to_url)
    await src.connect()
    try:
        await dst.connect()
        try:
            return await _copy(src, dst, force, batch_size, progress, out)
        finally:
            await dst.rollback()
            await dst.close()
    finally:
        await src.rollback()
        await src.close()


async def _copy(
    src: Side, dst: Side, force: bool, batch_size: int, progress: bool, out: Callable[[str], None]
) -> int:
    src_migrations, dst_migrations = await src.migrations(), await dst.migrations()
    if src_migrations != dst_migrations:
        out(
            f"refused: the schemas differ (source {src_migrations}, destination "
            f"{dst_migrations}); upgrade the older side with `tokuden migrate`"
        )
        return EXIT_REFUSED
    src_tables, dst_tables = await src.tables(), await dst.tables()
    names = sorted(set(src_tables) - SKIP_TABLES)
    missing = [n for n in names if n not in dst_tables]
    if missing:
        out(f"refused: the destination has no table {', '.join(missing)}")
        return EXIT_REFUSED
    columns: dict[str, tuple[str, ...]] = {}
    for name in names:
        extra = [c for c in src_tables[name].columns if c not in dst_tables[name].columns]
        if extra:
            out(f"refused: destination table {name} lacks column(s) {', '.join(extra)}")
            return EXIT_REFUSED
        columns[name] = src_tables[name].columns
    order = _ordered(names, await dst.depends_on())
    occupied = {
        name: n for name in sorted(set(dst_tables) - SKIP_TABLES) if (n := await dst.count(name))
    }
    if occupied and not force:
        listing = ", ".join(f"{name} ({n} rows)" for name, n in occupied.items())
        out(f"refused: the destination is not empty: {listing}; use --force to replace it")
        return EXIT_REFUSED

    await src.begin_snapshot()
    expected = {name: await src.count(name) for name in order}
    await dst.begin_write()
    if occupied:
        await dst.clear(sorted(set(dst_tables) - SKIP_TABLES))
    copied: dict[str, int] = dict.fromkeys(order, 0)
    bar = tqdm(
        total=sum(expected.values()), unit="rows", desc="copy", disable=not progress or None
    )
    try:
        for name in order:
            bar.set_description(name)
            async for chunk in src.rows(src_tables[name], columns[name], batch_size):
                await dst.insert(dst_tables[name], columns[name], chunk)
                copied[name] += len(chunk)
                bar.update(len(chunk))
    finally:
        bar.close()
    landed = {name: await dst.count(name) for name in order}  # before COMMIT

    rows = [
        [name, str(expected[name]), str(copied[name]), str(landed[name]),
         "ok" if expected[name] == copied[name] == landed[name] else "DIFFERS"]
        for name in order
    ]
    out(render(["table", "source", "copied", "destination", "check"], rows))
    bad = [r[0] for r in rows if r[4] != "ok"]
    if bad:
        await dst.rollback()
        out(f"counts differ for {', '.join(bad)}: nothing was committed to {dst.label}")
        return EXIT_REFUSED
    await dst.finish_write()
    out(f"copied {sum(copied.values())} rows from {src.label} to {dst.label}; every count matches")
    return EXIT_OK
