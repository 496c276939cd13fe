"""Versioned SQL migrations, one directory per backend, the same numbering in both."""

from __future__ import annotations

from importlib import resources


def migrations(backend: str) -> list[tuple[str, str]]:
    """(name, sql) pairs for a backend, in order."""
    folder = resources.files(__package__).joinpath(backend)
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), folder.joinpath(name).read_text("utf-8")) for name in names]
