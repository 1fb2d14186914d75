"""A device's coordinates are its own, and always say how precise they are.

Every answer with coordinates (a report's, a device's location, an address check) names
their precision; PIDF-LO and HELD draw a Circle that covers the uncertainty, or no shape at
all for anything coarser than street level; the call-time query answers a device's own fix
or a street-level geocode of its address, never another device's fix at the same address;
a fix that contradicts its address is reported, recorded and counted, and not answered.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

from starlette.datastructures import Secret

from gateway.bandwidth.models import Address
from gateway.geocoding.results import GeocodeResult, Precision
from gateway.settings import Settings
from tests.harness import EMPIRE_STATE, Gateway, gateway, gateway_settings, phone_of, report
from tests.pidf.checks import check_presence, parse_xml

QUERY_TOKEN = "query-token-abcdef0123456789"
NEW_YORK = {"latitude": 40.74844, "longitude": -73.98566, "accuracyMeters": 6.5}
LOS_ANGELES = {"latitude": 34.05223, "longitude": -118.24368, "accuracyMeters": 15}
EMPIRE_ROOFTOP = (40.748817, -73.985428)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def settings(**changes: Any) -> Settings:
    return gateway_settings(emergency_query_token=Secret(QUERY_TOKEN), **changes)


class StreetGeocoder:
    """Knows the Empire State Building to the rooftop (the offline geocoder stops at ZIPs)."""

    async def geocode(self, address: Address) -> GeocodeResult | None:
        return GeocodeResult(*EMPIRE_ROOFTOP, Precision.STREET, "test")

    async def reverse(self, latitude: float, longitude: float) -> GeocodeResult | None:
        return None


class EmpireEverywhere(StreetGeocoder):
    """A reverse geocoder that answers the Empire State Building wherever it is asked."""

    async def reverse(self, latitude: float, longitude: float) -> GeocodeResult | None:
        empire = Address(
            house_number="350",
            street_name="5th Avenue",
            city="NEW YORK",
            state_code="NY",
            zip="10118",
            country="US",
        )
        return GeocodeResult(*EMPIRE_ROOFTOP, Precision.STREET, "test", address=empire)


async def answered(gw: Gateway, aeui: str) -> dict[str, Any]:
    response = await gw.http.get(
        "/v1/emergency-calls/location",
        params={"to": "911", "from": phone_of(aeui), "token": QUERY_TOKEN},
        headers={"Authorization": ""},
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def pidf_shapes(gw: Gateway, aeui: str) -> dict[str, ET.Element]:
    response = await gw.http.get(
        f"/v1/devices/{aeui}/location", headers={"Accept": "application/pidf+xml"}
    )
    assert response.status_code == 200, response.text
    return check_presence(parse_xml(response.content))


def radius(circle: ET.Element) -> float:
    return float(circle[1].text or "nan")


def conflicts(gw: Gateway) -> float:
    return gw.metrics.registry.get_sample_value("dlr_report_coordinate_conflicts_total") or 0.0


async def device_history(gw: Gateway, aeui: str) -> list[dict[str, Any]]:
    page = await gw.http.get(f"/v1/devices/{aeui}/history")
    entries: list[dict[str, Any]] = page.json()["entries"]
    return entries


def test_another_devices_fix_at_the_same_address_is_never_answered() -> None:
    """The issue's case: A at 350 Fifth Avenue with a New York fix, then B at the same
    address with a Los Angeles fix."""

    async def scenario() -> None:
        for geocoder in (None, StreetGeocoder()):
            async with gateway(settings(), geocoder=geocoder) as gw:
                a = await gw.report(report("a", EMPIRE_STATE, 0, geo=NEW_YORK))
                assert a.status_code == 200 and a.json()["warnings"] == []
                b = await gw.report(report("b", EMPIRE_STATE, 0, geo=LOS_ANGELES))
                # Applied (the civic address is the dispatchable location), with a warning.
                assert b.status_code == 200, b.text
                assert b.json()["locationId"] == a.json()["locationId"]
                (warning,) = b.json()["warnings"]
                assert warning["field"] == "geo" and "km from the address" in warning["message"]
                assert conflicts(gw) == 1
                conflict, applied = await device_history(gw, "b")
                assert applied["kind"] == "applied"
                assert applied["after"]["precision"] != "gps"  # not the contradicting fix
                assert conflict["kind"] == "coordinates_conflict"
                assert conflict["toLocationId"] == a.json()["locationId"]
                assert conflict["after"]["fix"]["latitude"] == LOS_ANGELES["latitude"]
                assert conflict["after"]["distanceMeters"] > 3_000_000
                # A's own fix, its accuracy as the radius.
                located = await answered(gw, "a")
                assert (located["lat"], located["lon"], located["radius"]) == (
                    NEW_YORK["latitude"],
                    NEW_YORK["longitude"],
                    7,
                )
                # B: never A's fix, never its own contradicting one.
                mine = await answered(gw, "b")
                assert (mine.get("lat"), mine.get("lon")) != (40.74844, -73.98566)
                assert mine.get("lat") != LOS_ANGELES["latitude"]
                assert mine["location_id"] == a.json()["locationId"]
                if geocoder is None:  # only a ZIP centroid: the civic location alone
                    assert "lat" not in mine and "radius" not in mine
                else:  # a street-level geocode of B's address, the default radius
                    assert (mine["lat"], mine["lon"], mine["radius"]) == (*EMPIRE_ROOFTOP, 50)

    run(scenario())


def test_a_contradicting_fix_on_an_unchanged_report_is_reported_too() -> None:
    async def scenario() -> None:
        async with gateway(settings()) as gw:
            assert (await gw.report(report("a", EMPIRE_STATE, 0, geo=NEW_YORK))).status_code == 200
            seq = gw.last_seq()
            again = await gw.report(report("a", EMPIRE_STATE, 1, geo=LOS_ANGELES))
            assert again.status_code == 200
            assert again.json()["changes"] == {"location": "unchanged", "endpoint": "unchanged"}
            assert gw.operations(seq) == []
            assert [w["field"] for w in again.json()["warnings"]] == ["geo"]
            # The earlier fix is not kept at this report's time: the address's geocode is
            # (the offline geocoder's ZIP centroid, never answered as a point).
            assert again.json()["precision"] == "postal"
            assert conflicts(gw) == 1
            assert [e["kind"] for e in await device_history(gw, "a")] == [
                "coordinates_conflict",
                "applied",
            ]
            assert "lat" not in await answered(gw, "a")

    run(scenario())


def test_every_answer_with_coordinates_names_their_precision() -> None:
    """The offline geocoder's ZIP centroid is ``postal`` in the report's answer, the device's
    location and the address check alike, with no radius; PIDF-LO draws no shape for it.
    A street-level geocode and a fix are Circles covering their uncertainty."""

    async def scenario() -> None:
        async with gateway(settings()) as gw:
            sent = await gw.report(report("zip", EMPIRE_STATE, 0))
            checked = await gw.http.post("/v1/addresses/validate", json={"address": EMPIRE_STATE})
            read = await gw.http.get("/v1/devices/zip/location")
            for answer in (sent.json(), checked.json(), read.json()):
                assert answer["precision"] == "postal", answer
                assert answer["radiusMeters"] is None
            assert (sent.json()["latitude"], sent.json()["longitude"]) == (
                checked.json()["latitude"],
                checked.json()["longitude"],
            )
            assert sent.json()["status"] == "GEOCODED"  # the carrier's word, beside ours
            assert set(await pidf_shapes(gw, "zip")) == {"civic"}  # no Point for a centroid

            fixed = await gw.report(report("gps", EMPIRE_STATE, 0, geo=NEW_YORK))
            assert (fixed.json()["precision"], fixed.json()["radiusMeters"]) == ("gps", 7)
            shapes = await pidf_shapes(gw, "gps")
            assert set(shapes) == {"civic", "circle"}
            assert radius(shapes["circle"]) == 7.0
        async with gateway(settings(), geocoder=StreetGeocoder()) as gw:
            street = await gw.report(report("street", EMPIRE_STATE, 0))
            assert (street.json()["precision"], street.json()["radiusMeters"]) == ("street", 50)
            shapes = await pidf_shapes(gw, "street")
            assert set(shapes) == {"civic", "circle"}
            assert radius(shapes["circle"]) == 50.0
            checked = await gw.http.post("/v1/addresses/validate", json={"address": EMPIRE_STATE})
            assert (checked.json()["precision"], checked.json()["radiusMeters"]) == ("street", 50)

    run(scenario())


def test_a_fix_within_its_accuracy_of_the_address_is_the_devices_position() -> None:
    async def scenario() -> None:
        # 300 m from the rooftop with 10 m accuracy: within the default 500 m margin.
        near = {"latitude": 40.7515, "longitude": -73.9852, "accuracyMeters": 10}
        async with gateway(settings(), geocoder=StreetGeocoder()) as gw:
            sent = await gw.report(report("near", EMPIRE_STATE, 0, geo=near))
            assert sent.json()["warnings"] == [] and sent.json()["precision"] == "gps"
        # The margin is a setting: with none, the same fix contradicts the address.
        strict = settings(geo_conflict_margin=0.0)
        async with gateway(strict, geocoder=StreetGeocoder()) as gw:
            sent = await gw.report(report("near", EMPIRE_STATE, 0, geo=near))
            assert [w["field"] for w in sent.json()["warnings"]] == ["geo"]
            assert (sent.json()["latitude"], sent.json()["precision"]) == (
                EMPIRE_ROOFTOP[0],
                "street",
            )

    run(scenario())


def test_a_gps_only_report_is_not_given_a_far_address_the_geocoder_answered() -> None:
    """A fix in Los Angeles that the geocoder reverses to the Empire State Building is not
    provisioned in New York (a 911 call there would reach New York's PSAP): refused, as that
    address with that fix would be a contradiction. A fix by the building is provisioned."""

    async def scenario() -> None:
        async with gateway(settings(), geocoder=EmpireEverywhere()) as gw:
            seq = gw.last_seq()
            far = await gw.report(report("far", None, 0, geo=LOS_ANGELES))
            assert far.status_code == 422, far.text
            [error] = far.json()["errors"]
            assert error["field"] == "geo" and "km from the GPS fix" in error["message"]
            assert gw.operations(seq) == []
            near = await gw.report(report("near", None, 0, geo=NEW_YORK))
            assert near.status_code == 200, near.text
            assert near.json()["address"]["zip"] == "10118"

    run(scenario())


def test_a_gps_only_report_too_coarse_to_pick_a_street_address_is_refused() -> None:
    """A fix that puts the device anywhere within 800 km (a cell or IP position) does not say
    which street address it is at: the nearest address to its centre is a guess, and would be
    provisioned as the dispatchable location. Refused, before the geocoder is asked; a fix
    as precise as the margin allows is provisioned."""

    async def scenario() -> None:
        async with gateway(settings(), geocoder=EmpireEverywhere()) as gw:
            seq = gw.last_seq()
            coarse = await gw.report(
                report("coarse", None, 0, geo={**NEW_YORK, "accuracyMeters": 800_000})
            )
            assert coarse.status_code == 422, coarse.text
            [error] = coarse.json()["errors"]
            assert error["field"] == "geo" and "accuracy" in error["message"]
            assert gw.operations(seq) == []
            edge = await gw.report(report("edge", None, 0, geo={**NEW_YORK, "accuracyMeters": 500}))
            assert edge.status_code == 200, edge.text
            assert edge.json()["address"]["zip"] == "10118"

    run(scenario())
