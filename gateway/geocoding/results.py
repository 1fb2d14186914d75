"""What a geocoding lookup answers, the one error it raises, and how far apart two points are."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from gateway.bandwidth.models import Address


class Precision(enum.StrEnum):
    """How exactly the coordinates locate the address.

    Only STREET and GPS coordinates are dispatchable (sent upstream); a ZIP or city centroid is
    not.
    """

    #: Rooftop, house or building level.
    STREET = "street"
    #: A ZIP centroid.
    POSTAL = "postal"
    #: A city or anything coarser.
    LOCALITY = "locality"
    #: The device's own fix.
    GPS = "gps"


@dataclass(frozen=True, slots=True)
class GeocodeResult:
    """A geocoder's answer: the point, how precise it is, and which provider gave it."""

    latitude: float
    longitude: float
    precision: Precision
    provider: str
    #: The provider's civic address; filled on reverse lookups.
    address: Address | None = None


class GeocodingUnavailable(Exception):
    """The provider failed (error, timeout, rate limit, unreadable answer); nothing was cached.

    ``retry_after`` is the provider's hint in seconds, when it gave one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


_EARTH_RADIUS_METERS = 6_371_008.8


def distance_meters(
    latitude: float, longitude: float, other_latitude: float, other_longitude: float
) -> float:
    """The great-circle distance (haversine on a sphere: within 0.5 %, plenty here)."""
    phi1, phi2 = math.radians(latitude), math.radians(other_latitude)
    d_phi = phi2 - phi1
    d_lambda = math.radians(other_longitude - longitude)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * _EARTH_RADIUS_METERS * math.asin(min(1.0, math.sqrt(a)))
