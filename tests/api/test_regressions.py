"""Regressions for what the schemathesis run (tests/test_fuzz_api.py) found, one plain test each.

Each answer is also checked against ``openapi.json``: the document must stay true.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from starlette.testclient import TestClient

from gateway.api.auth import DeviceTokens
from tests.harness import JWT_SECRET, WHITE_HOUSE_ADDRESS, gateway

ROOT = Path(__file__).resolve().parents[2]

ADDRESS = WHITE_HOUSE_ADDRESS


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "gateway" / "openapi.json").read_text())
    return loaded


def _with_components(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "components": document()["components"]}


def conforms(path: str, method: str, response: httpx.Response) -> None:
    """The answer's status is documented for the operation and its body fits the schema."""
    responses = document()["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, (response.status_code, sorted(responses))
    spec = responses[str(response.status_code)]
    media = response.headers["content-type"].split(";")[0]
    jsonschema.validate(response.json(), _with_components(spec["content"][media]["schema"]))


def request_fits(path: str, method: str, body: Any) -> None:
    """``body`` is valid for the operation's documented request schema."""
    spec = document()["paths"][path][method]["requestBody"]["content"]["application/json"]
    jsonschema.validate(body, _with_components(spec["schema"]))


# -- unsafe IDs in a body were a 500 (the carrier client's ValueError) ------------------------


@pytest.mark.parametrize("bad", ["", "a/b", "..", "x" * 65, "-lead", "caf\u00e9", "a b"])
def test_an_unusable_recipient_id_is_422_not_500(client: TestClient, bad: str) -> None:
    response = client.post(
        "/v1/notification-recipients", json={"id": bad, "emailAddress": "a@example.com"}
    )
    assert response.status_code == 422, response.text
    assert any(e["field"] == "id" for e in response.json()["errors"])
    conforms("/v1/notification-recipients", "post", response)


@pytest.mark.parametrize("bad", ["", "a/b", "..", "-lead", "a b", "a@b"])
def test_an_unusable_endpoint_id_is_422_not_500(client: TestClient, bad: str) -> None:
    body = {
        "endpointId": bad,
        "alternateEndUserId": "alice",
        "callerName": "ALICE SMITH",
        "telephoneNumber": "+12025550143",
        "locationId": "loc1",
    }
    response = client.post("/v1/endpoints", json=body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["endpointId"]
    conforms("/v1/endpoints", "post", response)


def test_a_usable_recipient_id_is_kept(client: TestClient) -> None:
    response = client.post(
        "/v1/notification-recipients", json={"id": "ops-1", "emailAddress": "a@example.com"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] == "ops-1"
    conforms("/v1/notification-recipients", "post", response)


# -- the document said what the gateway does not -----------------------------------------------


def test_an_empty_line_gets_a_verdict_and_the_document_allows_it(client: TestClient) -> None:
    # The document said minLength 1, yet the gateway answers 200 with valid: false.
    body = {"address": ""}
    request_fits("/v1/addresses/validate", "post", body)
    response = client.post("/v1/addresses/validate", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["valid"] is False
    conforms("/v1/addresses/validate", "post", response)


def test_null_fields_are_read_as_absent_and_the_document_says_so(client: TestClient) -> None:
    # The gateway reads null as "left out"; the document typed these fields string-only.
    location = {"address": {**ADDRESS, "plusFour": None}, "description": None, "latitude": None}
    request_fits("/v1/locations", "post", location)
    created = client.post("/v1/locations", json=location)
    assert created.status_code == 201, created.text
    conforms("/v1/locations", "post", created)
    recipient = {"emailAddress": "a@example.com", "phoneNumber": None, "id": None}
    request_fits("/v1/notification-recipients", "post", recipient)
    response = client.post("/v1/notification-recipients", json=recipient)
    assert response.status_code == 201, response.text
    endpoint = {
        "endpointId": None,
        "alternateEndUserId": "alice",
        "callerName": "ALICE SMITH",
        "telephoneNumber": "+12025550143",
        "locationId": created.json()["locationId"],
        "activated": None,
    }
    request_fits("/v1/endpoints", "post", endpoint)
    response = client.post("/v1/endpoints", json=endpoint)
    assert response.status_code == 201, response.text
    conforms("/v1/endpoints", "post", response)


def test_required_fields_stay_non_null_in_the_document() -> None:
    with pytest.raises(jsonschema.ValidationError):
        request_fits("/v1/locations", "post", {"address": None})
    with pytest.raises(jsonschema.ValidationError):
        request_fits("/v1/addresses/validate", "post", {"address": None})


def test_an_invalid_verdict_may_show_an_address_past_the_carriers_limits(
    client: TestClient,
) -> None:
    # "0" * 59 reads as "# 000…" (61 characters): over the Address schema's 60 for
    # addressLine2; the verdict is "not valid" and says why, and the document allows it.
    response = client.post("/v1/addresses/validate", json={"address": {"addressLine2": "0" * 59}})
    assert response.status_code == 200, response.text
    verdict = response.json()
    assert verdict["valid"] is False
    assert {"field": "addressLine2", "message": "is too long (at most 60 characters)"} in verdict[
        "errors"
    ]
    conforms("/v1/addresses/validate", "post", response)
    # A valid verdict still promises a carrier-ready Address.
    fake_valid = {**verdict, "valid": True}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            fake_valid, _with_components(document()["components"]["schemas"]["AddressValidation"])
        )


# -- a 405 must name every method of the resource ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/endpoints", {"GET", "HEAD", "POST"}),
        ("/v1/endpoints/ep1", {"GET", "HEAD", "PUT", "DELETE"}),
        ("/v1/locations", {"GET", "HEAD", "POST"}),
        ("/v1/locations/loc1", {"GET", "HEAD", "PUT", "DELETE"}),
        ("/v1/notification-recipients", {"GET", "HEAD", "POST"}),
    ],
)
def test_a_405_lists_every_method_of_the_resource(
    client: TestClient, path: str, allowed: set[str]
) -> None:
    # Starlette answered with the first route's methods only ("GET, HEAD" on /v1/endpoints).
    response = client.request("PATCH", path)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


def test_each_admin_method_still_reaches_its_own_handler(client: TestClient) -> None:
    created = client.post("/v1/locations", json={"address": ADDRESS})
    assert created.status_code == 201
    location_id = created.json()["locationId"]
    assert client.get(f"/v1/locations/{location_id}").status_code == 200
    assert client.head(f"/v1/locations/{location_id}").status_code == 200
    assert client.delete(f"/v1/locations/{location_id}").status_code == 200
    assert client.get(f"/v1/locations/{location_id}").status_code == 404


# -- what the admin API answers a device token -------------------------------------------------


def test_the_admin_api_answers_a_device_token_403_as_documented() -> None:
    token = DeviceTokens(secret=JWT_SECRET).mint("fuzz-device", 3600)
    doc = document()

    async def main() -> None:
        async with gateway() as g:
            for path, method in (
                ("/v1/endpoints", "get"),
                ("/v1/locations", "post"),
                ("/v1/notification-recipients", "get"),
            ):
                response = await g.http.request(
                    method.upper(), path, headers={"Authorization": f"Bearer {token}"}
                )
                assert response.status_code == 403, response.text
                conforms(path, method, response)
                described = doc["paths"][path][method]["responses"]["403"]["description"]
                assert "device token" in described

    asyncio.run(main())


def test_body_routes_document_a_bad_content_length() -> None:
    doc = document()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                assert "400" in op["responses"], (method, path)
