"""Every metric the gateway exports, declared in one place.

One ``Metrics`` object per app, on its own ``CollectorRegistry``, so tests can
build a fresh one and read ``registry.get_sample_value``. Label values are
bounded sets: route templates, operation names, status codes, fixed results.
"""

from __future__ import annotations

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


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.http_request_duration = Histogram(
            "dlr_http_request_duration_seconds",
            "HTTP requests served, by route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.report_duration = Histogram(
            "dlr_report_duration_seconds",
            "Location reports, end to end, by result.",
            ["result"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reports = Counter("dlr_reports", "Location reports by result.", ["result"], registry=r)
        self.upstream_request_duration = Histogram(
            "dlr_upstream_request_duration_seconds",
            "Calls to the Bandwidth API (each attempt), by operation and status.",
            ["operation", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_retries = Counter(
            "dlr_upstream_retries",
            "Upstream retries by operation and reason.",
            ["operation", "reason"],
            registry=r,
        )
        self.geocode_duration = Histogram(
            "dlr_geocode_duration_seconds",
            "Geocoder lookups by provider and cache outcome.",
            ["provider", "cache"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_lookups = Counter(
            "dlr_cache_lookups",
            "Cache lookups by cache and result (hit, miss).",
            ["cache", "result"],
            registry=r,
        )
        self.build_info = Info("dlr_build", "The gateway's version.", registry=r)
        self.upstream_circuit_state = Gauge(
            "dlr_upstream_circuit_state",
            "The upstream circuit breaker: 0 closed, 1 half-open, 2 open.",
            registry=r,
        )
        self.reconcile_repairs = Counter(
            "dlr_reconcile_repairs",
            "Device records the gateway re-wrote at the carrier because they had regressed "
            "(a late write undid a newer one) or gone missing.",
            ["reason"],
            registry=r,
        )
        self.report_rate_limited = Counter(
            "dlr_report_rate_limited",
            "Reports refused (429) because one device sent too many.",
            registry=r,
        )
