"""Doubles and builders for the simulator's tests: a fake clock and sleep, XML bodies."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette

from gateway.bandwidth import codec
from gateway.bandwidth.models import Address, Endpoint, Location, NotificationRecipient
from gateway.settings import SANDBOX_ACCOUNT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME
from gateway.simulator import Simulator, SimulatorConfig, SimulatorTransport, create_simulator

T = TypeVar("T")

ACCOUNT = f"/api/accounts/{SANDBOX_ACCOUNT_ID}/e911s"
BASE_URL = "http://sim"
AUTH = (SANDBOX_USERNAME, SANDBOX_PASSWORD)

WHITE_HOUSE = Address(
    house_number="1600",
    street_name="PENNSYLVANIA",
    street_suffix="AVE",
    post_directional="NW",
    city="WASHINGTON",
    state_code="DC",
    zip="20500",
)
EMPIRE_STATE = Address(
    house_number="350",
    street_name="5TH",
    street_suffix="AVE",
    address_line2="FL 86",
    city="NEW YORK",
    state_code="NY",
    zip="10118",
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeSleep:
    """Records each sleep and returns at once, or waits for ``gate`` when one is set."""

    holds: list[float] = field(default_factory=list)
    gate: asyncio.Event | None = None
    entered: asyncio.Event | None = None

    async def __call__(self, seconds: float) -> None:
        self.holds.append(seconds)
        if self.entered is not None:
            self.entered.set()
        if self.gate is not None:
            await self.gate.wait()


@dataclass
class Harness:
    app: Starlette
    sim: Simulator
    sleep: FakeSleep
    clock: FakeClock

    @property
    def config(self) -> SimulatorConfig:
        return self.sim.config

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("auth", AUTH)
        kwargs.setdefault("base_url", BASE_URL)
        return httpx.AsyncClient(transport=SimulatorTransport(self.app), **kwargs)

    def run(self, work: Callable[[httpx.AsyncClient], Awaitable[T]], **kwargs: Any) -> T:
        """Run ``work(client)`` in a fresh event loop."""

        async def main() -> T:
            async with self.client(**kwargs) as client:
                return await work(client)

        return asyncio.run(main())

    def request(
        self,
        method: str,
        path: str = "",
        body: bytes | str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A seed-API request; ``path`` is relative to ``/api/accounts/{accountId}/e911s``."""
        content = body.encode() if isinstance(body, str) else body
        return self.run(lambda c: c.request(method, ACCOUNT + path, content=content), **kwargs)

    def post(self, path: str, body: bytes | str) -> httpx.Response:
        return self.request("POST", path, body)

    def put(self, path: str, body: bytes | str) -> httpx.Response:
        return self.request("PUT", path, body)

    def get(self, path: str = "") -> httpx.Response:
        return self.request("GET", path)

    def delete(self, path: str) -> httpx.Response:
        return self.request("DELETE", path)


def harness(config: SimulatorConfig | None = None) -> Harness:
    sleep, clock = FakeSleep(), FakeClock()
    app = create_simulator(config or SimulatorConfig(seed=1), sleep=sleep, clock=clock)
    return Harness(app, app.state.simulator, sleep, clock)


def location_xml(
    location_id: str | None = "LOC1", address: Address = WHITE_HOUSE, **kw: Any
) -> bytes:
    return codec.encode(Location(location_id=location_id, address=address, **kw))


def address(**changes: Any) -> Address:
    return dataclasses.replace(WHITE_HOUSE, **changes)


def endpoint_xml(
    endpoint_id: str | None = "EP1",
    aeui: str | None = "device-1",
    location_id: str | None = "LOC1",
    caller_name: str | None = "ALICE",
    telephone_number: str | None = "+19195550100",
    **kw: Any,
) -> bytes:
    return codec.encode(
        Endpoint(
            endpoint_id=endpoint_id,
            alternate_end_user_id=aeui,
            caller_name=caller_name,
            location_id=location_id,
            telephone_number=telephone_number,
            **kw,
        )
    )


def recipient_xml(recipient_id: str | None = "R1", **kw: Any) -> bytes:
    kw.setdefault("email_address", "noc@example.com")
    return codec.encode(NotificationRecipient(id=recipient_id, **kw))


def error_of(response: httpx.Response) -> codec.ResponseStatus:
    """The response's ``ResponseStatus``; fails when it has none or is not XML."""
    assert response.headers["content-type"].startswith("application/xml")
    status = codec.response_status(codec.parse(response.content))
    assert status is not None, response.text
    return status
