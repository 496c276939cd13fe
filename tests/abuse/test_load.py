"""Load and abuse: 500 concurrent sessions, slow clients, per-client limits, bounded memory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.client import RawSMTP, SmtpError, dot_stuff, send_message
from tests.faults.invariant import check_invariant, event_log, new_message
from tests.support.gateway import GatewayProcess
from tests.support.metrics import scrape
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e

StartGateway = Callable[..., GatewayProcess]
RSS_BOUND_MB = 400


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _expect(reply: tuple[int, str], code: int) -> None:
    assert reply[0] == code, reply[1]  # the whole reply: which 4xx, and why


def test_500_concurrent_sessions(
    config: dict[str, Any], start_gateway: StartGateway, sink: RecordingSink
) -> None:
    n = 500
    config["server"]["max_connections_per_ip"] = 0  # all 500 come from 127.0.0.1
    # 500 transactions open 500 upstream connections at once (lockstep), to a sink that
    # shares this process with the 500 clients: the shipped defaults' patience (30 s /
    # 10 s), not the 5 s / 2 s the fault tests use to see timeouts quickly. Under CPU
    # load the short ones gave "451 4.4.2 Upstream MTA timed out" at MAIL.
    config["upstream"].update(timeout=30, connect_timeout=10)
    # and all 500 hold their upstream connection at the barrier: none may wait for one
    config["upstream"]["max_connections"] = n
    gw = start_gateway(config)
    assert gw.proc is not None
    idle_rss, _ = rss_mb(gw.proc.pid)

    async def session(i: int, all_in: asyncio.Barrier) -> tuple[int | None, str]:
        client: RawSMTP | None = None
        step = "connect"
        try:
            client, code, _ = await RawSMTP.connect(gw.port, wait=60)
            step = "session"
            assert code == 220
            _expect(await client.cmd("EHLO load.test"), 250)
            _expect(await client.login(), 235)
            _expect(await client.cmd("MAIL FROM:<news@bounce.example.jp>"), 250)
            _expect(await client.cmd("RCPT TO:<taro@example.com>"), 250)
            step = "barrier"
            await all_in.wait()  # every session open, in a transaction, at the same time
            step = "data"
            assert (await client.cmd("DATA"))[0] == 354
            raw = new_message(f"c{i}")
            await client.send(dot_stuff(raw) + b".\r\n")
            code, text = await client.reply(wait=120)
            return code, text
        except asyncio.BrokenBarrierError:
            return None, "another session failed before DATA"
        except (OSError, SmtpError, TimeoutError, AssertionError) as exc:
            with contextlib.suppress(Exception):
                await all_in.abort()
            return None, f"{step}: {type(exc).__name__}: {exc}"
        finally:
            if client is not None:
                await client.close()

    async def scenario() -> tuple[list[tuple[int | None, str]], float, float]:
        all_in = asyncio.Barrier(n + 1)
        tasks = [asyncio.create_task(session(i, all_in)) for i in range(n)]
        with contextlib.suppress(asyncio.BrokenBarrierError):
            await asyncio.wait_for(all_in.wait(), 120)
        assert gw.proc is not None
        open_rss, _ = rss_mb(gw.proc.pid)
        started = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*tasks), 180)
        return results, open_rss, time.monotonic() - started

    results, open_rss, seconds = asyncio.run(scenario())
    current, peak = rss_mb(gw.proc.pid)
    codes = [code for code, _ in results]
    # the session that broke the barrier first: the others only say that one did
    why = sorted({r[1] for r in results if r[0] != 250},
                 key=lambda reason: reason.startswith("another session"))
    assert codes.count(250) == n, why[:5]
    assert len(sink.received) == n
    assert peak < RSS_BOUND_MB, peak
    print(f"FIGURE 500 sessions: RSS idle {idle_rss:.0f} MB, all open {open_rss:.0f} MB, "
          f"peak {peak:.0f} MB, after {current:.0f} MB; 500 DATA in {seconds:.1f}s")


async def _trickle(port: int, prefix: bytes, stop: asyncio.Event) -> float | None:
    """Send `prefix`, then one byte a second; seconds until the gateway closed (None: never)."""
    client, _, _ = await RawSMTP.connect(port)
    started = time.monotonic()
    try:
        client.writer.write(prefix)
        while not stop.is_set():
            try:
                client.writer.write(b"X")
                await client.writer.drain()
            except (ConnectionError, OSError):
                return time.monotonic() - started
            try:
                line = await asyncio.wait_for(client.reader.read(4096), 1.0)
            except TimeoutError:
                continue
            if not line:
                return time.monotonic() - started
        return None
    finally:
        client.writer.close()


def test_slowloris_hits_the_timeout_and_does_not_starve_others(
    config: dict[str, Any], start_gateway: StartGateway, sink: RecordingSink
) -> None:
    config["server"]["idle_timeout"] = 4
    gw = start_gateway(config)
    assert gw.proc is not None

    async def scenario() -> tuple[list[float | None], list[float]]:
        stop = asyncio.Event()
        # 40 trickle a command line, 10 trickle inside DATA (after a real MAIL/RCPT/DATA)
        slow = [asyncio.create_task(_trickle(gw.port, b"EHLO sl", stop)) for _ in range(40)]
        in_data: list[asyncio.Task[float | None]] = []
        for _ in range(10):
            client, _, _ = await RawSMTP.connect(gw.port)
            await client.cmd("EHLO slow.test")
            await client.login()
            await client.cmd("MAIL FROM:<news@bounce.example.jp>")
            await client.cmd("RCPT TO:<taro@example.com>")
            assert (await client.cmd("DATA"))[0] == 354

            async def dribble(c: RawSMTP = client) -> float | None:
                started = time.monotonic()
                while not stop.is_set():
                    try:
                        c.writer.write(b"Y")
                        await c.writer.drain()
                        got = await asyncio.wait_for(c.reader.read(4096), 1.0)
                    except TimeoutError:
                        continue
                    except (ConnectionError, OSError):
                        return time.monotonic() - started
                    if not got:
                        return time.monotonic() - started
                return None

            in_data.append(asyncio.create_task(dribble()))
        # meanwhile a normal client is served promptly, several times
        normal = []
        for i in range(3):
            o = await send_message(gw.port, new_message(f"normal{i}"), wait=10)
            assert o.accepted, o
            normal.append(o.seconds)
            await asyncio.sleep(0.5)
        results = await asyncio.wait_for(asyncio.gather(*slow, *in_data), 30)
        stop.set()
        return list(results), normal

    closed_after, normal = asyncio.run(scenario())
    assert all(t is not None for t in closed_after), closed_after
    assert max(t for t in closed_after if t is not None) < 4 + 3  # idle_timeout + slack
    assert max(normal) < 2.0, normal
    assert len(sink.received) == 3  # nothing of the trickled DATA went anywhere
    current, peak = rss_mb(gw.proc.pid)
    assert peak < RSS_BOUND_MB
    print(f"FIGURE slowloris: 50 tricklers closed after {min(t for t in closed_after if t):.1f}-"
          f"{max(t for t in closed_after if t):.1f}s (idle_timeout 4s); normal client "
          f"{max(normal) * 1000:.0f} ms max; RSS {current:.0f} MB")


REFUSED = 'tokuden_session_refusals_total{reason="%s"}'


def test_per_ip_connection_limits(config: dict[str, Any], start_gateway: StartGateway) -> None:
    config["server"].update(max_connections_per_ip=5, max_connections=8)
    gw = start_gateway(config)

    async def scenario() -> None:
        held = []
        for _ in range(5):
            c, code, _ = await RawSMTP.connect(gw.port)
            assert code == 220
            held.append(c)
        # the sixth from the same address: 421 4.7.0 and closed
        c, code, text = await RawSMTP.connect(gw.port)
        assert code == 421 and "4.7.0" in text, text
        assert await c.reader.read() == b""
        # another client address is not affected
        other, code, _ = await RawSMTP.connect(gw.port, source="127.0.0.2")
        assert code == 220
        assert (await other.cmd("NOOP"))[0] == 250
        held.append(other)
        # one leaves: the address may connect again
        await held.pop(0).close()
        await asyncio.sleep(0.2)
        again, code, _ = await RawSMTP.connect(gw.port)
        assert code == 220
        held.append(again)
        # the process-wide limit: 8 in all, from any address
        for source in ("127.0.0.3", "127.0.0.4"):
            c, code, _ = await RawSMTP.connect(gw.port, source=source)
            assert code == 220
            held.append(c)
        c, code, text = await RawSMTP.connect(gw.port, source="127.0.0.5")
        assert code == 421 and "4.3.2" in text, text
        for c in held:
            await c.close()

    asyncio.run(scenario())
    counted = scrape(gw.config)
    assert [counted.get(REFUSED % reason) for reason in
            ("max_connections_per_ip", "max_connections")] == [1.0, 1.0], counted


def test_per_ip_message_rate_limit(
    config: dict[str, Any], start_gateway: StartGateway, sink: RecordingSink
) -> None:
    config["server"]["max_messages_per_minute_per_ip"] = 3
    gw = start_gateway(config)

    async def scenario() -> list[Any]:
        first = [await send_message(gw.port, new_message(f"rate{i}")) for i in range(4)]
        other = await send_message(gw.port, new_message("rate-other"), source="127.0.0.2")
        return [*first, other]

    outcomes = asyncio.run(scenario())
    assert [o.accepted for o in outcomes[:3]] == [True, True, True]
    limited = outcomes[3]
    assert limited.phase == "mail" and limited.code == 451 and "4.7.1" in limited.reply, limited
    assert outcomes[4].accepted  # another address has its own budget
    check_invariant(outcomes, [r.data for r in sink.received], gw.config_path)
    assert len(sink.received) == 4 and sum(c.startswith("MAIL") for c in sink.commands) == 4


def test_upstream_connections_stay_under_the_cap(
    config: dict[str, Any], start_gateway: StartGateway, sink: RecordingSink
) -> None:
    """A burst of transactions shares max_connections upstream links instead of opening one
    each: the later ones wait for a link to come back, and every message arrives."""
    n, cap = 12, 3
    config["upstream"]["max_connections"] = cap
    sink.behaviour.data_delay = 0.3  # transactions overlap: the cap is really contended
    gw = start_gateway(config)

    async def scenario() -> list[Any]:
        return await asyncio.gather(
            *(send_message(gw.port, new_message(f"cap{i}"), wait=30) for i in range(n))
        )

    outcomes = asyncio.run(scenario())
    assert all(o.accepted for o in outcomes), [o for o in outcomes if not o.accepted]
    assert sink.peak_open == cap, sink.peak_open  # contended up to the cap, never beyond
    assert len(sink.received) == n
    check_invariant(outcomes, [r.data for r in sink.received], gw.config_path)


def test_no_free_upstream_connection_in_time_gives_451_445(
    config: dict[str, Any], start_gateway: StartGateway, sink: RecordingSink
) -> None:
    config["upstream"].update(max_connections=1, connect_timeout=1)
    gw = start_gateway(config)

    async def scenario() -> None:
        holder, _, _ = await RawSMTP.connect(gw.port)
        waiter, _, _ = await RawSMTP.connect(gw.port)
        for c in (holder, waiter):
            _expect(await c.cmd("EHLO client.test"), 250)
            _expect(await c.login(), 235)
        _expect(await holder.cmd("MAIL FROM:<news@bounce.example.jp>"), 250)
        _expect(await holder.cmd("RCPT TO:<taro@example.com>"), 250)
        # the one link is in the holder's transaction: the waiter gives up after 1 s
        started = time.monotonic()
        code, text = await waiter.cmd("MAIL FROM:<news@bounce.example.jp>")
        assert code == 451 and text.startswith("451 4.4.5 "), text
        assert time.monotonic() - started >= 0.9
        _expect(await holder.cmd("DATA"), 354)
        await holder.send(dot_stuff(new_message("holder")) + b".\r\n")
        _expect(await holder.reply(), 250)
        # the holder stays connected, idle between transactions: it holds no link now
        _expect(await waiter.cmd("MAIL FROM:<news@bounce.example.jp>"), 250)
        _expect(await waiter.cmd("RCPT TO:<taro@example.com>"), 250)
        _expect(await waiter.cmd("DATA"), 354)
        await waiter.send(dot_stuff(new_message("waiter")) + b".\r\n")
        _expect(await waiter.reply(), 250)
        for c in (holder, waiter):
            await c.close()

    asyncio.run(scenario())
    assert len(sink.received) == 2
    assert sink.peak_open == 1
    # the refusal is a decision like any other: in the event log, saying why
    busy = [e for e in event_log(gw.config_path) if "4.4.5" in str(e.get("reply"))]
    assert len(busy) == 1, busy
    assert busy[0]["verdict"] == "tempfailed" and busy[0]["phase"] == "mail", busy[0]
    assert "upstream connections" in str(busy[0]["upstream_reply"]), busy[0]
