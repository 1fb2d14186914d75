"""The admin facade over the v2 API (``BANDWIDTH_API=v2``): lists longer than one carrier
page come back whole, and notification recipients are v2 notifications in the gateway's
notification group."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette

from gateway.bandwidth.v2.mapping import GATEWAY_GROUP
from gateway.bandwidth.v2.models import (
    AddressAnswer,
    NotificationAnswer,
    NotificationGroupAnswer,
    NotificationType,
    ValidationStatus,
)
from gateway.settings import Settings
from gateway.simulator import SimulatorConfig
from gateway.simulator.v2 import V2Simulator, create_v2_simulator
from gateway.simulator.v2.store import PAGE_LIMIT, _Endpoint
from tests.harness import gateway, gateway_settings


def _settings(**changes: Any) -> Settings:
    return gateway_settings(bandwidth_api="v2", **changes)


def _simulator(settings: Settings) -> Starlette:
    return create_v2_simulator(
        SimulatorConfig(
            account_id=settings.bandwidth_account_id,
            username=settings.bandwidth_username,
            password=str(settings.bandwidth_password),
        ),
        order_seconds=0.05,
    )


def _v2(sim: Starlette) -> V2Simulator:
    found: V2Simulator = sim.state.simulator
    return found


def test_endpoints_and_locations_of_more_than_one_page_come_back_whole() -> None:
    settings = _settings()
    sim = _simulator(settings)
    store = _v2(sim).v2
    many = 2 * PAGE_LIMIT + 17
    for i in range(many):
        key = f"a{i:05d}"
        store.addresses[key] = AddressAnswer(
            id=key, validation_status=ValidationStatus.VALID, city="WASHINGTON"
        )
        store.endpoints[f"e{i:05d}"] = _Endpoint(
            f"e{i:05d}", "+12025550143", f"N{i}", None, None, key, "", ""
        )

    async def go() -> None:
        async with gateway(settings, sim_app=sim) as gw:
            endpoints = await gw.http.get("/v1/endpoints")
            locations = await gw.http.get("/v1/locations")
            assert endpoints.status_code == locations.status_code == 200
            got = {e["endpointId"] for e in endpoints.json()["endpoints"]}
            assert got == {f"e{i:05d}" for i in range(many)}
            found = {loc["locationId"] for loc in locations.json()["locations"]}
            assert found == {f"a{i:05d}" for i in range(many)}
            assert endpoints.json()["totalCount"] == locations.json()["totalCount"] == many

    asyncio.run(go())
    ops = [c["operation"] for c in _v2(sim).calls]
    assert ops.count("listAllEndpoints") == ops.count("listAddresses") == 3


def test_recipients_are_created_into_the_group_and_listed_whole() -> None:
    settings = _settings()
    sim = _simulator(settings)
    store = _v2(sim).v2
    many = PAGE_LIMIT + 5
    for i in range(many):
        key = f"m{i:05d}"
        store.notifications[key] = NotificationAnswer(
            id=key, type=NotificationType.SMS, recipient="+12025550100"
        )
    store.groups[GATEWAY_GROUP] = NotificationGroupAnswer(
        id=GATEWAY_GROUP, notification_ids=list(store.notifications)
    )
    store.notifications["stray"] = NotificationAnswer(
        id="stray", type=NotificationType.EMAIL, recipient="stray@example.com"
    )

    async def go() -> None:
        async with gateway(settings, sim_app=sim) as gw:
            made = await gw.http.post(
                "/v1/notification-recipients",
                json={"id": "ops1", "emailAddress": "ops@example.com", "description": "Ops"},
            )
            assert made.status_code == 201, made.text
            assert made.json() == {
                "id": "ops1",
                "emailAddress": "ops@example.com",
                "description": "Ops",
            }
            again = await gw.http.post(
                "/v1/notification-recipients",
                json={"id": "ops1", "emailAddress": "ops@example.com"},
            )
            assert again.status_code == 201
            listed = await gw.http.get("/v1/notification-recipients")
            assert listed.status_code == 200
            ids = [r["id"] for r in listed.json()["notificationRecipients"]]
            assert len(ids) == many + 1 and ids[-1] == "ops1" and "stray" not in ids

    asyncio.run(go())
    assert "ops1" in store.groups[GATEWAY_GROUP].notification_ids
    assert len([n for n in store.notifications if n == "ops1"]) == 1


def test_a_recipient_v2_cannot_carry_is_a_501_saying_what_to_do_instead() -> None:
    settings = _settings()
    sim = _simulator(settings)

    async def go() -> None:
        async with gateway(settings, sim_app=sim) as gw:
            answer = await gw.http.post(
                "/v1/notification-recipients",
                json={"emailAddress": "ops@example.com", "phoneNumber": "+12025550100"},
            )
            assert answer.status_code == 501
            problem = answer.json()
            assert problem["upstreamOperation"] == "addNotification"
            assert "another with the phoneNumber" in problem["instead"]

    asyncio.run(go())
    assert _v2(sim).calls == []


def test_a_carrier_whose_list_never_ends_is_a_502_not_a_hang() -> None:
    settings = _settings()
    sim = _simulator(settings)
    pages: list[str] = []

    class Endless(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/addresses"):
                pages.append(request.url.query.decode())
                links = [{"rel": "next", "href": "/addresses?offset=0&limit=1000"}]
                return httpx.Response(200, json={"links": links, "addresses": [{"id": "same"}]})
            return await self.inner.handle_async_request(request)

    async def go() -> None:
        async with gateway(settings, sim_app=sim, wrap=Endless) as gw:
            answer = await gw.http.get("/v1/locations")
            assert answer.status_code == 502
            assert answer.json()["type"].endswith("/upstream-error")

    asyncio.run(go())
    assert pages == ["limit=1000&offset=0", "limit=1000&offset=1"]
