"""PIDF-LO location reports (``application/pidf+xml``) and a device's location as PIDF-LO.

The PIDF path is the JSON path with another reader: the same answers, the same carrier
calls, the same problems, with field errors named after the civic elements sent.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api.auth import DeviceTokens
from gateway.pidf.civic import to_address
from gateway.pidf.document import read_presence
from tests.harness import JWT_SECRET, WHITE_HOUSE, Gateway, gateway, gateway_settings, report
from tests.pidf import samples
from tests.pidf.checks import check_presence, civic_values, mutated, parse_xml

PIDF = {"Content-Type": "application/pidf+xml"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def device(aeui: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {DeviceTokens(secret=JWT_SECRET).mint(aeui, 300)}"}


async def post(gw: Gateway, body: bytes, **headers: str) -> httpx.Response:
    return await gw.http.post("/v1/location-reports", content=body, headers={**PIDF, **headers})


def fields(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json().get("errors", [])]


def test_pidf_and_json_reports_are_the_same_report() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            first = await post(gw, samples.CIVIC)
            assert first.status_code == 200, first.text
            body = first.json()
            assert body["alternateEndUserId"] == "alice-laptop"
            assert body["callerName"] == "ALICE SMITH"
            assert body["telephoneNumber"] == "+12025550143"
            assert body["observedAt"] == "2026-11-01T12:00:00+00:00"
            assert body["address"]["addressLine2"] == "FL 86 RM 8601"
            assert body["changes"] == {"location": "created", "endpoint": "created"}
            # The same place as JSON, later: the same location, no carrier call at all.
            seq = gw.last_seq()
            address = {
                "houseNumber": "350",
                "streetName": "5th",
                "streetSuffix": "Avenue",
                "addressLine2": "Floor 86 Room 8601",
                "city": "New York",
                "stateCode": "NY",
                "zip": "10118",
            }
            again = await gw.report(report("alice-laptop", address, 60, phone="+12025550143"))
            assert again.status_code == 200, again.text
            assert again.json()["locationId"] == body["locationId"]
            assert again.json()["changes"] == {"location": "unchanged", "endpoint": "unchanged"}
            assert gw.operations(seq) == []
            # And an older PIDF-LO is superseded, as an older JSON report would be.
            old = await post(gw, samples.CIVIC.replace(b"12:00:00Z", b"11:59:00Z"))
            assert old.status_code == 409
            assert old.json()["type"] == "/problems/superseded"

    run(scenario())


def test_civic_and_geodetic_together_are_address_and_geo() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            response = await post(gw, samples.MIXED)
            assert response.status_code == 200, response.text
            body = response.json()
            # The device's own fix is its position, not a geocode of the address.
            assert (body["latitude"], body["longitude"]) == (41.8789, -87.6359)
            assert body["telephoneNumber"] == "+13125550199"
            assert [w["field"] for w in body["warnings"]] == ["civicAddress.MP", "civicAddress.A2"]

    run(scenario())


def test_a_known_device_keeps_its_name_and_number() -> None:
    """A LIS's PIDF-LO seldom carries a name or number: the device's current ones stay."""

    async def scenario() -> None:
        async with gateway() as gw:
            json_report = report("alice-laptop", WHITE_HOUSE, 0, caller="ALICE JONES")
            assert (await gw.report(json_report)).status_code == 200
            bare = (
                samples.CIVIC.replace(b"<ca:NAM>ALICE SMITH</ca:NAM>", b"")
                .replace(b"<contact>tel:+12025550143</contact>", b"")
                .replace(b"12:00:00Z", b"12:10:00Z")
            )
            response = await post(gw, bare)
            assert response.status_code == 200, response.text
            assert response.json()["callerName"] == "ALICE JONES"
            assert response.json()["changes"]["location"] == "created"
            # A Point alone (GPS only) goes the JSON way too: reverse-geocoded, and refused
            # when that gives no street address, the error naming the shape sent.
            point = (
                samples.POINT.replace(b"sip:bob-phone@", b"sip:alice-laptop@")
                .replace(b"12:00:05", b"12:20:00")
                # Arlington, VA: none of the sandbox's street-level places.
                .replace(b"38.8977 -77.0365", b"38.8816 -77.0910")
            )
            refused = await post(gw, point)
            assert refused.status_code == 422
            assert refused.json()["type"] == "/problems/unroutable-address"
            assert fields(refused) == ["location-info.Point"]

    run(scenario())


def test_the_carrier_is_asked_for_a_left_out_name_only_for_an_otherwise_valid_report() -> None:
    """Reading a PIDF-LO is parsing: the device's current name and number are the pipeline's
    to fill in, from the carrier (for a binding this gateway holds none of) only once the
    rest of the report is valid."""
    bare = samples.CIVIC.replace(b"<ca:NAM>ALICE SMITH</ca:NAM>", b"").replace(
        b"<contact>tel:+12025550143</contact>", b""
    )

    async def scenario() -> None:
        async with gateway() as first:
            json_report = report("alice-laptop", WHITE_HOUSE, 0, caller="ALICE JONES")
            assert (await first.report(json_report)).status_code == 200
            # A second gateway, its cache and store empty: only the carrier knows alice.
            async with gateway(sim_app=first.sim_app) as gw:
                seq = gw.last_seq()
                bad = bare.replace(b"<ca:PC>10118</ca:PC>", b"<ca:PC>99999</ca:PC>")
                refused = await post(gw, bad.replace(b"12:00:00Z", b"12:10:00Z"))
                assert refused.status_code == 422, refused.text
                assert "civicAddress.PC" in fields(refused)
                assert gw.operations(seq) == []
                response = await post(gw, bare.replace(b"12:00:00Z", b"12:10:00Z"))
                assert response.status_code == 200, response.text
                assert response.json()["callerName"] == "ALICE JONES"
                assert response.json()["telephoneNumber"] == json_report["telephoneNumber"]
                assert gw.operations(seq)[0] == "getEndpoint"

    run(scenario())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ((b"<ca:PC>10118</ca:PC>", b"<ca:PC>99999</ca:PC>"), "civicAddress.PC"),
        ((b"<ca:A1>NY</ca:A1>", b"<ca:A1>ZZ</ca:A1>"), "civicAddress.A1"),
        ((b"<ca:HNO>350</ca:HNO>", b""), "civicAddress.HNO"),
        (
            (b"<ca:PC>10118</ca:PC>", b"<ca:PC>10118</ca:PC><ca:POBOX>12</ca:POBOX>"),
            "civicAddress.POBOX",
        ),
        (
            (b"<ca:ROOM>8601</ca:ROOM>", b"<ca:ROOM>" + b"9" * 70 + b"</ca:ROOM>"),
            "civicAddress.FLR",
        ),
        ((b"<ca:ROOM>8601</ca:ROOM>", b"<ca:ROOMS>1</ca:ROOMS>"), "civicAddress.ROOMS"),
        ((b"<ca:NAM>ALICE SMITH</ca:NAM>", b""), "civicAddress.NAM"),
        ((b"<contact>tel:+12025550143</contact>", b"<contact>tel:+15555</contact>"), "contact"),
        ((b"2026-11-01T12:00:00Z", b"2026-11-01T12:00:00"), "timestamp"),
        ((b"pres:alice-laptop@example.com", b"pres:" + b"a" * 40 + b"@example.com"), "entity"),
        ((b"pres:alice-laptop@example.com", b"urn:x:y"), "entity"),
    ],
)
def test_errors_name_the_element_sent(change: tuple[bytes, bytes], field: str) -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            response = await post(gw, samples.CIVIC.replace(*change))
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert field in fields(response), response.text
            # Nothing was written (a report whose only problem is a missing name or number
            # reads the device's record).
            assert set(gw.operations()) <= {"getEndpoint"}

    run(scenario())


def test_bad_coordinates_name_the_shape() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            # carol is unknown: her first report must carry the name and number.
            response = await post(gw, samples.CIRCLE.replace(b"47.6205", b"97.6205"))
            assert response.status_code == 422
            assert fields(response) == ["civicAddress.NAM", "contact", "location-info.Circle.pos"]
            response = await post(gw, samples.CIRCLE.replace(b">35.5<", b">-3<"))
            assert fields(response) == ["location-info.Circle.radius"]

    run(scenario())


def test_device_token_acts_only_for_its_own_entity() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            other = await post(gw, samples.CIVIC, **device("mallory"))
            assert other.status_code == 403
            assert gw.operations() == []
            own = await post(gw, samples.CIVIC, **device("alice-laptop"))
            assert own.status_code == 200, own.text
            # A tel: entity (or none) means "the token's own device".
            by_number = samples.CIVIC.replace(
                b"pres:alice-laptop@example.com", b"tel:+12025550143"
            ).replace(b"12:00:00Z", b"12:05:00Z")
            response = await post(gw, by_number, **device("alice-laptop"))
            assert response.status_code == 200, response.text
            assert response.json()["alternateEndUserId"] == "alice-laptop"
            # An admin key must say which device: a tel: entity does not.
            admin = await post(gw, by_number.replace(b"12:05:00Z", b"12:06:00Z"))
            assert admin.status_code == 422
            assert fields(admin) == ["entity"]

    run(scenario())


def test_unreadable_bodies() -> None:
    async def scenario() -> None:
        async with gateway(gateway_settings(max_body_bytes=2048)) as gw:
            malformed = await post(gw, b"<presence")
            assert malformed.status_code == 422
            assert fields(malformed) == ["body"]
            hostile = await post(
                gw, b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "b">]><p>&a;</p>'
            )
            assert hostile.status_code == 422
            assert "hostile" in hostile.json()["errors"][0]["message"]
            too_big = await post(gw, samples.CIVIC + b" " * 2048)
            assert too_big.status_code == 413
            other = await gw.http.post(
                "/v1/location-reports", content=samples.CIVIC, headers={"Content-Type": "text/xml"}
            )
            assert other.status_code == 415
            assert "application/pidf+xml" in other.json()["detail"]
            assert gw.operations() == []

    run(scenario())


def test_location_as_pidf_lo_round_trips() -> None:
    """PIDF-LO in, the binding out as PIDF-LO, read again: the same place, the RFCs' form."""

    async def scenario() -> None:
        async with gateway() as gw:
            sent = read_presence(samples.CIVIC)
            assert (await post(gw, samples.CIVIC)).status_code == 200
            response = await gw.http.get(
                "/v1/devices/alice-laptop/location", headers={"Accept": "application/pidf+xml"}
            )
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/pidf+xml"
            root = parse_xml(response.content)
            found = check_presence(root)
            # Only a ZIP centroid is known (the offline geocoder): no position, no shape.
            assert set(found) == {"civic"}
            assert root.get("entity") == "pres:alice-laptop@gateway"
            assert civic_values(found["civic"]) == dict(sent.civic or ())
            back = read_presence(response.content)
            assert back.contact == "tel:+12025550143"
            assert back.timestamp == "2026-11-01T12:00:00Z"
            assert to_address(back.civic or ()).address == to_address(sent.civic or ()).address
            # JSON stays the default, and wins ties.
            for accept in (None, "*/*", "application/json, application/pidf+xml"):
                plain = await gw.http.get(
                    "/v1/devices/alice-laptop/location",
                    headers={"Accept": accept} if accept else None,
                )
                assert plain.headers["content-type"] == "application/json"
            preferred = await gw.http.get(
                "/v1/devices/alice-laptop/location",
                headers={"Accept": "application/json;q=0.5, application/pidf+xml"},
            )
            assert preferred.headers["content-type"] == "application/pidf+xml"

    run(scenario())


_PIECES = st.sampled_from([b"<", b"</ca:RD>", b"&amp;", b"\x00", b"<ca:FOO/>", b"9" * 30, b"\xff"])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    seed=st.sampled_from(list(samples.ALL.values())),
    edits=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 30), _PIECES), max_size=4),
)
def test_mutated_documents_never_get_a_500(
    seed: bytes, edits: list[tuple[int, int, bytes]]
) -> None:
    data = mutated(seed, edits)

    async def scenario() -> None:
        async with gateway() as gw:
            response = await post(gw, data)
            assert response.status_code < 500, response.text
            if response.status_code != 200:
                assert response.headers["content-type"] == "application/problem+json"

    run(scenario())


def test_a_document_without_a_timestamp_is_as_new_as_its_arrival() -> None:
    """RFC 3863 makes <timestamp> optional: the receive time is used, and the answer says so."""

    async def scenario() -> None:
        async with gateway() as gw:
            before = datetime.now(UTC)
            undated = samples.CIVIC.replace(b"<timestamp>2026-11-01T12:00:00Z</timestamp>", b"")
            response = await post(gw, undated)
            assert response.status_code == 200, response.text
            body = response.json()
            observed = datetime.fromisoformat(body["observedAt"])
            assert before <= observed <= datetime.now(UTC)
            assert [w["field"] for w in body["warnings"]] == ["timestamp"]
            assert "received" in body["warnings"][0]["message"]

    run(scenario())


@pytest.mark.parametrize(
    ("name", "street"),
    [
        ("spaced-namespace", "BROADWAY"),
        # GPS only: RFC 4119's Point at the Empire State Building (a sandbox place).
        ("rfc4119-point", "5TH"),
        ("wrapped-point", "WACKER"),
    ],
)
def test_documents_as_real_devices_send_them_are_reports(name: str, street: str) -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            document = samples.ALL[name]
            if b"NAM>" not in document or b"contact>" not in document:
                # The device is known, so its name and number are kept.
                aeui = str(read_presence(document).entity).split(":")[1].split("@")[0]
                known = report(aeui, "2880 Broadway, New York, NY 10025", -86400)
                assert (await gw.report(known)).status_code == 200
            response = await post(gw, document)
            assert response.status_code == 200, response.text
            assert response.json()["address"]["streetName"] == street
            assert response.json()["warnings"] == []

    run(scenario())


def test_every_problem_of_a_document_is_in_one_answer() -> None:
    """Not the name and number first and the city and ZIP on the next try."""

    async def scenario() -> None:
        async with gateway() as gw:
            document = (
                samples.CIVIC.replace(b"<ca:NAM>ALICE SMITH</ca:NAM>", b"")
                .replace(b"<contact>tel:+12025550143</contact>", b"")
                .replace(b"<ca:A3>NEW YORK</ca:A3>", b"")
                .replace(b"<ca:PC>10118</ca:PC>", b"<ca:PC>99999</ca:PC>")
            )
            response = await post(gw, document)
            assert response.status_code == 422, response.text
            assert set(fields(response)) == {
                "civicAddress.NAM",
                "contact",
                "civicAddress.A3",
                "civicAddress.PC",
            }
            # Refused before the gateway looked for the device's name at the carrier.
            assert gw.operations() == []

    run(scenario())


def test_every_problem_of_a_json_report_is_in_one_answer_too() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            body = report("alice", "350 5th Ave, New York, NY 99999", 0)
            del body["callerName"]
            response = await gw.report(body)
            assert response.status_code == 422, response.text
            assert set(fields(response)) == {"callerName", "address.zip"}
            assert gw.operations() == []

    run(scenario())
