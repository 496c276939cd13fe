"""SPF (pyspf) for the gateway's egress IPs and an envelope domain, with DNS from the DnsCache."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import spf

from gateway.auth.dns import DnsAnswer, DnsCache, DnsError, DnsNameError, DnsTempError

__all__ = ["SpfEvaluator", "SpfResult", "SpfVerdict"]

log = logging.getLogger(__name__)

# How pyspf is driven, and why:
#
# pyspf is synchronous and resolves through a module-level DNSLookup. Running it in a thread with
# a blocking DNS function would put a thread hop (and a blocked worker per query) on every
# evaluation and would need that global swapped. Instead each evaluation uses a subclass of
# `spf.query` whose `dns()` method reads the DnsCache without I/O. A name that is not cached is
# recorded as a miss and the run aborts; `evaluate()` then awaits the misses through the cache and
# runs pyspf again, until a run completes with everything warm. In the steady state that is one
# pure-CPU run on the event loop, with no thread and no network. The module global DNSLookup is
# never called (and never patched); only this adapter knows how pyspf asks for DNS.
#
# pyspf's own code swallows some exceptions (e.g. around exp= lookups), so misses are recorded on
# the query object as well as raised.

_MAX_ROUNDS = 40  # each round resolves >= 1 new name; RFC 7208's limits keep real records far below
# Results are evaluated for this local part: the gateway asks "may our egress IP send for this
# domain", which must not vary with VERP'd bounce addresses. Records using %{l} are rare.
_LOCAL_PART = "postmaster"


class SpfVerdict(enum.StrEnum):
    """RFC 7208 section 2.6 results."""

    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The SPF answer for one egress IP and one envelope domain.

    `lookups`/`void_lookups` are the RFC 7208 4.6.4 counters of the evaluation; `ttl_expires_at`
    is when the answer stops being valid (cache clock); `from_cache` says no pyspf run was needed.
    """

    ip: str
    domain: str
    helo: str
    verdict: SpfVerdict
    explanation: str
    mechanism: str | None = None
    lookups: int = 0
    void_lookups: int = 0
    ttl_expires_at: float | None = None
    from_cache: bool = False

    @property
    def passed(self) -> bool:
        return self.verdict is SpfVerdict.PASS


class _Miss(Exception):
    """A name pyspf wants that is not in the cache yet (internal control flow of one run)."""


class _CachedQuery(spf.query):  # type: ignore[misc]  # pyspf ships no type information
    """spf.query whose DNS comes from answers gathered for this evaluation, without any I/O."""

    def __init__(
        self,
        cache: DnsCache,
        answers: dict[tuple[str, str], DnsAnswer | DnsError],
        ip: str,
        sender: str,
        helo: str,
    ) -> None:
        super().__init__(i=ip, s=sender, h=helo, strict=True)
        self._dns_cache = cache
        self._answers = answers
        self.misses: list[tuple[str, str]] = []
        self.used: list[DnsAnswer] = []

    def dns(
        self,
        name: str,
        qtype: str,
        cnames: dict[str, str] | None = None,
        ignore_void: bool = False,
    ) -> list[Any]:
        name = str(name).rstrip(".").lower()
        if not name or any(not 0 < len(label) < 64 for label in name.split(".")):
            return []  # pyspf's rule: names that cannot be queried yield nothing
        key = (name, qtype.upper())
        got = self._answers.get(key)
        if got is None:
            got = self._dns_cache.peek(name, qtype)
        if got is None:
            self.misses.append(key)
            raise _Miss(name, qtype)
        if isinstance(got, DnsNameError):
            result: list[Any] = []
        elif isinstance(got, DnsError):
            raise spf.TempError(f"DNS {got}")
        else:
            self.used.append(got)
            result = _pyspf_records(got, qtype)
        if not result and not ignore_void:
            # RFC 7208 4.6.4: more than two lookups returning no records is a permerror.
            self.void_lookups += 1
            if self.void_lookups > spf.MAX_VOID_LOOKUPS:
                raise spf.PermError(f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded")
        return result


def _pyspf_records(answer: DnsAnswer, qtype: str) -> list[Any]:
    """Answer data in the shapes spf.query.dns() returns (see pyspf's DNSLookup_dnspython)."""
    qtype = qtype.upper()
    if qtype in ("TXT", "SPF"):
        return answer.txt_chunks()
    if qtype in ("A", "AAAA"):
        return answer.addresses()
    if qtype == "MX":
        return answer.mx()
    if qtype == "PTR":
        return answer.ptr()
    return []


@dataclass
class SpfEvaluator:
    """SPF through a DnsCache; results cached per (ip, domain, helo) while their records live.

    Temporary errors are never cached: the next call tries again (the DnsCache rate-limits retries).
    """

    cache: DnsCache
    _results: dict[tuple[str, str, str], SpfResult] = field(default_factory=dict, init=False)

    async def evaluate(self, ip: str, domain: str, helo: str | None = None) -> SpfResult:
        """SPF for `ip` sending as `postmaster@domain` (HELO `helo`, default the domain)."""
        ip = str(ipaddress.ip_address(ip))  # ValueError for garbage: a config error, not DNS
        domain = domain.rstrip(".").lower()
        helo = (helo or domain).rstrip(".").lower()
        key = (ip, domain, helo)
        cached = self._results.get(key)
        if cached is not None and cached.ttl_expires_at is not None:
            if self.cache.clock() < cached.ttl_expires_at:
                return dataclasses.replace(cached, from_cache=True)
            del self._results[key]

        answers: dict[tuple[str, str], DnsAnswer | DnsError] = {}
        for _round in range(_MAX_ROUNDS):
            query = _CachedQuery(self.cache, answers, ip, f"{_LOCAL_PART}@{domain}", helo)
            try:
                verdict, _code, explanation = query.check()
            except _Miss:
                verdict = None
            except Exception as exc:  # a pyspf bug must not become an unhandled error mid-SMTP
                log.exception("spf: pyspf failed for %s %s", ip, domain)
                return SpfResult(
                    ip, domain, helo, SpfVerdict.TEMPERROR, f"SPF evaluation failed: {exc!r}"
                )
            if not query.misses:
                assert verdict is not None
                result = self._result(query, ip, domain, helo, verdict, explanation)
                if result.ttl_expires_at is not None:
                    self._results[key] = result
                return result
            await self._resolve(query.misses, answers)
        return SpfResult(
            ip, domain, helo, SpfVerdict.TEMPERROR, "SPF evaluation needed too many DNS rounds"
        )

    async def evaluate_all(
        self, ips: Iterable[str], domain: str, helo: str | None = None
    ) -> tuple[SpfResult, ...]:
        """SPF for every configured egress IP, concurrently; the order follows `ips`."""
        return tuple(await asyncio.gather(*(self.evaluate(ip, domain, helo) for ip in ips)))

    def forget(self) -> None:
        """Drop cached results (e.g. after an operator changed SPF and wants to re-check now)."""
        self._results.clear()

    async def _resolve(
        self,
        misses: Sequence[tuple[str, str]],
        answers: dict[tuple[str, str], DnsAnswer | DnsError],
    ) -> None:
        async def one(key: tuple[str, str]) -> None:
            try:
                answers[key] = await self.cache.lookup(*key)
            except DnsTempError as exc:
                answers[key] = exc
            except DnsNameError as exc:
                answers[key] = exc

        await asyncio.gather(*(one(k) for k in dict.fromkeys(misses)))

    def _result(
        self,
        query: _CachedQuery,
        ip: str,
        domain: str,
        helo: str,
        verdict: str,
        explanation: str,
    ) -> SpfResult:
        try:
            verdict_enum = SpfVerdict(verdict)
        except ValueError:  # "ambiguous" exists only in pyspf's harsh mode, which is not used
            verdict_enum = SpfVerdict.PERMERROR
        expires: float | None = None
        if verdict_enum is not SpfVerdict.TEMPERROR and not any(a.stale for a in query.used):
            # Valid as long as every answer it rests on; none used (e.g. a syntax error found
            # before any lookup) cannot happen since the record itself came from DNS.
            expires = min((a.expires_at for a in query.used), default=None)
        mechanism = query.mechanism if isinstance(query.mechanism, str) else None
        return SpfResult(
            ip=ip,
            domain=domain,
            helo=helo,
            verdict=verdict_enum,
            explanation=explanation,
            mechanism=mechanism,
            lookups=int(query.lookups),
            void_lookups=int(query.void_lookups),
            ttl_expires_at=expires,
        )
