"""The simulator's address check: what the carrier's MSAG validation refuses, offline.

Required fields, US state and Canadian province codes, ZIP and postal-code formats, and
ZIP/state consistency from the ``zipcodes`` data, read through the process's one ZIP table
(``gateway.zipdata``, shared with the gateway's validator and offline geocoder).
"""

from __future__ import annotations

import dataclasses
import math
import re

from gateway.bandwidth.models import Address, Location, LocationStatus, wire_name
from gateway.zipdata import ZipInfo, ZipTable, zip_table

_STATES = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ "
    "NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY "
    "DC PR VI GU AS MP"
)
#: The 50 states, DC, and the territories with ZIP codes and 911 service.
US_STATES = frozenset(_STATES.split(" "))
CA_PROVINCES = frozenset(
    ("AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT")
)

MAX_ADDRESS_LINE2 = 60
#: A bound for every other text field, so state cannot grow without limit.
MAX_TEXT = 100

_US_ZIP = re.compile(r"\d{5}")
_PLUS_FOUR = re.compile(r"\d{4}")
# Canada Post: no D F I O Q U anywhere, no W or Z in the first position.
_CA_POSTAL = re.compile(r"[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d")


class InvalidAddress(ValueError):
    """An address the carrier would refuse; ``field`` is its wire path (``address.zip``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def zip_index() -> ZipTable:
    """Five-digit ZIP -> its record: ``gateway.zipdata``'s table, loaded on first use."""
    return zip_table()


def _coordinate(value: float | None) -> float | None:
    """A ZIP centroid's coordinate, or ``None`` if it is not finite (the table keeps it)."""
    return value if value is not None and math.isfinite(value) else None


def validate_location(location: Location) -> Location:
    """The location as the carrier stores it (status and coordinates filled in), or raise."""
    address = location.address
    if address is None:
        raise InvalidAddress("address", "is required")
    for f in dataclasses.fields(Address):
        value = getattr(address, f.name)
        limit = MAX_ADDRESS_LINE2 if f.name == "address_line2" else MAX_TEXT
        if value is not None and len(value) > limit:
            raise InvalidAddress(_wire(f.name), f"is longer than {limit} characters")
    for name in ("house_number", "street_name", "city", "state_code", "zip"):
        if not (getattr(address, name) or "").strip():
            raise InvalidAddress(_wire(name), "is required")
    if location.description is not None and len(location.description) > MAX_TEXT:
        raise InvalidAddress("description", f"is longer than {MAX_TEXT} characters")

    country = (address.country or "US").strip().upper()
    state = (address.state_code or "").strip().upper()
    zip_code = (address.zip or "").strip().upper()
    plus_four = (address.plus_four or "").strip()
    centroid: ZipInfo | None = None
    if country == "US":
        if state not in US_STATES:
            raise InvalidAddress("address.stateCode", f"{state!r} is not a US state code")
        if not _US_ZIP.fullmatch(zip_code):
            raise InvalidAddress("address.zip", "must be five digits")
        if plus_four and not _PLUS_FOUR.fullmatch(plus_four):
            raise InvalidAddress("address.plusFour", "must be four digits")
        centroid = zip_index().get(zip_code)
        if centroid is None:
            raise InvalidAddress("address.zip", f"{zip_code} is not a known US ZIP code")
        if centroid.state != state:
            raise InvalidAddress(
                "address.zip", f"{zip_code} is in {centroid.state}, not in {state}"
            )
    elif country == "CA":
        if state not in CA_PROVINCES:
            raise InvalidAddress("address.stateCode", f"{state!r} is not a Canadian province code")
        if not _CA_POSTAL.fullmatch(zip_code):
            raise InvalidAddress("address.zip", "must be a Canadian postal code (A1A 1A1)")
        if plus_four:
            raise InvalidAddress("address.plusFour", "applies only to US addresses")
    else:
        raise InvalidAddress("address.country", "must be US or CA")

    latitude, longitude = location.latitude, location.longitude
    if (latitude is None) != (longitude is None):
        raise InvalidAddress(
            "latitude" if latitude is None else "longitude", "latitude and longitude go together"
        )
    if latitude is not None and not -90 <= latitude <= 90:
        raise InvalidAddress("latitude", "must be between -90 and 90")
    if longitude is not None and not -180 <= longitude <= 180:
        raise InvalidAddress("longitude", "must be between -180 and 180")
    if latitude is None and centroid is not None:
        latitude, longitude = _coordinate(centroid.latitude), _coordinate(centroid.longitude)
    status = LocationStatus.VALID if latitude is None else LocationStatus.GEOCODED
    return dataclasses.replace(
        location, status=status.value, latitude=latitude, longitude=longitude
    )


def _wire(name: str) -> str:
    return "address." + wire_name(name)
