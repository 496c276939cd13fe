"""The fuzz targets in the test run: every seed and past failure replayed, then a short fixed run.

Longer exploration is `make fuzz` (or `python -m tests.fuzz TARGET --seconds N`); an input it
finds failing goes into tests/fuzz/regressions/<target>/ and is replayed here from then on.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.__main__ import HERE, ROOT, SEEDS, seed_files
from tests.fuzz.targets import TARGETS

# Inputs per target in the fixed run: a few seconds each (the targets differ ~10x in speed).
RUNS = {"mime": 1500, "html": 3000, "insert": 1000, "dkim": 1500, "csv": 1500, "address": 20000,
        "config": 3000, "dmarc": 20000, "token": 20000, "headers": 10000, "mailto": 5000,
        "data": 1000, "dkim_verify": 3000}


def test_every_target_has_seeds_and_a_run_size() -> None:
    assert set(TARGETS) == set(SEEDS) == set(RUNS)
    for target in TARGETS:
        assert seed_files(target), f"{target} has no seed inputs"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds_and_past_failures_pass(target: str) -> None:
    check = TARGETS[target]
    for path in seed_files(target):
        check(path.read_bytes())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_a_fixed_fuzz_run_finds_nothing(target: str, tmp_path: Path) -> None:
    runs = RUNS[target]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz", target, "--runs", str(runs), "--seed", "1",
         "--work", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    crashes = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-"))]
    failure = proc.stderr.partition("=== Uncaught Python exception")[2]
    assert proc.returncode == 0 and not crashes, (failure or proc.stderr)[:4000]
    # libFuzzer ran them all, not stopped early (its final stats say how many it ran)
    executed = re.search(r"^stat::number_of_executed_units:\s*(\d+)", proc.stderr, re.M)
    assert executed and int(executed.group(1)) >= runs, proc.stderr[-3000:]


def test_the_dkim_verify_seeds_pass_so_the_target_reaches_the_verifier() -> None:
    from gateway.auth.dkim_sign import DkimVerifyStatus, verify_existing
    from tests.fuzz.targets import _LOOP, _PublishedKeys

    for path in sorted((HERE / "seeds" / "dkim_verify").iterdir()):  # not the regressions
        raw = path.read_bytes()
        results = _LOOP.run_until_complete(verify_existing(_PublishedKeys(), raw))  # type: ignore[arg-type]
        assert [r.status for r in results] == [DkimVerifyStatus.PASS], path.name
        tampered = raw.replace(b"\r\n\r\n", b"\r\n\r\nX", 1)
        results = _LOOP.run_until_complete(verify_existing(_PublishedKeys(), tampered))  # type: ignore[arg-type]
        assert [r.status for r in results] == [DkimVerifyStatus.FAIL], path.name
