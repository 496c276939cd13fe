"""`log prune` as a real process on a real SQLite store: what goes, what stays, the audit."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.store import open_store
from tests.integration.store.factories import T0, event
from tests.support import toml
from tests.support.gateway import ROOT, base_config, cli, send_marketing
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e

CUTOFF = datetime.fromtimestamp(T0 + 30).astimezone().isoformat(timespec="seconds")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose store holds 50 events, created at T0+1 .. T0+50."""
    cfg = base_config(tmp_path, 2526)
    path = tmp_path / "gateway.toml"
    path.write_text(toml.dumps(cfg), encoding="utf-8")

    async def seed() -> None:
        store = open_store(cfg["store"]["url"])
        await store.open()
        try:
            await asyncio.gather(*(store.record_event(event(n)) for n in range(1, 51)))
        finally:
            await store.close()

    asyncio.run(seed())
    return path


def _events(config: Path) -> list[str]:
    done = cli("log", "--json", "--limit", "1000", config=config)
    assert done.returncode == 0, done.stderr
    return sorted(json.loads(line)["event_id"] for line in done.stdout.splitlines())


def _audit(config: Path) -> list[dict[str, object]]:
    url = tomllib.loads(config.read_text())["store"]["url"]

    async def read() -> list[dict[str, object]]:
        store = open_store(url)
        await store.open()
        try:
            return await store.fetch("SELECT actor, action, subject, reason FROM audit_log")
        finally:
            await store.close()

    return asyncio.run(read())


def test_dry_run_counts_and_deletes_nothing(config: Path) -> None:
    done = cli("log", "prune", "--before", CUTOFF, "--dry-run", "--json", config=config)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"before": CUTOFF, "dry_run": True, "matched": 29,
                                       "deleted": 0}
    assert len(_events(config)) == 50
    assert _audit(config) == []
    text = cli("log", "prune", "--before", CUTOFF, "--dry-run", config=config)
    assert text.stdout.strip() == f"would delete 29 events created before {CUTOFF}"


def test_prune_deletes_the_older_events_and_audits_it(config: Path) -> None:
    done = cli("log", "prune", "--before", CUTOFF, "--batch", "7", "--by", "sato",
               "--reason", "90-day policy", config=config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"deleted 29 events created before {CUTOFF}"
    assert _events(config) == [f"e{n:06d}" for n in range(30, 51)]  # T0+30 itself stays
    assert _audit(config) == [{"actor": "sato", "action": "events.prune",
                               "subject": f"29 events created before {CUTOFF}",
                               "reason": "90-day policy"}]
    again = cli("log", "prune", "--before", CUTOFF, "--json", config=config)
    assert json.loads(again.stdout)["deleted"] == 0
    assert len(_audit(config)) == 1  # nothing deleted: nothing to audit


def test_options_before_the_subcommand_are_the_ones_used(config: Path) -> None:
    # argparse copies a subcommand's defaults over its parent's values: --config, --by,
    # --reason and --json given to `log` must still count for prune.
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "log", "--config", str(config), "--by", "ito",
         "--reason", "policy", "--json", "prune", "--before", CUTOFF],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deleted"] == 29
    [entry] = _audit(config)
    assert (entry["actor"], entry["reason"]) == ("ito", "policy")


@pytest.mark.parametrize(("when", "problem"), [
    ("2999-01-01", "is in the future"),
    ("yesterday", "argument --before: 'yesterday' is neither like 1h"),
])
def test_a_bad_cutoff_exits_2_and_deletes_nothing(config: Path, when: str, problem: str) -> None:
    done = cli("log", "prune", "--before", when, config=config)
    assert done.returncode == 2
    assert problem in done.stderr
    assert "Traceback" not in done.stderr
    assert len(_events(config)) == 50


def test_the_cutoff_is_required() -> None:
    done = cli("log", "prune")
    assert done.returncode == 2
    assert "the following arguments are required: --before" in done.stderr


def test_reading_the_log_still_works_without_an_action(config: Path) -> None:
    done = cli("log", "--limit", "3", config=config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split()[:3] == ["time", "verdict", "phase"]
    assert done.stdout.count("u***@example.com") == 3  # masked; newest first
    assert "user50@example.com" not in done.stdout


def test_the_log_masks_recipients_unless_revealed_with_a_reason(config: Path) -> None:
    masked = [json.loads(x) for x in cli("log", "--json", "--limit", "2", "--verdict", "accepted",
                                          config=config).stdout.splitlines()]
    assert [(r["recipient"], r["masked"]) for r in masked] == [("u***@example.com", True)] * 2
    assert _audit(config) == []  # a masked look is no look at personal data
    refused = cli("log", "--reveal", config=config)
    assert refused.returncode == 2 and "--reveal needs --reason" in refused.stderr
    shown = cli("log", "--json", "--limit", "2", "--verdict", "accepted", "--reveal",
                "--reason", "ticket 42", "--by", "dpo", config=config)
    assert [json.loads(x)["recipient"] for x in shown.stdout.splitlines()] == [
        "user50@example.com", "user49@example.com"]
    assert _audit(config) == [{"actor": "dpo", "action": "events.reveal",
                               "subject": "events verdict=accepted", "reason": "ticket 42"}]


def test_the_gateway_keeps_accepting_mail_while_a_prune_runs(
    config: Path, start_gateway: Any, sink: RecordingSink, tmp_path: Path
) -> None:
    cfg = tomllib.loads(config.read_text())
    cfg["upstream"]["port"] = sink.port

    async def seed() -> None:  # 20,000 more old events: a prune of many batches
        store = open_store(cfg["store"]["url"])
        await store.open()
        try:
            for start in range(1_000, 21_000, 2_000):
                await asyncio.gather(*(store.record_event(event(n, created_at=T0 + 1))
                                       for n in range(start, start + 2_000)))
        finally:
            await store.close()

    asyncio.run(seed())
    gw = start_gateway(cfg)
    prune = subprocess.Popen(
        [sys.executable, "-m", "gateway", "log", "prune", "--before", CUTOFF, "--batch", "100",
         "--json", "--config", str(gw.config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    codes = []
    while prune.poll() is None:
        codes.append(send_marketing(gw, "taro@example.com")[0])
    out, err = prune.communicate(timeout=60)
    assert prune.returncode == 0, err
    assert json.loads(out)["deleted"] == 20_029
    assert len(codes) >= 3, "the prune ended before mail could overlap it"
    assert codes == [250] * len(codes)
    assert len(sink.received) == len(codes)  # a 250 only once the upstream took it
    accepted = cli("log", "--json", "--limit", "1000", "--since", "1h", config=gw.config_path)
    rows = [json.loads(line) for line in accepted.stdout.splitlines()]
    assert [r["verdict"] for r in rows] == ["accepted"] * len(codes)
    assert len(_events(gw.config_path)) == 21 + len(codes)  # T0+30..T0+50, and the new mail


def test_an_interrupted_prune_audits_what_it_deleted(config: Path) -> None:
    cfg = tomllib.loads(config.read_text())

    async def seed() -> None:
        store = open_store(cfg["store"]["url"])
        await store.open()
        try:
            await asyncio.gather(*(store.record_event(event(n, created_at=T0 + 1))
                                   for n in range(1_000, 6_000)))
        finally:
            await store.close()

    asyncio.run(seed())
    prune = subprocess.Popen(  # 5,029 events, 1 a transaction: seconds of work
        [sys.executable, "-m", "gateway", "log", "prune", "--before", CUTOFF, "--batch", "1",
         "--by", "ops", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while len(_audit(config)) == 0 and _remaining(config) == 5_029:
        assert time.monotonic() < deadline, "the prune deleted nothing"
        time.sleep(0.05)
    prune.send_signal(signal.SIGINT)
    _out, err = prune.communicate(timeout=30)
    assert prune.returncode == 130, err
    assert "tokuden: interrupted" in err and "Traceback" not in err
    gone = 5_029 - _remaining(config)
    assert 0 < gone < 5_029, "the prune finished before the interrupt: nothing was tested"
    assert _audit(config) == [{"actor": "ops", "action": "events.prune",
                               "subject": f"{gone} events created before {CUTOFF}", "reason": ""}]


def _remaining(config: Path) -> int:
    done = cli("log", "prune", "--before", CUTOFF, "--dry-run", "--json", config=config)
    return int(json.loads(done.stdout)["matched"])
