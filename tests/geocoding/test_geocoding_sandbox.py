"""The sandbox's street-level reverse geocoding of a few places: only there, only near them."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest
from geopy.point import Point

from gateway.bandwidth.models import Address
from gateway.dlr.address import normalize
from gateway.geocoding import OfflineGeocoder, Precision, build_geocoding
from gateway.geocoding.results import GeocodeResult
from gateway.geocoding.sandbox import (
    PLACES,
    RADIUS_METERS,
    SandboxGeocoder,
    SandboxPlace,
    nearest_place,
)
from gateway.metrics import Metrics
from gateway.settings import Settings


@pytest.mark.parametrize("place", PLACES, ids=[p.name for p in PLACES])
def test_each_place_reverse_geocodes_to_a_valid_street_address(place: SandboxPlace) -> None:
    found = SandboxGeocoder().reverse(Point(place.latitude + 0.0005, place.longitude))
    assert found is not None
    assert found.raw["precision"] == "street"
    address = found.raw["address"]
    normalized = normalize(
        Address(
            house_number=address["house_number"],
            street_name=address["road"],
            city=address["city"],
            state_code=address["state_code"],
            zip=address["postcode"],
            country=address["country_code"],
        )
    )
    assert normalized.valid, normalized.errors
    assert normalized.warnings == ()


def test_a_fix_away_from_the_places_gets_the_offline_answer() -> None:
    arlington = Point(38.8816, -77.0910)
    assert nearest_place(arlington.latitude, arlington.longitude) is None
    found, offline = SandboxGeocoder().reverse(arlington), OfflineGeocoder().reverse(arlington)
    assert found is not None and offline is not None
    assert found.raw == offline.raw
    assert found.raw["precision"] == "postal"


def test_the_radius_is_a_radius() -> None:
    white_house = PLACES[0]
    # ~111 m per 0.001 degree of latitude.
    near = white_house.latitude + (RADIUS_METERS - 10) / 111_195
    far = white_house.latitude + (RADIUS_METERS + 10) / 111_195
    assert nearest_place(near, white_house.longitude) is white_house
    assert nearest_place(far, white_house.longitude) is None


def test_only_sandbox_mode_uses_it() -> None:
    async def built(settings: Settings) -> object:
        async with httpx.AsyncClient(trust_env=False) as client:
            return build_geocoding(settings, Metrics(), client).geocoder

    sandbox = asyncio.run(built(replace(Settings(), sandbox=True)))
    production = asyncio.run(built(Settings()))
    assert isinstance(sandbox, SandboxGeocoder)
    assert type(production) is OfflineGeocoder


def test_the_service_reads_a_sandbox_answer_as_street_level() -> None:
    async def reverse() -> GeocodeResult | None:
        async with httpx.AsyncClient(trust_env=False) as client:
            geocoding = build_geocoding(replace(Settings(), sandbox=True), Metrics(), client)
            return await geocoding.reverse(47.6205, -122.3493)

    result = asyncio.run(reverse())
    assert result is not None and result.address is not None
    assert result.precision is Precision.STREET
    assert result.address.house_number == "400"
