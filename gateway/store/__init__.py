"""Stores: one async interface, SQLite (embedded default) and PostgreSQL backends."""

from __future__ import annotations

from gateway.store.base import EventFilter, Store


def open_store(url: str, *, commit_interval: float = 0.002, commit_max_batch: int = 512) -> Store:
    """Pick the backend from the URL scheme; backends are imported lazily."""
    if url.startswith("sqlite:///"):
        from gateway.store.sqlite import SqliteStore

        return SqliteStore(
            url.removeprefix("sqlite:///"),
            commit_interval=commit_interval,
            commit_max_batch=commit_max_batch,
        )
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import PostgresStore

        return PostgresStore(
            url, commit_interval=commit_interval, commit_max_batch=commit_max_batch
        )
    raise ValueError(f"unsupported store URL {url!r}")


__all__ = ["EventFilter", "Store", "open_store"]
