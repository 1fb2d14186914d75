"""The admin facade over the v2 API (``BANDWIDTH_API=v2``): lists longer than one carrier
page come back whole, and notification recipients are v2 notifications in the gateway's
notification group."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette

from gateway.bandwidth.v2.models import AddressAnswer, ValidationStatus
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
