"""Every seed operation through raw HTTP, in-process."""

from __future__ import annotations

import re

import pytest

from gateway.bandwidth import codec
from gateway.bandwidth.models import (
    Endpoint,
    EndpointListResponse,
    Location,
    LocationListResponse,
    NotificationRecipient,
    NotificationRecipientListResponse,
)

from .helpers import (
    ACCOUNT,
    EMPIRE_STATE,
    Harness,
    endpoint_xml,
    error_of,
    location_xml,
    recipient_xml,
)

# -- locations -----------------------------------------------------------------


def test_create_location_answers_201_with_the_geocoded_record(h: Harness) -> None:
    response = h.post("/locations", location_xml())
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/xml")
    stored = codec.decode(Location, response.content)
    assert stored.location_id == "LOC1"
    assert stored.status == "GEOCODED"
    assert stored.address is not None
    assert stored.address.zip == "20500"
    # The ZIP centroid from the offline ZIP data.
    assert stored.latitude == pytest.approx(38.8946)
    assert stored.longitude == pytest.approx(-77.0355)


def test_create_location_keeps_given_coordinates(h: Harness) -> None:
    response = h.post("/locations", location_xml(latitude=38.8977, longitude=-77.0365))
    stored = codec.decode(Location, response.content)
    assert (stored.latitude, stored.longitude) == (38.8977, -77.0365)
    assert stored.status == "GEOCODED"


def test_create_location_without_id_gets_a_generated_one(h: Harness) -> None:
    response = h.post("/locations", location_xml(None))
    assert response.status_code == 201
    location_id = codec.decode(Location, response.content).location_id
    assert location_id is not None
    assert re.fullmatch(r"[A-Za-z0-9]{1,32}", location_id)
    assert h.get(f"/locations/{location_id}").status_code == 200


def test_get_and_list_locations(with_location: Harness) -> None:
    h = with_location
    h.post("/locations", location_xml("LOC2", EMPIRE_STATE))
    got = h.get("/locations/LOC1")
    assert got.status_code == 200
    assert codec.decode(Location, got.content).address.city == "WASHINGTON"  # type: ignore[union-attr]
    listed = codec.decode(LocationListResponse, h.get("/locations").content)
    assert listed.total_count == 2
    assert [loc.location_id for loc in listed.locations] == ["LOC1", "LOC2"]


def test_existing_location_id_is_409_already_exists(with_location: Harness) -> None:
    response = with_location.post("/locations", location_xml("LOC1", EMPIRE_STATE))
    assert response.status_code == 409
    assert error_of(response).code == "ALREADY_EXISTS"
    assert with_location.sim.state["locations"]["LOC1"]["address"]["city"] == "WASHINGTON"


@pytest.mark.parametrize("bad_id", ["has-dash", "a" * 33, "spa ce", "ünï"])
def test_location_id_must_be_32_alnum(h: Harness, bad_id: str) -> None:
    response = h.post("/locations", location_xml(bad_id))
    assert response.status_code == 400
    assert "locationId" in (error_of(response).description or "")


def test_update_location_replaces_the_whole_resource(with_location: Harness) -> None:
    h = with_location
    response = h.put("/locations/LOC1", location_xml(None, EMPIRE_STATE, description="HQ"))
    assert response.status_code == 200
    stored = codec.decode(Location, response.content)
    assert stored.location_id == "LOC1"
    assert stored.description == "HQ"
    assert stored.address == EMPIRE_STATE
    assert h.sim.state["locations"]["LOC1"]["address"]["zip"] == "10118"


def test_update_location_refuses_a_body_id_other_than_the_path(with_location: Harness) -> None:
    response = with_location.put("/locations/LOC1", location_xml("OTHER"))
    assert response.status_code == 400
    assert "locationId" in (error_of(response).description or "")


def test_update_unknown_location_is_404(h: Harness) -> None:
    response = h.put("/locations/NOPE", location_xml("NOPE"))
    assert response.status_code == 404
    assert error_of(response).code == "NOT_FOUND"


def test_delete_location_answers_200_without_body(with_location: Harness) -> None:
    h = with_location
    response = h.delete("/locations/LOC1")
    assert response.status_code == 200
    assert response.content == b""
    assert h.get("/locations/LOC1").status_code == 404
    assert h.delete("/locations/LOC1").status_code == 404


def test_deleting_a_location_in_use_is_409(with_location: Harness) -> None:
    h = with_location
    assert h.post("", endpoint_xml()).status_code == 201
    response = h.delete("/locations/LOC1")
    assert response.status_code == 409
    assert error_of(response).code == "LOCATION_IN_USE"
    assert "LOC1" in h.sim.state["locations"]
    # Once the endpoint moves away, the location can go.
    h.post("/locations", location_xml("LOC2", EMPIRE_STATE))
    assert h.put("/EP1", endpoint_xml(location_id="LOC2")).status_code == 200
    assert h.delete("/locations/LOC1").status_code == 200


def test_unknown_location_is_404(h: Harness) -> None:
    response = h.get("/locations/NOPE")
    assert response.status_code == 404
    assert error_of(response).code == "NOT_FOUND"


# -- endpoints -----------------------------------------------------------------


def test_endpoint_lifecycle(with_location: Harness) -> None:
    h = with_location
    created = h.post("", endpoint_xml())
    assert created.status_code == 201
    stored = codec.decode(Endpoint, created.content)
    assert stored == Endpoint("EP1", "device-1", "ALICE", "LOC1", "+19195550100", True)

    got = h.get("/EP1")
    assert got.status_code == 200
    assert codec.decode(Endpoint, got.content) == stored

    h.post("/locations", location_xml("LOC2", EMPIRE_STATE))
    updated = h.put("/EP1", endpoint_xml(location_id="LOC2", caller_name="ALICE B"))
    assert updated.status_code == 200
    assert codec.decode(Endpoint, updated.content).location_id == "LOC2"
    assert h.sim.state["endpoints"]["EP1"]["callerName"] == "ALICE B"

    h.post("", endpoint_xml("EP2", aeui="device-2"))
    listed = codec.decode(EndpointListResponse, h.get("").content)
    assert listed.total_count == 2
    assert [e.endpoint_id for e in listed.endpoints] == ["EP1", "EP2"]

    deleted = h.delete("/EP1")
    assert deleted.status_code == 200
    assert deleted.content == b""
    assert h.get("/EP1").status_code == 404
    assert h.delete("/EP1").status_code == 404
    assert h.put("/EP1", endpoint_xml()).status_code == 404


def test_endpoint_without_id_gets_a_uuid_hex(with_location: Harness) -> None:
    response = with_location.post("", endpoint_xml(None))
    assert response.status_code == 201
    endpoint_id = codec.decode(Endpoint, response.content).endpoint_id
    assert endpoint_id is not None
    assert re.fullmatch(r"[0-9a-f]{32}", endpoint_id)


def test_endpoint_keeps_activated_false(with_location: Harness) -> None:
    response = with_location.post("", endpoint_xml(activated=False))
    assert codec.decode(Endpoint, response.content).activated is False


def test_existing_endpoint_id_is_409(with_location: Harness) -> None:
    h = with_location
    h.post("", endpoint_xml())
    response = h.post("", endpoint_xml(aeui="device-2"))
    assert response.status_code == 409
    assert error_of(response).code == "ALREADY_EXISTS"


def test_aeui_is_unique_in_the_account(with_location: Harness) -> None:
    h = with_location
    h.post("", endpoint_xml())
    response = h.post("", endpoint_xml("EP2"))
    assert response.status_code == 409
    assert "device-1" in (error_of(response).description or "")
    # Nor may an update take another endpoint's AEUI; keeping its own is fine.
    h.post("", endpoint_xml("EP2", aeui="device-2"))
    assert h.put("/EP2", endpoint_xml("EP2", aeui="device-1")).status_code == 409
    assert h.put("/EP2", endpoint_xml("EP2", aeui="device-2")).status_code == 200


def test_aeui_uniqueness_follows_updates_deletes_and_spaces(with_location: Harness) -> None:
    h = with_location
    assert h.post("", endpoint_xml("EP1", aeui="device-1")).status_code == 201
    # An update that changes the AEUI frees the old one and takes the new one.
    assert h.put("/EP1", endpoint_xml("EP1", aeui="device-9")).status_code == 200
    assert h.post("", endpoint_xml("EP2", aeui="device-1")).status_code == 201
    taken = h.post("", endpoint_xml("EP3", aeui=" device-9 "))  # compared without spaces
    assert taken.status_code == 409
    assert "EP1" in (error_of(taken).description or "")
    # A delete frees it; the listing keeps its order through updates.
    assert h.delete("/EP1").status_code == 200
    assert h.post("", endpoint_xml("EP3", aeui="device-9")).status_code == 201
    assert h.put("/EP2", endpoint_xml("EP2", aeui="device-1")).status_code == 200
    assert list(h.sim.state["endpoints"]) == ["EP2", "EP3"]


def test_endpoint_needs_an_existing_location(h: Harness) -> None:
    response = h.post("", endpoint_xml(location_id="GHOST"))
    assert response.status_code == 400
    description = error_of(response).description or ""
    assert "locationId" in description
    assert "GHOST" in description
    assert h.sim.state["endpoints"] == {}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"aeui": None}, "alternateEndUserId"),
        ({"aeui": "x" * 31}, "alternateEndUserId"),
        ({"caller_name": None}, "callerName"),
        ({"caller_name": "N" * 51}, "callerName"),
        ({"telephone_number": None}, "telephoneNumber"),
        ({"telephone_number": "call me"}, "telephoneNumber"),
        ({"location_id": None}, "locationId"),
        ({"endpoint_id": "a/b"}, "endpointId"),
    ],
)
def test_invalid_endpoint_is_400_naming_the_field(
    with_location: Harness, changes: dict[str, str | None], field: str
) -> None:
    response = with_location.post("", endpoint_xml(**changes))
    assert response.status_code == 400
    assert error_of(response).code == "INVALID_REQUEST"
    assert field in (error_of(response).description or "")


def test_aeui_of_30_and_caller_name_of_50_are_accepted(with_location: Harness) -> None:
    response = with_location.post("", endpoint_xml(aeui="x" * 30, caller_name="N" * 50))
    assert response.status_code == 201


@pytest.mark.parametrize("reserved", ["locations", "notificationRecipients", "LOCATIONS"])
def test_endpoint_ids_that_are_paths_are_refused(with_location: Harness, reserved: str) -> None:
    response = with_location.post("", endpoint_xml(reserved))
    assert response.status_code == 400
    assert "endpointId" in (error_of(response).description or "")


def test_update_endpoint_refuses_a_body_id_other_than_the_path(with_location: Harness) -> None:
    h = with_location
    h.post("", endpoint_xml())
    response = h.put("/EP1", endpoint_xml("EP9"))
    assert response.status_code == 400
    assert "endpointId" in (error_of(response).description or "")


# -- the path trap -------------------------------------------------------------


def test_locations_path_lists_locations_not_an_endpoint(with_location: Harness) -> None:
    h = with_location
    response = h.get("/locations")
    assert response.status_code == 200
    root = codec.parse(response.content)
    assert root.tag == "LocationListResponse"
    assert h.sim.calls[-1]["operation"] == "listLocations"


def test_recipients_path_lists_recipients_not_an_endpoint(h: Harness) -> None:
    response = h.get("/notificationRecipients")
    assert response.status_code == 200
    assert codec.parse(response.content).tag == "NotificationRecipientListResponse"
    assert h.sim.calls[-1]["operation"] == "listNotificationRecipients"


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/locations", "/notificationRecipients"])
def test_other_methods_on_fixed_paths_are_not_endpoint_operations(
    with_location: Harness, method: str, path: str
) -> None:
    h = with_location
    response = h.request(method, path, endpoint_xml())
    assert response.status_code == 405
    assert error_of(response).code == "METHOD_NOT_ALLOWED"
    assert h.sim.state["endpoints"] == {}
    assert "LOC1" in h.sim.state["locations"]


# -- notification recipients ---------------------------------------------------


def test_notification_recipients_create_and_list(h: Harness) -> None:
    created = h.post("/notificationRecipients", recipient_xml(description="NOC"))
    assert created.status_code == 201
    assert codec.decode(NotificationRecipient, created.content).id == "R1"
    generated = h.post("/notificationRecipients", recipient_xml(None, phone_number="+19195550199"))
    assert generated.status_code == 201
    new_id = codec.decode(NotificationRecipient, generated.content).id
    assert new_id is not None
    assert re.fullmatch(r"[0-9a-f]{32}", new_id)
    listed = codec.decode(
        NotificationRecipientListResponse, h.get("/notificationRecipients").content
    )
    assert [r.id for r in listed.notification_recipients] == ["R1", new_id]
    assert listed.notification_recipients[0].description == "NOC"


def test_existing_recipient_is_409(h: Harness) -> None:
    h.post("/notificationRecipients", recipient_xml())
    assert h.post("/notificationRecipients", recipient_xml()).status_code == 409


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email_address": None}, "emailAddress"),
        ({"email_address": "not-an-email"}, "emailAddress"),
        ({"phone_number": "12"}, "phoneNumber"),
    ],
)
def test_invalid_recipient_is_400(h: Harness, changes: dict[str, str | None], field: str) -> None:
    response = h.post("/notificationRecipients", recipient_xml(**changes))
    assert response.status_code == 400
    assert field in (error_of(response).description or "")


# -- auth, account, unknown routes --------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [None, ("sandbox", "wrong"), ("someone", "sandbox-password"), ("sandbox", "")],
)
def test_bad_credentials_are_401(h: Harness, auth: tuple[str, str] | None) -> None:
    response = h.request("GET", "/locations", auth=auth)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert error_of(response).code == "UNAUTHORIZED"
    assert h.sim.calls[-1]["status"] == 401


@pytest.mark.parametrize(
    "header", ["Bearer abc", "Basic !!!notbase64", "Basic c2FuZGJveA==", "Basic", "basic   "]
)
def test_malformed_authorization_is_401(h: Harness, header: str) -> None:
    response = h.run(
        lambda c: c.get(ACCOUNT + "/locations", headers={"Authorization": header}), auth=None
    )
    assert response.status_code == 401


def test_unknown_account_is_404(h: Harness) -> None:
    response = h.run(lambda c: c.get("http://sim/api/accounts/123/e911s"))
    assert response.status_code == 404
    assert error_of(response).code == "NOT_FOUND"


def test_unknown_route_is_a_404_response_status(h: Harness) -> None:
    response = h.run(lambda c: c.get("http://sim/api/nothing/here"))
    assert response.status_code == 404
    assert error_of(response).code == "NOT_FOUND"


def test_method_not_in_the_seed_is_405(h: Harness) -> None:
    response = h.request("PATCH", "/locations/LOC1", b"")
    assert response.status_code == 405
    assert error_of(response).code == "METHOD_NOT_ALLOWED"


def test_trailing_slash_is_not_redirected(h: Harness) -> None:
    response = h.get("/")
    assert response.status_code == 404
    assert error_of(response).code == "NOT_FOUND"
