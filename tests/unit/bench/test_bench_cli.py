"""`python -m bench` answers --help and bad knobs at once, before it starts anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.settings import KNOBS

ROOT = Path(__file__).resolve().parents[3]


def _bench(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60, env={**clean, **env})


def test_help_lists_every_knob_and_runs_nothing() -> None:
    done = _bench("--help")
    assert done.returncode == 0, done.stderr
    for name in KNOBS:
        assert name in done.stdout
    assert "tokuden bench" not in done.stdout + done.stderr  # the run's first line


def test_an_unknown_argument_is_refused() -> None:
    done = _bench("--rounds", "5")
    assert done.returncode == 2
    assert "unrecognized arguments: --rounds 5" in done.stderr


@pytest.mark.parametrize(("knob", "value", "problem"), [
    ("BENCH_ROUNDS", "abc", "is not a whole number"),
    ("BENCH_ROUNDS", "1.5", "is not a whole number"),
    ("BENCH_ROUNDS", "0", "must be greater than 0"),
    ("BENCH_ROUNDS", "-3", "must be greater than 0"),
    ("BENCH_RUN_SECONDS", "soon", "is not a number"),
])
def test_a_bad_number_names_the_knob(knob: str, value: str, problem: str) -> None:
    done = _bench(**{knob: value})
    assert done.returncode == 1
    assert f"{knob}={value!r} {problem}" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unknown_line_is_refused() -> None:
    done = _bench(BENCH_LINES="ceiling,w2,w9")
    assert done.returncode == 1
    assert "known: ceiling, peer, w2" in done.stderr
