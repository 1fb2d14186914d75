"""An in-process gateway in front of an in-process simulator, for async tests.

``Gateway`` runs the app's lifespan itself (httpx's ASGITransport does not), so tests can
send concurrent requests with ``asyncio.gather`` and read the simulator's call log.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import Secret

from gateway.app import SANDBOX_PREFIX, create_app
from gateway.dlr.pipeline import Geocoder
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.simulator import Simulator, SimulatorConfig, SimulatorTransport, create_simulator

ADMIN_KEY = "test-admin-key-0123456789"
JWT_SECRET = "test-device-secret-0123456789abcdef"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll what another thread or a background task changes until ``predicate`` holds;
    ``TimeoutError`` after ``within`` seconds (generous: a loaded machine is slow, not
    wrong)."""
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


def gateway_settings(**changes: Any) -> Settings:
    base = Settings(
        admin_keys=(Secret(ADMIN_KEY),),
        device_jwt_secret=Secret(JWT_SECRET),
        upstream_max_attempts=1,
        # Tests send bursts per device; the per-device limit has tests of its own.
        report_rate_per_minute=0.0,
        # A real state store, SQLite in memory; the PostgreSQL runs have their own tests.
        database_url="sqlite+aiosqlite://",
        # Periodic checks would add carrier calls to the counts tests make; off but where tested
        # (and no background pass at all: its orphan repairs have tests of their own).
        reconcile_interval=0.0,
        reconcile_tick=3600.0,
    )
    return replace(base.for_sandbox(f"http://sim{SANDBOX_PREFIX}/api"), **changes)


def new_simulator(settings: Settings, **config: Any) -> Starlette:
    return create_simulator(
        SimulatorConfig(
            account_id=settings.bandwidth_account_id,
            username=settings.bandwidth_username,
            password=str(settings.bandwidth_password),
            **config,
        )
    )


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def phone_of(aeui: str) -> str:
    """A device's own callback number (a number has one owner unless an admin shares it)."""
    n = zlib.crc32(aeui.encode()) % (len(_EXCHANGES) * 10_000)
    return f"+1202{_EXCHANGES[n // 10_000]}{n % 10_000:04d}"


#: Exchanges (``NXX``) a callback number may have: 200-999 but the service codes ``N11``.
_EXCHANGES = tuple(e for e in range(200, 1000) if e % 100 != 11)


def report(
    aeui: str,
    address: Any,
    seconds: float = 0,
    *,
    caller: str = "ALICE SMITH",
    phone: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A JSON report; the callback number is the device's own (``phone_of``) unless given."""
    body = {
        "alternateEndUserId": aeui,
        "callerName": caller,
        "telephoneNumber": phone or phone_of(aeui),
        "observedAt": at(seconds),
        **extra,
    }
    if address is not None:
        body["address"] = address
    return body


WHITE_HOUSE = "1600 Pennsylvania Ave NW, Washington, DC 20500"
#: The same place as the seed's address object.
WHITE_HOUSE_ADDRESS = {
    "houseNumber": "1600",
    "streetName": "PENNSYLVANIA",
    "streetSuffix": "AVE",
    "postDirectional": "NW",
    "city": "WASHINGTON",
    "stateCode": "DC",
    "zip": "20500",
}
EMPIRE_STATE = "350 5th Ave, New York, NY 10118"
#: As the gateway normalizes it (and the sandbox reverse-geocodes the building's fix).
EMPIRE_STATE_ADDRESS = {
    "houseNumber": "350",
    "streetName": "5TH",
    "streetSuffix": "AVE",
    "city": "NEW YORK",
    "stateCode": "NY",
    "zip": "10118",
    "country": "US",
}
SPACE_NEEDLE = "400 Broad St, Seattle, WA 98109"
WILLIS_TOWER = "233 S Wacker Dr, Chicago, IL 60606"


class RefuseEndpointWrites(httpx.AsyncBaseTransport):
    """The carrier refuses every endpoint write with a 400 ``ResponseStatus`` (a definitive
    refusal, not a failure whose outcome is unknown); everything else goes through."""

    def __init__(self, inner: httpx.AsyncBaseTransport, description: str) -> None:
        self.inner = inner
        self.description = description

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method in ("POST", "PUT") and "/locations" not in path:
            from gateway.bandwidth import codec

            body = codec.encode_response_status("INVALID_REQUEST", self.description)
            return httpx.Response(400, content=body, headers={"Content-Type": "application/xml"})
        return await self.inner.handle_async_request(request)


@dataclass
class Hold:
    """A request held on its way to the carrier (``Holding``)."""

    method: str
    #: Held after the carrier took it (it landed; its answer is late), else before.
    landed: bool
    #: Once released, it fails as a connection refused would (never reaching the carrier).
    fails: bool = False
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)


class Holding(httpx.AsyncBaseTransport):
    """The simulator's transport, holding the next request of a method on an endpoint (a
    device's record at the carrier) until the test lets it go."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.holds: list[Hold] = []

    def hold(self, method: str, *, landed: bool, fails: bool = False) -> Hold:
        held = Hold(method, landed, fails)
        self.holds.append(held)
        return held

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        *_, parent, name = request.url.path.split("/")
        # The seed API's ``/e911s/{id}``, or the v2 API's ``/endpoints/{id}``.
        on_endpoint = (parent == "e911s" and name != "locations") or parent == "endpoints"
        held = next((h for h in self.holds if on_endpoint and h.method == request.method), None)
        if held is None:
            return await self.inner.handle_async_request(request)
        self.holds.remove(held)
        if not held.landed:
            held.reached.set()
            await held.released.wait()
        if held.fails:
            raise httpx.ConnectError("connection refused (held by the test)", request=request)
        response = await self.inner.handle_async_request(request)
        if held.landed:
            held.reached.set()
            await held.released.wait()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class Recording(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, into: list[httpx.Request]) -> None:
        self.inner = inner
        self.into = into

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.into.append(request)
        return await self.inner.handle_async_request(request)


@dataclass
class Gateway:
    http: httpx.AsyncClient
    sim_app: Starlette
    app: Starlette
    metrics: Metrics

    @property
    def simulator(self) -> Simulator:
        found: Simulator = self.sim_app.state.simulator
        return found

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        return self.simulator.calls_since(since)

    def last_seq(self) -> int:
        calls = self.simulator.calls
        return int(calls[-1]["seq"]) if calls else 0

    def operations(self, since: int = 0) -> list[str]:
        return [str(c["operation"]) for c in self.calls(since)]

    async def report(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.http.post("/v1/location-reports", json=body, headers=headers or None)


@contextlib.asynccontextmanager
async def gateway(
    settings: Settings | None = None,
    *,
    sim_app: Starlette | None = None,
    geocoder: Geocoder | None = None,
    record: list[httpx.Request] | None = None,
    wrap: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] | None = None,
    **sim_config: Any,
) -> AsyncIterator[Gateway]:
    """A gateway (lifespan running) in front of ``sim_app`` or a new simulator.

    With ``record``, every request the gateway sends upstream is appended to it; ``wrap``
    puts a transport of the test's between the gateway and the simulator.
    """
    settings = settings or gateway_settings()
    sim_app = sim_app or new_simulator(settings, **sim_config)
    metrics = Metrics()
    upstream: httpx.AsyncBaseTransport = SimulatorTransport(app=sim_app)
    if wrap is not None:
        upstream = wrap(upstream)
    if record is not None:
        upstream = Recording(upstream, record)
    app = create_app(
        settings,
        sandbox_app=sim_app,
        upstream_transport=upstream,
        metrics=metrics,
        geocoder=geocoder,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://gateway",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as http:
            yield Gateway(http, sim_app, app, metrics)


@contextlib.asynccontextmanager
async def from_host(gw: Gateway, host: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials whose requests come from ``host``."""
    transport = httpx.ASGITransport(app=gw.app, client=(host, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client
