"""The pure parts: queries sent, precision read from raw answers, civic address from reverse."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.bandwidth.models import Address
from gateway.geocoding import OfflineGeocoder, Precision
from gateway.geocoding.providers import (
    civic_address,
    elsewhere,
    forward_options,
    forward_query,
    one_line,
    precision_of,
    reverse_precision,
    structured_query,
)

ADDRESS = Address(
    house_number="12",
    house_suffix="1/2",
    prefix_directional="N",
    street_name="MAIN",
    street_suffix="ST",
    address_line2="APT 4",
    city="SPRINGFIELD",
    state_code="IL",
    zip="62701",
    plus_four="1234",
    country="US",
)


def test_queries_leave_out_unit_and_zip4() -> None:
    assert structured_query(ADDRESS) == {
        "street": "12 1/2 N MAIN ST",
        "city": "SPRINGFIELD",
        "state": "IL",
        "postalcode": "62701",
        "country": "US",
    }
    assert one_line(ADDRESS) == "12 1/2 N MAIN ST, SPRINGFIELD, IL 62701, US"
    assert one_line(Address(city="SPRINGFIELD", state_code="IL")) == "SPRINGFIELD, IL"
    assert structured_query(Address(zip="62701")) == {"postalcode": "62701"}


def test_structured_only_where_the_provider_supports_it() -> None:
    class OneLine:
        def geocode(self, query: str, *, exactly_one: bool = True) -> None: ...

    assert forward_query(OfflineGeocoder(), ADDRESS) == structured_query(ADDRESS)
    assert forward_query(OneLine(), ADDRESS) == one_line(ADDRESS)
    assert forward_options(OneLine()) == {}


@pytest.mark.parametrize(
    ("raw", "precision"),
    [
        ({"precision": "postal"}, Precision.POSTAL),
        ({"precision": "STREET"}, Precision.STREET),
        # A geocode is never the device's own fix, whatever the answer says.
        ({"precision": "gps"}, Precision.LOCALITY),
        ({"precision": "GPS", "type": "house", "class": "building"}, Precision.STREET),
        # Nominatim
        ({"class": "place", "type": "house", "addresstype": "place"}, Precision.STREET),
        ({"class": "building", "type": "yes", "addresstype": "building"}, Precision.STREET),
        (
            {
                "category": "office",
                "type": "government",
                "place_rank": 30,
                "address": {"house_number": "1600"},
            },
            Precision.STREET,
        ),
        ({"class": "highway", "type": "residential", "place_rank": 26}, Precision.LOCALITY),
        ({"class": "place", "type": "postcode", "addresstype": "postcode"}, Precision.POSTAL),
        (
            {"class": "boundary", "type": "administrative", "addresstype": "city"},
            Precision.LOCALITY,
        ),
        # Google
        ({"types": ["street_address"], "geometry": {"location_type": "ROOFTOP"}}, Precision.STREET),
        (
            {"types": ["route"], "geometry": {"location_type": "GEOMETRIC_CENTER"}},
            Precision.LOCALITY,
        ),
        (
            {"types": ["postal_code"], "geometry": {"location_type": "APPROXIMATE"}},
            Precision.POSTAL,
        ),
        # HERE, Mapbox, TomTom, Bing, Photon, OpenCage
        ({"resultType": "houseNumber"}, Precision.STREET),
        ({"place_type": ["address"]}, Precision.STREET),
        ({"type": "Point Address"}, Precision.STREET),
        ({"entityType": "Address"}, Precision.STREET),
        ({"properties": {"type": "street"}}, Precision.LOCALITY),
        ({"components": {"_type": "postcode"}}, Precision.POSTAL),
        # Unreadable: never assumed street-level.
        ({"lat": 1, "lon": 2}, Precision.LOCALITY),
        (None, Precision.LOCALITY),
    ],
)
def test_precision_of(raw: Any, precision: Precision) -> None:
    assert precision_of(raw) is precision


def test_civic_address_from_google() -> None:
    raw = {
        "address_components": [
            {"long_name": "1600", "short_name": "1600", "types": ["street_number"]},
            {
                "long_name": "Amphitheatre Parkway",
                "short_name": "Amphitheatre Pkwy",
                "types": ["route"],
            },
            {
                "long_name": "Mountain View",
                "short_name": "Mountain View",
                "types": ["locality", "political"],
            },
            {
                "long_name": "California",
                "short_name": "CA",
                "types": ["administrative_area_level_1", "political"],
            },
            {"long_name": "United States", "short_name": "US", "types": ["country", "political"]},
            {"long_name": "94043", "short_name": "94043", "types": ["postal_code"]},
        ]
    }
    address = civic_address(raw)
    assert address == Address(
        house_number="1600",
        street_name="Amphitheatre Parkway",
        city="MOUNTAIN VIEW",
        state_code="CA",
        zip="94043",
        country="US",
    )
    assert reverse_precision(address) is Precision.STREET


def test_civic_address_from_here_and_names() -> None:
    here = {
        "address": {
            "houseNumber": "5",
            "street": "Main St",
            "city": "Boston",
            "stateCode": "MA",
            "postalCode": "02108",
            "countryCode": "USA",
        }
    }
    assert civic_address(here) == Address(
        house_number="5",
        street_name="Main St",
        city="BOSTON",
        state_code="MA",
        zip="02108",
        country="US",
    )
    by_name = {
        "address": {
            "road": "Rue X",
            "city": "Ottawa",
            "state": "Ontario",
            "postcode": "k1a 0b1",
            "country_code": "ca",
        }
    }
    address = civic_address(by_name)
    assert address == Address(
        street_name="Rue X", city="OTTAWA", state_code="ON", zip="K1A 0B1", country="CA"
    )
    assert reverse_precision(address) is Precision.POSTAL


def test_reverse_precision() -> None:
    assert reverse_precision(None) is Precision.LOCALITY
    assert reverse_precision(Address(city="X")) is Precision.LOCALITY
    assert reverse_precision(Address(house_number="1", zip="12345")) is Precision.POSTAL
    assert civic_address({"lat": 1}) is None
    assert civic_address({"address": {}}) is None


DC_DETAILS = {"address": {"state": "District of Columbia", "country_code": "us"}}
ZIP_20500 = (38.8946, -77.0355)
PR_DETAILS = {"address": {"country_code": "pr", "ISO3166-2-lvl4": "PR-SJ"}}


@pytest.mark.parametrize(
    ("address", "raw", "point", "centre", "why"),
    [
        (Address(state_code="DC", zip="20500"), DC_DETAILS, ZIP_20500, ZIP_20500, None),
        (Address(state_code="dc", country="USA"), DC_DETAILS, ZIP_20500, None, None),
        (Address(state_code="VA", country="US"), DC_DETAILS, ZIP_20500, None, "in DC"),
        (Address(country="CA"), DC_DETAILS, ZIP_20500, None, "in US"),
        # Puerto Rico is its own country to some providers, a state of the address here.
        (Address(state_code="PR", country="US"), PR_DETAILS, (18.4, -66.1), None, None),
        # No details: only the distance from the ZIP's centre tells.
        (Address(zip="20500"), {}, (38.9, -77.0), ZIP_20500, None),
        (Address(zip="20500"), {}, (0.0, 0.0), ZIP_20500, "km from the centre"),
        (Address(zip="20500"), [1, 2], (41.5, -77.0), ZIP_20500, "km from the centre"),
        (Address(), {"address": {"state": "Texas"}}, (31.0, -100.0), None, None),
        # An Alaskan ZIP reaches hundreds of km from its centre: only its state is judged.
        (Address(state_code="AK", zip="99723"), {}, (71.3, -156.8), (69.0, -152.0), None),
        (Address(state_code="AK", zip="99723"), DC_DETAILS, (38.9, -77.0), None, "in DC"),
    ],
)  # fmt: skip
def test_elsewhere(
    address: Address,
    raw: Any,
    point: tuple[float, float],
    centre: tuple[float, float] | None,
    why: str | None,
) -> None:
    said = elsewhere(address, raw, *point, centre)
    if why is None:
        assert said is None
    else:
        assert said is not None and why in said
