"""Wiring: build(config) assembles store, rules, SMTP listener; start()/stop() mirror each other."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

from gateway.auth.policy import AuthPolicy
from gateway.config import ClientConfig, Config, SenderConfig
from gateway.consent.suppression import hard_bounce_statuses
from gateway.delivery import headers
from gateway.delivery.client_signatures import strip_broken
from gateway.delivery.feedback_id import FeedbackId
from gateway.delivery.missing_fields import MissingFields
from gateway.delivery.pipeline import Pipeline
from gateway.delivery.unsubscribe import ListUnsubscribe
from gateway.delivery.upstream import UpstreamPool
from gateway.engine.context import Facts
from gateway.engine.packs import RuleSet, load_packs
from gateway.errors import ConfigError
from gateway.eventlog import EventLog
from gateway.footer_policy import FooterPolicy
from gateway.gmail_bulk import gmail_bulk
from gateway.preflight import preflight
from gateway.smtp.credentials import Authenticator
from gateway.smtp.handler import Handler
from gateway.smtp.mailto import MailtoOptOut
from gateway.smtp.server import GatewaySMTP, adopt_socket, make_socket, make_tls_context
from gateway.store import Store, open_store
from gateway.unsubscribe.tokens import SecretFileError, TokenCodec
from gateway.volume import SenderVolume, auth_refusal_statuses, rate_rules, read_window
from gateway.web import HttpServer, Metrics, create_app

log = logging.getLogger(__name__)


class Gateway:
    """One gateway process: everything the hooks need, passed down explicitly."""

    def __init__(
        self,
        config: Config,
        rules: RuleSet,
        store: Store,
        *,
        serve_http: bool = True,
        listen_fd: int | None = None,
    ) -> None:
        self.serve_http = serve_http
        self.listen_fd = listen_fd  # a listening socket inherited from the supervisor
        self.config = config
        self.rules = rules
        self.store = store
        self.eventlog = EventLog(store)
        self.gmail_bulk = gmail_bulk(rules, monitor=config.policy.mode == "monitor",
                                     senders=config.senders)
        self.volume = SenderVolume(
            store, window_days=read_window(rules), interval=config.store.volume_interval,
            gmail_limit=self.gmail_bulk.daily_limit if self.gmail_bulk else 0,
            gmail_groups=self.gmail_bulk.groups if self.gmail_bulk else None,
        )
        self.authenticator = Authenticator(
            config.clients,
            failure_limit=config.server.auth_failure_limit,
            failure_window=config.server.auth_failure_window,
        )
        self.pool = UpstreamPool(config.upstream, config.server.hostname)
        self.auth = AuthPolicy(config)
        self.metrics = Metrics()
        self.eventlog.metrics = self.metrics
        self.metrics.watch(self.auth.dns.stats, store, self.pool)
        self.metrics.watch_volume(self.volume, [s.id for s in config.senders],
                                  self.volume.window_days, rate_rules(rules))
        self.codec = _load_codec(config)
        self.unsubscribe = ListUnsubscribe(config, self.codec)
        self.mailto = MailtoOptOut(config.policy.unsubscribe_address, self.codec, store,
                                   self.auth.dns, tuple(s.id for s in config.senders),
                                   hard_bounce_statuses(rules), auth_refusal_statuses(rules))
        # Order matters: every change first, signing last (RFC 6376 §8).
        self.pipeline = Pipeline(
            [
                self._strip_internal_headers,
                MissingFields(config.server.hostname).add,
                self.unsubscribe.add_headers,
                FeedbackId(config.policy.feedback_id).add,
                strip_broken,  # after every change, before our signature
                self.auth.sign,
            ]
        )
        self.http: HttpServer | None = None
        self.footer = FooterPolicy(config)
        self.handler = Handler(self)
        self.connections: set[GatewaySMTP] = set()
        self.draining = False
        self._server: asyncio.Server | None = None
        self._network_clients = tuple(c for c in config.clients if c.networks)

    # -- lookups the hooks use ------------------------------------------------------------

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def client_for_network(self, ip: str) -> ClientConfig | None:
        return next((c for c in self._network_clients if c.allows_network(ip)), None)

    def sender_for_envelope(self, client: ClientConfig, mail_from: str) -> SenderConfig | None:
        domain = mail_from.rpartition("@")[2].lower()
        if not domain:
            return None
        for sender_id in client.senders:
            sender = self.config.sender(sender_id)
            if sender is not None and sender.owns_envelope_domain(domain):
                return sender
        return None

    def _preflight(self, sender: SenderConfig, raw: bytes) -> dict[str, Any]:
        return preflight(self.config, self.rules, self.footer, sender, raw).to_dict()

    async def _strip_internal_headers(self, facts: Facts, raw: bytes) -> bytes:
        """The MA tool's topic header is for the gateway only: it never leaves."""
        return headers.remove_header(raw, self.config.policy.topic_header)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen and serve; a start that fails part way closes what it opened."""
        cfg = self.config.server
        if self.listen_fd is not None:
            sock = adopt_socket(self.listen_fd)  # one accept queue shared by the workers
        else:
            sock = make_socket(cfg.listen)  # first: a taken address costs nothing to find
        try:
            await self._start(sock)
        except BaseException:
            sock.close()
            await self._close_opened()
            raise

    async def _start(self, sock: socket.socket) -> None:
        await self.store.open()
        await self.volume.start()
        if self.serve_http:
            self.http = HttpServer()
            app = create_app(
                self, metrics_=self.metrics, codec=self.codec, preflight=self._preflight
            )
            try:
                await self.http.start(app, self.config.http.listen)
            except OSError as exc:
                raise ConfigError(
                    f"cannot listen on {self.config.http.listen}: {exc.strerror}", "http.listen"
                ) from None
        try:
            await asyncio.wait_for(self.auth.warm(), timeout=self.config.dns.timeout * 4 + 1)
        except TimeoutError:
            log.warning("DNS warm-up timed out; first messages may wait for DNS")
        cfg = self.config.server
        tls = make_tls_context(cfg.tls_cert, cfg.tls_key)
        loop = asyncio.get_running_loop()

        def factory() -> GatewaySMTP:
            return GatewaySMTP(
                self,
                self.handler,
                data_size_limit=cfg.max_message_size,
                enable_SMTPUTF8=True,
                hostname=cfg.hostname,
                ident="tokuden gateway",
                tls_context=tls,
                timeout=cfg.idle_timeout,
                auth_require_tls=cfg.auth_require_tls,
                command_call_limit={"AUTH": 10, "RCPT": 1000, "*": 10000},
                loop=loop,
            )

        # asyncio calls listen() again: pass the backlog, or 500 simultaneous connects
        # overflow the default of 100 and some clients never see a greeting
        self._server = await loop.create_server(factory, sock=sock, backlog=1024)
        log.info("listening", extra={"fields": {"smtp": cfg.listen, "port": self.port}})

    async def stop(self) -> None:
        """Stop accepting, let transactions in flight finish, then close everything."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + self.config.server.shutdown_grace
        while self.connections and time.monotonic() < deadline:
            for conn in list(self.connections):
                if conn.close_idle():
                    self.connections.discard(conn)
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        await asyncio.sleep(0.05)  # let connection_lost clean-ups hand links back
        await self._close_opened()
        log.info("stopped")

    async def _close_opened(self) -> None:
        # The store's writer thread would otherwise keep the process alive after a failed start.
        if self.http is not None:
            await self.http.stop()
        await self.pool.close()
        await self.auth.close()
        await self.volume.close()
        await self.store.close()


def _load_codec(config: Config) -> TokenCodec | None:
    path = config.policy.unsubscribe_secret_file
    if not path:
        return None
    try:
        return TokenCodec.from_file(path)
    except SecretFileError as exc:
        raise ConfigError(str(exc), "policy.unsubscribe_secret_file") from None


def build(config: Config, *, serve_http: bool = True, listen_fd: int | None = None) -> Gateway:
    rules = load_packs(config.policy.rules)
    store = open_store(
        config.store.url,
        commit_interval=config.store.commit_interval,
        commit_max_batch=config.store.commit_max_batch,
    )
    return Gateway(config, rules, store, serve_http=serve_http, listen_fd=listen_fd)
