"""Every setting the gateway reads, read once, from the environment and a ``.env`` file.

Each name here is listed in the README's configuration table. Secrets are held as
``starlette.config.Secret`` so that their repr is ``'**********'``.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from starlette.config import Config
from starlette.datastructures import Secret

SANDBOX_ACCOUNT_ID = "9900000"
SANDBOX_USERNAME = "sandbox"
SANDBOX_PASSWORD = "sandbox-password"  # noqa: S105 - the simulator's public default
PRODUCTION_BASE_URL = "https://dashboard.bandwidth.com/api"
#: ``GATEWAY_DATABASE_URL=none``: no state store; order is kept in process memory only.
NO_DATABASE = "none"
#: The sandbox's store when none is configured: SQLite in memory.
SANDBOX_DATABASE_URL = "sqlite+aiosqlite://"


class SettingsError(ValueError):
    """The configuration cannot start the service; the message says which setting and why."""


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _json_object(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value) if value.strip() else {}
    except json.JSONDecodeError as exc:
        raise SettingsError(f"GEOCODER_OPTIONS is not valid JSON: {exc.msg}") from None
    if not isinstance(parsed, dict):
        raise SettingsError("GEOCODER_OPTIONS must be a JSON object")
    return parsed


def _positive(name: str, value: float) -> float:
    if value <= 0:
        raise SettingsError(f"{name} must be greater than 0")
    return value


def _not_negative(name: str, value: float) -> float:
    if not value >= 0:  # also NaN
        raise SettingsError(f"{name} must be 0 or more")
    if value == float("inf"):
        raise SettingsError(f"{name} must be a finite number")
    return value


#: ``GATEWAY_EMERGENCY_QUERY_UNKNOWN_CALLER``: what an unknown caller is answered.
UNKNOWN_CALLER_POLICIES = ("404", "default")


def _emergency_query(c: Config, d: Settings) -> dict[str, Any]:
    """The ``GATEWAY_EMERGENCY_QUERY_*`` settings, checked: a bad one stops the start rather
    than failing the carrier's query at the moment of a 911 call."""

    def opt(name: str) -> str | None:
        value = c(name, cast=str, default="").strip()
        return value or None

    path = c("GATEWAY_EMERGENCY_QUERY_PATH", cast=str, default=d.emergency_query_path).strip()
    if not path.startswith("/") or "{" in path or "?" in path:
        raise SettingsError("GATEWAY_EMERGENCY_QUERY_PATH must be a path such as /v1/where")
    cidrs = _csv(c("GATEWAY_EMERGENCY_QUERY_ALLOW_CIDRS", cast=str, default=""))
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise SettingsError(
                f"GATEWAY_EMERGENCY_QUERY_ALLOW_CIDRS: {cidr!r} is not a network"
            ) from None
    policy = c("GATEWAY_EMERGENCY_QUERY_UNKNOWN_CALLER", cast=str, default="404").strip().lower()
    if policy not in UNKNOWN_CALLER_POLICIES:
        raise SettingsError("GATEWAY_EMERGENCY_QUERY_UNKNOWN_CALLER must be 404 or default")
    default_location = opt("GATEWAY_EMERGENCY_QUERY_DEFAULT_LOCATION_ID")
    if policy == "default" and default_location is None:
        raise SettingsError(
            "GATEWAY_EMERGENCY_QUERY_UNKNOWN_CALLER=default needs "
            "GATEWAY_EMERGENCY_QUERY_DEFAULT_LOCATION_ID (a location ID at the carrier)"
        )
    username = opt("GATEWAY_EMERGENCY_QUERY_USERNAME")
    password = opt("GATEWAY_EMERGENCY_QUERY_PASSWORD")
    if (username is None) != (password is None):
        raise SettingsError(
            "set both GATEWAY_EMERGENCY_QUERY_USERNAME and GATEWAY_EMERGENCY_QUERY_PASSWORD, "
            "or neither"
        )
    token = opt("GATEWAY_EMERGENCY_QUERY_TOKEN")
    return {
        "emergency_query_path": path,
        "emergency_query_username": username,
        "emergency_query_password": Secret(password) if password else None,
        "emergency_query_token": Secret(token) if token else None,
        "emergency_query_allow_cidrs": cidrs,
        "emergency_query_db_timeout": _positive(
            "GATEWAY_EMERGENCY_QUERY_DB_TIMEOUT",
            c(
                "GATEWAY_EMERGENCY_QUERY_DB_TIMEOUT",
                cast=float,
                default=d.emergency_query_db_timeout,
            ),
        ),
        "emergency_query_stale_after": _positive(
            "GATEWAY_EMERGENCY_QUERY_STALE_AFTER",
            c(
                "GATEWAY_EMERGENCY_QUERY_STALE_AFTER",
                cast=float,
                default=d.emergency_query_stale_after,
            ),
        ),
        "emergency_query_unknown_caller": policy,
        "emergency_query_default_location_id": default_location,
        "emergency_query_default_aeui": c(
            "GATEWAY_EMERGENCY_QUERY_DEFAULT_AEUI", cast=str, default=d.emergency_query_default_aeui
        ).strip()
        or d.emergency_query_default_aeui,
    }


@dataclass(frozen=True)
class Settings:
    # The upstream.
    bandwidth_base_url: str = PRODUCTION_BASE_URL
    bandwidth_account_id: str = ""
    bandwidth_username: str = ""
    bandwidth_password: Secret = field(default_factory=lambda: Secret(""))
    #: Per attempt, seconds: the most; attempts wait less when the carrier answers faster
    #: (``AttemptTimeouts``), never less than ``upstream_min_timeout``.
    upstream_timeout: float = 5.0
    upstream_min_timeout: float = 1.0
    #: Per call, all retries included, seconds.
    upstream_deadline: float = 8.0
    upstream_max_attempts: int = 4
    upstream_backoff_base: float = 0.1
    upstream_backoff_max: float = 2.0
    upstream_max_connections: int = 32
    #: Allow a plain-http upstream that is not on loopback.
    upstream_allow_insecure: bool = False
    #: How long a write the gateway stopped waiting for is still watched for its answer.
    upstream_settle_timeout: float = 60.0
    #: Consecutive failed attempts that open the circuit breaker, and how long it stays open.
    breaker_failures: int = 5
    breaker_cooldown: float = 10.0
    #: Retries allowed per first attempt, across all calls (a retry budget).
    retry_budget_ratio: float = 0.2
    # Auth.
    admin_keys: tuple[Secret, ...] = ()
    device_jwt_secret: Secret | None = None
    device_jwt_public_key: str | None = None
    device_jwt_private_key: Secret | None = None
    device_jwt_audience: str | None = None
    device_jwt_issuer: str | None = None
    #: The longest a device token may live (``exp`` after ``iat``), seconds.
    device_jwt_max_lifetime: float = 7 * 86_400.0
    #: How far a token's ``iat``/``nbf`` may be in the future (the issuer's clock skew).
    device_jwt_leeway: float = 30.0
    # Geocoding.
    geocoder: str = "offline"
    #: May hold a provider's API key: kept out of the repr.
    geocoder_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    geocode_timeout: float = 3.0
    geocode_cache_size: int = 100_000
    geocode_cache_ttl: float = 30 * 24 * 3600.0
    geocode_negative_ttl: float = 300.0
    geocode_rate_limit: float = 0.0
    normalize_cache_size: int = 50_000
    # The report pipeline.
    report_deadline: float = 8.0
    location_cache_size: int = 200_000
    binding_cache_size: int = 200_000
    #: Report bodies remembered parsed, to skip decoding a device's repeated report.
    report_memo_size: int = 10_000
    #: Reports one device may send per minute, and in a burst, before 429.
    report_rate_per_minute: float = 60.0
    report_burst: int = 10
    #: How far ahead of the gateway's clock a report's ``observedAt`` may be, seconds.
    observed_at_max_future: float = 120.0
    #: Meters a GPS fix may be from its address's geocode beyond its own accuracy (and the
    #: geocode's) before the report's coordinates count as contradicting its address.
    geo_conflict_margin: float = 500.0
    #: A device's location read sends at most one carrier read per this many seconds (for a
    #: device the gateway holds no binding of); reads across devices at most this many a
    #: second.
    carrier_read_interval: float = 60.0
    carrier_read_rate: float = 5.0
    # Shared state.
    database_url: str = ""
    data_dir: str = "data"
    #: Most unchanged reports' advances one statement carries (group commit; 1: none).
    store_max_batch: int = 500
    #: The most seconds a group commit waits for more advances before its statement, only
    #: while more keep arriving (``gateway.store.groupcommit``; 0: none).
    store_linger: float = 0.001
    #: Seconds between two periodic checks of one device at the carrier (0: none).
    reconcile_interval: float = 3600.0
    #: Devices checked per tick (one tick a second): the pace the carrier sees.
    reconcile_batch: int = 5
    reconcile_tick: float = 1.0
    history_retention_days: int = 730
    # The carrier's call-time location query (``gateway.api.emergency``).
    emergency_query_path: str = "/v1/emergency-calls/location"
    emergency_query_username: str | None = None
    emergency_query_password: Secret | None = None
    #: A secret the carrier sends as the ``token`` query parameter of the configured URL.
    emergency_query_token: Secret | None = None
    #: Source networks allowed to query (empty: any); the TCP peer, no proxy headers.
    emergency_query_allow_cidrs: tuple[str, ...] = ()
    #: How long a query waits for the state store before answering from process memory.
    emergency_query_db_timeout: float = 0.15
    #: An answered location older than this counts as stale (a metric and an alert).
    emergency_query_stale_after: float = 86_400.0
    #: Unknown caller: ``404`` (the carrier uses its own records) or ``default``.
    emergency_query_unknown_caller: str = "404"
    emergency_query_default_location_id: str | None = None
    emergency_query_default_aeui: str = "account-default"
    # HTTP in.
    max_body_bytes: int = 64 * 1024
    #: Bulk imports (``dlr-gateway import``, ``/v1/imports``): the largest CSV file, its most
    #: rows, and how many rows are applied at a time.
    import_max_bytes: int = 16 * 1024 * 1024
    import_max_rows: int = 100_000
    import_concurrency: int = 8
    # Operations.
    ready_window: float = 30.0
    shutdown_grace: float = 20.0
    #: Seconds an idle client connection is kept open: longer than a load balancer's own
    #: idle timeout (60 s on common ones), so that the balancer, not the gateway, closes it
    #: and never sends a request on a connection the gateway is closing.
    keep_alive_timeout: float = 75.0
    log_level: str = "INFO"
    sandbox: bool = False

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
    ) -> Settings:
        """Read the settings; ``environ`` defaults to ``os.environ``."""
        env = dict(os.environ if environ is None else environ)
        path = Path(env_file) if env_file is not None else None
        config = Config(env_file=path if path is not None and path.is_file() else None, environ=env)
        try:
            return cls._read(config)
        except ValueError as exc:
            if isinstance(exc, SettingsError):
                raise
            raise SettingsError(str(exc)) from None

    @classmethod
    def _read(cls, c: Config) -> Settings:
        d = cls()

        def opt(name: str) -> str | None:
            value = c(name, cast=str, default="")
            return value or None

        jwt_secret = opt("GATEWAY_DEVICE_JWT_SECRET")
        jwt_private = opt("GATEWAY_DEVICE_JWT_PRIVATE_KEY")
        return cls(
            bandwidth_base_url=c("BANDWIDTH_BASE_URL", cast=str, default=d.bandwidth_base_url),
            bandwidth_account_id=c("BANDWIDTH_ACCOUNT_ID", cast=str, default=""),
            bandwidth_username=c("BANDWIDTH_USERNAME", cast=str, default=""),
            bandwidth_password=Secret(c("BANDWIDTH_PASSWORD", cast=str, default="")),
            upstream_timeout=_positive(
                "GATEWAY_UPSTREAM_TIMEOUT",
                c("GATEWAY_UPSTREAM_TIMEOUT", cast=float, default=d.upstream_timeout),
            ),
            upstream_min_timeout=_positive(
                "GATEWAY_UPSTREAM_MIN_TIMEOUT",
                c("GATEWAY_UPSTREAM_MIN_TIMEOUT", cast=float, default=d.upstream_min_timeout),
            ),
            upstream_deadline=_positive(
                "GATEWAY_UPSTREAM_DEADLINE",
                c("GATEWAY_UPSTREAM_DEADLINE", cast=float, default=d.upstream_deadline),
            ),
            upstream_max_attempts=int(
                _positive(
                    "GATEWAY_UPSTREAM_MAX_ATTEMPTS",
                    c("GATEWAY_UPSTREAM_MAX_ATTEMPTS", cast=int, default=d.upstream_max_attempts),
                )
            ),
            upstream_backoff_base=c(
                "GATEWAY_UPSTREAM_BACKOFF_BASE", cast=float, default=d.upstream_backoff_base
            ),
            upstream_backoff_max=c(
                "GATEWAY_UPSTREAM_BACKOFF_MAX", cast=float, default=d.upstream_backoff_max
            ),
            upstream_max_connections=c(
                "GATEWAY_UPSTREAM_MAX_CONNECTIONS", cast=int, default=d.upstream_max_connections
            ),
            upstream_allow_insecure=c("GATEWAY_UPSTREAM_ALLOW_INSECURE", cast=bool, default=False),
            admin_keys=tuple(
                Secret(k) for k in _csv(c("GATEWAY_ADMIN_KEYS", cast=str, default=""))
            ),
            device_jwt_secret=Secret(jwt_secret) if jwt_secret else None,
            device_jwt_public_key=opt("GATEWAY_DEVICE_JWT_PUBLIC_KEY"),
            device_jwt_private_key=Secret(jwt_private) if jwt_private else None,
            device_jwt_audience=opt("GATEWAY_DEVICE_JWT_AUDIENCE"),
            device_jwt_issuer=opt("GATEWAY_DEVICE_JWT_ISSUER"),
            device_jwt_max_lifetime=_positive(
                "GATEWAY_DEVICE_JWT_MAX_LIFETIME",
                _not_negative(
                    "GATEWAY_DEVICE_JWT_MAX_LIFETIME",
                    c(
                        "GATEWAY_DEVICE_JWT_MAX_LIFETIME",
                        cast=float,
                        default=d.device_jwt_max_lifetime,
                    ),
                ),
            ),
            device_jwt_leeway=_not_negative(
                "GATEWAY_DEVICE_JWT_LEEWAY",
                c("GATEWAY_DEVICE_JWT_LEEWAY", cast=float, default=d.device_jwt_leeway),
            ),
            geocoder=c("GEOCODER", cast=str, default=d.geocoder).strip().lower(),
            geocoder_options=_json_object(c("GEOCODER_OPTIONS", cast=str, default="")),
            geocode_timeout=_positive(
                "GEOCODE_TIMEOUT", c("GEOCODE_TIMEOUT", cast=float, default=d.geocode_timeout)
            ),
            geocode_cache_size=c("GEOCODE_CACHE_SIZE", cast=int, default=d.geocode_cache_size),
            geocode_cache_ttl=c("GEOCODE_CACHE_TTL", cast=float, default=d.geocode_cache_ttl),
            geocode_negative_ttl=c(
                "GEOCODE_NEGATIVE_TTL", cast=float, default=d.geocode_negative_ttl
            ),
            geocode_rate_limit=c("GEOCODE_RATE_LIMIT", cast=float, default=d.geocode_rate_limit),
            normalize_cache_size=c(
                "GATEWAY_NORMALIZE_CACHE_SIZE", cast=int, default=d.normalize_cache_size
            ),
            report_deadline=_positive(
                "GATEWAY_REPORT_DEADLINE",
                c("GATEWAY_REPORT_DEADLINE", cast=float, default=d.report_deadline),
            ),
            location_cache_size=c(
                "GATEWAY_LOCATION_CACHE_SIZE", cast=int, default=d.location_cache_size
            ),
            binding_cache_size=c(
                "GATEWAY_BINDING_CACHE_SIZE", cast=int, default=d.binding_cache_size
            ),
            report_memo_size=c("GATEWAY_REPORT_MEMO_SIZE", cast=int, default=d.report_memo_size),
            upstream_settle_timeout=_positive(
                "GATEWAY_UPSTREAM_SETTLE_TIMEOUT",
                c("GATEWAY_UPSTREAM_SETTLE_TIMEOUT", cast=float, default=d.upstream_settle_timeout),
            ),
            breaker_failures=c("GATEWAY_BREAKER_FAILURES", cast=int, default=d.breaker_failures),
            breaker_cooldown=c("GATEWAY_BREAKER_COOLDOWN", cast=float, default=d.breaker_cooldown),
            retry_budget_ratio=c(
                "GATEWAY_RETRY_BUDGET_RATIO", cast=float, default=d.retry_budget_ratio
            ),
            report_rate_per_minute=c(
                "GATEWAY_REPORT_RATE_PER_MINUTE", cast=float, default=d.report_rate_per_minute
            ),
            report_burst=c("GATEWAY_REPORT_BURST", cast=int, default=d.report_burst),
            observed_at_max_future=_not_negative(
                "GATEWAY_OBSERVED_AT_MAX_FUTURE",
                c(
                    "GATEWAY_OBSERVED_AT_MAX_FUTURE",
                    cast=float,
                    default=d.observed_at_max_future,
                ),
            ),
            geo_conflict_margin=_not_negative(
                "GATEWAY_GEO_CONFLICT_MARGIN",
                c("GATEWAY_GEO_CONFLICT_MARGIN", cast=float, default=d.geo_conflict_margin),
            ),
            carrier_read_interval=c(
                "GATEWAY_CARRIER_READ_INTERVAL", cast=float, default=d.carrier_read_interval
            ),
            carrier_read_rate=_positive(
                "GATEWAY_CARRIER_READ_RATE",
                c("GATEWAY_CARRIER_READ_RATE", cast=float, default=d.carrier_read_rate),
            ),
            database_url=c("GATEWAY_DATABASE_URL", cast=str, default=""),
            data_dir=c("GATEWAY_DATA_DIR", cast=str, default=d.data_dir),
            store_linger=c("GATEWAY_STORE_LINGER", cast=float, default=d.store_linger),
            store_max_batch=int(
                _positive(
                    "GATEWAY_STORE_MAX_BATCH",
                    c("GATEWAY_STORE_MAX_BATCH", cast=int, default=d.store_max_batch),
                )
            ),
            reconcile_interval=c(
                "GATEWAY_RECONCILE_INTERVAL", cast=float, default=d.reconcile_interval
            ),
            reconcile_batch=c("GATEWAY_RECONCILE_BATCH", cast=int, default=d.reconcile_batch),
            reconcile_tick=_positive(
                "GATEWAY_RECONCILE_TICK",
                c("GATEWAY_RECONCILE_TICK", cast=float, default=d.reconcile_tick),
            ),
            history_retention_days=c(
                "GATEWAY_HISTORY_RETENTION_DAYS", cast=int, default=d.history_retention_days
            ),
            **_emergency_query(c, d),
            max_body_bytes=c("GATEWAY_MAX_BODY_BYTES", cast=int, default=d.max_body_bytes),
            import_max_bytes=c("GATEWAY_IMPORT_MAX_BYTES", cast=int, default=d.import_max_bytes),
            import_max_rows=c("GATEWAY_IMPORT_MAX_ROWS", cast=int, default=d.import_max_rows),
            import_concurrency=int(
                _positive(
                    "GATEWAY_IMPORT_CONCURRENCY",
                    c("GATEWAY_IMPORT_CONCURRENCY", cast=int, default=d.import_concurrency),
                )
            ),
            ready_window=c("GATEWAY_READY_WINDOW", cast=float, default=d.ready_window),
            shutdown_grace=c("GATEWAY_SHUTDOWN_GRACE", cast=float, default=d.shutdown_grace),
            keep_alive_timeout=_positive(
                "GATEWAY_KEEP_ALIVE_TIMEOUT",
                c("GATEWAY_KEEP_ALIVE_TIMEOUT", cast=float, default=d.keep_alive_timeout),
            ),
            log_level=c("GATEWAY_LOG_LEVEL", cast=str, default=d.log_level).upper(),
        )

    def for_sandbox(self, base_url: str) -> Settings:
        """These settings with the built-in simulator as the upstream."""
        return replace(
            self,
            sandbox=True,
            bandwidth_base_url=base_url,
            bandwidth_account_id=self.bandwidth_account_id or SANDBOX_ACCOUNT_ID,
            bandwidth_username=self.bandwidth_username or SANDBOX_USERNAME,
            bandwidth_password=self.bandwidth_password
            if str(self.bandwidth_password)
            else Secret(SANDBOX_PASSWORD),
            database_url=self.database_url or SANDBOX_DATABASE_URL,
        )

    def problems(self) -> list[str]:
        """What stops a production start, one sentence each; empty when the settings can serve."""
        found = []
        for name, value in (
            ("BANDWIDTH_ACCOUNT_ID", self.bandwidth_account_id),
            ("BANDWIDTH_USERNAME", self.bandwidth_username),
            ("BANDWIDTH_PASSWORD", str(self.bandwidth_password)),
        ):
            if not value:
                found.append(f"{name} is not set")
        if not self.admin_keys:
            found.append("GATEWAY_ADMIN_KEYS is not set (comma-separated admin API keys)")
        if any(len(str(k)) < 16 for k in self.admin_keys):
            found.append("every key in GATEWAY_ADMIN_KEYS must be at least 16 characters")
        if self.device_jwt_secret is not None and len(str(self.device_jwt_secret)) < 32:
            found.append("GATEWAY_DEVICE_JWT_SECRET must be at least 32 characters (HS256)")
        if not self.bandwidth_base_url.startswith(("https://", "http://")):
            found.append("BANDWIDTH_BASE_URL must be an http(s) URL")
        return found
