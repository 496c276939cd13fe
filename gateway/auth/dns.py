"""The one DNS cache of the auth checks: TTLs, negative caching, background refresh, serve-stale."""

from __future__ import annotations

import asyncio
import enum
import functools
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.resolver
import dns.rrset
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA

from gateway import errors

__all__ = [
    "DnsAnswer",
    "DnsCache",
    "DnsCacheStats",
    "DnsConfig",
    "DnsError",
    "DnsNameError",
    "DnsStatus",
    "DnsTempError",
    "parse_nameserver",
]

log = logging.getLogger(__name__)


class DnsError(Exception):
    """Base class of the DNS cache's errors."""


class DnsTempError(DnsError, errors.DnsTempError):
    """No usable answer: the servers failed or timed out and nothing (fresh or stale) is cached.

    Callers map this to a temporary SMTP failure (451 4.4.3), never to a permanent one.
    """


class DnsNameError(DnsError, ValueError):
    """The name cannot be queried at all (empty label, label longer than 63 octets ...)."""


class DnsStatus(enum.StrEnum):
    """What the authoritative answer said."""

    OK = "ok"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """DNS settings of the gateway; the lead maps the `[dns]` TOML section onto this.

    nameservers: "host[:port]" ("[v6]:port" for IPv6); empty means the system resolver.
    timeout: seconds one lookup may take in total (all servers, retries, TCP fallback).
    stale_ttl: how long past expiry the last good answer is served while DNS is unreachable.
    """

    nameservers: tuple[str, ...] = ()
    timeout: float = 2.0
    stale_ttl: float = 3600.0
    min_ttl: float = 30.0
    max_ttl: float = 86400.0
    # Used for NXDOMAIN/NODATA answers that carry no SOA in the authority section.
    negative_ttl: float = 300.0
    # A used entry is refreshed in the background once less than this fraction of its TTL is left,
    # so a steadily used name never expires in front of a message.
    refresh_fraction: float = 0.1
    # After a failed query, serve stale answers for this long before asking the servers again,
    # so an outage costs one timeout per name per interval instead of one per message (RFC 8767).
    stale_retry: float = 30.0

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError("dns timeout must be > 0")
        if self.stale_ttl < 0:
            raise ValueError("dns stale_ttl must be >= 0")
        if not 0 < self.min_ttl <= self.max_ttl:
            raise ValueError("dns min_ttl must be > 0 and <= max_ttl")
        for server in self.nameservers:
            parse_nameserver(server)


def parse_nameserver(text: str) -> tuple[str, int]:
    """Split "host[:port]", "[v6addr]:port" or "v6addr" into (address, port); host must be an IP."""
    text = text.strip()
    port = 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"bad nameserver {text!r}: missing ']'")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad nameserver {text!r}")
            port = _parse_port(text, rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _parse_port(text, port_text)
    else:
        host = text  # IPv4 without port, or a bare IPv6 address
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # dnspython talks to addresses only; resolving a resolver's name would need a resolver.
        raise ValueError(f"bad nameserver {text!r}: {host!r} is not an IP address") from None
    return host, port


def _parse_port(text: str, port_text: str) -> int:
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad nameserver {text!r}: port is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad nameserver {text!r}: port out of range")
    return port


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """An immutable answer as the cache hands it out.

    `expires_at` is on the cache's clock. `stale` is True when the answer was served past its TTL
    because the servers could not be reached.
    """

    name: str
    rdtype: str
    status: DnsStatus
    rdatas: tuple[dns.rdata.Rdata, ...]
    ttl: float
    expires_at: float
    stale: bool = False

    @property
    def exists(self) -> bool:
        return self.status is DnsStatus.OK and bool(self.rdatas)

    def txt_chunks(self) -> list[list[bytes]]:
        """TXT records as their character-strings (the shape pyspf expects)."""
        return [list(r.strings) for r in self.rdatas if isinstance(r, TXT)]

    def txt_strings(self) -> list[str]:
        """TXT records with their character-strings joined (RFC 7208 3.3, RFC 6376 3.6.2.2)."""
        # DKIM/DMARC/SPF records are ASCII; replacement keeps a stray byte from raising here,
        # and the record parsers then reject it as malformed.
        return [b"".join(chunks).decode("utf-8", "replace") for chunks in self.txt_chunks()]

    def addresses(self) -> list[str]:
        return [r.address for r in self.rdatas if isinstance(r, A | AAAA)]

    def mx(self) -> list[tuple[int, str]]:
        return [
            (r.preference, r.exchange.to_text(omit_final_dot=True))
            for r in self.rdatas
            if isinstance(r, MX)
        ]

    def ptr(self) -> list[str]:
        return [r.target.to_text(omit_final_dot=True) for r in self.rdatas if isinstance(r, PTR)]


@dataclass(slots=True)
class DnsCacheStats:
    """Counters for /metrics. A "hit" is an answer given without waiting for the network."""

    hits: int = 0
    misses: int = 0
    negative_hits: int = 0
    stale_served: int = 0
    refreshes: int = 0
    refresh_failures: int = 0
    errors: int = 0
    peek_hits: int = 0
    peek_misses: int = 0


@dataclass(slots=True)
class _Entry:
    answer: DnsAnswer
    stale_until: float
    retry_at: float = 0.0


_Key = tuple[str, str]


@dataclass
class DnsCache:
    """The single DNS access point of the gateway.

    All lookups go through `lookup()`/`txt()`; synchronous code (pyspf, dkimpy) reads with `peek()`.
    One instance per process; it owns one dnspython async resolver and its background tasks.
    """

    config: DnsConfig = field(default_factory=DnsConfig)
    # Injectable so tests can move time without sleeping; must be monotonic.
    clock: Callable[[], float] = time.monotonic
    stats: DnsCacheStats = field(default_factory=DnsCacheStats)
    _entries: dict[_Key, _Entry] = field(default_factory=dict, init=False, repr=False)
    _inflight: dict[_Key, asyncio.Task[DnsAnswer]] = field(
        default_factory=dict, init=False, repr=False
    )
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    _resolver: dns.asyncresolver.Resolver = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._resolver = _build_resolver(self.config)

    # -- public API -------------------------------------------------------------------------

    async def txt(self, name: str) -> list[str]:
        """TXT strings at `name` ([] for NXDOMAIN/NODATA). Raises DnsTempError."""
        return (await self.lookup(name, "TXT")).txt_strings()

    async def lookup(self, name: str, rdtype: str = "TXT") -> DnsAnswer:
        """A cached answer, querying the servers only on a miss or after expiry.

        Raises DnsTempError when the servers fail and no answer within the stale window is cached,
        DnsNameError for names that cannot be queried.
        """
        key = _key(name, rdtype)
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None:
            answer = entry.answer
            if now < answer.expires_at:
                self.stats.hits += 1
                if answer.status is not DnsStatus.OK:
                    self.stats.negative_hits += 1
                self._maybe_refresh(key, answer, now)
                return answer
            if now < entry.retry_at and now < entry.stale_until:
                # A query failed a moment ago: answer from the stale copy at once rather than
                # making every message wait for the same timeout.
                self.stats.stale_served += 1
                return replace(answer, stale=True)
        self.stats.misses += 1
        try:
            return await self._fetch(key)
        except DnsTempError:
            entry = self._entries.get(key)
            now = self.clock()
            if entry is not None and now < entry.stale_until:
                entry.retry_at = now + self.config.stale_retry
                self.stats.stale_served += 1
                log.warning("dns: serving stale %s %s", key[0], key[1])
                return replace(entry.answer, stale=True)
            raise

    def peek(
        self, name: str, rdtype: str = "TXT", *, allow_stale: bool = False
    ) -> DnsAnswer | None:
        """The cached answer without any I/O, or None. Fresh answers only unless allow_stale."""
        try:
            key = _key(name, rdtype)
        except DnsNameError:
            return None
        entry = self._entries.get(key)
        now = self.clock()
        if entry is not None:
            answer = entry.answer
            if now < answer.expires_at:
                self.stats.peek_hits += 1
                self._maybe_refresh(key, answer, now)
                return answer
            if allow_stale and now < entry.stale_until:
                self.stats.peek_hits += 1
                return replace(answer, stale=True)
        self.stats.peek_misses += 1
        return None

    async def prefetch(self, names: Iterable[str | tuple[str, str]]) -> None:
        """Warm the cache (a bare name means TXT); failures surface on the real lookup."""
        queries = [(n, "TXT") if isinstance(n, str) else n for n in names]
        await asyncio.gather(*(self.lookup(n, t) for n, t in queries), return_exceptions=True)

    def invalidate(self, name: str | None = None) -> None:
        """Forget one name (all types) or everything, e.g. after an operator fixed a record."""
        if name is None:
            self._entries.clear()
            return
        norm = _normalise(name)
        for key in [k for k in self._entries if k[0] == norm]:
            del self._entries[key]

    async def drain(self) -> None:
        """Wait for background refreshes in flight (shutdown, tests)."""
        while self._tasks or self._inflight:
            pending: list[asyncio.Task[Any]] = [*self._tasks, *self._inflight.values()]
            await asyncio.gather(*pending, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel background refreshes."""
        pending: list[asyncio.Task[Any]] = [*self._tasks, *self._inflight.values()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()
        self._inflight.clear()

    # -- internals --------------------------------------------------------------------------

    def _maybe_refresh(self, key: _Key, answer: DnsAnswer, now: float) -> None:
        if key in self._inflight:
            return
        if answer.expires_at - now > answer.ttl * self.config.refresh_fraction:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # peek() from a thread without a loop: it expires and is re-fetched
            return
        task = loop.create_task(self._refresh(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, key: _Key) -> None:
        self.stats.refreshes += 1
        try:
            await self._fetch(key)
        except DnsError as exc:
            # The current answer stays; it will go stale and be served as such if this persists.
            self.stats.refresh_failures += 1
            log.info("dns: background refresh of %s %s failed: %s", key[0], key[1], exc)

    async def _fetch(self, key: _Key) -> DnsAnswer:
        # Single flight: concurrent misses for one name share one query. The query runs as a task
        # of its own so that a caller being cancelled (client hung up) does not cancel it for the
        # other waiters.
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._query_and_store(key))
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._query_done, key))
        return await asyncio.shield(task)

    def _query_done(self, key: _Key, task: asyncio.Task[DnsAnswer]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is not logged by asyncio

    async def _query_and_store(self, key: _Key) -> DnsAnswer:
        answer = await self._query(*key)
        self._entries[key] = _Entry(answer, stale_until=answer.expires_at + self.config.stale_ttl)
        return answer

    async def _query(self, name: str, rdtype: str) -> DnsAnswer:
        qname = dns.name.from_text(name)
        try:
            result = await self._resolver.resolve(
                qname, rdtype, raise_on_no_answer=False, search=False, lifetime=self.config.timeout
            )
        except dns.resolver.NXDOMAIN as exc:
            responses: dict[dns.name.Name, dns.message.Message] = exc.kwargs.get("responses") or {}
            response = next(iter(responses.values()), None)
            return self._negative(name, rdtype, DnsStatus.NXDOMAIN, response)
        except dns.resolver.YXDOMAIN as exc:
            self.stats.errors += 1
            raise DnsTempError(f"{name} {rdtype}: {exc}") from exc
        except (dns.exception.DNSException, OSError) as exc:
            # Timeouts, SERVFAIL/REFUSED from every server (NoNameservers), unreachable servers.
            self.stats.errors += 1
            raise DnsTempError(f"{name} {rdtype}: {exc}") from exc
        if result.rrset is None or len(result.rrset) == 0:
            return self._negative(name, rdtype, DnsStatus.NODATA, result.response)
        ttl = self._clamp(float(result.chaining_result.minimum_ttl))
        now = self.clock()
        return DnsAnswer(
            name=name,
            rdtype=rdtype,
            status=DnsStatus.OK,
            rdatas=tuple(result.rrset),
            ttl=ttl,
            expires_at=now + ttl,
        )

    def _negative(
        self, name: str, rdtype: str, status: DnsStatus, response: dns.message.Message | None
    ) -> DnsAnswer:
        ttl = self.config.negative_ttl
        if response is not None:
            for rrset in response.authority:
                if rrset.rdtype == dns.rdatatype.SOA:
                    soa = next(iter(rrset))
                    if isinstance(soa, SOA):
                        # RFC 2308 5: the lesser of the SOA record's TTL and its MINIMUM field.
                        ttl = float(min(rrset.ttl, soa.minimum))
                    break
        ttl = self._clamp(ttl)
        return DnsAnswer(
            name=name,
            rdtype=rdtype,
            status=status,
            rdatas=(),
            ttl=ttl,
            expires_at=self.clock() + ttl,
        )

    def _clamp(self, ttl: float) -> float:
        return min(max(ttl, self.config.min_ttl), self.config.max_ttl)


def _build_resolver(config: DnsConfig) -> dns.asyncresolver.Resolver:
    if not config.nameservers:
        resolver = dns.asyncresolver.Resolver(configure=True)
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        servers: list[dns.nameserver.Nameserver | str] = []
        for text in config.nameservers:
            host, port = parse_nameserver(text)
            servers.append(dns.nameserver.Do53Nameserver(host, port))
        resolver.nameservers = servers
    # The per-server timeout is bounded by the lifetime passed per query; a shorter per-server
    # timeout leaves room to try the next server.
    resolver.timeout = config.timeout / max(1, len(config.nameservers))
    resolver.lifetime = config.timeout
    resolver.cache = None  # this class is the cache
    return resolver


def _normalise(name: str) -> str:
    try:
        return dns.name.from_text(name).to_text(omit_final_dot=True).lower()
    except dns.exception.DNSException as exc:  # EmptyLabel, LabelTooLong, NameTooLong ...
        raise DnsNameError(f"cannot query {name!r}: {exc}") from exc


def _key(name: str, rdtype: str) -> _Key:
    if not name or not name.strip("."):
        raise DnsNameError("cannot query the empty name")
    rdtype = rdtype.upper()
    try:
        dns.rdatatype.from_text(rdtype)
    except dns.rdatatype.UnknownRdatatype as exc:
        raise ValueError(f"unknown record type {rdtype!r}") from exc
    return _normalise(name), rdtype
