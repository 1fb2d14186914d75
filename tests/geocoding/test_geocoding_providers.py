"""The pure parts: queries sent, precision read from raw answers, civic address from reverse."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.bandwidth.models import Address
from gateway.geocoding import OfflineGeocoder, Precision
from gateway.geocoding.providers import (
    civic_address,
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
