"""A small asyncio SMTP client: fixed-rate latency runs and many concurrent sessions.

Each transaction is what smtp-source does: connect, banner, EHLO, MAIL, RCPT, DATA,
the message, QUIT. Its latency is timed from connect to the reply to the final dot.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import message
from bench.consent import recipient

_DOT_END = b"\r\n.\r\n"


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return line


async def _expect(reader: asyncio.StreamReader, code: bytes) -> None:
    line = await _reply(reader)
    if not line.startswith(code):
        raise RuntimeError(line.decode(errors="replace").strip())


def wire_message() -> bytes:
    raw = message.message()
    stuffed = raw.replace(b"\r\n.", b"\r\n..")
    return stuffed + (b".\r\n" if stuffed.endswith(b"\r\n") else _DOT_END)


async def session_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _expect(reader, b"220")
    writer.write(b"EHLO loadgen.bench.test\r\n")
    await _expect(reader, b"250")
    return reader, writer


async def transaction(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rcpt: str, data: bytes
) -> None:
    writer.write(f"MAIL FROM:<{message.ENVELOPE_FROM}>\r\n".encode())
    await _expect(reader, b"250")
    writer.write(f"RCPT TO:<{rcpt}>\r\n".encode())
    await _expect(reader, b"250")
    writer.write(b"DATA\r\n")
    await _expect(reader, b"354")
    writer.write(data)
    await _expect(reader, b"250")


async def one_message(port: int, rcpt: str, data: bytes) -> float:
    """Seconds from connect to the 250 after the final dot (QUIT not timed)."""
    started = time.perf_counter()
    reader, writer = await session_open(port)
    try:
        await transaction(reader, writer, rcpt, data)
        elapsed = time.perf_counter() - started
        writer.write(b"QUIT\r\n")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.read(), 5)
        return elapsed
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@dataclass
class LatencyResult:
    rate: float
    sent: int
    failed: int
    latencies_ms: list[float] = field(default_factory=list)
    achieved_rate: float = 0.0
    steal_ms: float = float("nan")  # the hypervisor ran other guests on our CPUs
    cpu_wait_ms: float = float("nan")  # runnable tasks waited for a CPU (PSI "some")

    def pct(self, p: int) -> float:
        if len(self.latencies_ms) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=100)[p - 1]


async def fixed_rate(
    port: int, rate: float, seconds: float, max_in_flight: int = 400
) -> LatencyResult:
    """Open loop: start a transaction every 1/rate s for `seconds`, time each one."""
    data = wire_message()
    count = max(1, int(rate * seconds))
    result = LatencyResult(rate=rate, sent=count, failed=0)
    in_flight = asyncio.Semaphore(max_in_flight)  # bounded, should the target stall
    loop = asyncio.get_running_loop()

    async def one(i: int) -> None:
        async with in_flight:
            try:
                latency = await asyncio.wait_for(one_message(port, recipient(i + 1), data), 60)
                result.latencies_ms.append(latency * 1000)
            except Exception:
                result.failed += 1

    tasks: list[asyncio.Task[None]] = []
    # The measuring client must not stall: its own full collections took 13-29 ms and
    # one in mid-window showed up as a 35 ms "latency" for every transaction in flight.
    gc.collect()
    gc.disable()
    try:
        t0 = loop.time()
        for i in range(count):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        result.achieved_rate = count / (loop.time() - t0)
    finally:
        gc.enable()
    return result


@dataclass
class SessionsResult:
    idle: int
    active: int
    messages: int
    failed: int
    opened: int


async def many_sessions(
    port: int, idle: int, active: int, seconds: float, sample: Callable[[], None], recipients: int
) -> SessionsResult:
    """`idle` sessions that said EHLO and wait, plus `active` ones sending for `seconds`."""
    data = wire_message()
    held: list[asyncio.StreamWriter] = []
    counts = {"messages": 0, "failed": 0}

    async def open_idle() -> None:
        try:
            _reader, writer = await session_open(port)
            held.append(writer)
        except Exception:
            counts["failed"] += 1

    async def worker(w: int) -> None:
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            try:
                reader, writer = await session_open(port)
            except Exception:
                counts["failed"] += 1
                await asyncio.sleep(0.1)
                continue
            try:
                while time.monotonic() < deadline:
                    rcpt = recipient((w * 997 + i) % recipients + 1)
                    await transaction(reader, writer, rcpt, data)
                    counts["messages"] += 1
                    i += 1
                    writer.write(b"RSET\r\n")
                    await _expect(reader, b"250")
            except Exception:
                counts["failed"] += 1
            finally:
                writer.close()

    async def sampler() -> None:
        while True:
            sample()
            await asyncio.sleep(0.2)

    sampling = asyncio.create_task(sampler())
    try:
        for start in range(0, idle, 50):  # open the idle ones in bursts of 50
            await asyncio.gather(*(open_idle() for _ in range(min(50, idle - start))))
        opened = len(held)
        await asyncio.gather(*(worker(w) for w in range(active)))
        sample()
    finally:
        sampling.cancel()
        for writer in held:
            writer.close()
    return SessionsResult(idle, active, counts["messages"], counts["failed"], opened)
