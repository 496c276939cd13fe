"""Versioned SQL migrations: one directory per backend, and common/ for SQL both accept.

The numbering is one sequence across the three directories.
"""

from __future__ import annotations

from importlib import resources

COMMON = "common"


def migrations(backend: str) -> list[tuple[str, str]]:
    """(name, sql) pairs for a backend, in order."""
    root = resources.files(__package__)
    found: dict[str, str] = {}
    for folder in (root.joinpath(backend), root.joinpath(COMMON)):
        for path in folder.iterdir():
            if not path.name.endswith(".sql"):
                continue
            name = path.name.removesuffix(".sql")
            if name in found:
                raise RuntimeError(f"migration {name} is both in {backend}/ and {COMMON}/")
            found[name] = path.read_text("utf-8")
    return sorted(found.items())
