"""Prometheus metrics of one gateway process, on a registry of its own (no global state)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                  5.0, 10.0, 30.0)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """The counters and histograms the SMTP side and the HTTP side increment.

    Call sites: `decision(verdict, rules)` once per recorded event; `stage(name, seconds)`
    per pipeline stage (rcpt, data, footer, dns, sign, upstream, ...); `upstream_error(kind)`;
    `dns_cache(hit)`; `store_commit(seconds)`; `unsubscribe(method)`.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "tokuden_messages", "Decisions recorded, by verdict and deciding rule "
            "(rule=\"\" for mail no rule refused)", ["verdict", "rule"], registry=r)
        self.stage_seconds = Histogram(
            "tokuden_stage_seconds", "Time spent per processing stage", ["stage"],
            buckets=_STAGE_BUCKETS, registry=r)
        self.upstream_errors = Counter(
            "tokuden_upstream_errors", "Upstream MTA failures (connect, timeout, 4xx, 5xx)",
            ["kind"], registry=r)
        self.dns_cache_hits = Counter("tokuden_dns_cache_hits", "DNS cache hits", registry=r)
        self.dns_cache_misses = Counter("tokuden_dns_cache_misses", "DNS cache misses",
                                        registry=r)
        self.store_commit_seconds = Histogram(
            "tokuden_store_commit_seconds", "Store commit latency (one group commit)",
            buckets=_COMMIT_BUCKETS, registry=r)
        self.unsubscribes = Counter(
            "tokuden_unsubscribes", "Opt-outs received, by method (one_click, "
            "unsubscribe_page, mailto)", ["method"], registry=r)
        self.http_auth_failures = Counter(
            "tokuden_http_auth_failures", "Refused API/UI credentials", registry=r)

    def decision(self, verdict: str, rules: Iterable[str] = ()) -> None:
        """One event: counted once per rule it names (or once with rule="" when none)."""
        named = list(rules)
        for rule in named or [""]:
            self.messages.labels(verdict=verdict, rule=rule).inc()

    def stage(self, name: str, seconds: float) -> None:
        self.stage_seconds.labels(stage=name).observe(seconds)

    def upstream_error(self, kind: str = "unavailable") -> None:
        self.upstream_errors.labels(kind=kind).inc()

    def dns_cache(self, hit: bool) -> None:
        (self.dns_cache_hits if hit else self.dns_cache_misses).inc()

    def store_commit(self, seconds: float) -> None:
        self.store_commit_seconds.observe(seconds)

    def unsubscribe(self, method: str) -> None:
        self.unsubscribes.labels(method=method).inc()

    def render(self) -> bytes:
        """The text exposition format for /metrics."""
        return generate_latest(self.registry)
