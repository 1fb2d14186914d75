"""Every metric the gateway exports, declared in one place.

One ``Metrics`` object per app, on its own ``CollectorRegistry``, so tests can
build a fresh one and read ``registry.get_sample_value``. Label values are
bounded sets: route templates, operation names, status codes, fixed results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

#: Sub-millisecond (cache hits) to 10 s (a slow upstream under retries).
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: Ages of answered locations: a minute to a month.
AGE_BUCKETS = (
    60.0,
    300.0,
    900.0,
    3600.0,
    4 * 3600.0,
    12 * 3600.0,
    86_400.0,
    3 * 86_400.0,
    7 * 86_400.0,
    30 * 86_400.0,
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._report_children: dict[str, tuple[Counter, Histogram]] = {}
        self._network_children: dict[str, Counter] = {}
        self.http_request_duration = self._histogram(
            "dlr_http_request_duration_seconds",
            "HTTP requests served, by route template, method and status.",
            ["route", "method", "status"],
        )
        self.report_duration = self._histogram(
            "dlr_report_duration_seconds", "Location reports, end to end, by result.", ["result"]
        )
        self.reports = self._counter("dlr_reports", "Location reports by result.", ["result"])
        self.upstream_request_duration = self._histogram(
            "dlr_upstream_request_duration_seconds",
            "Calls to the Bandwidth API (each attempt), by operation and status.",
            ["operation", "status"],
        )
        self.upstream_attempt_timeout = self._gauge(
            "dlr_upstream_attempt_timeout_seconds",
            "How long the next carrier attempt waits for an answer: from the carrier's recent "
            "latency, GATEWAY_UPSTREAM_MIN_TIMEOUT to GATEWAY_UPSTREAM_TIMEOUT.",
        )
        self.upstream_slot_wait = self._histogram(
            "dlr_upstream_slot_wait_seconds",
            "Carrier calls that found every connection slot (GATEWAY_UPSTREAM_MAX_CONNECTIONS) "
            "busy, by how long they waited for one: the gateway's own queueing, not the "
            "carrier's latency.",
        )
        self.upstream_retries = self._counter(
            "dlr_upstream_retries",
            "Upstream retries by operation and reason.",
            ["operation", "reason"],
        )
        self.geocode_duration = self._histogram(
            "dlr_geocode_duration_seconds",
            "Geocoder lookups by provider and cache outcome.",
            ["provider", "cache"],
        )
        self.cache_lookups = self._counter(
            "dlr_cache_lookups",
            "Cache lookups by cache and result (hit, miss).",
            ["cache", "result"],
        )
        self.build_info = Info("dlr_build", "The gateway's version.", registry=self.registry)
        self.upstream_circuit_state = self._gauge(
            "dlr_upstream_circuit_state",
            "The upstream circuit breaker: 0 closed, 1 half-open, 2 open.",
        )
        self.state_store_available = self._gauge(
            "dlr_state_store_available",
            "Whether the state store answered the last readiness check (1) or not (0), by "
            "backend (postgresql, sqlite); absent without a store.",
            ["backend"],
        )
        self.upstream_orders = self._counter(
            "dlr_upstream_orders",
            "The v2 carrier's endpoint orders a write followed, by how the following ended:"
            " completed, failed, or pending (still open when the report answered 202).",
            ["outcome"],
        )
        self.upstream_order_oldest_open = self._gauge(
            "dlr_upstream_order_oldest_open_seconds",
            "Age of the oldest v2 carrier order left open by a write (0 with none).",
        )
        self.reconcile_repairs = self._counter(
            "dlr_reconcile_repairs",
            "Device records the gateway re-wrote at the carrier because they had regressed "
            "(a late write undid a newer one) or gone missing.",
            ["reason"],
        )
        self.import_rows = self._counter(
            "dlr_import_rows",
            "Bulk import lines applied, by kind (devices, locations) and outcome (created, "
            "moved, updated, unchanged, superseded, failed).",
            ["kind", "outcome"],
        )
        self.report_rate_limited = self._counter(
            "dlr_report_rate_limited", "Reports refused (429) because one device sent too many."
        )
        self.report_coordinate_conflicts = self._counter(
            "dlr_report_coordinate_conflicts",
            "Reports whose GPS fix contradicted their address (farther from it than the fix's "
            "accuracy and GATEWAY_GEO_CONFLICT_MARGIN allow): applied without the fix.",
        )
        # Network-based location (gateway.network).
        self.network_resolutions = self._counter(
            "dlr_network_resolutions",
            "Wiremap lookups that found a location, by the kind of entry that won (port, "
            "switch, access-point, subnet).",
            ["source"],
        )
        self.network_misses = self._counter(
            "dlr_network_misses", "Wiremap lookups that matched no entry."
        )
        self.network_entries = self._gauge(
            "dlr_network_entries", "Wiremap entries this replica holds, by kind.", ["kind"]
        )
        # The carrier's call-time location query (gateway.api.emergency).
        self.emergency_query_duration = self._histogram(
            "dlr_emergency_query_duration_seconds",
            "Emergency-call location queries, arrival to answer, by result.",
            ["result"],
        )
        self.emergency_queries = self._counter(
            "dlr_emergency_queries",
            "Emergency-call location queries by result: store, cache (a location answered "
            "from the state store or process memory), default, not_found, unauthorized, "
            "forbidden, invalid, error.",
            ["result"],
        )
        self.emergency_query_location_age = self._histogram(
            "dlr_emergency_query_location_age_seconds",
            "Age of the locations answered to emergency-call queries (since the device's "
            "newest report).",
            buckets=AGE_BUCKETS,
        )
        self.emergency_query_stale = self._counter(
            "dlr_emergency_query_stale",
            "Emergency-call answers whose location is older than "
            "GATEWAY_EMERGENCY_QUERY_STALE_AFTER.",
        )
        self.emergency_query_shared_lines = self._counter(
            "dlr_emergency_query_shared_lines",
            "Emergency-call queries whose number is the callback number of several devices "
            "(the freshest binding was answered).",
        )
        self.emergency_query_store_fallbacks = self._counter(
            "dlr_emergency_query_store_fallbacks",
            "Emergency-call queries that did not use the state store's answer, by reason "
            "(timeout, unavailable, busy, backoff).",
            ["reason"],
        )
        self.emergency_query_records_dropped = self._counter(
            "dlr_emergency_query_records_dropped",
            "Emergency-call query history records not written, by reason "
            "(queue_full, store_error).",
            ["reason"],
        )
        # Events and their deliveries (gateway.events).
        self.events = self._counter(
            "dlr_events",
            "Events emitted, by type, and whether the outbox took them (written, dropped).",
            ["type", "result"],
        )
        self.event_deliveries = self._counter(
            "dlr_event_deliveries",
            "Delivery attempts, by event type, channel (webhook, email) and outcome "
            "(delivered, retry, failed: given up after GATEWAY_EVENT_DELIVERY_MAX_AGE).",
            ["type", "channel", "outcome"],
        )
        self.outbox_depth = self._gauge(
            "dlr_outbox_pending", "Deliveries waiting in the outbox (read every 5 s)."
        )
        self.outbox_oldest_age = self._gauge(
            "dlr_outbox_oldest_age_seconds",
            "Age of the oldest event with a delivery still pending (0: none).",
        )

    def _counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=self.registry)

    def _histogram(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        """A histogram; its buckets, unless given, are ``LATENCY_BUCKETS``."""
        return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)

    def network_resolved(self, source: str | None) -> None:
        """One wiremap lookup (its child counter looked up once per source)."""
        if source is None:
            self.network_misses.inc()
            return
        child = self._network_children.get(source)
        if child is None:
            child = self._network_children[source] = self.network_resolutions.labels(source)
        child.inc()

    def network_sized(self, counts: Mapping[Any, int]) -> None:
        for kind, count in counts.items():
            self.network_entries.labels(kind=str(kind)).set(count)

    def report_done(self, result: str, seconds: float) -> None:
        """A report's two series (``dlr_reports_total``, ``dlr_report_duration_seconds``),
        their children looked up once per ``result`` (a handful of values) rather than per
        report: ``labels()`` costs more than the increment."""
        children = self._report_children.get(result)
        if children is None:
            children = (self.reports.labels(result=result), self.report_duration.labels(result))
            self._report_children[result] = children
        children[0].inc()
        children[1].observe(seconds)
