"""A location whose ID the gateway derived from its address keeps that address: an admin's
PUT of another address is refused, or every device reporting the old address would be bound
to a location the carrier holds somewhere else (a 911 call routed to the wrong place)."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.api.test_admin import WHITE_HOUSE, assert_problem
from tests.harness import EMPIRE_STATE_ADDRESS

ESB = "350 Fifth Avenue, Suite 3000, New York, NY 10118"


def report(client: TestClient, aeui: str, number: str, at: str) -> dict[str, Any]:
    body = {
        "alternateEndUserId": aeui,
        "callerName": "CAROL",
        "telephoneNumber": number,
        "observedAt": at,
        "address": ESB,
    }
    response = client.post("/v1/location-reports", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_derived_location_is_not_given_another_address(client: TestClient) -> None:
    location_id = report(client, "nyc-1", "+12025550133", "2026-12-01T10:00:00Z")["locationId"]
    moved = client.put(f"/v1/locations/{location_id}", json={"address": WHITE_HOUSE})
    problem = assert_problem(moved, 409)
    assert "new location" in problem["detail"]
    # The carrier still holds the address the ID was derived from ...
    held = client.get(f"/v1/locations/{location_id}").json()
    assert held["address"]["zip"] == "10118"
    # ... so the next device reporting it is bound to where it is.
    second = report(client, "nyc-2", "+12025550134", "2026-12-01T10:01:00Z")
    assert second["locationId"] == location_id
    assert client.get(f"/v1/locations/{location_id}").json()["address"]["city"] == "NEW YORK"


def test_a_derived_location_keeps_its_address_with_a_new_description(
    client: TestClient,
) -> None:
    answer = report(client, "nyc-1", "+12025550133", "2026-12-01T10:00:00Z")
    location_id, address = answer["locationId"], answer["address"]
    body = {"address": address, "description": "5th floor"}
    updated = client.put(f"/v1/locations/{location_id}", json=body)
    assert updated.status_code == 200, updated.text
    assert updated.json()["description"] == "5th floor"


def test_a_named_location_may_be_given_another_address(client: TestClient) -> None:
    created = client.post("/v1/locations", json={"locationId": "HQ1", "address": WHITE_HOUSE})
    assert created.status_code == 201, created.text
    updated = client.put("/v1/locations/HQ1", json={"address": EMPIRE_STATE_ADDRESS})
    assert updated.status_code == 200, updated.text
    assert updated.json()["address"]["zip"] == "10118"


def test_a_report_is_not_bound_to_another_place_under_its_locations_id(
    client: TestClient,
) -> None:
    """An admin deleted a report's location, then created another place under that ID: the
    next report of the first address finds the ID taken at the carrier, and is refused
    rather than bound to where the carrier holds it (its 911 calls would go there)."""
    location_id = report(client, "nyc-1", "+12025550133", "2026-12-01T10:00:00Z")["locationId"]
    client.delete(
        "/v1/endpoints/" + client.get("/v1/endpoints").json()["endpoints"][0]["endpointId"]
    )
    assert client.delete(f"/v1/locations/{location_id}").status_code == 200
    body = {"locationId": location_id, "address": WHITE_HOUSE}
    assert client.post("/v1/locations", json=body).status_code == 201
    refused = client.post(
        "/v1/location-reports",
        json={
            "alternateEndUserId": "nyc-2",
            "callerName": "CAROL",
            "telephoneNumber": "+12025550134",
            "observedAt": "2026-12-01T10:01:00Z",
            "address": ESB,
        },
    )
    problem = assert_problem(refused, 422)
    assert "another address" in problem["errors"][0]["message"]
    assert client.get("/v1/endpoints").json()["totalCount"] == 0
