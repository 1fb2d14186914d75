"""The carrier's call-time location query."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Secret

from gateway.settings.network import check_networks
from gateway.settings.reader import SettingsError, one_of, setting, stripped_lower

#: ``GATEWAY_EMERGENCY_QUERY_UNKNOWN_CALLER``: what an unknown caller is answered.
UNKNOWN_CALLER_POLICIES = ("404", "default")


def _check_query_path(env: str, path: str) -> None:
    if not path.startswith("/") or "{" in path or "?" in path:
        raise SettingsError(f"{env} must be a path such as /v1/where")


@dataclass(frozen=True)
class EmergencyQuerySettings:
    """Where the carrier queries, how it authenticates and what an unknown caller gets."""

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
        "others get 403. The client address: behind a proxy or load balancer, the proxy's unless "
        "it is in `GATEWAY_TRUSTED_PROXIES`",
        shown="— (any)",
        check=check_networks,
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
        check=one_of(UNKNOWN_CALLER_POLICIES),
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
