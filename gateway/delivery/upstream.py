"""The upstream hop: an aiosmtplib client driven command by command (lockstep), pooled.

Modelled on Postfix's before-queue proxy filter: the upstream sees MAIL and RCPT
as the client sends them and its own answers go back to the client; the client
gets a 2xx to DATA only after the upstream took the final message. Connections
are opened lazily, at most upstream.max_connections at once, and go back to a
small pool at the end of each transaction (after RSET if it was cut short).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass

import aiosmtplib

from gateway.config import UpstreamConfig
from gateway.delivery import fastdata
from gateway.errors import UpstreamBusy, UpstreamTimeout, UpstreamUnavailable
from gateway.replies import Reply

log = logging.getLogger(__name__)
fastdata.install()


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """The upstream's own answer, to be relayed to the client as given."""

    code: int
    message: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def kind(self) -> str:
        """"4xx" or "5xx": the label of a refusal in tokuden_upstream_errors_total."""
        return f"{self.code // 100}xx"

    def line(self) -> str:
        # Multi-line replies are folded onto one line for the client and the log.
        text = " ".join(self.message.split())
        return f"{self.code} {text}".strip()

    def as_reply(self) -> Reply:
        text = " ".join(self.message.split())
        return Reply(self.code, "", text)


def _path(address: str) -> bytes:
    """An envelope address as an SMTP path: `<address>`, `<>` for the null sender.

    The SMTP layer hands on addresses it parsed and checked (no control characters; the
    protocol refuses CR and LF again). aiosmtplib's mail() and rcpt() would re-parse each
    one with email.utils.parseaddr only to put it in angle brackets: ~30 µs, twice a
    message, and a parser that drops what it takes for a comment.
    """
    if address in ("", "<>"):
        return b"<>"
    return b"<" + address.encode("utf-8") + b">"


class UpstreamLink:
    """One connection to the upstream MTA."""

    def __init__(self, config: UpstreamConfig, local_hostname: str) -> None:
        self.config = config
        self.local_hostname = local_hostname
        self.client: aiosmtplib.SMTP | None = None
        self.in_transaction = False
        self.last_used = 0.0
        self.esmtp_extensions: dict[str, str] = {}

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    async def connect(self) -> None:
        cfg = self.config
        tls_context = None
        start_tls: bool | None = False
        if cfg.tls == "required":
            tls_context = ssl.create_default_context(cafile=cfg.ca_file)
            start_tls = True
        elif cfg.tls == "starttls":
            # Opportunistic (RFC 7435, Postfix's "may"): encrypt when offered, in the clear
            # when not, and no certificate check: an unverified link is no worse than the
            # clear one it would otherwise fall back to. "required" is the verified kind.
            tls_context = ssl.create_default_context()
            tls_context.check_hostname = False
            tls_context.verify_mode = ssl.CERT_NONE
            start_tls = None
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            timeout=cfg.timeout,
            local_hostname=cfg.helo or self.local_hostname,
            start_tls=start_tls,
            tls_context=tls_context,
        )
        try:
            await client.connect(timeout=cfg.connect_timeout)
            await client.ehlo()
        except aiosmtplib.SMTPTimeoutError as exc:
            raise UpstreamTimeout(f"connect to {cfg.host}:{cfg.port} timed out") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise UpstreamUnavailable(f"cannot connect to {cfg.host}:{cfg.port}: {exc}") from exc
        self.client = client
        self.esmtp_extensions = dict(client.esmtp_extensions)
        self.last_used = time.monotonic()

    def supports(self, extension: str) -> bool:
        return extension.lower() in self.esmtp_extensions

    async def mail(self, sender: str, options: list[str]) -> UpstreamReply:
        reused = self.connected
        client = await self._ready()
        path = b"FROM:" + _path(sender)
        passable = [o.encode("ascii") for o in options if self._passable(o)]
        try:
            result = await self._call(client.execute_command(b"MAIL", path, *passable))
        except UpstreamUnavailable:
            if not reused:
                raise
            # A pooled connection the upstream closed while it sat idle (or answered 421
            # for its own idle timeout): nothing was sent yet, so one fresh try is safe.
            log.info("pooled upstream connection was gone; reconnecting")
            await self._drop()
            client = await self._ready()
            passable = [o.encode("ascii") for o in options if self._passable(o)]
            result = await self._call(client.execute_command(b"MAIL", path, *passable))
        self.in_transaction = result.ok
        return result

    async def rcpt(self, recipient: str, options: list[str]) -> UpstreamReply:
        client = await self._ready()
        opts = [o.encode("ascii") for o in options]
        return await self._call(client.execute_command(b"RCPT", b"TO:" + _path(recipient), *opts))

    async def data(self, message: bytes) -> UpstreamReply:
        client = await self._ready()
        try:
            return await self._call(client.data(message))
        finally:
            self.in_transaction = False

    async def rset(self) -> None:
        """End a transaction so the connection can carry the next one."""
        if not self.connected or not self.in_transaction:
            self.in_transaction = False
            return
        assert self.client is not None
        try:
            await self.client.rset()
            self.in_transaction = False
        except (aiosmtplib.SMTPException, OSError):
            await self.close()

    async def close(self) -> None:
        client, self.client = self.client, None
        self.in_transaction = False
        if client is not None and client.is_connected:
            try:
                await asyncio.wait_for(client.quit(), timeout=2)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()

    async def _ready(self) -> aiosmtplib.SMTP:
        if not self.connected:
            await self.connect()
        assert self.client is not None
        self.last_used = time.monotonic()
        return self.client

    def _passable(self, option: str) -> bool:
        # Only pass MAIL parameters the upstream advertised (SIZE=, BODY=, SMTPUTF8).
        name = option.split("=", 1)[0].upper()
        needs = {"SIZE": "size", "BODY": "8bitmime", "SMTPUTF8": "smtputf8"}.get(name)
        return needs is not None and self.supports(needs)

    async def _call(
        self, pending: asyncio.Future[aiosmtplib.SMTPResponse] | object
    ) -> UpstreamReply:
        try:
            response = await pending  # type: ignore[misc]
        except aiosmtplib.SMTPResponseException as exc:
            code, message = exc.code, exc.message
        except aiosmtplib.SMTPTimeoutError as exc:
            await self._drop()
            raise UpstreamTimeout(str(exc)) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._drop()
            raise UpstreamUnavailable(str(exc)) from exc
        else:
            code, message = response.code, response.message
        if code == 421:
            # The upstream is closing this connection. That is no answer to relay
            # (a 421 would tell our client that *we* close): 451 4.4.1, try again.
            await self._drop()
            text = " ".join(message.split())
            raise UpstreamUnavailable(f"upstream closing: 421 {text}")
        return UpstreamReply(code, message)

    async def _drop(self) -> None:
        client, self.client = self.client, None
        self.in_transaction = False
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


class UpstreamPool:
    """The upstream links of this process: idle ones kept for the next transaction, and
    at most `max_connections` open at once (0: no limit).

    In lockstep every client transaction holds its own upstream connection from MAIL to
    the end of DATA, so without a cap a burst of N client transactions opens N upstream
    connections at once: past the upstream's own limits (Postfix serves 100 by default)
    they wait in its accept queue or are dropped while the SYN is retried. With the cap
    the burst waits here, in order, for a link to come back.
    """

    def __init__(self, config: UpstreamConfig, local_hostname: str) -> None:
        self.config = config
        self.local_hostname = local_hostname
        self.limit = config.max_connections
        self._idle: list[UpstreamLink] = []
        self._links = 0  # links in use or idle: the slots the cap counts
        self._waiters: collections.deque[asyncio.Future[UpstreamLink]] = collections.deque()
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def in_use(self) -> int:
        return self._links - len(self._idle)

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self) -> UpstreamLink:
        """A link for one transaction; raises UpstreamBusy when none frees up in time."""
        now = time.monotonic()
        while self._idle:
            link = self._idle.pop()
            if link.connected and now - link.last_used < self.config.pool_idle:
                return link
            self._links -= 1
            self._close_later(link)
        if not self.limit or self._links < self.limit:
            self._links += 1
            return UpstreamLink(self.config, self.local_hostname)
        waiter: asyncio.Future[UpstreamLink] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, self.config.connect_timeout)
        except TimeoutError:
            raise UpstreamBusy(
                f"all {self.limit} upstream connections of this process stayed busy for "
                f"{self.config.connect_timeout:g} s"
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                await self.give_back(waiter.result())  # handed over as we were cancelled
            raise

    async def give_back(self, link: UpstreamLink) -> None:
        if link.in_transaction:
            await link.rset()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(link)  # the slot passes on; a closed link reconnects
                return
        if link.connected and len(self._idle) < self.config.pool_size:
            self._idle.append(link)
        else:
            self._links -= 1
            self._close_later(link)

    def _close_later(self, link: UpstreamLink) -> None:
        # QUIT off the caller's path: the client's reply to DATA must not wait for it.
        task = asyncio.get_running_loop().create_task(link.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        self._links -= len(idle)
        closing = [*(link.close() for link in idle), *self._closing]
        await asyncio.gather(*closing, return_exceptions=True)
