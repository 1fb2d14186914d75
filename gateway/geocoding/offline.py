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
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from geopy.adapters import BaseSyncAdapter
from geopy.exc import GeocoderQueryError, GeocoderServiceError
from geopy.geocoders.base import Geocoder
from geopy.location import Location
from geopy.point import Point

from gateway.zipdata import ZipInfo, zip_number, zip_table

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
    """Every ZIP by code, and the residential (STANDARD) ones in a lat/lon grid for reverse
    (not those sharing a placeholder point: five "WASHINGTON NAVY YARD" ZIPs sit on the
    Mall), held as columns; a ``ZipRecord`` is built for the one answered."""

    def __init__(self, records: Iterable[ZipRecord]) -> None:
        self._names: list[str] = []
        ids: dict[str, int] = {}
        self._zips = array("i")
        self._city = array("I")
        self._state = array("I")
        self._lat = array("d")
        self._lon = array("d")
        self._standard = bytearray()
        #: ZIP number -> its row (-1: none); the last record of a ZIP wins, as in a dict.
        self._row = array("i", [-1]) * 100_000
        for r in records:
            number = zip_number(r.zip_code)
            if number is None:
                continue  # not five digits: no query could name it
            for column, name in ((self._city, r.city), (self._state, r.state)):
                found = ids.get(name)
                if found is None:
                    found = ids[name] = len(self._names)
                    self._names.append(sys.intern(name))
                column.append(found)
            self._row[number] = len(self._zips)
            self._zips.append(number)
            self._lat.append(r.latitude)
            self._lon.append(r.longitude)
            self._standard.append(r.standard)
        #: Cell -> the rows of its residential ZIPs.
        self.grid: dict[tuple[int, int], array[int]] = {}
        residential = [i for i in range(len(self._zips)) if self._standard[i]]
        shared = Counter((self._lat[i], self._lon[i]) for i in residential)
        for i in residential:
            lat, lon = self._lat[i], self._lon[i]
            if shared[lat, lon] == 1:
                self.grid.setdefault(_cell(lat, lon), array("i")).append(i)

    @classmethod
    def from_zipcodes(cls) -> ZipIndex:
        """From the process's shared ZIP table (``gateway.zipdata``), US ZIPs with a point."""
        return cls(_usable(zip_table().rows()))

    def record(self, row: int) -> ZipRecord:
        return ZipRecord(
            zip_code=f"{self._zips[row]:05d}",
            city=self._names[self._city[row]],
            state=self._names[self._state[row]],
            latitude=self._lat[row],
            longitude=self._lon[row],
            standard=bool(self._standard[row]),
        )

    def get(self, zip_code: str) -> ZipRecord | None:
        """The ZIP's record, or ``None`` for one the index does not hold."""
        number = zip_number(zip_code)
        row = -1 if number is None else self._row[number]
        return self.record(row) if row >= 0 else None

    def gridded(self) -> Iterator[ZipRecord]:
        """The records reverse lookups choose from."""
        return (self.record(row) for rows in self.grid.values() for row in rows)

    def nearest(self, latitude: float, longitude: float) -> ZipRecord | None:
        """The closest residential ZIP centroid, by expanding rings of grid cells."""
        scale = max(math.cos(math.radians(latitude)), 0.1)
        ci, cj = _cell(latitude, longitude)
        lats, lons = self._lat, self._lon
        best = -1
        best_d2 = _MAX_DEGREES**2
        max_ring = math.ceil(_MAX_DEGREES / (_CELL * scale)) + 1
        for ring in range(max_ring + 1):
            # Points outside rings 0..ring-1 are at least (ring-1) cells away along some axis.
            bound = max(ring - 1, 0) * _CELL * scale
            if best >= 0 and best_d2 <= bound * bound:
                break
            for i, j in _ring(ci, cj, ring):
                for r in self.grid.get((i, j), ()):
                    d2 = (lats[r] - latitude) ** 2 + ((lons[r] - longitude) * scale) ** 2
                    if d2 < best_d2:
                        best, best_d2 = r, d2
        return self.record(best) if best >= 0 else None


def _usable(rows: Iterable[ZipInfo]) -> Iterator[ZipRecord]:
    """US ZIPs with a point, one record at a time."""
    for z in rows:
        lat, lon = z.latitude, z.longitude
        if lat is None or lon is None:
            continue
        if z.country not in ("US", "") or (lat == 0 and lon == 0):
            continue
        yield ZipRecord(
            zip_code=z.zip_code,
            city=z.city.upper(),
            state=z.state.upper(),
            latitude=lat,
            longitude=lon,
            standard=z.zip_code_type == "STANDARD" and z.active,
        )


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
        record = self.index.get(found[-1])
        return record.location() if record is not None else None

    def reverse(self, query: Any, **_: Any) -> Location | None:
        try:
            point = query if isinstance(query, Point) else Point(query)
        except (TypeError, ValueError) as exc:
            raise GeocoderQueryError(f"Not a coordinate pair: {query!r}") from exc
        record = self.index.nearest(point.latitude, point.longitude)
        return record.location() if record is not None else None
