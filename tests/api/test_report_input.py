"""What a location report and an address validation refuse, and how.

Every bad input is a 422 ``application/problem+json`` whose ``errors[].field`` names the field
(``address.zip``, ``geo.latitude`` for nested ones), never a 500, and costs zero upstream calls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.geocoding import Geocoding, OfflineGeocoder
from gateway.metrics import Metrics
from gateway.settings.geocoding import GeocodingSettings
from tests.harness import (
    SPACE_NEEDLE,
    WHITE_HOUSE,
    Gateway,
    gateway,
    gateway_settings,
    report,
)

WHITE_HOUSE_FIELDS = {
    "houseNumber": "1600",
    "streetName": "Pennsylvania",
    "streetSuffix": "Ave",
    "postDirectional": "NW",
    "city": "Washington",
    "stateCode": "DC",
    "zip": "20500",
}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def base() -> dict[str, Any]:
    return report("alice", WHITE_HOUSE, 0)


def without(key: str) -> dict[str, Any]:
    body = base()
    del body[key]
    return body


def future(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def assert_refused(response: httpx.Response, field: str, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    fields = [e["field"] for e in problem.get("errors", [])]
    assert field in fields, fields
    assert all(isinstance(e["message"], str) and e["message"] for e in problem["errors"])
    return problem


BAD_REPORTS: list[Any] = [
    # telephoneNumber: E.164, US or Canada.
    pytest.param(base() | {"telephoneNumber": "+442071838750"}, "telephoneNumber", id="tel-uk"),
    pytest.param(base() | {"telephoneNumber": "2025550143"}, "telephoneNumber", id="tel-no-plus"),
    pytest.param(base() | {"telephoneNumber": "+1202555014"}, "telephoneNumber", id="tel-short"),
    pytest.param(
        base() | {"telephoneNumber": "+19115550143"}, "telephoneNumber", id="tel-n11-area"
    ),
    pytest.param(
        base() | {"telephoneNumber": "+12029110143"}, "telephoneNumber", id="tel-n11-exchange"
    ),
    pytest.param(base() | {"telephoneNumber": "+18765550143"}, "telephoneNumber", id="tel-jamaica"),
    pytest.param(base() | {"telephoneNumber": "+1202555014x"}, "telephoneNumber", id="tel-letter"),
    pytest.param(base() | {"telephoneNumber": "911"}, "telephoneNumber", id="tel-911"),
    pytest.param(base() | {"telephoneNumber": 12025550143}, "telephoneNumber", id="tel-number"),
    pytest.param(base() | {"telephoneNumber": ""}, "telephoneNumber", id="tel-empty"),
    pytest.param(base() | {"telephoneNumber": 0}, "telephoneNumber", id="tel-zero"),
    pytest.param(base() | {"telephoneNumber": False}, "telephoneNumber", id="tel-false"),
    pytest.param(base() | {"telephoneNumber": "+1" + "2" * 40}, "telephoneNumber", id="tel-long"),
    # observedAt: RFC 3339 with an offset, not in the future.
    pytest.param(base() | {"observedAt": "2026-11-01T12:00:00"}, "observedAt", id="obs-no-offset"),
    pytest.param(base() | {"observedAt": "2026-11-01"}, "observedAt", id="obs-date-only"),
    pytest.param(base() | {"observedAt": "yesterday"}, "observedAt", id="obs-words"),
    pytest.param(base() | {"observedAt": 1793534400}, "observedAt", id="obs-epoch-number"),
    pytest.param(base() | {"observedAt": ""}, "observedAt", id="obs-empty"),
    pytest.param(base() | {"observedAt": 0}, "observedAt", id="obs-zero"),
    pytest.param(base() | {"observedAt": "2026-13-01T12:00:00Z"}, "observedAt", id="obs-month-13"),
    pytest.param(
        base() | {"observedAt": "2026-W44-7T12:00:00+00:00"}, "observedAt", id="obs-iso-week"
    ),
    pytest.param(base() | {"observedAt": "20261101T120000Z"}, "observedAt", id="obs-basic"),
    pytest.param(
        base() | {"observedAt": "0001-01-01T00:00:00+01:00"}, "observedAt", id="obs-before-utc"
    ),
    pytest.param(base() | {"observedAt": future(timedelta(days=1))}, "observedAt", id="obs-future"),
    pytest.param(
        base() | {"observedAt": "9999-12-31T23:59:59Z"}, "observedAt", id="obs-far-future"
    ),
    # Unknown fields, anywhere.
    pytest.param(base() | {"colour": "red"}, "colour", id="unknown-top"),
    pytest.param(base() | {"AlternateEndUserId": "x"}, "AlternateEndUserId", id="unknown-case"),
    pytest.param(
        base() | {"address": WHITE_HOUSE_FIELDS | {"suite": "5"}},
        "address.suite",
        id="unknown-addr",
    ),
    pytest.param(
        base() | {"geo": {"latitude": 38.9, "longitude": -77.0, "altitude": 3}},
        "geo.altitude",
        id="unknown-geo",
    ),
    # geo: numbers in range.
    pytest.param(
        base() | {"geo": {"latitude": 91, "longitude": -77}}, "geo.latitude", id="geo-lat-91"
    ),
    pytest.param(
        base() | {"geo": {"latitude": 38.9, "longitude": -180.5}},
        "geo.longitude",
        id="geo-lon-range",
    ),
    pytest.param(
        base() | {"geo": {"latitude": "38.9", "longitude": -77}}, "geo.latitude", id="geo-string"
    ),
    pytest.param(
        base() | {"geo": {"latitude": True, "longitude": -77}}, "geo.latitude", id="geo-bool"
    ),
    pytest.param(
        base() | {"geo": {"latitude": None, "longitude": -77}}, "geo.latitude", id="geo-null"
    ),
    pytest.param(base() | {"geo": {"longitude": -77}}, "geo.latitude", id="geo-missing-lat"),
    pytest.param(
        base() | {"geo": {"latitude": 1e308, "longitude": -77}}, "geo.latitude", id="geo-huge"
    ),
    pytest.param(
        base() | {"geo": {"latitude": 38.9, "longitude": -77, "accuracyMeters": -1}},
        "geo.accuracyMeters",
        id="geo-accuracy-negative",
    ),
    pytest.param(
        base() | {"geo": {"latitude": 38.9, "longitude": -77, "accuracyMeters": "8m"}},
        "geo.accuracyMeters",
        id="geo-accuracy-string",
    ),
    pytest.param(base() | {"geo": [38.9, -77.0]}, "geo", id="geo-array"),
    pytest.param(base() | {"geo": "38.9,-77.0"}, "geo", id="geo-string-pair"),
    # address: a non-empty string or the seed's address object.
    pytest.param(base() | {"address": ""}, "address", id="addr-empty"),
    pytest.param(base() | {"address": "   "}, "address", id="addr-blank"),
    pytest.param(base() | {"address": 1600}, "address", id="addr-number"),
    pytest.param(base() | {"address": [WHITE_HOUSE]}, "address", id="addr-array"),
    pytest.param(base() | {"address": False}, "address", id="addr-false"),
    pytest.param(base() | {"address": "x" * 501}, "address", id="addr-too-long"),
    pytest.param(base() | {"address": "1600 Penn\x00 Ave"}, "address", id="addr-control"),
    pytest.param(
        base() | {"address": WHITE_HOUSE_FIELDS | {"houseNumber": 1600}},
        "address.houseNumber",
        id="addr-field-type",
    ),
    pytest.param(
        base() | {"address": WHITE_HOUSE_FIELDS | {"city": {"name": "Washington"}}},
        "address.city",
        id="addr-field-object",
    ),
    pytest.param(
        base() | {"address": WHITE_HOUSE_FIELDS | {"addressLine2": "X" * 61}},
        "address.addressLine2",
        id="addr-line2-too-long",
    ),
    pytest.param(base() | {"address": {}}, "address.houseNumber", id="addr-empty-object"),
    pytest.param(
        base() | {"address": {k: v for k, v in WHITE_HOUSE_FIELDS.items() if k != "zip"}},
        "address.zip",
        id="addr-missing-zip",
    ),
    pytest.param(
        base() | {"address": "1600 Pennsylvania Ave NW, Washington, CA 20500"},
        "address.zip",
        id="addr-zip-not-in-state",
    ),
    pytest.param(
        base() | {"address": "PO Box 123, Washington, DC 20500"}, "address", id="addr-po-box"
    ),
    # alternateEndUserId: 1..30 characters, no surrounding spaces.
    pytest.param(base() | {"alternateEndUserId": "a" * 31}, "alternateEndUserId", id="aeui-31"),
    pytest.param(base() | {"alternateEndUserId": ""}, "alternateEndUserId", id="aeui-empty"),
    pytest.param(base() | {"alternateEndUserId": "   "}, "alternateEndUserId", id="aeui-blank"),
    pytest.param(base() | {"alternateEndUserId": " alice"}, "alternateEndUserId", id="aeui-lead"),
    pytest.param(base() | {"alternateEndUserId": "alice "}, "alternateEndUserId", id="aeui-trail"),
    pytest.param(base() | {"alternateEndUserId": 42}, "alternateEndUserId", id="aeui-number"),
    pytest.param(base() | {"alternateEndUserId": "al\x00ce"}, "alternateEndUserId", id="aeui-nul"),
    # callerName: 1..50 printable characters.
    pytest.param(base() | {"callerName": "N" * 51}, "callerName", id="caller-51"),
    pytest.param(base() | {"callerName": ""}, "callerName", id="caller-empty"),
    pytest.param(base() | {"callerName": "   "}, "callerName", id="caller-blank"),
    pytest.param(base() | {"callerName": 7}, "callerName", id="caller-number"),
    pytest.param(base() | {"callerName": "ALICE\nSMITH"}, "callerName", id="caller-newline"),
    # Missing fields, each named.
    pytest.param(without("alternateEndUserId"), "alternateEndUserId", id="missing-aeui"),
    pytest.param(without("callerName"), "callerName", id="missing-caller"),
    pytest.param(without("telephoneNumber"), "telephoneNumber", id="missing-tel"),
    pytest.param(without("observedAt"), "observedAt", id="missing-observed"),
    pytest.param(without("address"), "address", id="missing-address-and-geo"),
    pytest.param(base() | {"callerName": None}, "callerName", id="null-caller"),
    pytest.param(base() | {"address": None}, "address", id="null-address"),
    # Not an object at all.
    pytest.param([base()], "body", id="body-array"),
    pytest.param("report", "body", id="body-string"),
]


@pytest.mark.parametrize(("body", "field"), BAD_REPORTS)
def test_bad_reports_name_the_field_and_write_nothing(body: Any, field: str) -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            assert_refused(await gw.report(body), field)
            assert gw.operations() == []
            assert gw.simulator.state["endpoints"] == {}

    run(scenario())


def test_every_missing_field_is_named_at_once() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            problem = assert_refused(await gw.report({}), "alternateEndUserId")
            assert {e["field"] for e in problem["errors"]} == {
                "alternateEndUserId",
                "callerName",
                "telephoneNumber",
                "observedAt",
                "address",
            }
            assert gw.operations() == []

    run(scenario())


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"geo": {"latitude": NaN, "longitude": -77}}', "body"),
        (b'{"geo": {"latitude": Infinity, "longitude": -77}}', "body"),
        (b'{"alternateEndUserId": "alice",', "body"),
        (b"", "body"),
    ],
)
def test_unreadable_json_is_refused(raw: bytes, field: str) -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            response = await gw.http.post(
                "/v1/location-reports", content=raw, headers={"content-type": "application/json"}
            )
            assert_refused(response, field)
            assert gw.operations() == []

    run(scenario())


def test_an_overflowing_number_is_out_of_range() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            body = base() | {"geo": {"latitude": 0, "longitude": 0}}
            raw = httpx.Request("POST", "/", json=body).content.replace(
                b'"latitude":0', b'"latitude":1e999'
            )
            assert b"1e999" in raw
            response = await gw.http.post(
                "/v1/location-reports", content=raw, headers={"content-type": "application/json"}
            )
            assert_refused(response, "geo.latitude")
            assert gw.operations() == []

    run(scenario())


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"alternateEndUserId": "a" * 30}, id="aeui-30"),
        pytest.param({"callerName": "N" * 50}, id="caller-50"),
        pytest.param({"callerName": "  ALICE SMITH  "}, id="caller-padded"),
        pytest.param({"telephoneNumber": "+14165550143"}, id="tel-canada"),
        pytest.param({"observedAt": "2026-11-01T12:00:00Z"}, id="obs-z"),
        pytest.param({"observedAt": "2026-11-01T07:00:00-05:00"}, id="obs-offset"),
        pytest.param({"observedAt": "2026-11-01T12:00:00.123456789+00:00"}, id="obs-nanos"),
        pytest.param({"observedAt": "2026-11-01t12:00:00z"}, id="obs-lowercase"),
        pytest.param({"address": WHITE_HOUSE_FIELDS}, id="addr-object"),
        pytest.param(
            {"geo": {"latitude": 38.8977, "longitude": -77.0365, "accuracyMeters": 0}},
            id="geo-with-address",
        ),
    ],
)
def test_edge_values_that_are_valid(change: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            response = await gw.report(base() | change)
            assert response.status_code == 200, response.text
            assert response.json()["address"]["zip"] == "20500"

    run(scenario())


def test_a_formatted_number_is_stored_in_e164() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            response = await gw.report(base() | {"telephoneNumber": "+1 (202) 555-0143"})
            assert response.status_code == 200, response.text
            assert response.json()["telephoneNumber"] == "+12025550143"

    run(scenario())


def test_a_cross_device_report_with_a_bad_body_reveals_nothing_either() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            # Without valid credentials, the body is not even read.
            response = await gw.report({"colour": "red"}, Authorization="Bearer nope")
            assert response.status_code == 401
            assert gw.operations() == []

    run(scenario())


# -- POST /v1/addresses/validate -------------------------------------------------------------


async def validate(gw: Gateway, body: Any) -> httpx.Response:
    return await gw.http.post("/v1/addresses/validate", json=body)


@pytest.mark.parametrize("address", [WHITE_HOUSE, WHITE_HOUSE_FIELDS])
def test_validate_a_good_address(address: Any) -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            response = await validate(gw, {"address": address})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["valid"] is True
            assert body["errors"] == []
            assert body["address"] == {
                "houseNumber": "1600",
                "streetName": "PENNSYLVANIA",
                "streetSuffix": "AVE",
                "postDirectional": "NW",
                "city": "WASHINGTON",
                "stateCode": "DC",
                "zip": "20500",
                "country": "US",
            }
            assert body["precision"] == "postal"  # the offline geocoder: ZIP centroids
            assert isinstance(body["latitude"], float)
            assert isinstance(body["longitude"], float)
            assert gw.operations() == []  # nothing is provisioned

    run(scenario())


@pytest.mark.parametrize(
    "address",
    [
        "PO Box 123, Washington, DC 20500",
        "1600 Pennsylvania Ave NW, Washington, CA 20500",
        WHITE_HOUSE_FIELDS | {"stateCode": "ZZ"},
    ],
)
def test_validate_an_unroutable_address(address: Any) -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            response = await validate(gw, {"address": address})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["valid"] is False
            assert body["errors"]
            assert all(e["field"] and e["message"] for e in body["errors"])
            assert body["precision"] is None
            assert body["latitude"] is None
            assert gw.operations() == []

    run(scenario())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({}, "address", id="missing"),
        pytest.param({"address": None}, "address", id="null"),
        pytest.param({"address": 5}, "address", id="number"),
        pytest.param({"address": [WHITE_HOUSE]}, "address", id="array"),
        pytest.param({"address": "x" * 501}, "address", id="too-long"),
        pytest.param({"address": WHITE_HOUSE, "geo": {}}, "geo", id="unknown-top"),
        pytest.param({"address": WHITE_HOUSE_FIELDS | {"floor": "2"}}, "address.floor", id="sub"),
        pytest.param(
            {"address": WHITE_HOUSE_FIELDS | {"zip": 20500}}, "address.zip", id="sub-type"
        ),
        pytest.param([], "body", id="array-body"),
    ],
)
def test_validate_a_malformed_request(body: Any, field: str) -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            assert_refused(await validate(gw, body), field)

    run(scenario())


class CountingOffline(OfflineGeocoder):  # type: ignore[misc]
    """The offline geocoder, answering after a short await (as a network one would), counted."""

    def __init__(self) -> None:
        super().__init__()
        self.forward = 0
        self.backward = 0

    async def geocode(self, query: Any, **options: Any) -> Any:  # type: ignore[override]
        self.forward += 1
        await asyncio.sleep(0.005)
        return super().geocode(query, **options)

    async def reverse(self, query: Any, **options: Any) -> Any:  # type: ignore[override]
        self.backward += 1
        await asyncio.sleep(0.005)
        return super().reverse(query, **options)


def counted() -> tuple[Geocoding, CountingOffline]:
    provider = CountingOffline()
    settings = GeocodingSettings(
        geocode_cache_size=1000,
        geocode_cache_ttl=3600.0,
        geocode_negative_ttl=60.0,
        geocode_timeout=2.0,
    )
    service = Geocoding(provider, "offline", settings, metrics=Metrics())
    return service, provider


def test_fifty_concurrent_validations_of_one_address_make_one_geocoder_call() -> None:
    async def scenario() -> None:
        service, provider = counted()
        async with gateway(geocoder=service) as gw:
            # Different spellings and units of one building: one cache key.
            spellings = [
                WHITE_HOUSE,
                "1600 PENNSYLVANIA AVENUE NORTHWEST, WASHINGTON DC 20500",
                WHITE_HOUSE_FIELDS,
                WHITE_HOUSE_FIELDS | {"addressLine2": "Room 101"},
            ]
            answers = await asyncio.gather(
                *(validate(gw, {"address": spellings[i % len(spellings)]}) for i in range(50))
            )
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            assert {a.json()["precision"] for a in answers} == {"postal"}
            assert provider.forward == 1
            # And later ones are answered from the cache.
            assert (await validate(gw, {"address": WHITE_HOUSE})).json()["valid"] is True
            assert provider.forward == 1
            assert gw.operations() == []

    run(scenario())


def test_concurrent_reports_at_one_new_address_make_one_geocoder_call() -> None:
    async def scenario() -> None:
        service, provider = counted()
        async with gateway(geocoder=service) as gw:
            answers = await asyncio.gather(
                *(gw.report(report(f"dev-{i}", SPACE_NEEDLE, 0)) for i in range(20))
            )
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            assert provider.forward == 1
            assert gw.operations().count("createLocation") == 1

    run(scenario())


@pytest.mark.parametrize(
    ("change", "kind", "fields"),
    [
        ({}, "/problems/clock-skew", {"observedAt"}),
        ({"address": "1 Nowhere St, Springfield, ZZ 00000"}, "/problems/unroutable-address", None),
        ({"callerName": ""}, "/problems/validation", {"observedAt", "callerName"}),
    ],
)
def test_a_clock_ahead_is_its_own_problem_and_named_with_the_rest(
    change: dict[str, Any], kind: str, fields: set[str] | None
) -> None:
    """A device's clock is not the request's shape: ``/problems/clock-skew`` when it is the
    only problem; listed with the others when there are others."""

    async def scenario() -> None:
        async with gateway() as gw:
            body = base() | {"observedAt": future(timedelta(days=1))} | change
            problem = assert_refused(await gw.report(body), "observedAt")
            assert problem["type"] == kind
            named = {e["field"] for e in problem["errors"]}
            if fields is None:  # the address's own errors, whichever the normalizer names
                assert any(f.startswith("address") for f in named), named
            else:
                assert named == fields
            assert gw.operations() == []

    run(scenario())


def test_a_body_trickled_past_the_body_timeout_is_408_and_nothing_is_written() -> None:
    """A client sending its body a piece now and then (a slowloris) is answered 408 once
    GATEWAY_BODY_TIMEOUT has passed, and its handler and connection are free again; a body
    that comes in pieces in time is applied."""
    body = json.dumps(report("slow", WHITE_HOUSE, 0)).encode()

    async def pieces(pause: float) -> AsyncIterator[bytes]:
        yield body[:10]
        await asyncio.sleep(pause)
        yield body[10:]

    async def scenario() -> None:
        async with gateway(gateway_settings(body_timeout=0.3)) as gw:
            seq = gw.last_seq()
            json_type = {"Content-Type": "application/json"}
            slow = await gw.http.post(
                "/v1/location-reports", content=pieces(2.0), headers=json_type
            )
            assert slow.status_code == 408, slow.text
            assert slow.json()["type"] == "/problems/request-timeout"
            assert gw.operations(seq) == []
            timely = await gw.http.post(
                "/v1/location-reports", content=pieces(0.05), headers=json_type
            )
            assert timely.status_code == 200, timely.text

    run(scenario())
