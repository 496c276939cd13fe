"""Authentication facts for the DATA phase, and the signing step: the gateway's Art. 5 side.

Everything DNS-shaped goes through one DnsCache that is warmed at start-up and
refreshed in the background, so in the steady state no message waits on DNS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from gateway.auth.dkim_sign import (
    DkimSigner,
    KeyPublication,
    load_key,
    published_key_matches,
    verify_existing,
)
from gateway.auth.dmarc import discover, resolve_org_domains
from gateway.auth.dns import DnsCache, DnsConfig
from gateway.auth.spf import SpfEvaluator
from gateway.config import Config, SenderConfig
from gateway.engine.context import Facts
from gateway.errors import ConfigError, LookupTempError, SigningKeyError

log = logging.getLogger(__name__)
FACTS_SECONDS = 5.0  # how long derived SPF/DMARC/key verdicts are reused for one identity


def signing_domain(sender: SenderConfig) -> str:
    return next((k.domain for k in sender.dkim if k.domain), sender.domains[0])


class AuthPolicy:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.dns = DnsCache(
            DnsConfig(
                nameservers=config.dns.nameservers,
                timeout=config.dns.timeout,
                stale_ttl=config.dns.stale_ttl,
            )
        )
        self.spf = SpfEvaluator(self.dns)
        self._facts: dict[tuple[str, str, str], tuple[float, Any]] = {}
        self.signer = DkimSigner(body_cache=config.server.body_cache)
        for n, sender in enumerate(config.senders):
            for i, key in enumerate(sender.dkim):
                try:
                    self.signer.add_key(
                        load_key(
                            key.key,
                            selector=key.selector,
                            domain=key.domain or sender.domains[0],
                            algorithm=key.algorithm,
                        )
                    )
                except SigningKeyError as exc:
                    raise ConfigError(str(exc), f"senders[{n}].dkim[{i}].key") from None

    async def warm(self) -> None:
        """Fetch every record the senders need, so the first messages find them cached."""
        jobs: list[Coroutine[Any, Any, object]] = []
        for sender in self.config.senders:
            for domain in sender.domains:
                jobs.append(discover(self.dns, domain))
            for domain in (*sender.domains, *sender.envelope_domains):
                if sender.egress_ips:
                    jobs.append(self.spf.evaluate_all(sender.egress_ips, domain, self.helo))
            for key in self.signer.active_keys(signing_domain(sender)):
                jobs.append(published_key_matches(self.dns, key.selector, key.domain, key))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            log.warning("DNS warm-up incomplete", extra={"fields": {"errors": len(failures)}})

    @property
    def helo(self) -> str:
        return self.config.server.hostname

    async def gather(self, facts: Facts) -> None:
        """SPF for the egress IPs, DMARC of the From domain, our keys' publication."""
        sender = facts.sender
        header_from = facts.extra.get("header_from")
        if sender is None or not header_from:
            return
        from_domain = header_from.rpartition("@")[2]
        envelope_domain = facts.mail_from.rpartition("@")[2].lower()
        d_domain = signing_domain(sender)
        key = (sender.id, from_domain, envelope_domain)
        now = time.monotonic()
        cached = self._facts.get(key)
        if cached is not None and cached[0] > now:
            spf, dmarc, keys, org = cached[1]
        else:
            try:
                spf, dmarc, keys = await asyncio.gather(
                    self.spf.evaluate_all(sender.egress_ips, envelope_domain, self.helo),
                    discover(self.dns, from_domain),
                    self._publications(d_domain),
                )
                org = await resolve_org_domains(self.dns, {from_domain, d_domain, envelope_domain})
            except LookupTempError as exc:
                facts.errors["dns"] = f"DNS temporarily failing: {exc}"
                return
            # The answers come from the DNS cache anyway; re-deriving the same verdicts for
            # every message of a campaign costs ~1 ms of CPU; a DNS change is seen within
            # FACTS_SECONDS plus the record's TTL.
            if len(self._facts) > 1000:  # From domains are the client's choice: bound them
                self._facts.clear()
            self._facts[key] = (now + FACTS_SECONDS, (spf, dmarc, keys, org))
        facts.extra["spf"] = spf
        facts.extra["dmarc"] = dmarc
        facts.extra["dkim_keys"] = keys
        facts.extra["dkim_domain"] = d_domain
        facts.extra["org_domains"] = org
        if dmarc.found and dmarc.policy is not None and dmarc.policy.value == "none":
            log.warning(
                "DMARC p=none for a bulk sender",
                extra={"fields": {"sender_id": sender.id, "domain": from_domain}},
            )
        # the client's signatures, over the message as it sent it (an inserted footer is ours)
        received: bytes = facts.extra.get("received", facts.raw)
        if b"dkim-signature:" in received[:65536].lower():
            facts.extra["dkim_existing"] = await verify_existing(self.dns, received)

    async def _publications(self, domain: str) -> list[KeyPublication]:
        keys = self.signer.active_keys(domain)
        return list(
            await asyncio.gather(
                *(published_key_matches(self.dns, k.selector, k.domain, k) for k in keys)
            )
        )

    async def sign(self, facts: Facts, raw: bytes) -> bytes:
        """The last step before forwarding: nothing may change the message after this."""
        if facts.sender is None:
            raise SigningKeyError("no sender identity: refusing to send unsigned")
        domain = signing_domain(facts.sender)
        if not self.signer.active_keys(domain):
            raise SigningKeyError(f"no DKIM key configured for {domain}")
        try:
            return self.signer.sign(raw, domain)
        except SigningKeyError:
            raise
        except Exception as exc:  # a message dkimpy cannot parse must not go out unsigned
            raise SigningKeyError(f"signing failed: {exc}") from exc

    async def close(self) -> None:
        await self.dns.aclose()
