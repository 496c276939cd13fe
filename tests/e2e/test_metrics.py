"""/metrics of a real gateway process moves with real traffic (not only when called)."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.client import send_message
from tests.faults.invariant import new_message
from tests.support.gateway import GatewayProcess
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e


def scrape(cfg: dict[str, Any]) -> dict[str, float]:
    url = f"http://{cfg['http']['listen']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(tokuden_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values


LINKS = 'tokuden_upstream_connections{state="%s"}'


def settled(cfg: dict[str, Any], timeout: float = 5.0) -> dict[str, float]:
    """A scrape once no upstream link is in use: the gateway gives a session's link back
    when it has processed the session's end, which may come just after the client's QUIT."""
    deadline = time.monotonic() + timeout
    while True:
        values = scrape(cfg)
        if values.get(LINKS % "in_use") == 0 or time.monotonic() > deadline:
            return values
        time.sleep(0.05)


def test_upstream_dns_and_store_counters_follow_the_traffic(
    config: dict[str, Any], start_gateway: Callable[..., GatewayProcess], sink: RecordingSink
) -> None:
    config["upstream"]["timeout"] = 1
    sink.behaviour.rcpt_replies["hanako@example.com"] = "550 5.1.1 No such user"
    gw = start_gateway(config)
    before = scrape(config)

    async def scenario() -> tuple[list[Any], dict[str, float]]:
        ok = await send_message(gw.port, new_message("m-ok"))
        refused = await send_message(gw.port, new_message("m-550"), rcpt="hanako@example.com")
        between = await asyncio.to_thread(settled, config)
        sink.behaviour.data_delay = 2.5  # past upstream.timeout
        slow = await send_message(gw.port, new_message("m-slow"))
        return [ok, refused, slow], between

    (ok, refused, slow), between = asyncio.run(scenario())
    assert ok.accepted, ok
    assert refused.code == 550 and "5.1.1" in refused.reply, refused
    assert slow.code == 451 and "4.4.2" in slow.reply, slow
    after = settled(config)

    def grew(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert grew('tokuden_upstream_errors_total{kind="5xx"}') == 1
    assert grew('tokuden_upstream_errors_total{kind="timeout"}') == 1
    # SPF/DMARC/DKIM alignment is answered from the DNS cache the start-up warmed
    assert grew("tokuden_dns_cache_hits_total") > 0
    # three events (accepted, refused recipient, tempfailed DATA) were committed
    assert grew("tokuden_store_commits_total") >= 3
    assert grew("tokuden_store_commit_seconds_total") > 0
    # after the first two sessions their one upstream link sits in the pool; the third
    # took it and, timed out, dropped it: none is kept then
    assert [between[LINKS % s] for s in ("in_use", "idle", "waiting")] == [0, 1, 0]
    assert [after[LINKS % s] for s in ("in_use", "idle", "waiting")] == [0, 0, 0]
