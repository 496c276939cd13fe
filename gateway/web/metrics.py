"""Prometheus metrics of one gateway process, on a registry of its own (no global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from gateway.auth.dns import DnsCacheStats
    from gateway.delivery.upstream import UpstreamPool
    from gateway.engine.packs import Rule
    from gateway.store.base import Store
    from gateway.volume import SenderVolume, Tally

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                  5.0, 10.0, 30.0)

# Counters the DNS cache and the store keep themselves (plain ints on the hot path),
# read when /metrics is scraped: name -> (help, read).
Readings = dict[str, tuple[str, Callable[[], float]]]
# Gauges read the same way, one label: name -> (help, label, {label value: read}).
GaugeReadings = dict[str, tuple[str, str, dict[str, Callable[[], float]]]]


class _ReadAtScrape:
    """A prometheus collector over counters and gauges owned by other objects."""

    def __init__(self, counters: Readings, gauges: GaugeReadings) -> None:
        self.counters = counters
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for name, (doc, read) in self.counters.items():
            yield CounterMetricFamily(name, doc, value=read())
        for name, (doc, label, reads) in self.gauges.items():
            family = GaugeMetricFamily(name, doc, labels=[label])
            for value, read in reads.items():
                family.add_metric([value], read())
            yield family


class Metrics:
    """The counters and histograms the SMTP side and the HTTP side increment.

    Call sites: `decision(verdict, rules)` once per recorded event; `stage(name, seconds)`
    per pipeline stage (upstream_mail, rcpt_rules, ..., commit); `upstream_error(kind)` per
    upstream failure or 4xx/5xx answer; `unsubscribe(method)`; `session_error(class name)`
    per error that reached the session's last-resort handler; `session_refusal(reason)` per
    connection or command refused before the rules. The DNS cache's and the
    store's own counters are read at scrape time (`watch`).
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
        self._stages: dict[str, Histogram] = {}
        self.upstream_errors = Counter(
            "tokuden_upstream_errors", "Upstream MTA failures (unavailable, timeout, busy: "
            "no free connection) and refusals (4xx, 5xx)",
            ["kind"], registry=r)
        self.unsubscribes = Counter(
            "tokuden_unsubscribes", "Opt-outs received, by method (one_click, "
            "unsubscribe_page, mailto, complaint: a feedback-loop report)", ["method"], registry=r)
        self.suppressions = Counter(
            "tokuden_suppressions", "Addresses suppressed by the gateway, by reason "
            "(hard_bounce: the upstream answered that the mailbox does not exist)",
            ["reason"], registry=r)
        self.auth_refusals = Counter(
            "tokuden_auth_refusals", "Messages receivers refused for failed authentication "
            "(rule sender.auth_refused: a DSN to the opt-out mailbox or the upstream's reply), "
            "by enhanced status", ["status"], registry=r)
        self.session_errors = Counter(
            "tokuden_session_errors", "SMTP commands that ended in an error no step "
            "handled where it arose (a bug or an unforeseen input), by exception class; "
            "each was answered 4xx with a ref= that names its log line", ["error"], registry=r)
        self.session_refusals = Counter(
            "tokuden_session_refusals", "SMTP commands and connections refused before any "
            "rule ran, by reason: max_connections, max_connections_per_ip (the limits), "
            "auth_failed, auth_throttled, relay_denied, store_unavailable, draining, message_rate, "
            "sender_invalid (the last three are events too when the client logged in)",
            ["reason"], registry=r)
        self.http_auth_failures = Counter(
            "tokuden_http_auth_failures", "Refused API/UI credentials", registry=r)

    def decision(self, verdict: str, rules: Iterable[str] = ()) -> None:
        """One event: counted once per rule it names (or once with rule="" when none)."""
        named = list(rules)
        for rule in named or [""]:
            self.messages.labels(verdict=verdict, rule=rule).inc()

    def stage(self, name: str, seconds: float) -> None:
        # labels() locks and looks the child up by a tuple of its label values: six times
        # a message, ~2 µs each; the few stage names are kept here instead
        child = self._stages.get(name)
        if child is None:
            child = self._stages[name] = self.stage_seconds.labels(stage=name)
        child.observe(seconds)

    def upstream_error(self, kind: str = "unavailable") -> None:
        self.upstream_errors.labels(kind=kind).inc()

    def session_error(self, error: str) -> None:
        self.session_errors.labels(error=error).inc()

    def session_refusal(self, reason: str) -> None:
        self.session_refusals.labels(reason=reason).inc()

    def watch(self, dns: DnsCacheStats, store: Store, pool: UpstreamPool) -> None:
        """Export the DNS cache's, the store's and the upstream pool's own counts, read at
        each scrape."""
        readings: Readings = {
            "tokuden_dns_cache_hits": (
                "DNS answers given from the cache", lambda: dns.hits + dns.peek_hits),
            "tokuden_dns_cache_misses": (
                "DNS lookups that had to ask the servers (or found nothing cached)",
                lambda: dns.misses + dns.peek_misses),
            "tokuden_dns_stale_served": (
                "Expired DNS answers served while the servers failed (dns.stale_ttl)",
                lambda: dns.stale_served),
            "tokuden_store_commits": ("Group commits of the store", lambda: store.commits),
            "tokuden_store_commit_seconds": (
                "Seconds spent in group commits (per commit: divide by "
                "tokuden_store_commits_total)", lambda: store.commit_seconds),
        }
        gauges: GaugeReadings = {
            "tokuden_upstream_connections": (
                "Upstream links of this process: in a transaction, idle in the pool, and "
                "transactions waiting for one (upstream.max_connections)", "state",
                {"in_use": lambda: pool.in_use, "idle": lambda: pool.idle,
                 "waiting": lambda: pool.waiting}),
        }
        self.registry.register(_ReadAtScrape(readings, gauges))

    def watch_volume(self, volume: SenderVolume, sender_ids: list[str], days: int,
                     rates: list[Rule]) -> None:
        """Export each sender's counts over `days` and each rate rule's rate over its own
        window, as `tokuden_<rule id>` (NaN until the counts were first read from the store)."""

        def read(sender_id: str, window: int, value: Callable[[Tally], float]
                 ) -> Callable[[], float]:
            def current() -> float:
                counts = volume.days(sender_id)
                return value(counts.over(window)) if counts else float("nan")
            return current

        def count_of(field: str) -> Callable[[Tally], float]:
            return lambda tally: float(getattr(tally, field))

        def rate_of(of: str) -> Callable[[Tally], float]:
            return lambda tally: tally.rate(of)

        gauges: GaugeReadings = {
            f"tokuden_sender_{field}": (f"{what} over the last {days} days", "sender",
                                        {sid: read(sid, days, count_of(field))
                                         for sid in sender_ids})
            for field, what in (
                ("sent", "Recipients of advertising mail the upstream took"),
                ("complaints", "Feedback-loop complaints received"),
                ("hard_bounces", "Hard bounces of advertising mail (5.1.1)"),
                ("auth_refusals", "Messages receivers refused for failed authentication"))
        }
        for rule in rates:
            window, of = int(rule.params["window_days"]), str(rule.params["of"])
            gauges["tokuden_" + rule.id.replace(".", "_")] = (
                f"{of.replace('_', ' ').capitalize()} per recipient of advertising mail over "
                f"the last {window} days (rule {rule.id})", "sender",
                {sid: read(sid, window, rate_of(of)) for sid in sender_ids})
        if volume.gmail_limit:
            gauges["tokuden_sender_gmail_today"] = (
                "Recipients at personal Gmail this UTC day, every client class, with the other "
                "senders of the same organisational domain (Gmail's bulk limit: "
                f"{volume.gmail_limit:,} a day)", "sender",
                {sid: read(sid, 1, count_of("gmail_sent")) for sid in sender_ids})
            gauges["tokuden_sender_gmail_bulk"] = (
                "1 once the sender reached Gmail's bulk limit on some day (for good)", "sender",
                {sid: self._bulk(volume, sid) for sid in sender_ids})
        self.registry.register(_ReadAtScrape({}, gauges))

    @staticmethod
    def _bulk(volume: SenderVolume, sender_id: str) -> Callable[[], float]:
        def current() -> float:
            days = volume.days(sender_id)
            if days is None:
                return float("nan")
            return 1.0 if days.gmail_bulk_since is not None else 0.0
        return current

    def unsubscribe(self, method: str) -> None:
        self.unsubscribes.labels(method=method).inc()

    def auth_refusal(self, status: str) -> None:
        self.auth_refusals.labels(status=status).inc()

    def suppression_added(self, reason: str) -> None:
        self.suppressions.labels(reason=reason).inc()

    def render(self) -> bytes:
        """The text exposition format for /metrics."""
        return generate_latest(self.registry)
