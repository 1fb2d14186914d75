"""Every metric the gateway exports, declared in one place.

One ``Metrics`` object per app, on its own ``CollectorRegistry``, so tests can
build a fresh one and read ``registry.get_sample_value``. Label values are
bounded sets: route templates, operation names, status codes, fixed results.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

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


M = TypeVar("M", Counter, Gauge, Histogram, Info)
K = TypeVar("K", bound=Hashable)
C = TypeVar("C")


class Children(dict[K, C]):
    """A metric's children by label values, each made once by ``make`` (``labels()`` costs
    more than the increment it serves): ``children[key]`` is a dict lookup once it is made.
    The keys must be a bounded set."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[K], C]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, key: K) -> C:
        child = self[key] = self._make(key)
        return child


class _Declared(Generic[M]):
    """One metric of ``Metrics``, named ``dlr_<attribute>`` (``_<unit>`` after it; an info's
    without the ``_info`` prometheus_client adds); each ``Metrics`` builds its own, on its
    registry, as a plain attribute."""

    def __init__(
        self, kind: type[M], doc: str, labels: tuple[str, ...], unit: str, **options: Any
    ) -> None:
        self.kind: type[M] = kind
        self.doc, self.labels, self.unit, self.options = doc, labels, unit, options
        self.attribute = self.name = ""

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute
        base = attribute.removesuffix("_info") if self.kind is Info else attribute
        self.name = f"dlr_{base}_{self.unit}" if self.unit else f"dlr_{base}"

    def build(self, registry: CollectorRegistry) -> M:
        metric: M = self.kind(self.name, self.doc, self.labels, registry=registry, **self.options)
        return metric

    @overload
    def __get__(self, metrics: None, owner: type) -> _Declared[M]: ...
    @overload
    def __get__(self, metrics: object, owner: type) -> M: ...
    def __get__(self, metrics: object, owner: type) -> _Declared[M] | M:
        # Only the class reaches this: ``Metrics.__init__`` sets every instance's metric.
        if metrics is None:
            return self
        raise AttributeError(self.attribute)


def _counter(doc: str, *labels: str) -> _Declared[Counter]:
    return _Declared(Counter, doc, labels, "")


def _gauge(doc: str, *labels: str, unit: str = "") -> _Declared[Gauge]:
    return _Declared(Gauge, doc, labels, unit)


def _info(doc: str) -> _Declared[Info]:
    return _Declared(Info, doc, (), "")


def _histogram(
    doc: str, *labels: str, buckets: Sequence[float] = LATENCY_BUCKETS
) -> _Declared[Histogram]:
    """A histogram of seconds; its buckets, unless given, are ``LATENCY_BUCKETS``."""
    return _Declared(Histogram, doc, labels, "seconds", buckets=buckets)


class Metrics:
    """Every metric, declared once below: ``reports = _counter(...)`` is
    ``dlr_reports_total``; a histogram's name ends in ``_seconds``."""

    http_request_duration = _histogram(
        "HTTP requests served, by route template, method and status.", "route", "method", "status"
    )
    report_duration = _histogram("Location reports, end to end, by result.", "result")
    reports = _counter("Location reports by result.", "result")
    upstream_request_duration = _histogram(
        "Calls to the Bandwidth API (each attempt), by operation and status.",
        "operation",
        "status",
    )
    upstream_attempt_timeout = _gauge(
        "How long the next carrier attempt waits for an answer: from the carrier's recent "
        "latency, GATEWAY_UPSTREAM_MIN_TIMEOUT to GATEWAY_UPSTREAM_TIMEOUT.",
        unit="seconds",
    )
    upstream_slot_wait = _histogram(
        "Carrier calls that found every connection slot (GATEWAY_UPSTREAM_MAX_CONNECTIONS) "
        "busy, by how long they waited for one: the gateway's own queueing, not the "
        "carrier's latency."
    )
    upstream_retries = _counter("Upstream retries by operation and reason.", "operation", "reason")
    geocode_duration = _histogram(
        "Geocoder lookups by provider and cache outcome.", "provider", "cache"
    )
    cache_lookups = _counter("Cache lookups by cache and result (hit, miss).", "cache", "result")
    build_info = _info("The gateway's version.")
    upstream_circuit_state = _gauge("The upstream circuit breaker: 0 closed, 1 half-open, 2 open.")
    state_store_available = _gauge(
        "Whether the state store answered the last readiness check (1) or not (0), by "
        "backend (postgresql, sqlite); absent without a store.",
        "backend",
    )
    upstream_orders = _counter(
        "The v2 carrier's endpoint orders a write followed, by how the following ended:"
        " completed, failed, or pending (still open when the report answered 202).",
        "outcome",
    )
    upstream_order_oldest_open = _gauge(
        "Age of the oldest v2 carrier order left open by a write (0 with none).", unit="seconds"
    )
    reconcile_repairs = _counter(
        "Device records the gateway re-wrote at the carrier because they had regressed "
        "(a late write undid a newer one) or gone missing.",
        "reason",
    )
    import_rows = _counter(
        "Bulk import lines applied, by kind (devices, locations) and outcome (created, "
        "moved, updated, unchanged, superseded, failed).",
        "kind",
        "outcome",
    )
    report_rate_limited = _counter("Reports refused (429) because one device sent too many.")
    report_coordinate_conflicts = _counter(
        "Reports whose GPS fix contradicted their address (farther from it than the fix's "
        "accuracy and GATEWAY_GEO_CONFLICT_MARGIN allow): applied without the fix."
    )
    # Network-based location (gateway.network).
    network_resolutions = _counter(
        "Wiremap lookups that found a location, by the kind of entry that won (port, "
        "switch, access-point, subnet); subnet-distrusted: a private subnet's match that a "
        "report heard from outside GATEWAY_NETWORK_TRUSTED_EGRESS did not use.",
        "source",
    )
    network_misses = _counter("Wiremap lookups that matched no entry.")
    network_entries = _gauge("Wiremap entries this replica holds, by kind.", "kind")
    # The carrier's call-time location query (gateway.api.emergency).
    emergency_query_duration = _histogram(
        "Emergency-call location queries, arrival to answer, by result.", "result"
    )
    emergency_queries = _counter(
        "Emergency-call location queries by result: store, cache (a location answered "
        "from the state store or process memory), default, not_found, unauthorized, "
        "forbidden, invalid, error.",
        "result",
    )
    emergency_query_location_age = _histogram(
        "Age of the locations answered to emergency-call queries (since the device's "
        "newest report).",
        buckets=AGE_BUCKETS,
    )
    emergency_query_stale = _counter(
        "Emergency-call answers whose location is older than GATEWAY_EMERGENCY_QUERY_STALE_AFTER."
    )
    emergency_query_shared_lines = _counter(
        "Emergency-call queries whose number is the callback number of several devices "
        "(the freshest binding was answered)."
    )
    emergency_query_store_fallbacks = _counter(
        "Emergency-call queries that did not use the state store's answer, by reason "
        "(timeout, unavailable, busy, backoff).",
        "reason",
    )
    emergency_query_records_dropped = _counter(
        "Emergency-call query history records not written, by reason (queue_full, store_error).",
        "reason",
    )
    # Events and their deliveries (gateway.events).
    events = _counter(
        "Events emitted, by type, and whether the outbox took them (written, dropped).",
        "type",
        "result",
    )
    event_deliveries = _counter(
        "Delivery attempts, by event type, channel (webhook, email) and outcome "
        "(delivered, retry, failed: given up after GATEWAY_EVENT_DELIVERY_MAX_AGE).",
        "type",
        "channel",
        "outcome",
    )
    outbox_pending = _gauge("Deliveries waiting in the outbox (read every 5 s).")
    outbox_oldest_age = _gauge(
        "Age of the oldest event with a delivery still pending (0: none).", unit="seconds"
    )

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        for declared in vars(Metrics).values():
            if isinstance(declared, _Declared):
                vars(self)[declared.attribute] = declared.build(self.registry)
        self._network_children: Children[str, Counter] = Children(self.network_resolutions.labels)
        self._upstream_children: Children[tuple[str, str], Histogram] = Children(
            lambda key: self.upstream_request_duration.labels(*key)
        )
        self._report_children: Children[str, tuple[Counter, Histogram]] = Children(
            lambda result: (self.reports.labels(result=result), self.report_duration.labels(result))
        )

    def network_resolved(self, source: str | None) -> None:
        """One wiremap lookup (its child counter looked up once per source)."""
        if source is None:
            self.network_misses.inc()
            return
        self._network_children[source].inc()

    def network_sized(self, counts: Mapping[Any, int]) -> None:
        for kind, count in counts.items():
            self.network_entries.labels(kind=str(kind)).set(count)

    def upstream_done(self, operation: str, status: str, seconds: float) -> None:
        """One exchange with the carrier (``dlr_upstream_request_duration_seconds``), its
        child looked up once per operation and status (bounded: the API's operations, HTTP
        statuses and a few words) rather than per exchange."""
        self._upstream_children[operation, status].observe(seconds)

    def report_done(self, result: str, seconds: float) -> None:
        """A report's two series (``dlr_reports_total``, ``dlr_report_duration_seconds``),
        their children looked up once per ``result`` (a handful of values) rather than per
        report: ``labels()`` costs more than the increment."""
        children = self._report_children[result]
        children[0].inc()
        children[1].observe(seconds)
