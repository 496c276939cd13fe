"""/metrics of a real gateway process moves with real traffic (not only when called)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.client import send_message
from tests.faults.invariant import new_message
from tests.support.gateway import GatewayProcess
from tests.support.metrics import LINKS, scrape, settled
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e


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
