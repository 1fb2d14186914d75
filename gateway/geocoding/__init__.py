"""Geocoding: geopy provider selection, the httpx adapter for geopy, the offline ZIP geocoder, and
the cached, single-flight service the report pipeline calls."""

from __future__ import annotations

from gateway.lean import without

# geopy's default adapter (requests) is never used: every geocoder here is given its own.
with without("requests"):
    import geopy.adapters
    import geopy.geocoders  # noqa: F401

from gateway.geocoding.adapter import HttpxAdapter, adapter_factory
from gateway.geocoding.offline import OfflineGeocoder
from gateway.geocoding.results import GeocodeResult, GeocodingUnavailable, Precision
from gateway.geocoding.service import Geocoding, RateLimiter, build_geocoding

__all__ = [
    "GeocodeResult",
    "Geocoding",
    "GeocodingUnavailable",
    "HttpxAdapter",
    "OfflineGeocoder",
    "Precision",
    "RateLimiter",
    "adapter_factory",
    "build_geocoding",
]
