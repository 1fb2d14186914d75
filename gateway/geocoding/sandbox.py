"""The sandbox's geocoder: the offline ZIP geocoder, plus street-level reverse geocoding of a
few well-known places, so that a GPS-only report can be tried without a geocoding service.

Used only by ``dlr-gateway serve --sandbox`` with ``GEOCODER=offline`` (the default): a fix
within ``RADIUS_METERS`` of one of ``PLACES`` reverse-geocodes to its street address; any
other fix gets the offline geocoder's ZIP-level answer, which a report refuses as not
dispatchable, exactly as outside the sandbox. Forward lookups are the offline geocoder's.
The coordinates are the places' published ones, rounded to about 10 m: a demonstration, not
a data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from geopy.location import Location
from geopy.point import Point

from gateway.geocoding.offline import OfflineGeocoder
from gateway.geocoding.results import distance_meters

__all__ = ["PLACES", "RADIUS_METERS", "SandboxGeocoder", "SandboxPlace"]


@dataclass(frozen=True, slots=True)
class SandboxPlace:
    name: str
    latitude: float
    longitude: float
    house_number: str
    street: str
    city: str
    state: str
    postcode: str
    country: str = "US"

    def location(self) -> Location:
        details = {
            "house_number": self.house_number,
            "road": self.street,
            "city": self.city,
            "state_code": self.state,
            "postcode": self.postcode,
            "country_code": self.country,
        }
        line = f"{self.house_number} {self.street}, {self.city}, {self.state} {self.postcode}"
        return Location(
            line,
            Point(self.latitude, self.longitude),
            {"precision": "street", "name": self.name, "address": details},
        )


PLACES: tuple[SandboxPlace, ...] = (
    SandboxPlace(
        "The White House",
        38.8977,
        -77.0365,
        "1600",
        "Pennsylvania Avenue Northwest",
        "Washington",
        "DC",
        "20500",
    ),
    SandboxPlace(
        "Empire State Building", 40.7484, -73.9857, "350", "5th Avenue", "New York", "NY", "10118"
    ),
    SandboxPlace(
        "Willis Tower", 41.8789, -87.6359, "233", "South Wacker Drive", "Chicago", "IL", "60606"
    ),
    SandboxPlace(
        "Space Needle", 47.6205, -122.3493, "400", "Broad Street", "Seattle", "WA", "98109"
    ),
    SandboxPlace(
        "CN Tower", 43.6426, -79.3871, "290", "Bremner Boulevard", "Toronto", "ON", "M5V 3L9", "CA"
    ),
)


#: How near a fix must be to a place to be given its address.
RADIUS_METERS = 150.0


def _meters(latitude: float, longitude: float, place: SandboxPlace) -> float:
    return distance_meters(latitude, longitude, place.latitude, place.longitude)


def nearest_place(latitude: float, longitude: float) -> SandboxPlace | None:
    """The place within ``RADIUS_METERS`` of the point, if any."""
    best = min(PLACES, key=lambda place: _meters(latitude, longitude, place))
    return best if _meters(latitude, longitude, best) <= RADIUS_METERS else None


class SandboxGeocoder(OfflineGeocoder):
    """``OfflineGeocoder`` with street-level reverse answers near ``PLACES``."""

    def reverse(self, query: Any, **kwargs: Any) -> Location | None:
        point = query if isinstance(query, Point) else None
        if point is not None:
            place = nearest_place(point.latitude, point.longitude)
            if place is not None:
                return place.location()
        return super().reverse(query, **kwargs)
