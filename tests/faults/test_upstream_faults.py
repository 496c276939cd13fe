"""Upstream faults: killed inside DATA, slower than its timeout, 421/4xx to everything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.client import Outcome, send_message
from tests.faults.invariant import check_invariant, keep_sending, new_message, wait_recovered
from tests.faults.upstreams import PostfixSink, SinkProcess
from tests.support.gateway import GatewayProcess, base_config, free_port
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e

StartGateway = Callable[..., GatewayProcess]


def test_upstream_killed_in_the_middle_of_data(
    tmp_path: Path, start_gateway: StartGateway
) -> None:
    port = free_port()
    spool = tmp_path / "upstream"
    # The sink holds every message 0.8 s between the final dot and its reply: a kill then
    # catches sessions inside DATA, with the whole message sent and no answer yet.
    first = SinkProcess(spool, port, data_delay=0.8).start()
    second = SinkProcess(spool, port, data_delay=0.8)
    try:
        cfg = base_config(tmp_path, port)
        gw = start_gateway(cfg)

        async def scenario() -> tuple[list[Outcome], float]:
            outcomes: list[Outcome] = []
            stop = asyncio.Event()
            loops = [asyncio.create_task(keep_sending(gw.port, stop, outcomes, tag=f"kill{i}"))
                     for i in range(6)]
            await asyncio.sleep(2.5)
            first.kill()
            await asyncio.sleep(1.5)  # no upstream at all for a while
            second.start()
            await asyncio.sleep(2.5)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*loops), 30)
            recovered, ok = await wait_recovered(gw.port, within=15)
            return [*outcomes, ok], recovered

        outcomes, recovered = asyncio.run(scenario())
        tally = check_invariant(outcomes, second.messages(), gw.config_path)
        cut = [o for o in outcomes if o.phase == "data" and o.code == 451 and "4.4.1" in o.reply]
        assert cut, f"no session was cut inside DATA: {tally}"
        assert tally.accepted >= 6 and tally.permanent == 0, tally
        assert recovered < 5
        print(f"FIGURE upstream killed in DATA: {tally}; recovered in {recovered:.2f}s")
    finally:
        first.kill()
        second.kill()


def test_upstream_slower_than_its_timeout(
    config: dict[str, object], start_gateway: StartGateway, sink: RecordingSink
) -> None:
    config["upstream"] = {**config["upstream"], "timeout": 1}  # type: ignore[dict-item]
    gw = start_gateway(config)
    sink.behaviour.data_delay = 4.0

    async def scenario() -> tuple[list[Outcome], float]:
        outcomes = list(await asyncio.gather(
            *(send_message(gw.port, new_message(f"slow{i}")) for i in range(4))
        ))
        sink.behaviour.data_delay = 0.0
        recovered, ok = await wait_recovered(gw.port, within=10)
        return [*outcomes, ok], recovered

    outcomes, recovered = asyncio.run(scenario())
    slow = outcomes[:-1]
    for o in slow:
        assert o.code == 451 and "4.4.2" in o.reply and o.phase == "data", o
        assert o.seconds < 1 + 3, o  # the upstream's timeout, not the sink's 4 s
    time.sleep(4.5)  # past the sink's delay: a late answer must not add a delivery
    tally = check_invariant(outcomes, [r.data for r in sink.received], gw.config_path)
    assert tally.accepted == 1 and len(sink.received) == 1
    assert recovered < 5
    print(f"FIGURE slow upstream: 451 4.4.2 after {max(o.seconds for o in slow):.2f}s; {tally}")


# (smtp-sink options, what the client must see): 421 is the upstream closing *its*
# connection, so the client gets 451 4.4.1; other 4xx are relayed as the upstream said them.
POSTFIX_MODES: list[tuple[list[str], str]] = [
    (["-Q", "CONNECT"], "451 4.4.1"),
    (["-r", "CONNECT"], "451 4.4.1"),
    (["-Q", "MAIL"], "451 4.4.1"),
    (["-r", "MAIL"], "4"),
    (["-r", "RCPT"], "4"),
    (["-Q", "DATA"], "451 4.4.1"),
    (["-r", "."], "4"),
    (["-Q", "."], "451 4.4.1"),
]


def test_upstream_answering_421_or_4xx_to_everything(
    tmp_path: Path, start_gateway: StartGateway
) -> None:
    port = free_port()
    gw = start_gateway(base_config(tmp_path, port))
    outcomes: list[Outcome] = []
    for options, expected in POSTFIX_MODES:
        upstream = PostfixSink(port, options).start()
        try:
            async def burst(tag: str) -> list[Outcome]:
                return list(await asyncio.gather(
                    *(send_message(gw.port, new_message(tag)) for _ in range(3))
                ))

            seen = asyncio.run(burst("pf" + "".join(options).strip("-.") or "dot"))
        finally:
            upstream.kill()
        for o in seen:
            assert o.code is not None and 400 <= o.code < 500, (options, o)
            assert o.reply.startswith(expected), (options, o)
        outcomes += seen
    recovery = RecordingSink().start(port)
    try:
        recovered, ok = asyncio.run(wait_recovered(gw.port, within=10))
        tally = check_invariant([*outcomes, ok], [r.data for r in recovery.received],
                                gw.config_path)
    finally:
        recovery.stop()
    assert tally.temporary == len(outcomes) and tally.accepted == 1
    assert recovered < 5
    print(f"FIGURE upstream 421/4xx: {tally}; recovered in {recovered:.2f}s")
