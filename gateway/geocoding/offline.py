"""A geocoder over the bundled US ZIP data (the ``zipcodes`` package): no network, no API key.

Forward lookups answer the ZIP centroid; reverse lookups answer the nearest ZIP's city, state and
ZIP. Both are postal precision (``raw["precision"] == "postal"``): good enough to route and to
check an address, never a dispatchable street location, so the gateway does not send these
coordinates upstream.

It is a real ``geopy.geocoders.base.Geocoder`` subclass, but since it does no I/O its methods
answer synchronously (a ``Location`` or ``None``), whatever adapter it was given.
"""

from __future__ import annotations

import math
import re
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from geopy.adapters import BaseSyncAdapter
from geopy.exc import GeocoderQueryError, GeocoderServiceError
from geopy.geocoders.base import Geocoder
from geopy.location import Location
from geopy.point import Point

from gateway.zipdata import zip_table

PRECISION = "postal"
#: Grid cell edge, degrees. ~28 km north-south: a few dozen ZIPs per populated cell.
_CELL = 0.25
#: A point farther than this (degrees, longitude scaled by cos(latitude)) from every ZIP centroid
#: is outside the data (another country, the open sea): no answer rather than a distant ZIP.
_MAX_DEGREES = 1.5

_ZIP = re.compile(r"(?<!\d)(\d{5})(?:-\d{4})?(?!\d)")


@dataclass(frozen=True, slots=True)
class ZipRecord:
    zip_code: str
    city: str
    state: str
    latitude: float
    longitude: float
    standard: bool

    def raw(self) -> dict[str, Any]:
        return {
            "precision": PRECISION,
            "zip_code": self.zip_code,
            "city": self.city,
            "state": self.state,
            "country": "US",
            "lat": self.latitude,
            "lon": self.longitude,
        }

    def location(self) -> Location:
        return Location(
            f"{self.city}, {self.state} {self.zip_code}, US",
            Point(self.latitude, self.longitude),
            self.raw(),
        )


class ZipIndex:
    """Every ZIP by code, and the residential (STANDARD) ones in a lat/lon grid for reverse.

    A point that several ZIPs share is a placeholder (the data gives some ZIPs their city's
    centre: five "WASHINGTON NAVY YARD" ZIPs sit on the Mall), not a centroid, so those ZIPs are
    left out of the grid; forward lookups still find them.
    """

    def __init__(self, records: list[ZipRecord]) -> None:
        self.by_zip = {r.zip_code: r for r in records}
        self.grid: dict[tuple[int, int], list[ZipRecord]] = {}
        residential = [r for r in records if r.standard]
        shared = Counter((r.latitude, r.longitude) for r in residential)
        for r in residential:
            if shared[r.latitude, r.longitude] == 1:
                self.grid.setdefault(_cell(r.latitude, r.longitude), []).append(r)

    @classmethod
    def from_zipcodes(cls) -> ZipIndex:
        """From the process's shared ZIP table (``gateway.zipdata``), US ZIPs with a point."""
        records = []
        for z in zip_table().values():
            lat, lon = z.latitude, z.longitude
            if lat is None or lon is None:
                continue
            if z.country not in ("US", "") or (lat == 0 and lon == 0):
                continue
            records.append(
                ZipRecord(
                    zip_code=z.zip_code,
                    city=sys.intern(z.city.upper()),
                    state=z.state.upper(),
                    latitude=lat,
                    longitude=lon,
                    standard=z.zip_code_type == "STANDARD" and z.active,
                )
            )
        return cls(records)

    def nearest(self, latitude: float, longitude: float) -> ZipRecord | None:
        """The closest residential ZIP centroid, by expanding rings of grid cells."""
        scale = max(math.cos(math.radians(latitude)), 0.1)
        ci, cj = _cell(latitude, longitude)
        best: ZipRecord | None = None
        best_d2 = _MAX_DEGREES**2
        max_ring = math.ceil(_MAX_DEGREES / (_CELL * scale)) + 1
        for ring in range(max_ring + 1):
            # Points outside rings 0..ring-1 are at least (ring-1) cells away along some axis.
            bound = max(ring - 1, 0) * _CELL * scale
            if best is not None and best_d2 <= bound * bound:
                break
            for i, j in _ring(ci, cj, ring):
                for r in self.grid.get((i, j), ()):
                    d2 = (r.latitude - latitude) ** 2 + ((r.longitude - longitude) * scale) ** 2
                    if d2 < best_d2:
                        best, best_d2 = r, d2
        return best


def _cell(latitude: float, longitude: float) -> tuple[int, int]:
    return math.floor(latitude / _CELL), math.floor(longitude / _CELL)


def _ring(ci: int, cj: int, ring: int) -> list[tuple[int, int]]:
    if ring == 0:
        return [(ci, cj)]
    cells = [(ci + di, cj + dj) for di in (-ring, ring) for dj in range(-ring, ring + 1)]
    cells += [(ci + di, cj + dj) for dj in (-ring, ring) for di in range(-ring + 1, ring)]
    return cells


_index: ZipIndex | None = None
_index_lock = threading.Lock()


def zip_index() -> ZipIndex:
    """The process-wide index, built on first use."""
    global _index
    if _index is None:
        with _index_lock:
            if _index is None:
                _index = ZipIndex.from_zipcodes()
    return _index


class _NoNetworkAdapter(BaseSyncAdapter):  # type: ignore[misc]
    def get_json(self, url: str, *, timeout: float | None, headers: dict[str, str]) -> Any:
        raise GeocoderServiceError("the offline geocoder does no I/O")

    def get_text(self, url: str, *, timeout: float | None, headers: dict[str, str]) -> str:
        raise GeocoderServiceError("the offline geocoder does no I/O")


class OfflineGeocoder(Geocoder):  # type: ignore[misc]
    """ZIP-centroid geocoding from bundled data.

    ``geocode`` takes a structured query (a mapping with ``postalcode``, as Nominatim's) or a
    one-line string; the last 5-digit group in it is the ZIP. ``reverse`` takes ``(lat, lon)``.
    """

    structured_query_params = frozenset({"street", "city", "state", "country", "postalcode"})

    def __init__(self, *, index: ZipIndex | None = None) -> None:
        super().__init__(adapter_factory=_NoNetworkAdapter)
        self._given_index = index

    @property
    def index(self) -> ZipIndex:
        return self._given_index if self._given_index is not None else zip_index()

    def geocode(self, query: Mapping[str, Any] | str, **_: Any) -> Location | None:
        if isinstance(query, Mapping):
            country = str(query.get("country") or "US").upper()
            if country not in ("US", "USA", "UNITED STATES"):
                return None
            text = str(query.get("postalcode") or "")
        else:
            text = str(query)
        found = _ZIP.findall(text)
        if not found:
            return None
        record = self.index.by_zip.get(found[-1])
        return record.location() if record is not None else None

    def reverse(self, query: Any, **_: Any) -> Location | None:
        try:
            point = query if isinstance(query, Point) else Point(query)
        except (TypeError, ValueError) as exc:
            raise GeocoderQueryError(f"Not a coordinate pair: {query!r}") from exc
        record = self.index.nearest(point.latitude, point.longitude)
        return record.location() if record is not None else None
