"""Benchmark knobs, from environment variables (so `make bench` takes them as they are)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ALL_LINES = ("ceiling", "peer", "w2", "nocache", "w1", "dual", "pg")


# The knobs, for `python -m bench --help` and README: name -> what it sets.
KNOBS = {
    "BENCH_QUICK": "1: a short run (fewer rows, records and messages) to try the set-up",
    "BENCH_LINES": f"comma-separated lines to run; ceiling and w2 are required "
                   f"(known: {' '.join(ALL_LINES)})",
    "BENCH_ROUNDS": "interleaved rounds (default 3)",
    "BENCH_RUN_SECONDS": "seconds each load run is sized to last (default 8, quick 3)",
    "BENCH_MIN_MESSAGES": "fewest messages per run (default 400, quick 150)",
    "BENCH_MAX_MESSAGES": "most messages per run (default 5000, quick 2000)",
    "BENCH_IMPORT_ROWS": "rows of the consent import (default 1,000,000)",
    "BENCH_LOOKUP_RECORDS": "records in the lookup store (default 10,000,000)",
    "BENCH_LOOKUPS": "timed consent lookups (default 20,000)",
    "BENCH_LATENCY_SECONDS": "length of each latency window (default 10)",
    "BENCH_IDLE_SESSIONS": "idle sessions of the memory test (default 400)",
    "BENCH_ACTIVE_SESSIONS": "active sessions of the memory test (default 100)",
    "BENCH_MEMORY_SECONDS": "length of the memory test (default 10)",
    "BENCH_PROFILE_SECONDS": "length of the py-spy profile (default 10)",
    "BENCH_NATIVE": "1: py-spy with native frames (pauses the gateway while sampling)",
    "BENCH_KEEP": "1: keep the work folder under /tmp",
    "BENCH_OUTPUT": "where the results go (default bench/RESULTS.md)",
}


def _number(name: str, default: float, kind: type[int] | type[float]) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = kind(value.replace(",", "").replace("_", ""))
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SystemExit(f"bench: {name}={value!r} is not {what}") from None
    if number <= 0:
        raise SystemExit(f"bench: {name}={value!r} must be greater than 0")
    return number


def _int(name: str, default: int) -> int:
    return int(_number(name, default, int))


def _float(name: str, default: float) -> float:
    return _number(name, default, float)


@dataclass(frozen=True)
class Settings:
    quick: bool
    rounds: int
    sessions: tuple[int, ...]
    run_seconds: float  # each load run is sized to last about this long
    min_messages: int
    max_messages: int
    import_rows: int
    lookup_records: int
    lookups: int
    latency_seconds: float
    idle_sessions: int
    active_sessions: int
    memory_seconds: float
    profile_seconds: float
    native: bool
    lines: tuple[str, ...]
    output: Path

    @classmethod
    def from_env(cls) -> Settings:
        quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        lines = tuple(
            x.strip() for x in os.environ.get("BENCH_LINES", ",".join(ALL_LINES)).split(",")
            if x.strip()
        )
        unknown = [x for x in lines if x not in ALL_LINES]
        if unknown or "ceiling" not in lines or "w2" not in lines:
            raise SystemExit(
                f"bench: BENCH_LINES: ceiling and w2 are required; known: {', '.join(ALL_LINES)}"
            )
        root = Path(__file__).resolve().parent
        return cls(
            quick=quick,
            rounds=_int("BENCH_ROUNDS", 3),
            sessions=(20, 100),
            run_seconds=_float("BENCH_RUN_SECONDS", 3.0 if quick else 8.0),
            min_messages=_int("BENCH_MIN_MESSAGES", 150 if quick else 400),
            max_messages=_int("BENCH_MAX_MESSAGES", 2000 if quick else 5000),
            import_rows=_int("BENCH_IMPORT_ROWS", 100_000 if quick else 1_000_000),
            lookup_records=_int("BENCH_LOOKUP_RECORDS", 1_000_000 if quick else 10_000_000),
            lookups=_int("BENCH_LOOKUPS", 20_000),
            latency_seconds=_float("BENCH_LATENCY_SECONDS", 4.0 if quick else 10.0),
            idle_sessions=_int("BENCH_IDLE_SESSIONS", 400),
            active_sessions=_int("BENCH_ACTIVE_SESSIONS", 100),
            memory_seconds=_float("BENCH_MEMORY_SECONDS", 5.0 if quick else 10.0),
            profile_seconds=_float("BENCH_PROFILE_SECONDS", 5.0 if quick else 10.0),
            native=os.environ.get("BENCH_NATIVE", "0") not in ("", "0"),
            lines=lines,
            output=Path(os.environ.get("BENCH_OUTPUT", str(root / "RESULTS.md"))),
        )
