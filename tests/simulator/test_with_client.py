"""The gateway's own upstream client against the simulator, in-process."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from gateway.bandwidth import BandwidthClient, RetryPolicy
from gateway.bandwidth.errors import (
    UpstreamConflict,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from gateway.bandwidth.models import Endpoint, Location
from gateway.settings import SANDBOX_ACCOUNT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME
from gateway.simulator import SimulatorConfig, SimulatorTransport

from .helpers import EMPIRE_STATE, WHITE_HOUSE, Harness, address, harness

T = TypeVar("T")


def with_client(h: Harness, work: Callable[[BandwidthClient], Awaitable[T]]) -> T:
    async def no_sleep(seconds: float) -> None:
        return None

    async def main() -> T:
        async with BandwidthClient(
            "http://sim/sandbox/bandwidth/api",
            SANDBOX_ACCOUNT_ID,
            SANDBOX_USERNAME,
            SANDBOX_PASSWORD,
            transport=SimulatorTransport(h.app),
            policy=RetryPolicy(max_attempts=1),
            sleep=no_sleep,
        ) as client:
            return await work(client)

    return asyncio.run(main())


def test_round_trip(h: Harness) -> None:
    async def work(client: BandwidthClient) -> None:
        location = await client.create_location(Location(location_id="L1", address=WHITE_HOUSE))
        assert location.status == "GEOCODED"
        endpoint = Endpoint("E1", "device-1", "ALICE", "L1", "+19195550100")
        assert (await client.create_endpoint(endpoint)).activated is True
        assert (await client.get_endpoint("E1")).location_id == "L1"
        assert (await client.list_locations()).total_count == 1
        with pytest.raises(UpstreamConflict):
            await client.delete_location("L1")
        with pytest.raises(UpstreamNotFound):
            await client.get_location("NOPE")
        with pytest.raises(UpstreamRejected) as rejected:
            await client.create_location(Location(location_id="L2", address=address(zip="10118")))
        assert "address.zip" in (rejected.value.description or "")
        await client.create_location(Location(location_id="L2", address=EMPIRE_STATE))
        moved = await client.update_endpoint("E1", dataclasses.replace(endpoint, location_id="L2"))
        assert moved.location_id == "L2"
        await client.delete_location("L1")

    with_client(h, work)
    assert set(h.sim.state["locations"]) == {"L2"}
    assert [c["operation"] for c in h.sim.calls][:3] == [
        "createLocation",
        "createEndpoint",
        "getEndpoint",
    ]


def test_dropped_connection_is_an_ambiguous_unavailable() -> None:
    h = harness(SimulatorConfig(fault_rate=1.0, fault_kinds=("reset",), ambiguous_rate=1.0))

    async def work(client: BandwidthClient) -> None:
        await client.create_location(Location(location_id="L1", address=WHITE_HOUSE))

    with pytest.raises(UpstreamUnavailable) as caught:
        with_client(h, work)
    assert caught.value.ambiguous
    assert "L1" in h.sim.state["locations"]


def test_injected_503_carries_retry_after() -> None:
    h = harness(SimulatorConfig(fault_rate=1.0, fault_kinds=("503",), retry_after=3))

    async def work(client: BandwidthClient) -> None:
        await client.list_endpoints()

    with pytest.raises(UpstreamUnavailable) as caught:
        with_client(h, work)
    assert caught.value.status == 503
    assert caught.value.retry_after == 3
