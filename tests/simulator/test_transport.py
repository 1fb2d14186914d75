"""``SimulatorTransport``: mount prefixes, dropped connections and read timeouts in-process."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from gateway.simulator import SimulatorConfig, SimulatorTransport
from gateway.simulator.transport import _mount_prefix

from .helpers import AUTH, Harness, harness, location_xml

PREFIX = "/sandbox/bandwidth"


@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        ("/api/accounts/1/e911s", ""),
        ("/_sim/state", ""),
        ("/sandbox/bandwidth/api/accounts/1/e911s", "/sandbox/bandwidth"),
        ("/x/_sim/calls", "/x"),
        ("/elsewhere", ""),
    ],
)
def test_mount_prefix(path: str, prefix: str) -> None:
    assert _mount_prefix(path) == prefix


def test_base_url_with_a_mount_prefix_reaches_the_simulator(h: Harness) -> None:
    async def main() -> tuple[int, int]:
        transport = SimulatorTransport(h.app)
        async with httpx.AsyncClient(
            transport=transport, base_url=f"http://sim{PREFIX}/api/accounts/9900000", auth=AUTH
        ) as client:
            created = await client.post("/e911s/locations", content=location_xml())
            state = await client.get(f"http://sim{PREFIX}/_sim/state")
            return created.status_code, len(state.json()["locations"])

    assert asyncio.run(main()) == (201, 1)
    assert h.sim.calls[0]["path"] == f"{PREFIX}/api/accounts/9900000/e911s/locations"


def test_reset_through_a_parent_app_that_mounts_the_simulator() -> None:
    h = harness(SimulatorConfig(fault_rate=1.0, fault_kinds=("reset",), ambiguous_rate=1.0))
    parent = Starlette(routes=[Mount(PREFIX, app=h.app)])

    async def main() -> None:
        async with httpx.AsyncClient(transport=SimulatorTransport(parent), auth=AUTH) as client:
            await client.post(
                f"http://gw{PREFIX}/api/accounts/9900000/e911s/locations", content=location_xml()
            )

    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(main())
    assert "LOC1" in h.sim.state["locations"]


def test_reset_with_raise_app_exceptions_off_is_still_a_protocol_error() -> None:
    h = harness(SimulatorConfig(fault_rate=1.0, fault_kinds=("reset",)))

    async def main() -> None:
        transport = SimulatorTransport(h.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, auth=AUTH) as client:
            await client.get("http://sim/api/accounts/9900000/e911s")

    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(main())


def test_read_timeout_is_enforced_and_the_held_write_still_lands() -> None:
    h = harness(SimulatorConfig(fault_rate=1.0, fault_kinds=("timeout",)))

    async def main() -> None:
        h.sleep.gate = asyncio.Event()
        async with h.client(timeout=0.005) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/api/accounts/9900000/e911s/locations", content=location_xml())
        assert h.sim.state["locations"] == {}
        h.sleep.gate.set()
        await h.sim.wait_idle()

    asyncio.run(main())
    assert "LOC1" in h.sim.state["locations"]
    assert h.sim.calls[-1]["status"] == 201


def test_timeouts_can_be_left_to_the_caller() -> None:
    h = harness(SimulatorConfig(fault_rate=1.0, fault_kinds=("timeout",)))

    async def main() -> int:
        transport = SimulatorTransport(h.app, enforce_timeouts=False)
        async with httpx.AsyncClient(transport=transport, auth=AUTH, timeout=0.001) as client:
            response = await client.get("http://sim/api/accounts/9900000/e911s")
            return response.status_code

    assert asyncio.run(main()) == 200
