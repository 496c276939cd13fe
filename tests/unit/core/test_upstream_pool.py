"""UpstreamPool's cap on open upstream connections, against a real aiosmtpd sink."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gateway.config import UpstreamConfig
from gateway.delivery.upstream import UpstreamLink, UpstreamPool
from gateway.errors import UpstreamBusy
from tests.support.sink import RecordingSink


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    server = RecordingSink().start()
    yield server
    server.stop()


def pool_for(sink: RecordingSink, **kw: object) -> UpstreamPool:
    cfg = UpstreamConfig(host="127.0.0.1", port=sink.port, connect_timeout=0.5, **kw)  # type: ignore[arg-type]
    return UpstreamPool(cfg, "gw.test")


async def transaction(link: UpstreamLink) -> None:
    assert (await link.mail("news@bounce.example.jp", [])).ok
    assert (await link.rcpt("taro@example.com", [])).ok


def test_waiters_are_served_in_order_and_the_cap_holds(sink: RecordingSink) -> None:
    async def scenario() -> None:
        pool = pool_for(sink, max_connections=2, pool_size=2)
        a, b = await pool.acquire(), await pool.acquire()
        await transaction(a)
        await transaction(b)
        first = asyncio.ensure_future(pool.acquire())
        second = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.05)
        assert not first.done() and not second.done() and pool.waiting == 2
        await pool.give_back(a)  # mid-transaction: RSET, then straight to the first waiter
        assert await first is a and not a.in_transaction
        assert not second.done()
        await pool.give_back(b)
        assert await second is b
        assert pool.in_use == 2 and sink.peak_open == 2
        await pool.give_back(a)
        await pool.give_back(b)
        assert pool.in_use == 0
        await pool.close()

    asyncio.run(scenario())
    assert sink.commands.count("RSET") == 2


def test_a_waiter_that_gives_up_or_is_cancelled_loses_no_slot(sink: RecordingSink) -> None:
    async def scenario() -> None:
        pool = pool_for(sink, max_connections=1)
        held = await pool.acquire()
        await transaction(held)
        with pytest.raises(UpstreamBusy, match="all 1 upstream connections"):
            await pool.acquire()  # connect_timeout 0.5 s
        cancelled = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.05)
        cancelled.cancel()
        await asyncio.sleep(0)
        await pool.give_back(held)
        # neither the timed-out nor the cancelled waiter kept the link: it is idle, and
        # the next acquire gets it at once
        again = await asyncio.wait_for(pool.acquire(), 0.1)
        assert again is held
        await transaction(again)
        await pool.give_back(again)
        await pool.close()

    asyncio.run(scenario())
    assert sink.peak_open == 1


def test_no_limit_when_zero(sink: RecordingSink) -> None:
    async def scenario() -> None:
        pool = pool_for(sink, max_connections=0)
        links = [await pool.acquire() for _ in range(5)]
        for link in links:
            await transaction(link)
        assert pool.in_use == 5
        for link in links:
            await pool.give_back(link)
        await pool.close()

    asyncio.run(scenario())
    assert sink.peak_open == 5
