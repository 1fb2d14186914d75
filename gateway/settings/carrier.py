"""The carrier's API: where it is, the account, and how calls to it are timed, retried and
broken off."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Secret

from gateway.settings.reader import one_of, setting, stripped_lower

SANDBOX_ACCOUNT_ID = "9900000"
SANDBOX_USERNAME = "sandbox"
SANDBOX_PASSWORD = "sandbox-password"  # noqa: S105 - the simulator's public default
PRODUCTION_BASE_URL = "https://dashboard.bandwidth.com/api"
#: ``BANDWIDTH_API``: the carrier APIs the gateway speaks.
CARRIER_APIS = ("seed", "v2")


@dataclass(frozen=True)
class CarrierSettings:
    """The carrier's API, its account and the upstream calls' timing."""

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
        check=one_of(CARRIER_APIS),
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
        " by the circuit breaker. Background work (repairs, the reconciler, imports) takes at "
        "most half of them, so that devices' reports always find slots. Writes the gateway "
        "stopped waiting for free their slot and are watched on up to as many connections again",
    )
    upstream_allow_insecure: bool = setting(
        "GATEWAY_UPSTREAM_ALLOW_INSECURE",
        False,
        "allow a plain-`http` `BANDWIDTH_BASE_URL` that is not on loopback",
    )


@dataclass(frozen=True)
class CarrierResilienceSettings:
    """Writes watched after the gateway stopped waiting, the circuit breaker, the retry budget."""

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
