"""Seed consent records through the real CLI (import, then a second person approves)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from tests.support.gateway import cli


def import_rows(config: Path, sender: str, rows: list[dict[str, str]], *, by: str = "importer",
                name: str = "seed.csv") -> tuple[int, str, str]:
    buf = io.StringIO()
    columns = ["email", "status", "method", "consented_at", "topic", "source_system", "source_ref"]
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({"consented_at": "2026-01-10T10:00:00+09:00", **row})
    path = config.parent / name
    path.write_text(buf.getvalue(), encoding="utf-8")
    result = cli("consent", "import", "--sender", sender, str(path), "--by", by, config=config)
    match = re.search(r"batch (\S+):", result.stdout)
    return result.returncode, match.group(1) if match else "", result.stdout + result.stderr


def grant(config: Path, sender: str, *addresses: str, topic: str = "") -> None:
    rows = [{"email": a, "status": "opted_in", "method": "double_opt_in", "topic": topic} for a in addresses]
    code, batch, output = import_rows(config, sender, rows)
    assert code == 0, output
    if "wait for approval" in output:
        approved = cli("consent", "approve", batch, "--by", "approver", config=config)
        assert approved.returncode == 0, approved.stderr


def opt_out(config: Path, sender: str, *addresses: str, topic: str = "") -> None:
    rows = [{"email": a, "status": "opted_out", "method": "manual", "topic": topic} for a in addresses]
    code, _, output = import_rows(config, sender, rows, name="optout.csv")
    assert code == 0, output


def grant_in_process(config: Path, sender: str, *addresses: str) -> None:
    """Fast seeding for tests that are not about consent: the store API, in this process."""
    import asyncio
    from datetime import UTC, datetime

    from gateway import config as config_mod
    from gateway.consent.address import normalize_address, suppression_key
    from gateway.consent.model import ConsentEvent, ConsentMethod, ConsentStatus
    from gateway.store import open_store

    cfg = config_mod.load(config)

    async def run() -> None:
        store = open_store(cfg.store.url)
        await store.open()
        try:
            for address in addresses:
                key = suppression_key(normalize_address(address))
                event = ConsentEvent(
                    sender_id=sender, address_key=key, status=ConsentStatus.OPTED_IN,
                    method=ConsentMethod.DOUBLE_OPT_IN, occurred_at=datetime(2026, 1, 10, tzinfo=UTC),
                    source_system="tests", recorded_by="tests",
                )
                await store.append_consent(event, address)
        finally:
            await store.close()

    asyncio.run(run())
