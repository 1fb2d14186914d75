"""Contract: every request the v2 client sends fits the project's models of the v2 shapes,
and every answer shape the API describes is read back by the client's models."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from pydantic import BaseModel

from gateway.bandwidth.models import NotificationRecipient
from gateway.bandwidth.v2 import models as m
from gateway.simulator.v2 import create_v2_simulator

from .helpers import CAPITOL, endpoint, location, v2

#: Each request the client can send: its method and path, and the model its body must fit.
REQUESTS: list[tuple[str, str, type[BaseModel] | None]] = [
    ("POST", r"/endpoints", m.AddEndpoints),
    ("PATCH", r"/endpoints/[^/]+", m.UpdateEndpoint),
    ("DELETE", r"/endpoints/[^/]+", None),
    ("GET", r"/endpoints(/[^/]+)?", None),
    ("POST", r"/addresses", m.AddAddress),
    ("GET", r"/addresses(/[^/]+)?", None),
    ("DELETE", r"/addresses/[^/]+", None),
    ("POST", r"/notifications", m.AddNotification),
    ("GET", r"/notifications(/[^/]+)?", None),
    ("GET", r"/notificationGroups/[0-9]+", None),
    ("POST", r"/notificationGroups", m.AddNotificationGroup),
    ("PATCH", r"/notificationGroups/[0-9]+", m.UpdateNotificationGroup),
    ("GET", r"/orders/[^/]+/(details|history)", None),
]
PREFIX = "/api/v2/accounts/9900000/emergency"


def _model_for(method: str, path: str) -> type[BaseModel] | None:
    assert path.startswith(PREFIX), path
    rest = path[len(PREFIX) :]
    for want, pattern, model in REQUESTS:
        if method == want and re.fullmatch(pattern, rest):
            return model
    raise AssertionError(f"the client sent a request the contract does not know: {method} {path}")


def test_every_request_the_client_sends_fits_the_models() -> None:
    h = v2(order_seconds=0.2)

    async def go() -> None:
        c = h.client
        await c.create_location(location())
        await c.create_location(location("loc2", CAPITOL))
        await c.create_endpoint(endpoint())
        await c.update_endpoint("ep1", endpoint(location_id="loc2"))
        await c.update_endpoint("ep1", endpoint(location_id="loc2", name="Ada King"))
        await c.get_endpoint("ep1")
        await c.list_endpoints()
        await c.list_locations()
        await c.get_location("loc1")
        await c.create_notification_recipient(NotificationRecipient(id="n1", email_address="a@b.c"))
        await c.create_notification_recipient(
            NotificationRecipient(id="n2", phone_number="+12025550100")
        )
        await c.list_notification_recipients()
        await c.delete_endpoint("ep1")
        await c.delete_location("loc1")

    asyncio.run(go())
    kinds = set()
    for method, path, body in h.transport.sent:
        model = _model_for(method, path)
        if model is None:
            assert body == b""
            continue
        model.model_validate_json(body)  # extra="forbid": nothing the API does not know
        kinds.add(model)
    assert kinds == {
        m.AddEndpoints,
        m.UpdateEndpoint,
        m.AddAddress,
        m.AddNotification,
        m.AddNotificationGroup,
        m.UpdateNotificationGroup,
    }


#: One answer document per shape the API describes, in the API's own field names.
ANSWERS: list[tuple[type[BaseModel], dict[str, object]]] = [
    (
        m.ProvisioningOrder,
        {
            "orderId": "08e0be9a-52fd-45a0-be2e-86835c534aad",
            "updatedBy": "joe",
            "orderType": "ADD_ENDPOINTS",
            "orderStatus": "RECEIVED",
            "acceptedCount": 1,
            "invalidCount": 0,
            "updated": "2022-05-18T08:57:04Z",
            "totalNumber": 1,
        },
    ),
    (
        m.EndpointList,
        {
            "links": [{"href": "/endpoints", "rel": "self", "method": "GET"}],
            "endpoints": [
                {
                    "id": "e1",
                    "accountId": "5001232",
                    "phoneNumber": "+13035554321",
                    "name": "Joe's Home",
                    "lang": "fr",
                    "created": "2016-06-22T16:33:21.959Z",
                    "updated": "2016-06-22T16:33:21.959Z",
                    "country": "US",
                    "addressId": "7888993",
                }
            ],
        },
    ),
    (
        m.EndpointAnswer,
        {
            "id": "e1",
            "accountId": "5001232",
            "phoneNumber": "+13035554321",
            "name": "Joe",
            "lang": "en",
            "country": "US",
            "addressId": "a1",
        },
    ),
    (
        m.AddressList,
        {
            "addresses": [
                {
                    "id": "7888993",
                    "validationStatus": "VALID",
                    "address": "4916 NE 145th St",
                    "houseNumber": "4916",
                    "predirectional": "NE",
                    "postdirectional": "",
                    "streetName": "145th",
                    "streetSuffix": "ST",
                    "city": "Woodinville",
                    "state": "WA",
                    "postalCode": "98072",
                    "country": "US",
                    "latitude": 47.732682,
                    "longitude": -122.155174,
                }
            ]
        },
    ),
    (
        m.AddressAnswer,
        {
            "id": "london_office_01",
            "validationStatus": "UNVALIDATED",
            "friendlyName": "London office",
            "customerType": "BUS",
            "service": "ES",
            "houseNumber": "102-104",
            "streetName": "ALBERT STREET",
            "streetType": "STREET",
            "city": "LONDON",
            "postalCode": "NW1 7NE",
            "country": "GBR",
        },
    ),
    (
        m.OrderList,
        {
            "orders": [
                {
                    "id": "o1",
                    "type": "UPDATE_ENDPOINTS",
                    "status": "COMPLETED",
                    "acceptedCount": 3,
                    "invalidCount": 0,
                    "totalNumber": 3,
                }
            ]
        },
    ),
    (
        m.OrderDetails,
        {
            "id": "o1",
            "type": "DELETE_ENDPOINTS",
            "status": "PARTIAL",
            "endpoints": [
                {
                    "id": "e1",
                    "updatedBy": "JJ",
                    "status": "ERROR",
                    "error": "A reason",
                    "errorCode": "XXX",
                },
                {"id": "e2", "status": "SUCCESS"},
            ],
        },
    ),
    (
        m.OrderHistory,
        {
            "id": "o1",
            "type": "ADD_ENDPOINTS",
            "status": "COMPLETED",
            "created": "2022-01-18T08:57:04Z",
            "orderHistory": [
                {
                    "status": "RECEIVED",
                    "updatedBy": "JJ",
                    "updated": "2022-05-18T08:57:04Z",
                    "note": "message",
                }
            ],
        },
    ),
    (
        m.NotificationList,
        {
            "notifications": [
                {
                    "id": "134314",
                    "accountId": "6454565654",
                    "activated": "2023-01-22T08:15:20.814Z",
                    "description": "Notification 1",
                    "groupCount": 1,
                    "username": "joejoe",
                    "recipient": "joe@c.com",
                    "type": "EMAIL",
                    "updatedBy": "joe22",
                }
            ]
        },
    ),
    (
        m.NotificationGroupList,
        {
            "notificationGroups": [
                {
                    "id": "4334343",
                    "endpointCount": 0,
                    "endpointIds": ["793629347"],
                    "notificationIds": ["34343434"],
                }
            ]
        },
    ),
    (
        m.GenericError,
        {
            "errors": [
                {
                    "id": "optional-error-id",
                    "type": "http-method-not-supported",
                    "description": "The HTTP method used is not supported.",
                    "code": 205621,
                    "meta": {"method": "TRACE"},
                }
            ]
        },
    ),
]


@pytest.mark.parametrize(("model", "document"), ANSWERS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_answer_shape_is_read(model: type[BaseModel], document: dict[str, object]) -> None:
    read = model.model_validate(document)
    # Every field the model declares and the document carries is read, not dropped.
    again = json.loads(read.model_dump_json(by_alias=True, exclude_none=True))
    for key, value in document.items():
        if key in again:
            assert again[key] == value or isinstance(value, list)


def test_the_simulator_refuses_unknown_and_malformed_fields_as_error_documents() -> None:
    app = create_v2_simulator()
    cfg = app.state.simulator.config

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sim" + PREFIX, auth=(cfg.username, cfg.password)
        ) as http:
            return [
                await http.post(
                    "/addresses",
                    json={
                        "id": "a",
                        "addressLine1": "1 MAIN ST",
                        "city": "X",
                        "state": "DC",
                        "postalCode": "20001",
                        "colour": "red",
                    },
                ),
                await http.post(
                    "/endpoints",
                    json={"endpoints": [{"id": "e", "phoneNumber": "call me", "addressId": "a"}]},
                ),
                await http.patch("/endpoints/e", content=b"{not json"),
                await http.get("/orders/nope/details"),
                await http.request("TRACE", "/endpoints"),
            ]

    bad_field, bad_phone, bad_json, missing, method = asyncio.run(go())
    for answer, status in (
        (bad_field, 400),
        (bad_phone, 400),
        (bad_json, 400),
        (missing, 404),
        (method, 405),
    ):
        assert answer.status_code == status
        document = m.GenericError.model_validate(answer.json())
        assert document.errors and document.errors[0].description
    assert bad_field.json()["errors"][0]["source"]["field"] == "colour"
    assert "unknown field" in bad_field.json()["errors"][0]["description"]
    assert bad_phone.json()["errors"][0]["source"]["field"] == "endpoints.0.phoneNumber"
