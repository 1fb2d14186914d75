"""How the service takes requests: report caches and limits, imports, the server's timing,
the proxies in front of it and logs."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.settings.network import check_networks
from gateway.settings.reader import setting


@dataclass(frozen=True)
class ReportSettings:
    """A report's deadline, the per-pod caches and the largest body."""

    normalize_cache_size: int = setting(
        "GATEWAY_NORMALIZE_CACHE_SIZE",
        50_000,
        "entries in the address-normalization cache",
    )
    report_deadline: float = setting(
        "GATEWAY_REPORT_DEADLINE",
        8.0,
        "a location report answers within this, or 503/504 with `Retry-After` (its carrier "
        "calls end just before it)",
        gt=0,
    )
    location_cache_size: int = setting(
        "GATEWAY_LOCATION_CACHE_SIZE",
        200_000,
        "locations known to exist at the carrier, per pod",
    )
    report_memo_size: int = setting(
        "GATEWAY_REPORT_MEMO_SIZE",
        10_000,
        "report bodies remembered already parsed, and unchanged reports' answers already "
        "written, per pod: a device's next report that differs only in `observedAt` skips "
        "decoding, validation and, when unchanged, building its answer (0: off)",
    )
    binding_cache_size: int = setting(
        "GATEWAY_BINDING_CACHE_SIZE",
        200_000,
        "device-to-location bindings remembered, per pod (what makes an unchanged report cost "
        "zero calls)",
    )
    max_body_bytes: int = setting(
        "GATEWAY_MAX_BODY_BYTES",
        64 * 1024,
        "largest request body accepted (413 beyond)",
    )
    body_timeout: float = setting(
        "GATEWAY_BODY_TIMEOUT",
        30.0,
        "seconds a request's body may take to arrive once its headers have (408 beyond); a "
        "larger body (a bulk import's file) gets a second per 16 KiB its Content-Length "
        "declares",
        gt=0,
        finite=True,
    )


@dataclass(frozen=True)
class ImportSettings:
    """Limits of one bulk import."""

    import_max_bytes: int = setting(
        "GATEWAY_IMPORT_MAX_BYTES",
        16 * 1024 * 1024,
        "largest CSV file an import reads (413 from the API beyond)",
        gt=0,
    )
    import_max_rows: int = setting(
        "GATEWAY_IMPORT_MAX_ROWS",
        100_000,
        "most data rows in one import's file",
        gt=0,
    )
    import_concurrency: int = setting(
        "GATEWAY_IMPORT_CONCURRENCY",
        8,
        "rows an import applies at a time",
        gt=0,
    )


@dataclass(frozen=True)
class ServerSettings:
    """Readiness, shutdown, idle connections, the proxies in front and the log level."""

    ready_window: float = setting(
        "GATEWAY_READY_WINDOW",
        30.0,
        'an upstream answer this recent shows as `"upstream": "ok"` in `/readyz`\'s body without a'
        " probe (it never decides readiness)",
    )
    shutdown_grace: float = setting(
        "GATEWAY_SHUTDOWN_GRACE",
        20.0,
        "after SIGTERM, how long in-flight requests have before they are cancelled",
    )
    keep_alive_timeout: float = setting(
        "GATEWAY_KEEP_ALIVE_TIMEOUT",
        75.0,
        "seconds an idle client connection stays open (also one that has not sent a whole "
        "request yet, however it trickles); keep it above your load balancer's idle "
        "timeout (60 s on AWS ALB and nginx), so the balancer never reuses a connection the "
        "gateway is closing",
        gt=0,
    )
    trusted_proxies: tuple[str, ...] = setting(
        "GATEWAY_TRUSTED_PROXIES",
        (),
        "comma-separated networks of the reverse proxies in front of the gateway (an ingress "
        "controller's pods, `10.244.0.0/16`): a request from one of them comes from the nearest "
        "`X-Forwarded-For` hop that is not one of them. That client address is what "
        "`GATEWAY_NETWORK_TRUSTED_EGRESS`, `GATEWAY_NETWORK_TRUSTED_CIDRS`, "
        "`GATEWAY_EMERGENCY_QUERY_ALLOW_CIDRS` and the console's sign-in limit check. Unset: "
        "the TCP peer's, and no proxy header is read",
        shown="— (none)",
        check=check_networks,
    )
    log_level: str = setting(
        "GATEWAY_LOG_LEVEL",
        "INFO",
        "a Python log level name: `DEBUG`, `INFO`, `WARNING`, `ERROR`; anything else refuses to "
        "start",
        clean=str.upper,
    )


@dataclass(frozen=True)
class ReportLimitSettings:
    """Per-device rates, report sanity bounds and carrier reads of a device's location."""

    report_rate_per_minute: float = setting(
        "GATEWAY_REPORT_RATE_PER_MINUTE",
        60.0,
        "reports one device may send per minute before 429; `0` turns the limit off",
    )
    report_burst: int = setting(
        "GATEWAY_REPORT_BURST",
        10,
        "reports one device may send at once before the per-minute rate applies (both also apply,"
        " separately, to reads of a device's location)",
    )
    observed_at_max_future: float = setting(
        "GATEWAY_OBSERVED_AT_MAX_FUTURE",
        120.0,
        "how far ahead of the gateway's clock a report's `observedAt` may be (422 beyond)",
        ge=0,
        finite=True,
    )
    geo_conflict_margin: float = setting(
        "GATEWAY_GEO_CONFLICT_MARGIN",
        500.0,
        "meters a report's GPS fix may be from its address's geocode beyond the fix's accuracy "
        "(and the geocode's own uncertainty) before it counts as contradicting the address; "
        "also how far a GPS-only report's reverse-geocoded address may be from its fix, and "
        "the coarsest accuracy a GPS-only report may have",
        ge=0,
        finite=True,
    )
    carrier_read_interval: float = setting(
        "GATEWAY_CARRIER_READ_INTERVAL",
        60.0,
        "a read of a device the gateway holds no binding of asks the carrier at most once per "
        "this many seconds; the answer (found, not found, or none) serves the reads until then",
    )
    carrier_read_rate: float = setting(
        "GATEWAY_CARRIER_READ_RATE",
        5.0,
        "such carrier reads per second across all devices (a burst of twice that; at most an "
        "eighth of `GATEWAY_UPSTREAM_MAX_CONNECTIONS` at once); past it, 503 with `Retry-After`",
        gt=0,
    )
