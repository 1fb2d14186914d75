"""Every setting the gateway reads, declared once: its variable, type, default, bounds and meaning.

``Settings.from_environ`` reads them from the environment and a ``.env`` file; the README's
configuration table is ``configuration_table()`` (``python -m gateway.settings`` prints it, and a
test holds the README to it). Secrets are held as ``starlette.config.Secret`` (repr
``'**********'``) or kept out of the repr.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from starlette.config import Config
from starlette.datastructures import Secret

from gateway.settings_reader import (
    Declared,
    SettingsError,
    markdown_table,
    read,
    setting,
    stripped_lower,
)

__all__ = ["DEFAULTS", "Settings", "SettingsError", "configuration_table", "declared"]

SANDBOX_ACCOUNT_ID = "9900000"
SANDBOX_USERNAME = "sandbox"
SANDBOX_PASSWORD = "sandbox-password"  # noqa: S105 - the simulator's public default
PRODUCTION_BASE_URL = "https://dashboard.bandwidth.com/api"
#: ``GATEWAY_DATABASE_URL=none``: no state store; order is kept in process memory only.
NO_DATABASE = "none"
#: The sandbox's store when none is configured: SQLite in memory.
SANDBOX_DATABASE_URL = "sqlite+aiosqlite://"
#: ``GATEWAY_EMERGENCY_QUERY_UNKNOWN_CALLER``: what an unknown caller is answered.
UNKNOWN_CALLER_POLICIES = ("404", "default")
#: ``BANDWIDTH_API``: the carrier APIs the gateway speaks.
CARRIER_APIS = ("seed", "v2")


def _check_query_path(env: str, path: str) -> None:
    if not path.startswith("/") or "{" in path or "?" in path:
        raise SettingsError(f"{env} must be a path such as /v1/where")


def _check_networks(env: str, cidrs: tuple[str, ...]) -> None:
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise SettingsError(f"{env}: {cidr!r} is not a network") from None


def _check_api(env: str, api: str) -> None:
    if api not in CARRIER_APIS:
        raise SettingsError(f"{env} must be {' or '.join(CARRIER_APIS)}")


def _check_tile_url(env: str, url: str | None) -> None:
    if url is None:
        return
    if not url.startswith(("https://", "http://")) or not all(f"{{{k}}}" in url for k in "zxy"):
        raise SettingsError(f"{env} must be an http(s) URL with {{z}}, {{x}} and {{y}} in it")


def _check_unknown_caller(env: str, policy: str) -> None:
    if policy not in UNKNOWN_CALLER_POLICIES:
        raise SettingsError(f"{env} must be 404 or default")


#: ``GATEWAY_SMTP_TLS``: how the SMTP connection is secured.
SMTP_TLS_MODES = ("starttls", "tls", "none")


def _check_smtp_tls(env: str, mode: str) -> None:
    if mode not in SMTP_TLS_MODES:
        raise SettingsError(f"{env} must be starttls, tls or none")


def _check_emails(env: str, emails: tuple[str, ...]) -> None:
    for address in emails:
        if address.count("@") != 1 or any(ch.isspace() or ord(ch) < 32 for ch in address):
            raise SettingsError(f"{env}: {address!r} is not an email address")


def _lower_csv(value: str) -> str:
    return value.lower()


@dataclass(frozen=True)
class Settings:
    """The gateway's configuration; times are in seconds."""

    bandwidth_base_url: str = setting(
        "BANDWIDTH_BASE_URL",
        PRODUCTION_BASE_URL,
        "the carrier's API, up to and including `/api`; the client appends "
        "`/accounts/{accountId}/e911s…`",
    )
    bandwidth_api: str = setting(
        "BANDWIDTH_API",
        "seed",
        "the carrier API: `seed` (XML, `/accounts/{accountId}/e911s…`) or `v2` (Bandwidth's "
        "Unified Emergency Services Provisioning API, JSON, `/v2/accounts/{accountId}/emergency…`)",
        clean=stripped_lower,
        check=_check_api,
    )
    bandwidth_v2_follow_timeout: float = setting(
        "BANDWIDTH_V2_FOLLOW_TIMEOUT",
        4.0,
        "with `BANDWIDTH_API=v2`: how long a report waits for the carrier's order to complete "
        "before answering 202 (pending); keep it under `GATEWAY_REPORT_DEADLINE`",
        gt=0,
    )
    bandwidth_account_id: str = setting(
        "BANDWIDTH_ACCOUNT_ID",
        "",
        "the carrier account (secret)",
        shown="— (required)",
        secret=True,
    )
    bandwidth_username: str = setting(
        "BANDWIDTH_USERNAME",
        "",
        "API user for HTTP Basic auth (secret)",
        shown="— (required)",
        secret=True,
    )
    bandwidth_password: Secret = setting(
        "BANDWIDTH_PASSWORD",
        Secret(""),
        "its password (secret; never logged, `**********` in reprs)",
        shown="— (required)",
    )
    upstream_timeout: float = setting(
        "GATEWAY_UPSTREAM_TIMEOUT",
        5.0,
        "per upstream attempt, at most: an attempt waits 4 × the 95th percentile of the carrier's"
        " last 256 answers, within `GATEWAY_UPSTREAM_MIN_TIMEOUT` and this (this until 32 answers"
        " are in, and while most attempts time out). List operations (`listEndpoints`, ...) "
        "always get this whole timeout. Only a silence this long counts against the carrier for "
        "the circuit breaker",
        gt=0,
    )
    upstream_min_timeout: float = setting(
        "GATEWAY_UPSTREAM_MIN_TIMEOUT",
        1.0,
        "the least an attempt waits for the carrier (set it to `GATEWAY_UPSTREAM_TIMEOUT` for a "
        "fixed timeout)",
        gt=0,
    )
    upstream_deadline: float = setting(
        "GATEWAY_UPSTREAM_DEADLINE",
        8.0,
        "per upstream call, all retries and waits included",
        gt=0,
    )
    upstream_max_attempts: int = setting(
        "GATEWAY_UPSTREAM_MAX_ATTEMPTS",
        4,
        "attempts per retryable upstream call (1 = no retries)",
        gt=0,
    )
    upstream_backoff_base: float = setting(
        "GATEWAY_UPSTREAM_BACKOFF_BASE",
        0.1,
        "first retry backoff (exponential, full jitter; a `Retry-After` wins)",
    )
    upstream_backoff_max: float = setting(
        "GATEWAY_UPSTREAM_BACKOFF_MAX",
        2.0,
        "largest retry backoff",
    )
    upstream_max_connections: int = setting(
        "GATEWAY_UPSTREAM_MAX_CONNECTIONS",
        32,
        "carrier calls in flight at once; more wait for a slot "
        "(`dlr_upstream_slot_wait_seconds`), and that wait is never counted against an attempt or"
        " by the circuit breaker. Writes the gateway stopped waiting for free their slot and are "
        "watched on up to as many connections again",
    )
    upstream_allow_insecure: bool = setting(
        "GATEWAY_UPSTREAM_ALLOW_INSECURE",
        False,
        "allow a plain-`http` `BANDWIDTH_BASE_URL` that is not on loopback",
    )
    admin_keys: tuple[Secret, ...] = setting(
        "GATEWAY_ADMIN_KEYS",
        (),
        "comma-separated admin API keys, each at least 16 characters (secret)",
        shown="— (required)",
    )
    device_jwt_secret: Secret | None = setting(
        "GATEWAY_DEVICE_JWT_SECRET",
        None,
        "HS256 secret that device tokens are signed with (secret)",
    )
    device_jwt_public_key: str | None = setting(
        "GATEWAY_DEVICE_JWT_PUBLIC_KEY",
        None,
        "instead of the secret: a PEM RSA or P-256 public key (RS256/ES256 device tokens)",
    )
    device_jwt_private_key: Secret | None = setting(
        "GATEWAY_DEVICE_JWT_PRIVATE_KEY",
        None,
        "the matching private key, only where `dlr-gateway token` mints asymmetric tokens "
        "(secret; the service does not need it)",
    )
    device_jwt_audience: str | None = setting(
        "GATEWAY_DEVICE_JWT_AUDIENCE",
        None,
        "when set, device tokens must carry this `aud`",
    )
    device_jwt_issuer: str | None = setting(
        "GATEWAY_DEVICE_JWT_ISSUER",
        None,
        "when set, device tokens must carry this `iss`",
    )
    device_jwt_max_lifetime: float = setting(
        "GATEWAY_DEVICE_JWT_MAX_LIFETIME",
        7 * 86_400.0,
        "the longest a device token may live, `exp` after `iat` (or after now, without `iat`); "
        "`dlr-gateway token` refuses a longer `--ttl`",
        gt=0,
        finite=True,
    )
    device_jwt_leeway: float = setting(
        "GATEWAY_DEVICE_JWT_LEEWAY",
        30.0,
        "how far a device token's `iat`/`nbf` may be in the future (the issuer's clock skew)",
        ge=0,
        finite=True,
    )
    geocoder: str = setting(
        "GEOCODER",
        "offline",
        "`offline` (built-in ZIP-level geocoder, no network) or any geopy service name "
        "(`nominatim`, `googlev3`, …). In sandbox mode only, `offline` also resolves a GPS fix "
        "within 150 m of five well-known places (the White House, the Empire State Building, "
        "Willis Tower, the Space Needle, the CN Tower; `gateway/geocoding/sandbox.py`) to their "
        "street address, so that GPS-only reports can be tried",
        clean=stripped_lower,
    )
    geocoder_options: Mapping[str, Any] = setting(
        "GEOCODER_OPTIONS",
        {},
        'JSON object of keyword arguments for that geopy geocoder (`{"user_agent": "…"}`, '
        '`{"api_key": "…"}`); holding an API key, put it in the Secret (which overrides the '
        "ConfigMap)",
        secret=True,
    )
    geocode_timeout: float = setting(
        "GEOCODE_TIMEOUT",
        3.0,
        "per geocoder call (the `DlrGeocoderFailures` alert assumes 2.5–5)",
        gt=0,
    )
    geocode_cache_size: int = setting(
        "GEOCODE_CACHE_SIZE",
        100_000,
        "entries in each geocoder cache (forward, reverse)",
    )
    geocode_cache_ttl: float = setting(
        "GEOCODE_CACHE_TTL",
        30 * 24 * 3600.0,
        "how long a found answer is cached (30 days)",
    )
    geocode_negative_ttl: float = setting(
        "GEOCODE_NEGATIVE_TTL",
        300.0,
        'how long "the geocoder does not know this address" is cached',
    )
    geocode_rate_limit: float = setting(
        "GEOCODE_RATE_LIMIT",
        0.0,
        "most geocoder calls per second, per pod; `0` = no limit (set it for Nominatim's 1/s)",
    )
    normalize_cache_size: int = setting(
        "GATEWAY_NORMALIZE_CACHE_SIZE",
        50_000,
        "entries in the address-normalization cache",
    )
    report_deadline: float = setting(
        "GATEWAY_REPORT_DEADLINE",
        8.0,
        "a location report answers within this, or 503 with `Retry-After`",
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
        "report bodies remembered already parsed, per pod: a device's next report that differs "
        "only in `observedAt` skips decoding and validation (0: off)",
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
        "seconds an idle client connection stays open; keep it above your load balancer's idle "
        "timeout (60 s on AWS ALB and nginx), so the balancer never reuses a connection the "
        "gateway is closing",
        gt=0,
    )
    log_level: str = setting(
        "GATEWAY_LOG_LEVEL",
        "INFO",
        "a Python log level name: `DEBUG`, `INFO`, `WARNING`, `ERROR`; anything else refuses to "
        "start",
        clean=str.upper,
    )
    upstream_settle_timeout: float = setting(
        "GATEWAY_UPSTREAM_SETTLE_TIMEOUT",
        60.0,
        "a write the gateway stopped waiting for is still watched this long for the carrier's "
        "answer, then re-checked (one whose connection was closed because "
        "`GATEWAY_UPSTREAM_MAX_CONNECTIONS` writes were already watched: re-checked when this "
        "long has passed since it was sent)",
        gt=0,
    )
    breaker_failures: int = setting(
        "GATEWAY_BREAKER_FAILURES",
        5,
        "consecutive failed carrier attempts (timeouts, connection failures, 5xx) that open the "
        "circuit breaker, provided at least half of the last 10 s' attempts failed (a carrier "
        "that answers most attempts stays in use)",
    )
    breaker_cooldown: float = setting(
        "GATEWAY_BREAKER_COOLDOWN",
        10.0,
        "seconds an open breaker refuses calls before one trial call",
    )
    retry_budget_ratio: float = setting(
        "GATEWAY_RETRY_BUDGET_RATIO",
        0.2,
        "retries allowed per first attempt, across all calls (the retry budget)",
    )
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
        "(and the geocode's own uncertainty) before it counts as contradicting the address",
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
    network_trusted_cidrs: tuple[str, ...] = setting(
        "GATEWAY_NETWORK_TRUSTED_CIDRS",
        (),
        "comma-separated networks (`10.0.0.0/8,2001:db8::/32`) whose hosts may ask `POST /v1/held`"
        " without credentials for the location of their own source address (the TCP peer's: no "
        "proxy headers) through the wiremap",
        shown="— (none)",
        check=_check_networks,
    )
    network_refresh_seconds: float = setting(
        "GATEWAY_NETWORK_REFRESH_SECONDS",
        2.0,
        "how often each replica checks the state store for wiremap changes made at another (a "
        "change reaches every replica within this, plus one reload)",
        gt=0,
    )
    database_url: str = setting(
        "GATEWAY_DATABASE_URL",
        "",
        "the shared state store: `postgresql://user:password@host:5432/db` for several replicas "
        "(secret: it holds a password; printed only without it), `sqlite:///path/file.db`, unset "
        "for the embedded SQLite file in `GATEWAY_DATA_DIR` (in sandbox mode: in memory), or "
        "`none` for no store (order kept per process only). See [Shared "
        "state](#shared-state-postgresql-or-sqlite)",
        shown="— (the SQLite file)",
        secret=True,
    )
    store_linger: float = setting(
        "GATEWAY_STORE_LINGER",
        0.001,
        "the most seconds a group commit waits for more unchanged reports before its statement, "
        "only under load (when the previous statement carried more than one) and only while more "
        "keep arriving (it goes after a few event-loop turns bring none): fewer, larger "
        "statements; 0: never (see docs/benchmarks.md)",
    )
    store_max_batch: int = setting(
        "GATEWAY_STORE_MAX_BATCH",
        500,
        "most unchanged reports one group-committed statement advances (1: a statement per "
        "report, for comparison)",
        gt=0,
    )
    data_dir: str = setting(
        "GATEWAY_DATA_DIR",
        "data",
        "directory of the embedded SQLite file `dlr-gateway.db` (relative to the working "
        "directory; created if missing); unused with PostgreSQL",
    )
    reconcile_interval: float = setting(
        "GATEWAY_RECONCILE_INTERVAL",
        3600.0,
        "seconds between two checks of one device's record at the carrier; `0` = no periodic "
        "checks",
    )
    reconcile_batch: int = setting(
        "GATEWAY_RECONCILE_BATCH",
        5,
        "devices one replica checks per pass",
    )
    reconcile_tick: float = setting(
        "GATEWAY_RECONCILE_TICK",
        1.0,
        "seconds between two passes of one replica (so at most `BATCH / TICK` carrier reads per "
        "second per replica)",
        gt=0,
    )
    history_retention_days: int = setting(
        "GATEWAY_HISTORY_RETENTION_DAYS",
        730,
        "how long the per-device history is kept (older entries are deleted hourly)",
    )
    emergency_query_path: str = setting(
        "GATEWAY_EMERGENCY_QUERY_PATH",
        "/v1/emergency-calls/location",
        "the path of the carrier's call-time location query (see [Emergency "
        "calls](#emergency-calls-the-carriers-location-query))",
        clean=str.strip,
        check=_check_query_path,
    )
    emergency_query_username: str | None = setting(
        "GATEWAY_EMERGENCY_QUERY_USERNAME",
        None,
        "HTTP Basic user the carrier queries with (set with the password, or neither)",
        clean=str.strip,
    )
    emergency_query_password: Secret | None = setting(
        "GATEWAY_EMERGENCY_QUERY_PASSWORD",
        None,
        "its password (secret)",
        clean=str.strip,
    )
    emergency_query_token: Secret | None = setting(
        "GATEWAY_EMERGENCY_QUERY_TOKEN",
        None,
        "a secret the carrier sends as the `token` query parameter of the URL it is given "
        "(secret); without it and without Basic credentials every query is refused (401)",
        clean=str.strip,
    )
    emergency_query_allow_cidrs: tuple[str, ...] = setting(
        "GATEWAY_EMERGENCY_QUERY_ALLOW_CIDRS",
        (),
        "comma-separated source networks allowed to query (`203.0.113.0/24,2001:db8::/32`); "
        "others get 403. The TCP peer's address: behind a proxy or load balancer, list the "
        "proxy's",
        shown="— (any)",
        check=_check_networks,
    )
    emergency_query_db_timeout: float = setting(
        "GATEWAY_EMERGENCY_QUERY_DB_TIMEOUT",
        0.15,
        "how long a query waits for the state store before answering from process memory",
        gt=0,
    )
    emergency_query_stale_after: float = setting(
        "GATEWAY_EMERGENCY_QUERY_STALE_AFTER",
        86_400.0,
        "an answered location older than this (since the device's newest report) counts as stale:"
        " `dlr_emergency_query_stale_total`, alert `DlrEmergencyQueryStaleLocations`",
        gt=0,
    )
    emergency_query_unknown_caller: str = setting(
        "GATEWAY_EMERGENCY_QUERY_UNKNOWN_CALLER",
        "404",
        "a number no device has: `404` (the carrier routes on its own records) or `default` (the "
        "account default location below)",
        clean=stripped_lower,
        check=_check_unknown_caller,
    )
    emergency_query_default_location_id: str | None = setting(
        "GATEWAY_EMERGENCY_QUERY_DEFAULT_LOCATION_ID",
        None,
        "the carrier location ID answered for unknown callers (required with `default`)",
        clean=str.strip,
    )
    emergency_query_default_aeui: str = setting(
        "GATEWAY_EMERGENCY_QUERY_DEFAULT_AEUI",
        "account-default",
        "the `aeui` answered with it",
        clean=str.strip,
        blank_is_default=True,
    )
    # Events: webhooks and Kari's Law email (``gateway.events``).
    smtp_host: str | None = setting(
        "GATEWAY_SMTP_HOST",
        None,
        "SMTP server for the Kari's Law email of `emergency_call` and `test_call` events "
        "([Events](#events-webhooks-and-karis-law-email))",
        shown="— (no email)",
        clean=str.strip,
    )
    smtp_port: int = setting("GATEWAY_SMTP_PORT", 587, "its port", gt=0)
    smtp_tls: str = setting(
        "GATEWAY_SMTP_TLS",
        "starttls",
        "`starttls` (upgrade the connection; refused if the server cannot), `tls` (implicit TLS, "
        "usually port 465) or `none`",
        clean=stripped_lower,
        check=_check_smtp_tls,
        blank_is_default=True,
    )
    smtp_username: str | None = setting(
        "GATEWAY_SMTP_USERNAME", None, "SMTP login, when the server wants one", clean=str.strip
    )
    smtp_password: Secret | None = setting(
        "GATEWAY_SMTP_PASSWORD", None, "its password (secret)", clean=str.strip
    )
    smtp_from: str = setting(
        "GATEWAY_SMTP_FROM",
        "dlr-gateway@localhost",
        "the emails' sender",
        clean=str.strip,
        blank_is_default=True,
    )
    notify_emails: tuple[str, ...] = setting(
        "GATEWAY_NOTIFY_EMAILS",
        (),
        "comma-separated addresses emailed when 911 or 933 is dialled",
        check=_check_emails,
    )
    notify_carrier_recipients: bool = setting(
        "GATEWAY_NOTIFY_CARRIER_RECIPIENTS",
        False,
        "also email, when 911 or 933 is dialled, the notification recipients the carrier holds "
        "(`/v1/notification-recipients`; re-read at most every 5 minutes)",
    )
    webhook_allowed_hosts: tuple[str, ...] = setting(
        "GATEWAY_WEBHOOK_ALLOWED_HOSTS",
        (),
        "comma-separated host names or addresses webhooks may be sent to; others are refused "
        "when subscribing (403) and at delivery. Loopback, link-local (cloud metadata), "
        "unspecified and multicast addresses are refused unless listed here",
        shown="— (any public or private host)",
        clean=_lower_csv,
    )
    event_delivery_timeout: float = setting(
        "GATEWAY_EVENT_DELIVERY_TIMEOUT",
        10.0,
        "seconds one delivery attempt (a webhook POST; an email gets three times this) may take",
        gt=0,
    )
    event_retry_base: float = setting(
        "GATEWAY_EVENT_RETRY_BASE",
        5.0,
        "first retry delay of a failed delivery; it doubles per attempt (jittered to between "
        "half and all of it)",
        gt=0,
    )
    event_retry_max: float = setting(
        "GATEWAY_EVENT_RETRY_MAX", 3600.0, "the longest delay between two attempts", gt=0
    )
    event_delivery_max_age: float = setting(
        "GATEWAY_EVENT_DELIVERY_MAX_AGE",
        86_400.0,
        "how long after its event a delivery is attempted before it is `failed` (an admin may "
        "retry it)",
        gt=0,
    )
    device_stale_after: float = setting(
        "GATEWAY_DEVICE_STALE_AFTER",
        7 * 86_400.0,
        "a device whose newest report is older than this is `device_stale` (once per "
        "staleness); `0`: never",
        ge=0,
    )
    device_stale_check_interval: float = setting(
        "GATEWAY_DEVICE_STALE_CHECK_INTERVAL",
        300.0,
        "seconds between two looks for newly stale devices",
        gt=0,
    )
    console: bool = setting(
        "GATEWAY_CONSOLE",
        False,
        "serve the operator console at `/console/` (sign-in with an admin key); on in sandbox mode",
    )
    console_tile_url: str | None = setting(
        "GATEWAY_CONSOLE_TILE_URL",
        None,
        "the console map's tiles, e.g. `https://tile.example.org/{z}/{x}/{y}.png`; without it, "
        "points on a plain background and no request to any other host",
        clean=str.strip,
        check=_check_tile_url,
    )
    console_session_minutes: float = setting(
        "GATEWAY_CONSOLE_SESSION_MINUTES",
        480.0,
        "a console sign-in lasts this long",
        gt=0,
    )
    console_session_secret: Secret | None = setting(
        "GATEWAY_CONSOLE_SESSION_SECRET",
        None,
        "signs console session cookies, shared by every replica (secret; at least 32 characters); "
        "unset: a random one per process (a restart signs everyone out)",
    )
    #: Set by ``serve --sandbox`` (``for_sandbox``), never read from the environment.
    sandbox: bool = False

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
    ) -> Settings:
        """Read the settings; ``environ`` defaults to ``os.environ``."""
        env = dict(os.environ if environ is None else environ)
        path = Path(env_file) if env_file is not None else None
        config = Config(env_file=path if path is not None and path.is_file() else None, environ=env)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            d = f.metadata.get("setting")
            if d is None:
                continue
            raw = config(d.env, default=None)
            if raw is not None:
                given, value = read(f, raw)
                if given:
                    values[f.name] = value
        settings = cls(**values)
        settings._check_combinations()
        return settings

    def _check_combinations(self) -> None:
        """Settings that are only wrong together: a bad pair stops the start rather than
        failing the carrier's query at the moment of a 911 call."""
        if (
            self.emergency_query_unknown_caller == "default"
            and self.emergency_query_default_location_id is None
        ):
            raise SettingsError(
                "GATEWAY_EMERGENCY_QUERY_UNKNOWN_CALLER=default needs "
                "GATEWAY_EMERGENCY_QUERY_DEFAULT_LOCATION_ID (a location ID at the carrier)"
            )
        if self.bandwidth_api == "v2" and self.bandwidth_v2_follow_timeout >= self.report_deadline:
            raise SettingsError(
                "BANDWIDTH_V2_FOLLOW_TIMEOUT must be shorter than GATEWAY_REPORT_DEADLINE: a "
                "report must answer 202 (pending) before its deadline, not 503"
            )
        if (self.emergency_query_username is None) != (self.emergency_query_password is None):
            raise SettingsError(
                "set both GATEWAY_EMERGENCY_QUERY_USERNAME and GATEWAY_EMERGENCY_QUERY_PASSWORD, "
                "or neither"
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
            console=True,
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
        if self.console_session_secret is not None and len(str(self.console_session_secret)) < 32:
            found.append("GATEWAY_CONSOLE_SESSION_SECRET must be at least 32 characters")
        if not self.bandwidth_base_url.startswith(("https://", "http://")):
            found.append("BANDWIDTH_BASE_URL must be an http(s) URL")
        return found


#: The declared defaults, for code that takes a setting's value with a default of its own.
DEFAULTS: Final = Settings()


def declared() -> list[tuple[str, Any, Declared]]:
    """Every setting read from the environment: (attribute, default, declaration)."""
    return [
        (f.name, getattr(DEFAULTS, f.name), f.metadata["setting"])
        for f in dataclasses.fields(Settings)
        if "setting" in f.metadata
    ]


def configuration_table() -> str:
    """The README's configuration table, one row per setting, in declaration order."""
    return markdown_table(declared())


if __name__ == "__main__":
    print(configuration_table(), end="")
