"""The pipeline's services constructed directly: the simulator as the carrier's transport, a
real state store (SQLite and PostgreSQL), no HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.bandwidth.errors import UpstreamAuthError, UpstreamError
from gateway.bandwidth.models import Endpoint
from gateway.bandwidth.upstreams import carrier_client, is_background
from gateway.dlr.address import normalize
from gateway.dlr.callers import CallerIndex, CallerLocator, freshest
from gateway.dlr.pipeline import (
    Outcome,
    Pipeline,
    Report,
    Superseded,
    Unroutable,
    address_json,
)
from gateway.dlr.pipeline.records import Change
from gateway.geocoding.service import build_geocoding
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.simulator import SimulatorConfig, SimulatorTransport
from gateway.simulator.v2 import V2Simulator, create_v2_simulator
from gateway.store import StateStore, open_store
from gateway.store.base import HistoryKind, location_key
from tests.harness import (
    EMPIRE_STATE,
    SPACE_NEEDLE,
    WHITE_HOUSE,
    Holding,
    RefuseEndpointWrites,
    gateway_settings,
    new_simulator,
    until,
)
from tests.store.conftest import BACKENDS, _database

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class World:
    pipeline: Pipeline
    store: StateStore
    callers: CallerIndex
    calls: Callable[[], list[dict[str, Any]]]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _database(request.param, request, tmp_path).url


def report(aeui: str, address: str, seconds: float, **changes: Any) -> Report:
    fields: dict[str, Any] = {
        "alternate_end_user_id": aeui,
        "caller_name": "ALICE SMITH",
        "telephone_number": "+12025550143",
        "observed_at": T0 + timedelta(seconds=seconds),
        "address": address,
        **changes,
    }
    return Report(**fields)


@contextlib.asynccontextmanager
async def world(
    url: str,
    simulator: Any = None,
    *,
    holding: Holding | None = None,
    settings: Settings | None = None,
    shared: bool = False,
) -> AsyncIterator[World]:
    """A pipeline on the store at ``url`` and ``simulator`` (the seed API's, or the one
    ``settings`` name); ``shared``: it is one of several replicas writing that store."""
    settings = settings or gateway_settings()
    sim = simulator if simulator is not None else new_simulator(settings)
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as stack:
        transport: httpx.AsyncBaseTransport = SimulatorTransport(app=sim)
        if holding is not None:
            holding.inner = transport
            transport = holding
        carrier = carrier_client(settings, transport=transport, metrics=metrics)
        stack.push_async_callback(carrier.aclose)
        http = httpx.AsyncClient()
        stack.push_async_callback(http.aclose)
        store = await open_store(url, create=True)
        stack.push_async_callback(store.close)
        callers = CallerIndex(1000)
        pipeline = Pipeline(
            carrier,
            build_geocoding(settings, metrics, http),
            normalize,
            ledger=store,
            callers=callers,
            shared_ledger=shared,
        )
        stack.push_async_callback(pipeline.aclose)
        log = sim.state.simulator
        yield World(pipeline, store, callers, lambda: log.calls)


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(main())


def operations(calls: list[dict[str, Any]]) -> list[str]:
    return [str(c.get("operation")) for c in calls]


def test_a_new_device_is_written_then_an_unchanged_report_costs_no_call(url: str) -> None:
    async def main() -> None:
        async with world(url) as w:
            first = await w.pipeline.report(report("ann", WHITE_HOUSE, 0))
            assert (first.location, first.endpoint) == (Change.CREATED, Change.CREATED)
            row = await w.store.get("ann")
            assert row is not None and row.confirmed
            assert row.location_id == first.binding.location_id
            assert [b.aeui for b in w.callers.lookup("+12025550143")] == ["ann"]
            before = len(w.calls())
            again = await w.pipeline.report(report("ann", WHITE_HOUSE, 10))
            assert not again.changed
            assert len(w.calls()) == before
            advanced = await w.store.get("ann")
            assert advanced is not None and advanced.observed_at == T0 + timedelta(seconds=10)

    run(main)


def test_a_move_updates_the_endpoint_and_an_older_report_is_superseded(url: str) -> None:
    async def main() -> None:
        async with world(url) as w:
            await w.pipeline.report(report("ann", WHITE_HOUSE, 0))
            moved: Outcome = await w.pipeline.report(report("ann", EMPIRE_STATE, 5))
            assert (moved.location, moved.endpoint) == (Change.CREATED, Change.UPDATED)
            with pytest.raises(Superseded):
                await w.pipeline.report(report("ann", WHITE_HOUSE, 1))
            row = await w.store.get("ann")
            assert row is not None and row.location_id == moved.binding.location_id
            current = await w.pipeline.current("ann")
            assert current is not None and current.location_id == moved.binding.location_id

    run(main)


def test_an_unroutable_address_writes_nothing(url: str) -> None:
    async def main() -> None:
        async with world(url) as w:
            with pytest.raises(Unroutable):
                await w.pipeline.report(report("ann", "nowhere at all", 0))
            assert w.calls() == []
            assert await w.store.get("ann") is None

    run(main)


def test_a_new_pipeline_on_the_same_store_knows_the_device(url: str) -> None:
    async def main() -> None:
        sim = new_simulator(gateway_settings())
        async with world(url, sim) as w:
            first = await w.pipeline.report(report("ann", WHITE_HOUSE, 0))
        async with world(url, sim) as restarted:
            stored = await restarted.pipeline.stored("ann")
            assert stored is not None and stored.location_id == first.binding.location_id
            assert await restarted.pipeline.stored("bob") is None
            assert await restarted.pipeline.knows_location(first.binding.location_id)
            assert not await restarted.pipeline.knows_location("never-created")
            before = len(restarted.calls())
            again = await restarted.pipeline.report(report("ann", WHITE_HOUSE, 10))
            assert not again.changed
            assert operations(restarted.calls()[before:]) == []

    run(main)


def test_an_imported_location_is_created_once_and_recorded(url: str) -> None:
    async def main() -> None:
        address = normalize(SPACE_NEEDLE).address
        assert address is not None
        async with world(url) as w:
            imported = w.pipeline.import_location
            assert await imported("SITE1", address, "HQ", credential="import")
            assert await w.pipeline.knows_location("SITE1")
            (entry,) = await w.store.history(location_key("SITE1"))
            assert (entry.kind, entry.credential) == (HistoryKind.LOCATION_CREATED, "import")
            assert entry.after == {"locationId": "SITE1", "address": address_json(address)}
            before = len(w.calls())
            assert not await imported("SITE1", address, "HQ", credential="import")
            assert len(w.calls()) == before  # known to the store: no carrier call
            # The store forgot it, the carrier holds it: read back and remembered, not created.
            await w.store.forget_location("SITE1")
            assert not await imported("SITE1", address, "HQ", credential="import")
            assert operations(w.calls()[before:]) == ["createLocation", "getLocation"]
            assert await w.pipeline.knows_location("SITE1")
            assert len(await w.store.history(location_key("SITE1"))) == 1

    run(main)


def test_a_write_overtaken_by_a_newer_report_stays_in_the_history(url: str) -> None:
    """Two replicas: A's write lands, then B (a newer report) claims the device before A's
    answer comes back, and B's write lands after it. The carrier held A's address for a
    while (a 911 call then was routed with it): the history shows A applied, then B."""

    async def main() -> None:
        sim = new_simulator(gateway_settings())
        first, second = Holding(httpx.AsyncBaseTransport()), Holding(httpx.AsyncBaseTransport())
        async with world(url, sim, holding=first) as one, world(url, sim, holding=second) as two:
            await one.pipeline.report(report("ann", WHITE_HOUSE, 0))
            a_lands = first.hold("PUT", landed=True)
            a = asyncio.create_task(one.pipeline.report(report("ann", EMPIRE_STATE, 5)))
            await a_lands.reached.wait()  # the carrier holds A; its answer is on its way
            b_writes = second.hold("PUT", landed=False)
            b = asyncio.create_task(two.pipeline.report(report("ann", SPACE_NEEDLE, 10)))
            await b_writes.reached.wait()  # B claimed the device; its write not yet sent
            # A's replica checks the carrier once A's confirmation is refused; that read
            # fails until B is done, and the check is tried again then (nothing to repair).
            repair_reads = first.hold("GET", landed=False, fails=True)
            a_lands.released.set()
            moved_a = await a  # answered: the carrier took it
            await repair_reads.reached.wait()
            b_writes.released.set()
            moved_b = await b
            repair_reads.released.set()
            await one.pipeline.idle()
            stored = await one.store.get("ann")
            assert stored is not None and stored.confirmed
            assert stored.location_id == moved_b.binding.location_id
            entries = await one.store.history("ann")
            assert [(e.kind, e.to_location_id, e.observed_at) for e in entries] == [
                ("applied", moved_b.binding.location_id, T0 + timedelta(seconds=10)),
                ("applied", moved_a.binding.location_id, T0 + timedelta(seconds=5)),
                ("applied", entries[-1].to_location_id, T0),
            ]
            assert entries[1].from_location_id == entries[2].to_location_id
            held = [c for c in sim.state.simulator.calls if c.get("operation") == "updateEndpoint"]
            assert [c["status"] for c in held[-2:]] == [200, 200]

    run(main)


def _carrier(api: str) -> tuple[Settings, Any, str]:
    """Settings for ``api``, a simulator of it, and the method of an endpoint's move."""
    if api == "seed":
        settings = gateway_settings()
        return settings, new_simulator(settings), "PUT"
    settings = gateway_settings(bandwidth_api="v2")
    config = SimulatorConfig(
        account_id=settings.bandwidth_account_id,
        username=settings.bandwidth_username,
        password=str(settings.bandwidth_password),
    )
    return settings, create_v2_simulator(config, order_seconds=0.02), "PATCH"


def _held_location(sim: Any, endpoint_id: str) -> str | None:
    """The location the carrier's endpoint points at (either simulator)."""
    simulator = sim.state.simulator
    if isinstance(simulator, V2Simulator):
        return simulator.v2.endpoints[endpoint_id].address_id
    return str(simulator.store.endpoints[endpoint_id].location_id)


@pytest.mark.parametrize("api", ["seed", "v2"])
def test_a_paused_replicas_late_write_is_undone_at_once(url: str, api: str) -> None:
    """Replica A claims a move to P and is paused (a GC pause, a slow network) before its
    write leaves; replica B applies the device's newer report (Q) and confirms it; then A's
    write of P reaches the carrier, after B's. The carrier has no conditional writes: it
    takes P. A's confirmation is refused (a newer claim overtook it), and A puts the
    store's newest binding back at once: once the gateway's own follow-up work has settled
    (no report, no periodic check), the carrier points the device at Q, and the call-time
    query, at either replica, answers Q."""

    async def main() -> None:
        settings, sim, move = _carrier(api)
        first, second = Holding(httpx.AsyncBaseTransport()), Holding(httpx.AsyncBaseTransport())
        async with (
            world(url, sim, holding=first, settings=settings, shared=True) as one,
            world(url, sim, holding=second, settings=settings, shared=True) as two,
        ):
            placed = await one.pipeline.report(report("ann", WHITE_HOUSE, 0))
            endpoint_id = placed.binding.endpoint_id
            paused = first.hold(move, landed=False)
            a = asyncio.create_task(one.pipeline.report(report("ann", EMPIRE_STATE, 5)))
            await paused.reached.wait()  # A claimed P; its write has not left
            newer = await two.pipeline.report(report("ann", SPACE_NEEDLE, 10))
            q = newer.binding.location_id
            assert _held_location(sim, endpoint_id) == q
            paused.released.set()
            late = await a  # the carrier took A's write (answered as applied)
            p = late.binding.location_id
            assert p not in (q, placed.binding.location_id)
            await asyncio.gather(one.pipeline.idle(), two.pipeline.idle())
            assert _held_location(sim, endpoint_id) == q
            stored = await one.store.get("ann")
            assert stored is not None and stored.confirmed and stored.location_id == q
            for replica in (one, two):
                locator = CallerLocator(replica.callers, replica.store, timeout=10.0)
                located = await locator.locate("+12025550143")
                assert located.source == "store"
                assert freshest(located.bindings).location_id == q
                current = await replica.pipeline.current("ann")
                assert current is not None and current.location_id == q
            # What put Q back: A's repair, which found the carrier holding A's P.
            repaired, *_ = await one.store.history("ann")
            assert (repaired.kind, repaired.credential) == ("repaired", "gateway")
            assert (repaired.from_location_id, repaired.to_location_id) == (p, q)

    run(main)


class GarbledWrites(httpx.AsyncBaseTransport):
    """The simulator's transport; the carrier takes every endpoint write, but the answer
    that comes back is a 200 with ``body`` instead of the carrier's own."""

    def __init__(self, body: bytes) -> None:
        self.inner: httpx.AsyncBaseTransport = httpx.AsyncBaseTransport()
        self.body = body
        self.garble = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not self.garble or request.method != "PUT":
            return response
        await response.aread()
        assert response.status_code == 200  # the carrier took it
        return httpx.Response(200, headers={"Content-Type": "application/xml"}, content=self.body)

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.asynccontextmanager
async def garbling(url: str, body: bytes) -> AsyncIterator[tuple[World, Any, GarbledWrites]]:
    """A world whose device ``ann`` was placed at the White House, the carrier's endpoint
    writes from then on answered with ``body``; and its simulator and transport."""
    sim = new_simulator(gateway_settings())
    garbled = GarbledWrites(body)
    async with world(url, sim, holding=garbled) as w:  # type: ignore[arg-type]
        await w.pipeline.report(report("ann", WHITE_HOUSE, 0))
        garbled.garble = True
        yield w, sim, garbled


@pytest.mark.parametrize(
    "body",
    [
        b"<Endpoint><locationId>",  # truncated
        b"<Endpoint>" + b"x" * (1024 * 1024 + 1) + b"</Endpoint>",  # past the codec's limit
        b"<Endpoint><locationId>L</locationId><activated>maybe</activated></Endpoint>",
        b"<ResponseStatus><Description>Endpoint saved</Description></ResponseStatus>",
    ],
    ids=["truncated", "oversized", "bad-field", "status-without-code"],
)
def test_a_write_taken_but_answered_unreadably_is_not_reverted(url: str, body: bytes) -> None:
    """A 2xx whose body cannot be read: the carrier took the write (its status says so), so
    the report fails as uncertain, never as refused: the ledger keeps the device's new
    place, and the repair confirms it. Reverting would leave the ledger at the old place
    while the carrier holds the new one, and a reconcile would then write the old back."""

    async def main() -> None:
        async with garbling(url, body) as (w, sim, garbled):
            with pytest.raises(UpstreamError) as raised:
                await w.pipeline.report(report("ann", EMPIRE_STATE, 5))
            assert raised.value.ambiguous
            garbled.garble = False
            await w.pipeline.idle()
            stored = await w.store.get("ann")
            assert stored is not None and stored.confirmed
            held = sim.state.simulator.store.endpoints[stored.endpoint_id]
            assert held.location_id == stored.location_id
            assert stored.address is not None and "350" in str(stored.address)

    run(main)


@pytest.mark.parametrize(
    "body",
    [b"<ResponseStatus/>", b"<Endpoint><ResponseStatus><ErrorCode/></ResponseStatus></Endpoint>"],
    ids=["empty", "empty-code"],
)
def test_a_write_answered_with_a_response_status_without_error_code_is_applied(
    url: str, body: bytes
) -> None:
    """A 2xx whose ``ResponseStatus`` holds no error code is the carrier taking the write:
    the report is applied and confirmed, not undone as a refusal (the ledger back at the old
    place while the carrier holds the new one)."""

    async def main() -> None:
        async with garbling(url, body) as (w, sim, _):
            moved = await w.pipeline.report(report("ann", EMPIRE_STATE, 5))
            assert moved.endpoint == Change.UPDATED
            stored = await w.store.get("ann")
            assert stored is not None and stored.confirmed
            assert stored.location_id == moved.binding.location_id
            held = sim.state.simulator.store.endpoints[stored.endpoint_id]
            assert held.location_id == stored.location_id

    run(main)


class RefusingLocations(httpx.AsyncBaseTransport):
    """The simulator's transport, but a location's creation is answered ``status``."""

    def __init__(self, status: int) -> None:
        self.inner: httpx.AsyncBaseTransport = httpx.AsyncBaseTransport()
        self.status = status

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/locations"):
            body = b"<ResponseStatus><ErrorCode>X</ErrorCode><Description>no</Description>"
            return httpx.Response(self.status, content=body + b"</ResponseStatus>")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("status", [401, 403])
def test_credentials_refused_on_a_new_location_are_not_an_unroutable_address(
    url: str, status: int
) -> None:
    """The carrier refusing the gateway's credentials says nothing of the device's address:
    the report fails as the carrier's (502 upstream-auth to the device), not as an address
    to correct (422 unroutable-address), which a device would not send again."""

    async def main() -> None:
        async with world(url, holding=RefusingLocations(status)) as w:  # type: ignore[arg-type]
            with pytest.raises(UpstreamAuthError):
                await w.pipeline.report(report("ann", WHITE_HOUSE, 0))

    run(main)


class ForeignEndpoint(httpx.AsyncBaseTransport):
    """A carrier that holds the device under an endpoint ID of someone else's choosing, one
    no URL may carry (``foreign``): the update is 404, the create 409, the listing names it."""

    def __init__(self, foreign: str) -> None:
        self.inner: httpx.AsyncBaseTransport = httpx.AsyncBaseTransport()
        self.foreign = foreign

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        *_, parent, name = request.url.path.split("/")
        error = b"<ResponseStatus><ErrorCode>X</ErrorCode></ResponseStatus>"
        if request.method == "PUT" and parent == "e911s" and name != "locations":
            return httpx.Response(404, content=error)
        if request.method == "POST" and name == "e911s":
            return httpx.Response(409, content=error)
        if request.method == "GET" and name == "e911s":
            listing = (
                f"<EndpointListResponse><totalCount>1</totalCount><endpoints>"
                f"<endpointId>{self.foreign}</endpointId><alternateEndUserId>ann"
                f"</alternateEndUserId></endpoints></EndpointListResponse>"
            )
            return httpx.Response(200, content=listing.encode())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("foreign", ["a/b", "x" * 65, "..", "a b"])
def test_a_foreign_endpoint_id_no_url_may_carry_is_the_carriers_error(
    url: str, foreign: str
) -> None:
    """A listing that names the device's endpoint under an ID the client refuses to put in a
    path: an unreadable answer from the carrier (502), not a ValueError (500), and the ID is
    not remembered for the device's next reports."""

    async def main() -> None:
        async with world(url, holding=ForeignEndpoint(foreign)) as w:  # type: ignore[arg-type]
            with pytest.raises(UpstreamError):
                await w.pipeline.report(report("ann", WHITE_HOUSE, 0))
            assert w.pipeline.known.endpoint_id("ann") != foreign

    run(main)


class AddressNowRefused(httpx.AsyncBaseTransport):
    """Once ``refusing``: the carrier has lost the device's endpoint and location, and
    refuses the address (400) when its location is created again."""

    def __init__(self) -> None:
        self.inner: httpx.AsyncBaseTransport = httpx.AsyncBaseTransport()
        self.refusing = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.refusing:
            return await self.inner.handle_async_request(request)
        *_, parent, _ = request.url.path.split("/")
        error = b"<ResponseStatus><ErrorCode>X</ErrorCode><Description>bad</Description>"
        error += b"</ResponseStatus>"
        if request.method == "GET" and parent in ("e911s", "locations"):
            return httpx.Response(404, content=error)
        return httpx.Response(400, content=error)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_repair_whose_address_the_carrier_now_refuses_does_not_stop_reconciling(
    url: str,
) -> None:
    """A reconcile pass finds a device gone from the carrier, and its location too, and the
    carrier refuses the address when it is created again: that device is checked (refused)
    and the pass goes on, rather than an ``Unroutable`` ending the replica's reconciling."""

    async def main() -> None:
        carrier = AddressNowRefused()
        async with world(url, holding=carrier) as w:  # type: ignore[arg-type]
            await w.pipeline.report(report("ann", WHITE_HOUSE, 0))
            await w.pipeline.report(report("bob", EMPIRE_STATE, 0, telephone_number="+12025550144"))
            carrier.refusing = True
            checked = await w.pipeline.reconcile(w.store, "me", batch=5, interval=0)
            assert checked == 2
            # Both leases were given back (checked): another pass may take them again later.
            again = await w.store.lease("me", limit=5, lease_seconds=60)
            assert sorted(b.aeui for b in again) == ["ann", "bob"]

    run(main)


class CredentialsOutage(httpx.AsyncBaseTransport):
    """The simulator's transport. The next ``losing`` endpoint updates wait at the door
    (``held`` is set once all do) and, once ``outage`` is set, their connections drop
    (uncertain, and not applied). During the outage the carrier refuses the gateway's
    credentials: ``status`` 401 on every call, or 403 on writes only (a role without write
    rights); ``refused`` counts those answers."""

    def __init__(self, status: int) -> None:
        self.inner: httpx.AsyncBaseTransport = httpx.AsyncBaseTransport()
        self.status = status
        self.losing = 0
        self.held = asyncio.Event()
        self.outage = asyncio.Event()
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.outage.is_set() and (self.status == 401 or request.method != "GET"):
            self.refused += 1
            body = b"<ResponseStatus><ErrorCode>UNAUTHORIZED</ErrorCode></ResponseStatus>"
            return httpx.Response(self.status, content=body)
        if self.losing and request.method == "PUT":
            self.losing -= 1
            if not self.losing:
                self.held.set()
            await self.outage.wait()
            raise httpx.ReadError("the connection dropped (the test's)", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("status", [401, 403])
def test_a_credentials_outage_leaves_repairs_pending_not_failed(url: str, status: int) -> None:
    """Uncertain writes whose repair meets the carrier refusing the gateway's credentials:
    the operator's trouble, not the devices'. No device is recorded ``provisioning_failed``;
    each keeps its claim and its repair waits; a reconcile pass puts no device off for an
    interval; once the credentials are accepted, every repair is made."""

    async def main() -> None:
        sim = new_simulator(gateway_settings())
        carrier = CredentialsOutage(status)
        phones = {"ann": "+12025550143", "bob": "+12025550144"}
        async with world(url, sim, holding=carrier) as w:  # type: ignore[arg-type]
            w.pipeline.repairs.retry_delays = (0.02,)
            for aeui, phone in phones.items():
                await w.pipeline.report(report(aeui, WHITE_HOUSE, 0, telephone_number=phone))
            carrier.losing = len(phones)
            moves = [
                asyncio.create_task(
                    w.pipeline.report(report(aeui, EMPIRE_STATE, 5, telephone_number=phone))
                )
                for aeui, phone in phones.items()
            ]
            await carrier.held.wait()
            carrier.outage.set()
            for failed in await asyncio.gather(*moves, return_exceptions=True):
                assert isinstance(failed, UpstreamError) and failed.ambiguous
            # The repairs meet the refusal, again and again (each retried after 20 ms).
            await until(lambda: carrier.refused >= 2 * len(phones))
            before = datetime.now(UTC)
            assert await w.pipeline.reconcile(w.store, "me", batch=5, interval=0) == 0
            # None is put off (as if checked now): each is there for the next pass.
            later = await w.store.lease("x", limit=5, lease_seconds=1, older_than=before)
            assert sorted(b.aeui for b in later) == sorted(phones)
            for aeui in phones:
                stored = await w.store.get(aeui)
                assert stored is not None and not stored.confirmed
                assert stored.address is not None and "350" in str(stored.address)
                kinds = [e.kind for e in await w.store.history(aeui)]
                assert "provisioning_failed" not in kinds
            carrier.outage.clear()
            await w.pipeline.idle()
            for aeui in phones:
                stored = await w.store.get(aeui)
                assert stored is not None and stored.confirmed
                held = sim.state.simulator.store.endpoints[stored.endpoint_id]
                assert held.location_id == stored.location_id

    run(main)


def test_an_admin_edit_after_a_refused_move_keeps_the_devices_order(url: str) -> None:
    """The carrier refuses a move: the device keeps its place and that place's own time,
    its order at the refused report. An admin's edit then keeps that order too (with the
    place's time alone its claim would lose to the row it replaces), and a report older than
    the refused one is still superseded."""

    async def main() -> None:
        sim = new_simulator(gateway_settings())
        async with world(url, sim) as w:
            first = await w.pipeline.report(report("ann", WHITE_HOUSE, 0))
        refusing = RefuseEndpointWrites(httpx.AsyncBaseTransport(), "no")
        async with world(url, sim, holding=refusing) as w:  # type: ignore[arg-type]
            with pytest.raises(UpstreamError):
                await w.pipeline.report(report("ann", EMPIRE_STATE, 10))
            row = await w.store.get("ann")
            assert row is not None and row.location_id == first.binding.location_id
            assert (row.observed_at, row.ordered_at) == (T0, T0 + timedelta(seconds=10))
            where = first.binding.location_id
            desk = Endpoint(first.binding.endpoint_id, "ann", "FRONT DESK", where, "+12025550143")
            await w.pipeline.admin_edited(desk, credential="admin-key-0", before=row)
            row = await w.store.get("ann")
            assert row is not None and row.confirmed
            assert (row.source, row.caller_name) == ("admin", "FRONT DESK")
            with pytest.raises(Superseded):
                await w.pipeline.report(report("ann", SPACE_NEEDLE, 5))

    run(main)


class Recording(Holding):
    """The simulator's transport, noting of each request whether it was background work."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        super().__init__(inner)
        self.seen: list[tuple[str, bool]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, is_background()))
        return await super().handle_async_request(request)


def test_repairs_and_the_reconciler_call_the_carrier_as_background_work(url: str) -> None:
    # Background work takes at most half of the carrier client's connection slots: a burst
    # of repairs on a slow carrier cannot hold every slot a device's report needs.
    recording = Recording(httpx.AsyncHTTPTransport())

    async def main() -> None:
        async with world(url, holding=recording) as w:
            await w.pipeline.report(report("ann", WHITE_HOUSE, 0))
            assert recording.seen and not any(background for _, background in recording.seen)
            recording.seen.clear()
            w.pipeline.repairs.maybe_applied("ann")
            await w.pipeline.repairs.background.idle()
            assert recording.seen and all(background for _, background in recording.seen)
            recording.seen.clear()
            reconciling = asyncio.create_task(
                w.pipeline.reconcile_forever(w.store, "me", batch=5, interval=0.0, tick=0.01)
            )
            for _ in range(500):
                await asyncio.sleep(0.01)
                if recording.seen:
                    break
            reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciling
            assert recording.seen and all(background for _, background in recording.seen)
            recording.seen.clear()
            await w.pipeline.report(report("ann", EMPIRE_STATE, 10))  # the report's own: not
            assert recording.seen and not any(background for _, background in recording.seen)
            assert not is_background()

    run(main)
