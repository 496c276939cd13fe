"""A small asyncio SMTP client for fault, load and abuse tests: every step bounded by a timeout.

smtplib blocks a thread per session and hides what the server said when a connection
drops; this client keeps the raw replies, supports hundreds of sessions in one loop,
binding to another loopback source address (127.0.0.x), and pipelined writes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass

from tests.support.gateway import PASSWORD


@dataclass
class Outcome:
    """What the client saw for one message: the reply that ended it (code None: no reply)."""

    message_id: str
    code: int | None
    reply: str
    phase: str  # connect | ehlo | auth | mail | rcpt | data | done
    seconds: float = 0.0

    @property
    def accepted(self) -> bool:
        return self.code == 250 and self.phase == "done"


class SmtpError(Exception):
    pass


class RawSMTP:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout

    @classmethod
    async def connect(cls, port: int, *, host: str = "127.0.0.1", wait: float = 10.0,
                      source: str | None = None) -> tuple[RawSMTP, int, str]:
        local = (source, 0) if source else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=local, limit=1 << 20), wait
        )
        client = cls(reader, writer, wait)
        code, text = await client.reply()
        return client, code, text

    async def reply(self, wait: float | None = None) -> tuple[int, str]:
        """One (possibly multi-line) reply; raises SmtpError on EOF."""
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), wait or self.timeout)
            if not raw:
                raise SmtpError("connection closed" + (f" after {lines!r}" if lines else ""))
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        code = int(lines[-1][:3]) if lines[-1][:3].isdigit() else 0
        return code, "\n".join(lines)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), self.timeout)

    async def cmd(self, line: str | bytes, wait: float | None = None) -> tuple[int, str]:
        data = line.encode() if isinstance(line, str) else line
        await self.send(data + b"\r\n")
        return await self.reply(wait)

    async def login(self, user: str = "ma-tool", password: str = PASSWORD) -> tuple[int, str]:
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return await self.cmd(f"AUTH PLAIN {blob}")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.write(b"QUIT\r\n")
            await asyncio.wait_for(self.writer.drain(), 1)
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


def dot_stuff(raw: bytes) -> bytes:
    body = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
    lines = body.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


def message_id_of(raw: bytes) -> str:
    """The Message-ID header's value without angle brackets ("" if none)."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().strip(b"<>").decode("ascii", "replace")
    return ""


async def send_message(
    port: int,
    raw: bytes,
    *,
    mail_from: str = "news@bounce.example.jp",
    rcpt: str = "taro@example.com",
    user: str | None = "ma-tool",
    wait: float = 20.0,
    source: str | None = None,
) -> Outcome:
    """One session, one message; never raises: a dropped connection is an Outcome with code None."""
    started = time.monotonic()
    msg_id = message_id_of(raw)
    phase = "connect"
    client: RawSMTP | None = None

    def out(code: int | None, text: str, ph: str) -> Outcome:
        return Outcome(msg_id, code, text, ph, time.monotonic() - started)

    try:
        client, code, text = await RawSMTP.connect(port, wait=wait, source=source)
        if code != 220:
            return out(code, text, phase)
        phase = "ehlo"
        code, text = await client.cmd("EHLO client.test")
        if code != 250:
            return out(code, text, phase)
        if user is not None:
            phase = "auth"
            code, text = await client.login(user)
            if code != 235:
                return out(code, text, phase)
        phase = "mail"
        code, text = await client.cmd(f"MAIL FROM:<{mail_from}>")
        if code != 250:
            return out(code, text, phase)
        phase = "rcpt"
        code, text = await client.cmd(f"RCPT TO:<{rcpt}>")
        if code != 250:
            return out(code, text, phase)
        phase = "data"
        code, text = await client.cmd("DATA")
        if code != 354:
            return out(code, text, phase)
        await client.send(dot_stuff(raw) + b".\r\n")
        code, text = await client.reply()
        return out(code, text, "done" if code == 250 else phase)
    except (OSError, SmtpError, TimeoutError, asyncio.IncompleteReadError) as exc:
        return out(None, f"{type(exc).__name__}: {exc}", phase)
    finally:
        if client is not None:
            await client.close()
