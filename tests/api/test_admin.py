from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.dlr.ids import endpoint_id_for

WHITE_HOUSE = {
    "houseNumber": "1600",
    "streetName": "PENNSYLVANIA",
    "streetSuffix": "AVE",
    "postDirectional": "NW",
    "city": "WASHINGTON",
    "stateCode": "DC",
    "zip": "20500",
    "country": "US",
}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert body["title"]
    return body


def create_location(client: TestClient, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/locations", json={"address": WHITE_HOUSE, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def endpoint_body(location_id: str, aeui: str = "alice-laptop") -> dict[str, Any]:
    return {
        "alternateEndUserId": aeui,
        "callerName": "ALICE SMITH",
        "telephoneNumber": "+12025550143",
        "locationId": location_id,
    }


def test_location_and_endpoint_round_trip(client: TestClient) -> None:
    location = create_location(client, description="HQ")
    assert len(location["locationId"]) <= 32 and location["locationId"].isalnum()
    assert location["status"] == "GEOCODED"
    assert isinstance(location["latitude"], float)

    created = client.post("/v1/endpoints", json=endpoint_body(location["locationId"]))
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["endpointId"] == endpoint_id_for("alice-laptop")
    assert created.headers["location"] == f"/v1/endpoints/{endpoint['endpointId']}"

    endpoints = client.get("/v1/endpoints").json()
    assert endpoints["totalCount"] == 1
    assert endpoints["endpoints"][0]["alternateEndUserId"] == "alice-laptop"
    locations = client.get("/v1/locations").json()
    assert [loc["locationId"] for loc in locations["locations"]] == [location["locationId"]]

    got = client.get(f"/v1/endpoints/{endpoint['endpointId']}").json()
    assert got["callerName"] == "ALICE SMITH"
    got_location = client.get(f"/v1/locations/{location['locationId']}").json()
    assert got_location["address"]["zip"] == "20500"


def test_update_and_delete(client: TestClient) -> None:
    location = create_location(client)
    endpoint = client.post("/v1/endpoints", json=endpoint_body(location["locationId"])).json()
    path = f"/v1/endpoints/{endpoint['endpointId']}"

    body = endpoint_body(location["locationId"]) | {"callerName": "ALICE JONES"}
    updated = client.put(path, json=body)
    assert updated.status_code == 200, updated.text
    assert updated.json()["callerName"] == "ALICE JONES"
    assert client.get(path).json()["callerName"] == "ALICE JONES"

    in_use = client.delete(f"/v1/locations/{location['locationId']}")
    assert_problem(in_use, 409)

    assert client.delete(path).json() == {"endpointId": endpoint["endpointId"], "deleted": True}
    assert_problem(client.get(path), 404)
    gone = client.delete(f"/v1/locations/{location['locationId']}")
    assert gone.status_code == 200
    assert_problem(client.get(f"/v1/locations/{location['locationId']}"), 404)


def test_put_with_mismatched_id_is_refused(client: TestClient) -> None:
    location = create_location(client)
    endpoint = client.post("/v1/endpoints", json=endpoint_body(location["locationId"])).json()
    body = endpoint_body(location["locationId"]) | {"endpointId": "someone-else"}
    response = client.put(f"/v1/endpoints/{endpoint['endpointId']}", json=body)
    assert assert_problem(response, 422)["errors"][0]["field"] == "endpointId"


def test_notification_recipients(client: TestClient) -> None:
    created = client.post(
        "/v1/notification-recipients",
        json={"emailAddress": "security@example.com", "description": "Front desk"},
    )
    assert created.status_code == 201, created.text
    listed = client.get("/v1/notification-recipients").json()
    assert [r["emailAddress"] for r in listed["notificationRecipients"]] == ["security@example.com"]
    assert_problem(client.post("/v1/notification-recipients", json={"description": "x"}), 422)


def test_a_second_endpoint_for_one_aeui_is_refused(client: TestClient) -> None:
    location = create_location(client)
    assert (
        client.post("/v1/endpoints", json=endpoint_body(location["locationId"])).status_code == 201
    )
    again = client.post("/v1/endpoints", json=endpoint_body(location["locationId"]))
    assert_problem(again, 409)


def test_unknown_location_for_endpoint_is_a_clear_error(client: TestClient) -> None:
    response = client.post("/v1/endpoints", json=endpoint_body("nosuchlocation"))
    body = assert_problem(response, 422)
    assert "location" in body["detail"].lower()


def test_address_the_carrier_refuses(client: TestClient) -> None:
    wrong_state = WHITE_HOUSE | {"stateCode": "CA"}
    response = client.post("/v1/locations", json={"address": wrong_state})
    assert_problem(response, 422)
    assert client.get("/v1/locations").json()["locations"] == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
)
def test_admin_routes_need_an_admin_key(client: TestClient, headers: dict[str, str]) -> None:
    client.headers.pop("Authorization")
    for method, path in [
        ("GET", "/v1/endpoints"),
        ("POST", "/v1/locations"),
        ("DELETE", "/v1/locations/abc"),
        ("GET", "/v1/notification-recipients"),
    ]:
        response = client.request(method, path, headers=headers, json={})
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"address": WHITE_HOUSE, "colour": "red"}, "colour"),
        ({"address": "1600 Pennsylvania Ave"}, "address"),
        ({"address": WHITE_HOUSE | {"zip": 20500}}, "address.zip"),
        ({"address": WHITE_HOUSE, "latitude": "north"}, "latitude"),
        ({"address": WHITE_HOUSE | {"addressLine2": "X" * 61}}, "address.addressLine2"),
        ({"address": WHITE_HOUSE | {"city": "A\x00B"}}, "address.city"),
        ({}, "address"),
        ([], "body"),
        ({"address": WHITE_HOUSE, "status": "VALID"}, "status"),
        ({"address": WHITE_HOUSE, "locationId": "has-dash"}, "locationId"),
    ],
)
def test_bad_location_bodies(client: TestClient, body: Any, field: str) -> None:
    response = client.post("/v1/locations", json=body)
    problem = assert_problem(response, 422)
    assert field in [e["field"] for e in problem["errors"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"alternateEndUserId": 5}, "alternateEndUserId"),
        ({"activated": "yes"}, "activated"),
        ({"alternateEndUserId": "a" * 31}, "alternateEndUserId"),
        ({"callerName": "N" * 51}, "callerName"),
        ({"endpointId": "locations"}, "endpointId"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_endpoint_bodies(client: TestClient, body: dict[str, Any], field: str) -> None:
    full = endpoint_body("abc") | body
    problem = assert_problem(client.post("/v1/endpoints", json=full), 422)
    assert field in [e["field"] for e in problem["errors"]]


def test_missing_endpoint_fields_are_named(client: TestClient) -> None:
    problem = assert_problem(client.post("/v1/endpoints", json={"callerName": "X"}), 422)
    assert {e["field"] for e in problem["errors"]} == {
        "alternateEndUserId",
        "telephoneNumber",
        "locationId",
    }


def test_malformed_json(client: TestClient) -> None:
    for raw in [b"{", b"\xff\xfe", b"[" * 100_000, b'{"a": NaN}', b""]:
        response = client.post(
            "/v1/locations", content=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code in (413, 422), raw[:10]
        assert response.headers["content-type"].startswith("application/problem+json")


def test_wrong_media_type(client: TestClient) -> None:
    response = client.post(
        "/v1/locations", content=b"<Location/>", headers={"Content-Type": "application/xml"}
    )
    assert_problem(response, 415)


def test_a_one_megabyte_body_is_refused(client: TestClient) -> None:
    big = b'{"description": "' + b"x" * 1_000_000 + b'"}'
    response = client.post(
        "/v1/locations", content=big, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413)

    def chunks() -> Any:
        yield b'{"description": "'
        for _ in range(100):
            yield b"x" * 10_000
        yield b'"}'

    streamed = client.post(
        "/v1/locations", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_problem(streamed, 413)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/endpoints/locations",
        "/v1/endpoints/notificationRecipients",
        "/v1/endpoints/" + "a" * 500,
        "/v1/endpoints/..%2F..%2Fetc",
        "/v1/endpoints/%00",
        "/v1/locations/has-dash",
        "/v1/locations/" + "b" * 33,
        "/v1/locations/%E2%98%83",
    ],
)
def test_absurd_ids(client: TestClient, path: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(method, path, json={})
        assert response.status_code in (404, 422), (method, path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404)
    assert_problem(client.patch("/v1/endpoints"), 405)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/endpoints/"),
        ("POST", "/v1/locations/"),
        ("GET", "/v1/devices/alice/location/"),
        ("GET", "/healthz/"),
        ("GET", "/metrics/"),
        ("GET", "/sandbox/bandwidth"),
    ],
)
def test_a_trailing_slash_is_not_found_not_redirected_to_the_host_header(
    client: TestClient, method: str, path: str
) -> None:
    """Starlette's redirect for a slash too many or too few is absolute, built from Host."""
    response = client.request(
        method, path, headers={"Host": "evil.example.test"}, follow_redirects=False
    )
    assert_problem(response, 404)
    assert "location" not in response.headers


def test_metrics_are_served_at_the_exact_path(client: TestClient) -> None:
    client.get("/v1/endpoints")
    response = client.get("/metrics", follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'dlr_build_info{version="0.1.0"} 1.0' in response.text
    assert "dlr_upstream_request_duration_seconds_bucket" in response.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("callerName", "ALICE\r\nSMITH"),
        ("callerName", "ALICE\u0007"),
        ("callerName", "   "),
        ("alternateEndUserId", "alice-laptop "),
        ("alternateEndUserId", " alice"),
        ("alternateEndUserId", "alice\nlaptop"),
        ("alternateEndUserId", "a" * 31),
        ("telephoneNumber", "2025550143"),
        ("telephoneNumber", "+442071838750"),
    ],
)
def test_endpoints_follow_a_reports_rules_for_the_device_fields(
    client: TestClient, field: str, value: str
) -> None:
    """What a device's report refuses, an admin's endpoint refuses too: a clear 422, and
    nothing silently altered at the carrier (an AEUI is never stripped)."""
    location = create_location(client)
    body = endpoint_body(location["locationId"]) | {field: value}
    problem = assert_problem(client.post("/v1/endpoints", json=body), 422)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert client.get("/v1/endpoints").json()["endpoints"] == []
    created = client.post("/v1/endpoints", json=endpoint_body(location["locationId"]))
    endpoint_id = created.json()["endpointId"]
    problem = assert_problem(client.put(f"/v1/endpoints/{endpoint_id}", json=body), 422)
    assert [e["field"] for e in problem["errors"]] == [field]


def test_an_endpoints_caller_name_loses_its_surrounding_spaces_as_a_reports_does(
    client: TestClient,
) -> None:
    location = create_location(client)
    body = endpoint_body(location["locationId"]) | {"callerName": "  ALICE SMITH "}
    created = client.post("/v1/endpoints", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["callerName"] == "ALICE SMITH"


def test_a_null_body_field_is_one_left_out(client: TestClient) -> None:
    """``null`` reads as a field left out, in every admin body; so a number write of nulls
    names no owner and releases nothing, and a nested bad key is named once."""
    number = "/v1/numbers/+12025550143"
    assert client.put(number, json={"owner": "desk"}).json()["owner"] == "desk"
    refused = assert_problem(client.put(number, json={"owner": None, "shared": None}), 422)
    assert [e["field"] for e in refused["errors"]] == ["owner"]
    assert client.get(number).json()["owner"] == "desk"
    # A lone surrogate, as JSON escapes it (httpx cannot encode one as UTF-8).
    body = b'{"address": {"city": "NEW YORK", "\\ud800": 1}}'
    answer = client.post(
        "/v1/locations", content=body, headers={"Content-Type": "application/json"}
    )
    refused = assert_problem(answer, 422)
    assert [e["message"] for e in refused["errors"]].count("unknown field") == 1
