"""A v2 client wired to the in-process v2 simulator on one fake clock (nothing waits)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from gateway.bandwidth.exchanges import RetryPolicy
from gateway.bandwidth.models import Address, Endpoint, Location
from gateway.bandwidth.v2.client import BandwidthV2Client
from gateway.metrics import Metrics
from gateway.simulator import SimulatorConfig, SimulatorTransport
from gateway.simulator.v2 import V2Simulator, create_v2_simulator
from tests.simulator.helpers import WHITE_HOUSE

T = TypeVar("T")

CAPITOL = Address(
    house_number="1",
    street_name="FIRST",
    street_suffix="ST",
    post_directional="SE",
    city="WASHINGTON",
    state_code="DC",
    zip="20004",
    country="US",
)
#: A ZIP in another state: the carrier finds the address INVALID.
NOWHERE = Address(
    house_number="1",
    street_name="MAIN",
    street_suffix="ST",
    city="WASHINGTON",
    state_code="DC",
    zip="10001",
    country="US",
)


class FakeTime:
    """A clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class Recording(httpx.AsyncBaseTransport):
    """Passes requests on, keeping each (method, path, body)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, str, bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append((request.method, request.url.path, body))
        return await self.inner.handle_async_request(request)


@dataclass
class V2:
    time: FakeTime
    simulator: V2Simulator
    client: BandwidthV2Client
    transport: Recording
    metrics: Metrics

    def operations(self) -> list[str]:
        return [c["operation"] for c in self.simulator.calls]

    def another_process(self, **client: Any) -> BandwidthV2Client:
        """A client of another process over the same carrier (a replica, or this gateway
        after a restart): none of this one's open orders."""
        return _client(self.simulator.config, self.transport, self.time, Metrics(), **client)


def v2(
    *,
    order_seconds: float = 1.0,
    follow_timeout: float = 4.0,
    policy: RetryPolicy | None = None,
    config: SimulatorConfig | None = None,
    password: str | None = None,
    simulator_sleep: Callable[[float], Awaitable[None]] | None = None,
    **client: Any,
) -> V2:
    time = FakeTime()
    app = create_v2_simulator(
        config or SimulatorConfig(),
        sleep=simulator_sleep or time.sleep,
        clock=time,
        order_seconds=order_seconds,
    )
    simulator: V2Simulator = app.state.simulator
    cfg = simulator.config
    transport = Recording(SimulatorTransport(app, enforce_timeouts=False))
    metrics = Metrics()
    upstream = _client(
        cfg,
        transport,
        time,
        metrics,
        password=password,
        policy=policy,
        follow_timeout=follow_timeout,
        **client,
    )
    return V2(time, simulator, upstream, transport, metrics)


def _client(
    cfg: SimulatorConfig,
    transport: Recording,
    time: FakeTime,
    metrics: Metrics,
    *,
    password: str | None = None,
    policy: RetryPolicy | None = None,
    follow_timeout: float = 4.0,
    **client: Any,
) -> BandwidthV2Client:
    """A v2 client of the simulator ``cfg`` through ``transport``, on fake ``time``."""
    return BandwidthV2Client(
        "http://carrier.test/api",
        cfg.account_id,
        cfg.username,
        cfg.password if password is None else password,
        transport=transport,
        policy=policy or RetryPolicy(backoff_base=0.01, backoff_max=0.05),
        metrics=metrics,
        sleep=time.sleep,
        clock=time,
        follow_timeout=follow_timeout,
        **client,
    )


class StatusReads(httpx.AsyncBaseTransport):
    """``inner``, except that while ``refused`` every order-status read is answered
    ``status`` with ``description`` (a carrier busy, or past an order's retention)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, status: int, description: str) -> None:
        self.inner = inner
        self.status = status
        self.description = description
        self.refused = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.refused and request.url.path.endswith("/details"):
            errors = [{"description": self.description}]
            return httpx.Response(self.status, json={"errors": errors})
        return await self.inner.handle_async_request(request)


def location(location_id: str = "loc1", address: Address = WHITE_HOUSE) -> Location:
    return Location(location_id=location_id, address=address)


def endpoint(
    endpoint_id: str = "ep1",
    location_id: str = "loc1",
    name: str = "Ada Lovelace",
    number: str = "+12025550143",
) -> Endpoint:
    return Endpoint(
        endpoint_id=endpoint_id,
        caller_name=name,
        location_id=location_id,
        telephone_number=number,
    )
