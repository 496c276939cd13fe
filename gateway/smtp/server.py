"""The SMTP listener: an aiosmtpd SMTP subclass per connection, TLS, limits, draining."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
from typing import TYPE_CHECKING, Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, syntax

from gateway import replies as replies_mod
from gateway.config import ClientConfig, parse_hostport
from gateway.delivery.upstream import UpstreamLink
from gateway.engine.context import Facts
from gateway.errors import ConfigError
from gateway.eventlog import new_id
from gateway.model import RuleResult
from gateway.replies import replies
from gateway.smtp import aiosmtpd_fast
from gateway.smtp.data import LINE_TOO_LONG, TOO_MUCH_DATA, read_data
from gateway.smtp.handler import Handler
from gateway.smtp.limits import TOO_MANY_CONNECTIONS, TOO_MANY_FROM_IP

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger(__name__)


# aiosmtpd's own reply texts, mapped onto the contract's codes (one place for codes).
_TRANSLATE = {
    TOO_MUCH_DATA: replies_mod.finalize(replies.message_too_large),
    "552 Error: message size exceeds fixed maximum message size": replies_mod.finalize(
        replies.message_too_large
    ),
    "530 5.7.0 Authentication required": replies_mod.finalize(replies.relay_denied),
    LINE_TOO_LONG: "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)",
    "500 Command line too long": "500 5.5.2 Command line too long",
    "503 Error: need MAIL command": "503 5.5.1 Error: need MAIL command",
    "503 Error: need RCPT command": "503 5.5.1 Error: need RCPT command",
    "503 Error: nested MAIL command": "503 5.5.1 Error: nested MAIL command",
    "553 5.1.3 Error: malformed address": replies_mod.finalize(replies.malformed_recipient),
}
# The rule id an event names for DATA that the protocol layer refused.
_REFUSAL_RULES = {TOO_MUCH_DATA: "message.too_large", LINE_TOO_LONG: "message.line_too_long"}
_MALFORMED_PATH = "553 5.1.3 Error: malformed address"
_FROM = re.compile(r"^\s*FROM:", re.IGNORECASE)


# Replies after which aiosmtpd closes the session by itself.
_SESSION_ENDING = ("421 ", "502 5.5.1 Too many unrecognized commands")
LINGER_SECONDS = 2.0
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(
    rf"[ \t]*<({_ATEXT}(?:\.{_ATEXT})*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>[ \t]*(.*)", re.DOTALL
)
# The attribute names aiosmtpd looks up on a protocol object (commands, AUTH mechanisms).
_LOOKED_UP = ("smtp_", "auth_")


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class ConnectionState:
    """Per-connection state: who the client is, the transaction, the upstream link."""

    def __init__(self, gateway: Gateway, client_ip: str) -> None:
        self.gw = gateway
        self.client_ip = client_ip
        self.session_id = new_id()
        self.client: ClientConfig | None = gateway.client_for_network(client_ip)
        self.facts: Facts | None = None
        self.accepted_rcpts = 0
        self.results: list[RuleResult] = []
        self.monitored: list[str] = []
        self.timings: dict[str, float] = {}
        self.busy = False
        self.utf8 = False  # the transaction asked for SMTPUTF8: replies may carry Japanese
        self.mailto = False  # an unauthenticated transaction to the opt-out mailbox
        # The upstream leg and record of an accepted DATA: it runs on even if the client
        # goes away, and the connection's clean-up waits for it.
        self.delivery: asyncio.Task[str] | None = None
        self._link: UpstreamLink | None = None

    def begin_transaction(self) -> None:
        self.facts = None
        self.accepted_rcpts = 0
        self.results = []
        self.monitored = []
        self.timings = {}
        self.busy = True

    async def end_transaction(self) -> None:
        self.facts = None
        self.accepted_rcpts = 0
        self.busy = False
        self.mailto = False
        # The link goes back (after RSET, if the upstream is mid-transaction) at once: a
        # session idle between transactions holds none of the pool's capped slots.
        await self.release()

    async def upstream(self) -> UpstreamLink:
        """This transaction's upstream link, taken from the pool at its first use."""
        if self._link is None:
            self._link = await self.gw.pool.acquire()
        return self._link

    async def release(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await self.gw.pool.give_back(link)


_PROTOCOL_NAMES: dict[type, list[str]] = {}


def _protocol_names(cls: type) -> list[str]:
    names = _PROTOCOL_NAMES.get(cls)
    if names is None:
        names = _PROTOCOL_NAMES[cls] = sorted(
            {name for klass in cls.__mro__ for name in vars(klass) if name.startswith(_LOOKED_UP)}
        )
    return names


def safe_hostname(name: str) -> str:
    """The host name as it may appear in a reply line: no spaces or control characters."""
    return "".join(ch for ch in name if ch.isprintable() and not ch.isspace()) or "localhost"


class GatewaySMTP(SMTP):
    """aiosmtpd's protocol engine with our per-connection state and reply translation."""

    def __dir__(self) -> list[str]:
        # aiosmtpd builds its command and AUTH tables from dir() and getmembers() of every
        # new protocol object (~130 µs a connection, 3% of a message's CPU); it looks only
        # at smtp_* and auth_* names, so list just those (computed once per class).
        return _protocol_names(type(self))

    def __init__(self, gateway: Gateway, handler: Handler, **kwargs: Any) -> None:
        # The greeting and EHLO carry the host name: a line break in it would inject replies.
        kwargs["hostname"] = safe_hostname(str(kwargs.get("hostname") or "localhost"))
        self._continued: list[str] = []  # the leading lines of a multi-line reply
        # MAIL's argument while aiosmtpd handles it: aiosmtpd words an unparsable path
        # alike for MAIL and RCPT
        self._mail_arg: str | None = None
        super().__init__(handler, **kwargs)
        self.handler = handler
        self.gw = gateway
        self.limits = handler.limits
        # Made in connection_made, which asyncio calls before anything else reads it.
        self.state: ConnectionState
        self._relax_auth_tls = not kwargs.get("auth_require_tls", True)
        self._refusal: str | None = None  # a 421 for a connection over the limits
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is not None:
            # The same connection again, now over TLS. aiosmtpd discards the plaintext
            # that came with STARTTLS here (RFC 3207 §4.2, CVE-2011-0411 style injection);
            # tests/security checks that it stays so.
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername")
        ip = peer[0] if isinstance(peer, tuple) and peer else ""
        raw_socket = transport.get_extra_info("socket")
        if raw_socket is not None and raw_socket.family in (socket.AF_INET, socket.AF_INET6):
            raw_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.state = ConnectionState(self.gw, ip)
        # auth_require_tls = false is honoured on loopback only
        self._auth_require_tls = not (self._relax_auth_tls and is_loopback(ip))
        over = self.limits.connect(ip)
        if over is None:
            self._admitted = True
        else:
            reply = TOO_MANY_CONNECTIONS if over == "total" else TOO_MANY_FROM_IP
            self._refusal = replies_mod.finalize(reply)
            self.gw.metrics.session_refusal(
                "max_connections" if over == "total" else "max_connections_per_ip")
            log.warning(
                "connection refused: %s limit", over, extra={"fields": {"client_ip": ip}}
            )
        self.gw.connections.add(self)
        super().connection_made(transport)

    async def _handle_client(self) -> None:
        if self._refusal is not None:
            # Over a connection limit: say why and close, before reading anything
            # (no linger: a flood of connections must not hold sockets longer).
            try:
                await super().push(self._refusal)
            finally:
                if self.transport is not None:
                    self.transport.close()
            return
        await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        state = self.state
        if self._admitted:
            self._admitted = False
            self.limits.disconnect(state.client_ip)
        if state.delivery is None or state.delivery.done():
            self.gw.connections.discard(self)
        asyncio.get_running_loop().create_task(self._cleanup(state))
        super().connection_lost(error)

    async def _cleanup(self, state: ConnectionState) -> None:
        try:
            if state.delivery is not None and not state.delivery.done():
                # the client left while the upstream had the message: let that finish and
                # be recorded; the upstream's timeout and the store's patience bound it
                await asyncio.wait({state.delivery})
            await state.end_transaction()
        finally:
            self.gw.connections.discard(self)

    def _timeout_cb(self) -> None:
        state = self.state
        if state.delivery is not None and not state.delivery.done():
            # Not the client's idleness: the gateway is still waiting for the upstream or
            # the store (both bounded), and the client is waiting for the reply.
            self._reset_timeout()
            return
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    def restart_idle_timer(self) -> None:
        """The client finished sending; time what follows from here, not from DATA."""
        if self.transport is not None:
            self._reset_timeout()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # The common path, <dot-atom@dot-atom>, answered as aiosmtpd's email-parser route
        # would answer it but without building a token tree (and a class) per MAIL/RCPT;
        # anything else takes that route (tests/unit/core: both agree on any input).
        simple = _SIMPLE_PATH.match(arg)
        if simple is not None:
            local, domain, rest = simple.groups()
            if not self.local_part_limit or len(local) <= self.local_part_limit:
                return f"{local}@{domain}", rest
            return None, None
        address: tuple[str | None, str | None] = SMTP._getaddr(self, arg)
        return address

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if not arg and self.tls_context:
            # RFC 3207 4.2: forget what came before TLS. aiosmtpd starts a new session and
            # envelope; the gateway's own transaction, upstream link and the client that
            # AUTH named go too (a client authorised by its network stays: same address).
            await self.state.end_transaction()
            self.state.client = self.gw.client_for_network(self.state.client_ip)
        await super().smtp_STARTTLS(arg)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str) -> None:
        self._mail_arg = arg
        try:
            await super().smtp_MAIL(arg)
        finally:
            self._mail_arg = None

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        # RFC 4954 section 4: "MUST be rejected with a 503". aiosmtpd would authenticate,
        # and the transaction begun before (unauthenticated: only to the opt-out box) went on.
        if self.envelope is not None and self.envelope.mail_from:
            await self.push(replies_mod.finalize(replies.auth_in_transaction))
            return
        await super().smtp_AUTH(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA command with the data read in chunks (gateway/smtp/data.py)."""
        if self._decode_data:  # the gateway never decodes; keep aiosmtpd's path for it
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        envelope = self.envelope
        assert envelope is not None
        if not envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            outcome = await read_data(self._reader, self.data_size_limit, self.line_length_limit)
        except asyncio.CancelledError:  # the connection was lost during DATA
            self._writer.close()
            raise
        if outcome.closed:
            return
        if outcome.refusal:
            # refused before any rule saw it: recorded, and the transaction (with its
            # upstream link, which has MAIL and RCPT) ends here, not at the next MAIL
            reply = _TRANSLATE[outcome.refusal]
            await self.handler.data_refused(self.state, reply, _REFUSAL_RULES[outcome.refusal])
            await self.push(reply)
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        envelope.content = envelope.original_content = outcome.content
        try:
            status = await self._call_handler_hook("DATA")
        finally:  # the transaction is over whatever the handler did
            self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            if status[3:4] == "-":
                # A multi-line reply (EHLO: 7 lines) leaves in one write with its last
                # line: one send() and one TCP segment instead of seven.
                self._continued.append(status)
                return
            if self._mail_arg is not None and status == _MALFORMED_PATH:
                status = await self.handler.refused_before_rules(
                    self.state, replies.bad_sender, "sender_invalid",
                    _FROM.sub("", self._mail_arg, count=1).strip(),
                )
            status = _TRANSLATE.get(status, status)
            if self._continued:
                await super().push("\r\n".join([*self._continued, status]))
                self._continued.clear()
            else:
                await super().push(status)
            if status.startswith(_SESSION_ENDING):
                await self._linger()
            return
        await super().push(status)

    async def _linger(self) -> None:
        """Before aiosmtpd closes a session it ended (a 421 over a command budget, too
        many bogus commands), let the client read every reply already written.

        Closing a socket with unread input makes the kernel send RST, which throws
        away replies still in flight — a pipelining client would lose the 421 that says
        why. So: half-close (FIN after the last reply), then read and discard what the
        client still sends until it closes too, for LINGER_SECONDS at most.
        """
        # duck-typed: uvloop's transports are not asyncio.WriteTransport subclasses
        transport: Any = self.transport
        if transport is None or transport.is_closing() or not transport.can_write_eof():
            return  # TLS cannot half-close; the plain close follows
        try:
            async with asyncio.timeout(LINGER_SECONDS):
                await self._writer.drain()
                transport.write_eof()
                while await self._reader.read(65536):
                    pass
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass

    def close_idle(self) -> bool:
        """During shutdown: say 421 to a connection between transactions and close it."""
        if self.state.busy or self.transport is None:
            return False
        try:
            self._writer.write(replies_mod.finalize(replies.shutting_down).encode() + b"\r\n")
        except Exception:  # the peer may be gone already
            pass
        self.transport.close()
        return True


aiosmtpd_fast.register(GatewaySMTP)
aiosmtpd_fast.register(Handler)
aiosmtpd_fast.install()


def make_tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert or not key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


LISTEN_BACKLOG = 1024


class _ListeningSocket(socket.socket):
    """A listening socket whose accept queue asyncio cannot shrink.

    loop.create_server(sock=...) calls sock.listen(backlog) again with its default of 100;
    500 clients connecting at once then overflow the queue, and connections whose final
    ACK was dropped wait for a greeting that never comes (tests/abuse/test_load.py).
    """

    def listen(self, backlog: int = LISTEN_BACKLOG) -> None:
        super().listen(max(backlog, LISTEN_BACKLOG))


def adopt_socket(fd: int) -> socket.socket:
    """The listening socket a supervisor opened and handed to this worker process."""
    sock = _ListeningSocket(fileno=fd)
    sock.setblocking(False)
    return sock


def make_socket(listen: str) -> socket.socket:
    """The SMTP listener; a ConfigError naming server.listen when the address is taken."""
    host, port = parse_hostport(listen, 25, "server.listen")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when
    # the listener says it is TCP, and aiosmtpd writes each EHLO line on its own — with
    # Nagle on, every EHLO waited ~40 ms for the client's delayed ACK (bench/RESULTS.md).
    sock = _ListeningSocket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {listen}: {exc.strerror}", "server.listen") from None
    sock.setblocking(False)
    return sock
