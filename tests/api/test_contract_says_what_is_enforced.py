"""The document says what is enforced: each request the gateway refuses as malformed is one the
document forbids, for the cases schemathesis's positive-data run found (``tests/test_fuzz_api``),
one plain test each. Requests are checked against the document with jsonschema (Python's
regex dialect) and jsonschema-rs (ECMA-262-like, as clients in other languages read it).
"""

from __future__ import annotations

import re
import sys
from typing import Any

import jsonschema
import jsonschema_rs
import pytest
from starlette.testclient import TestClient

from gateway.dlr.patterns import WHITESPACE
from tests.api.test_regressions import document
from tests.harness import WHITE_HOUSE_ADDRESS

ADDRESS = WHITE_HOUSE_ADDRESS


def body_schema(path: str, method: str) -> dict[str, Any]:
    content = document()["paths"][path][method]["requestBody"]["content"]["application/json"]
    # jsonschema-rs resolves $ref against the root: put the components where they point.
    return {**content["schema"], "components": document()["components"]}


def allowed(path: str, method: str, body: Any) -> bool:
    """Whether the document allows ``body``; both dialects must agree."""
    schema = body_schema(path, method)
    python = jsonschema.Draft202012Validator(schema).is_valid(body)
    ecma = jsonschema_rs.Draft202012Validator(schema).is_valid(body)
    assert python == ecma, (body, python, ecma)
    return python


def every_pattern(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for value in node.values() for p in every_pattern(value)]
    if isinstance(node, list):
        return [p for value in node for p in every_pattern(value)]
    return []


def test_every_pattern_reads_in_both_dialects() -> None:
    patterns = set(every_pattern(document()))
    assert len(patterns) >= 8
    for pattern in patterns:
        re.compile(pattern)
        jsonschema_rs.validator_for({"type": "string", "pattern": pattern})


def test_whitespace_is_what_strip_strips() -> None:
    """The spelled-out class is Python's whitespace (``\\s`` differs between dialects)."""
    spelled = re.compile(f"[{WHITESPACE}]")
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert bool(spelled.fullmatch(char)) == char.isspace(), hex(code)


def test_history_before_is_bounded(client: TestClient) -> None:
    params = document()["paths"]["/v1/devices/{alternateEndUserId}/history"]["get"]["parameters"]
    [before] = [p for p in params if p["name"] == "before"]
    assert before["schema"]["maximum"] == 2**62
    answer = client.get("/v1/devices/alice/history", params={"before": 2**62 + 1})
    assert answer.status_code == 422
    assert client.get("/v1/devices/alice/history", params={"before": 2**62}).status_code == 200


def test_an_unknown_query_parameter_is_refused_by_name(client: TestClient) -> None:
    """The document's query parameters are all there is: one it does not name is a 422 that
    says which (schemathesis found ``?=null`` accepted), not silently ignored."""
    for path in ("/v1/devices/alice/history", "/v1/locations/LOC1/history"):
        answer = client.get(path, params={"limit": 5, "befor": 9, "": "null"})
        assert answer.status_code == 422, (path, answer.text)
        assert [e["field"] for e in answer.json()["errors"]] == ["", "befor"]
        assert client.get(path, params={"limit": 5}).status_code in (200, 404)


@pytest.mark.parametrize("text", ["\x00", "\x1b[31m", "\x7f", "\uffff"])
def test_control_characters_in_address_fields_are_forbidden(client: TestClient, text: str) -> None:
    body = {"address": {**ADDRESS, "city": f"WASH{text}INGTON"}}
    assert not allowed("/v1/addresses/validate", "post", body)
    assert client.post("/v1/addresses/validate", json=body).status_code == 422
    assert allowed("/v1/addresses/validate", "post", {"address": ADDRESS})


@pytest.mark.parametrize(
    "field", ["alternateEndUserId", "callerName", "telephoneNumber", "locationId"]
)
@pytest.mark.parametrize("value", [None, ""])
def test_the_endpoint_fields_required_are_marked_required(
    client: TestClient, field: str, value: str | None
) -> None:
    body = {
        "alternateEndUserId": "alice",
        "callerName": "ALICE SMITH",
        "telephoneNumber": "+12025550143",
        "locationId": "loc1",
    }
    assert allowed("/v1/endpoints", "post", body)
    broken = {**body, field: value}
    assert not allowed("/v1/endpoints", "post", broken)
    assert client.post("/v1/endpoints", json=broken).status_code == 422


def test_a_location_needs_an_address(client: TestClient) -> None:
    assert not allowed("/v1/locations", "post", {"description": "HQ"})
    assert client.post("/v1/locations", json={"description": "HQ"}).status_code == 422


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"emailAddress": "ops@example.com"}, True),
        ({"phoneNumber": "+12025550143"}, True),
        ({"emailAddress": "ops@example.com", "phoneNumber": None}, True),
        ({"description": "nobody to tell"}, False),
        ({"emailAddress": None, "phoneNumber": None}, False),
        ({"phoneNumber": ""}, False),
        ({"emailAddress": "not an email"}, False),
        ({"emailAddress": "ops@localhost"}, False),
    ],
)
def test_a_recipient_needs_an_email_or_a_phone(
    client: TestClient, body: dict[str, Any], ok: bool
) -> None:
    assert allowed("/v1/notification-recipients", "post", body) is ok
    status = client.post("/v1/notification-recipients", json=body).status_code
    assert (status == 201) is ok, status


def test_a_replacement_body_carries_no_id_of_its_own(client: TestClient) -> None:
    """The ID is the path's: the document has no ``endpointId`` in a PUT body (the gateway
    still takes an equal one, as a GET answered it, and refuses another)."""
    created = client.post("/v1/locations", json={"address": ADDRESS}).json()
    endpoint = {
        "alternateEndUserId": "alice",
        "callerName": "ALICE SMITH",
        "telephoneNumber": "+12025550143",
        "locationId": created["locationId"],
    }
    endpoint_id = client.post("/v1/endpoints", json=endpoint).json()["endpointId"]
    path = "/v1/endpoints/{endpointId}"
    assert allowed(path, "put", endpoint)
    assert not allowed(path, "put", {**endpoint, "endpointId": "another"})
    assert client.put(f"/v1/endpoints/{endpoint_id}", json=endpoint).status_code == 200
    other = client.put(f"/v1/endpoints/{endpoint_id}", json={**endpoint, "endpointId": "x"})
    assert other.status_code == 422
    same = client.put(f"/v1/endpoints/{endpoint_id}", json={**endpoint, "endpointId": endpoint_id})
    assert same.status_code == 200
    assert not allowed("/v1/locations/{locationId}", "put", {"address": ADDRESS, "locationId": "x"})


@pytest.mark.parametrize(
    ("coordinates", "ok"),
    [
        ({}, True),
        ({"latitude": 38.8977, "longitude": -77.0365}, True),
        ({"latitude": None, "longitude": None}, True),
        ({"latitude": 38.8977}, False),
        ({"longitude": -77.0365}, False),
        ({"latitude": 38.8977, "longitude": None}, False),
        ({"latitude": 91, "longitude": -77.0365}, False),
        ({"latitude": 38.8977, "longitude": -181}, False),
    ],
)
def test_latitude_and_longitude_go_together(
    client: TestClient, coordinates: dict[str, Any], ok: bool
) -> None:
    body = {"address": ADDRESS, **coordinates}
    assert allowed("/v1/locations", "post", body) is ok
    answer = client.post("/v1/locations", json=body)
    if ok:
        assert answer.status_code in (201, 409), answer.text
    else:
        assert answer.status_code == 422, answer.text
        assert answer.json()["type"] == "/problems/validation"


@pytest.mark.parametrize(
    ("change", "ok"),
    [
        ({}, True),
        ({"telephoneNumber": "+17875550143"}, True),
        ({"telephoneNumber": "+18765550143"}, False),
        ({"callerName": "ALICE\u200bSMITH"}, False),
        ({"callerName": "  ALICE  "}, True),
        ({"alternateEndUserId": " alice"}, False),
        ({"alternateEndUserId": "alice\n"}, False),
        ({"observedAt": "2026-11-01T12:00:00"}, False),
        ({"observedAt": "0999-11-01T12:00:00Z"}, False),
        ({"observedAt": "2026-11-01T12:00:60Z"}, False),
        ({"address": None}, False),
    ],
)
def test_the_report_fields_say_what_is_checked(
    client: TestClient, change: dict[str, Any], ok: bool
) -> None:
    body = {
        "alternateEndUserId": "alice",
        "callerName": "ALICE SMITH",
        "telephoneNumber": "+12025550143",
        "observedAt": "2026-11-01T12:00:00Z",
        "address": "1600 Pennsylvania Ave NW, Washington, DC 20500",
        **change,
    }
    assert allowed("/v1/location-reports", "post", body) is ok
    answer = client.post("/v1/location-reports", json=body)
    assert (answer.status_code == 200) is ok, answer.text
