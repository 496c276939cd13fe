"""A real upstream MTA for tests: an aiosmtpd server on a loopback port that records
every transaction and answers with errors injected per recipient or per command."""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: str
    mail_options: list[str] = field(default_factory=list)


@dataclass
class SinkBehaviour:
    """Scripted answers: recipient -> RCPT reply, or a reply/delay for MAIL or DATA."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    mail_reply: str | None = None
    data_reply: str | None = None
    data_delay: float = 0.0
    drop_in_data: bool = False  # close the connection instead of answering DATA


class _Handler:
    def __init__(self, sink: RecordingSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.sink.commands.append(f"MAIL {address}")
        if self.sink.behaviour.mail_reply:
            return self.sink.behaviour.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.sink.commands.append(f"RCPT {address}")
        reply = self.sink.behaviour.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.sink.commands.append("RSET")
        return "250 2.0.0 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        behaviour = self.sink.behaviour
        if behaviour.data_delay:
            await asyncio.sleep(behaviour.data_delay)
        if behaviour.drop_in_data:
            assert server.transport is not None
            server.transport.abort()
            return "421 gone"
        if behaviour.data_reply:
            return behaviour.data_reply
        peer = str(session.peer)
        self.sink.received.append(
            Received(envelope.mail_from or "", list(envelope.rcpt_tos),
                     envelope.original_content or b"", peer, list(envelope.mail_options))
        )
        return f"250 2.0.0 Ok: queued as SINK{len(self.sink.received)}"


class _CountingSMTP(SMTP):
    def __init__(self, sink: RecordingSink, **kwargs: Any) -> None:
        super().__init__(_Handler(sink), **kwargs)
        self.sink = sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sink.connections += 1
        self.sink.open_now += 1
        self.sink.peak_open = max(self.sink.peak_open, self.sink.open_now)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink.open_now -= 1
        super().connection_lost(exc)


class RecordingSink:
    """Start with .start(); .port is the listening port; .received the messages."""

    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        # with a TLS context the sink offers STARTTLS and refuses mail sent without it
        self.tls_context = tls_context
        self.received: list[Received] = []
        self.commands: list[str] = []
        self.connections = 0
        self.open_now = 0  # connections open at this moment, and the most ever at once
        self.peak_open = 0
        self.behaviour = SinkBehaviour()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self, port: int = 0) -> RecordingSink:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(port), self._loop)
        future.result(timeout=10)
        return self

    async def _start(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _CountingSMTP(
                self, hostname="sink.test", enable_SMTPUTF8=True, loop=loop,
                tls_context=self.tls_context, require_starttls=self.tls_context is not None,
            ),
            "127.0.0.1",
            port,
            # 500 gateway sessions open 500 upstream connections at once (lockstep): with
            # asyncio's default backlog of 100 the rest waited for SYN retransmits (1, 3,
            # 7 s ...) and a loaded machine ran past the gateway's connect timeout.
            backlog=1024,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def reset(self) -> None:
        self.received.clear()
        self.commands.clear()
        self.behaviour = SinkBehaviour()
