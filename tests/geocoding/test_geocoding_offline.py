from __future__ import annotations

import asyncio
import math
import random
import time

import pytest
from geopy.exc import GeocoderQueryError
from geopy.point import Point

from gateway.bandwidth.models import Address
from gateway.geocoding import Geocoding, OfflineGeocoder, Precision
from gateway.geocoding.offline import ZipIndex, ZipRecord, zip_index
from gateway.metrics import Metrics
from gateway.settings.geocoding import GeocodingSettings

from .doubles import FakeClock


@pytest.fixture(scope="module")
def offline() -> OfflineGeocoder:
    return OfflineGeocoder()


def test_forward_structured_gives_the_zip_centroid(offline: OfflineGeocoder) -> None:
    location = offline.geocode({"street": "1600 PENNSYLVANIA AVE NW", "postalcode": "20500"})
    assert location is not None
    assert (location.latitude, location.longitude) == (38.8946, -77.0355)
    assert location.raw["precision"] == "postal"
    assert location.raw["zip_code"] == "20500"
    assert location.address == "WASHINGTON, DC 20500, US"


def test_forward_one_line_uses_the_last_five_digit_group(offline: OfflineGeocoder) -> None:
    location = offline.geocode("12345 MAIN ST, BEVERLY HILLS, CA 90210-1234, US")
    assert location is not None
    assert location.raw["zip_code"] == "90210"
    assert location.raw["city"] == "BEVERLY HILLS"


@pytest.mark.parametrize(
    "query",
    [
        {"postalcode": "00000"},
        {"city": "WASHINGTON", "state": "DC"},
        {"postalcode": "20500", "country": "CA"},
        "no zip here",
    ],
)
def test_forward_without_a_known_zip_is_none(
    offline: OfflineGeocoder, query: dict[str, str] | str
) -> None:
    assert offline.geocode(query) is None


def test_reverse_near_the_white_house(offline: OfflineGeocoder) -> None:
    location = offline.reverse((38.8977, -77.0365))
    assert location is not None
    assert location.raw["precision"] == "postal"
    assert (location.raw["city"], location.raw["state"]) == ("WASHINGTON", "DC")
    assert location.raw["zip_code"] == "20500"


def test_reverse_far_from_any_zip_is_none(offline: OfflineGeocoder) -> None:
    assert offline.reverse(Point(30.0, -40.0)) is None  # mid-Atlantic
    assert offline.reverse((48.8566, 2.3522)) is None  # Paris


def test_reverse_rejects_garbage(offline: OfflineGeocoder) -> None:
    with pytest.raises(GeocoderQueryError):
        offline.reverse("not a point")


def test_grid_nearest_matches_a_linear_scan() -> None:
    index = zip_index()
    records = list(index.gridded())
    rng = random.Random(911)
    for _ in range(100):
        anchor = rng.choice(records)
        lat = anchor.latitude + rng.uniform(-0.6, 0.6)
        lon = anchor.longitude + rng.uniform(-0.6, 0.6)
        scale = max(math.cos(math.radians(lat)), 0.1)
        expected = min(
            records,
            key=lambda r: (r.latitude - lat) ** 2 + ((r.longitude - lon) * scale) ** 2,
        )
        found = index.nearest(lat, lon)
        assert found is not None
        d_found = (found.latitude - lat) ** 2 + ((found.longitude - lon) * scale) ** 2
        d_expected = (expected.latitude - lat) ** 2 + ((expected.longitude - lon) * scale) ** 2
        assert d_found == pytest.approx(d_expected)


def test_reverse_is_an_index_lookup_not_a_scan() -> None:
    index = zip_index()
    rng = random.Random(1)
    points = [(rng.uniform(25, 49), rng.uniform(-124, -67)) for _ in range(1000)]
    start = time.perf_counter()
    for lat, lon in points:
        index.nearest(lat, lon)
    assert time.perf_counter() - start < 2.0  # a linear scan would take ~40 s


def test_reverse_prefers_residential_zips() -> None:
    unique = ZipRecord("20500", "WASHINGTON", "DC", 38.8977, -77.0365, standard=False)
    street = ZipRecord("20004", "WASHINGTON", "DC", 38.8951, -77.0290, standard=True)
    geocoder = OfflineGeocoder(index=ZipIndex([unique, street]))
    location = geocoder.reverse((38.8977, -77.0365))
    assert location is not None
    assert location.raw["zip_code"] == "20004"
    forward = geocoder.geocode({"postalcode": "20500"})
    assert forward is not None
    assert forward.raw["zip_code"] == "20500"


def test_reverse_skips_placeholder_points_shared_by_several_zips() -> None:
    placeholders = [
        ZipRecord(z, "WASHINGTON NAVY YARD", "DC", 38.8951, -77.0369, standard=True)
        for z in ("20374", "20376")
    ]
    real = ZipRecord("20500", "WASHINGTON", "DC", 38.8946, -77.0355, standard=True)
    geocoder = OfflineGeocoder(index=ZipIndex([*placeholders, real]))
    location = geocoder.reverse((38.8951, -77.0369))
    assert location is not None
    assert location.raw["zip_code"] == "20500"
    assert geocoder.geocode("20374") is not None


def test_through_the_service(offline: OfflineGeocoder) -> None:
    clock = FakeClock()
    settings = GeocodingSettings(
        geocode_cache_size=10, geocode_cache_ttl=60, geocode_negative_ttl=60, geocode_timeout=1.0
    )
    g = Geocoding(offline, "offline", settings, metrics=Metrics(), timer=clock)

    async def body() -> None:
        forward = await g.geocode(
            Address(house_number="1", street_name="MAIN", city="X", state_code="DC", zip="20500")
        )
        assert forward is not None
        assert forward.precision is Precision.POSTAL
        assert forward.address is None
        reverse = await g.reverse(38.8977, -77.0365)
        assert reverse is not None
        assert reverse.precision is Precision.POSTAL
        assert reverse.address is not None
        assert (reverse.address.city, reverse.address.state_code, reverse.address.country) == (
            "WASHINGTON",
            "DC",
            "US",
        )
        assert reverse.address.house_number is None
        assert reverse.address.zip is not None

    asyncio.run(body())
