"""Address validation: through HTTP for the answers, and directly for the ZIP index."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.bandwidth import codec
from gateway.bandwidth.models import Address, Location
from gateway.simulator import addresses
from gateway.simulator.addresses import InvalidAddress, validate_location, zip_index

from .helpers import WHITE_HOUSE, Harness, address, error_of, location_xml


def _replace(a: Address, **changes: Any) -> Address:
    return dataclasses.replace(a, **changes)


TORONTO = Address(
    house_number="100",
    street_name="QUEEN",
    street_suffix="ST",
    post_directional="W",
    city="TORONTO",
    state_code="ON",
    zip="M5H 2N2",
    country="CA",
)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"house_number": None}, "address.houseNumber"),
        ({"street_name": "  "}, "address.streetName"),
        ({"city": None}, "address.city"),
        ({"state_code": None}, "address.stateCode"),
        ({"zip": None}, "address.zip"),
        ({"state_code": "XX"}, "address.stateCode"),
        ({"zip": "2050"}, "address.zip"),
        ({"zip": "20500-0003"}, "address.zip"),
        ({"zip": "00000"}, "address.zip"),
        ({"plus_four": "12"}, "address.plusFour"),
        ({"country": "MX"}, "address.country"),
        ({"address_line2": "S" * 61}, "address.addressLine2"),
        ({"street_name": "S" * 500}, "address.streetName"),
    ],
)
def test_invalid_address_is_400_naming_the_field(
    h: Harness, changes: dict[str, Any], field: str
) -> None:
    response = h.post("/locations", location_xml(address=address(**changes)))
    assert response.status_code == 400
    status = error_of(response)
    assert status.code == "INVALID_ADDRESS"
    assert (status.description or "").startswith(field + ":")
    assert h.sim.state["locations"] == {}


def test_zip_in_another_state_is_refused(h: Harness) -> None:
    # 20500 is Washington, DC.
    response = h.post("/locations", location_xml(address=address(state_code="VA")))
    assert response.status_code == 400
    description = error_of(response).description or ""
    assert description.startswith("address.zip:")
    assert "DC" in description
    assert "VA" in description


def test_location_without_address_is_400(h: Harness) -> None:
    response = h.post("/locations", codec.encode(Location(location_id="X")))
    assert response.status_code == 400
    assert (error_of(response).description or "").startswith("address:")


@pytest.mark.parametrize(
    "changes",
    [
        {"address_line2": "S" * 60},
        {"plus_four": "0003"},
        {"state_code": "dc", "country": "us"},
        {"city": "ANY NEIGHBOURHOOD"},  # the city is not checked against the ZIP
    ],
)
def test_valid_us_variants_are_accepted(h: Harness, changes: dict[str, Any]) -> None:
    response = h.post("/locations", location_xml(address=address(**changes)))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("state", "zip_code"),
    [("PR", "00901"), ("VI", "00802"), ("GU", "96910"), ("AS", "96799"), ("MP", "96950")],
)
def test_territories_are_us_states(h: Harness, state: str, zip_code: str) -> None:
    response = h.post("/locations", location_xml(address=address(state_code=state, zip=zip_code)))
    assert response.status_code == 201, response.text


def test_canadian_address_is_valid_without_coordinates(h: Harness) -> None:
    response = h.post("/locations", location_xml("CA1", TORONTO))
    assert response.status_code == 201
    stored = codec.decode(Location, response.content)
    assert stored.status == "VALID"
    assert stored.latitude is None
    assert stored.longitude is None


def test_canadian_address_with_coordinates_is_geocoded(h: Harness) -> None:
    response = h.post("/locations", location_xml("CA1", TORONTO, latitude=43.65, longitude=-79.38))
    assert codec.decode(Location, response.content).status == "GEOCODED"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"state_code": "NY"}, "address.stateCode"),
        ({"zip": "12345"}, "address.zip"),
        ({"zip": "D5H 2N2"}, "address.zip"),
        ({"plus_four": "1234"}, "address.plusFour"),
    ],
)
def test_invalid_canadian_address(h: Harness, changes: dict[str, Any], field: str) -> None:
    bad = _replace(TORONTO, **changes)
    response = h.post("/locations", location_xml(address=bad))
    assert response.status_code == 400
    assert (error_of(response).description or "").startswith(field + ":")


@pytest.mark.parametrize(
    ("latitude", "longitude", "field"),
    [(91.0, 0.0, "latitude"), (0.0, 181.0, "longitude"), (10.0, None, "longitude")],
)
def test_coordinates_are_checked(
    h: Harness, latitude: float, longitude: float | None, field: str
) -> None:
    response = h.post("/locations", location_xml(latitude=latitude, longitude=longitude))
    assert response.status_code == 400
    assert (error_of(response).description or "").startswith(field + ":")


def test_body_status_is_ignored(h: Harness) -> None:
    response = h.post("/locations", location_xml(status="INVALID"))
    assert codec.decode(Location, response.content).status == "GEOCODED"


def test_zip_index_is_a_dict_built_once() -> None:
    index = zip_index()
    assert index is zip_index()
    assert len(index) > 40_000
    assert index["20500"].state == "DC"
    assert index["20500"].latitude == pytest.approx(38.8946)


def test_validate_location_directly() -> None:
    stored = validate_location(Location(address=WHITE_HOUSE))
    assert stored.status == "GEOCODED"
    with pytest.raises(InvalidAddress) as caught:
        validate_location(Location(address=_replace(WHITE_HOUSE, zip="10118")))
    assert caught.value.field == "address.zip"
    assert {"DC", "PR", "VI", "GU", "AS", "MP"} <= addresses.US_STATES
    assert len(addresses.US_STATES) == 56
