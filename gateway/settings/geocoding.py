"""The geocoder and its caches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.settings.reader import setting, stripped_lower


@dataclass(frozen=True)
class GeocodingSettings:
    """Which geocoder, how long it may take and how its answers are cached."""

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
    geocode_max_connections: int = setting(
        "GEOCODE_MAX_CONNECTIONS",
        32,
        "most connections to the geocoder at once, per pod; lookups beyond wait for one "
        "(within `GEOCODE_TIMEOUT`), so a burst of new addresses never opens a connection each",
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
        "most geocoder calls per second, per pod; `0` = no limit (set it for Nominatim's 1/s); "
        "a lookup whose turn would come after `GEOCODE_TIMEOUT` fails at once (no coordinates)",
    )
