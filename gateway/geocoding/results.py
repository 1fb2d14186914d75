"""What a geocoding lookup answers, and the one error it raises."""

from __future__ import annotations

import enum
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
