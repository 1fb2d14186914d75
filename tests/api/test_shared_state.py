"""The pipeline on the state store: order across restarts, history, reconciliation, outages.

Every test runs on both backends: a SQLite file and a real PostgreSQL on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.bandwidth.models import Endpoint
from gateway.dlr.ids import endpoint_id_for
from gateway.dlr.pipeline import Pipeline
from gateway.settings import Settings
from gateway.simulator import SimulatorConfig, SimulatorTransport
from gateway.simulator.v2 import create_v2_simulator
from gateway.store import StateStore
from tests.harness import (
    EMPIRE_STATE,
    SPACE_NEEDLE,
    WHITE_HOUSE,
    Gateway,
    Hold,
    Holding,
    gateway,
    gateway_settings,
    new_simulator,
    report,
)
from tests.pg import PostgresServer


@pytest.fixture
def settings(shared_settings: Settings) -> Settings:
    """This module's gateways share a database (``shared_settings``), not the in-memory one."""
    return shared_settings


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def pipeline_of(gw: Gateway) -> Pipeline:
    found: Pipeline = gw.app.state.services.pipeline
    return found


def test_order_and_bindings_survive_a_restart(settings: Settings) -> None:
    async def scenario() -> None:
        sim_app = new_simulator(settings)
        async with gateway(settings, sim_app=sim_app) as gw:
            assert (await gw.report(report("ann", WHITE_HOUSE, 100))).status_code == 200
        async with gateway(settings, sim_app=sim_app) as gw:
            seq = gw.last_seq()
            # Unchanged after a restart: the store knows the carrier holds it; no call.
            same = await gw.report(report("ann", WHITE_HOUSE, 110))
            assert same.status_code == 200
            assert same.json()["changes"] == {"location": "unchanged", "endpoint": "unchanged"}
            assert gw.operations(seq) == []
        async with gateway(settings, sim_app=sim_app) as gw:
            # An older report after a restart is still older.
            old = await gw.report(report("ann", EMPIRE_STATE, 50))
            assert old.status_code == 409
            assert old.json()["newestObservedAt"].startswith("2026-11-01T12:01:50")
            held = gw.simulator.state["endpoints"][endpoint_id_for("ann")]["locationId"]
            assert held == same.json()["locationId"]

    run(scenario())


def test_fewest_calls_and_one_create_on_the_store(settings: Settings) -> None:
    async def scenario() -> None:
        async with gateway(settings, latency_ms=2) as gw:
            answers = await asyncio.gather(
                *(gw.report(report(f"d{i}", SPACE_NEEDLE, 0)) for i in range(20))
            )
            assert {a.status_code for a in answers} == {200}
            assert gw.operations().count("createLocation") == 1
            seq = gw.last_seq()
            again = await asyncio.gather(
                *(gw.report(report(f"d{i}", SPACE_NEEDLE, 5)) for i in range(20))
            )
            assert {a.json()["changes"]["endpoint"] for a in again} == {"unchanged"}
            assert gw.operations(seq) == []
            moved = await gw.report(report("d0", WHITE_HOUSE, 10))
            assert moved.status_code == 200
            assert gw.operations(seq) == ["createLocation", "updateEndpoint"]

    run(scenario())


def test_a_move_another_replica_already_applied_costs_no_carrier_call(
    settings: Settings,
) -> None:
    """Replica A still caches the device's old place when its next report brings the place
    replica B already applied: A's claim finds that binding confirmed, and writes nothing."""

    async def scenario() -> None:
        sim_app = new_simulator(settings)
        async with gateway(settings, sim_app=sim_app) as a, gateway(settings, sim_app=sim_app) as b:
            assert (await a.report(report("ann", WHITE_HOUSE, 100))).status_code == 200
            moved = await b.report(report("ann", EMPIRE_STATE, 110))
            assert moved.status_code == 200
            seq = a.last_seq()
            same = await a.report(report("ann", EMPIRE_STATE, 120))
            assert same.status_code == 200, same.text
            assert same.json()["changes"] == {"location": "unchanged", "endpoint": "unchanged"}
            assert same.json()["locationId"] == moved.json()["locationId"]
            assert a.operations(seq) == []
            # A older than what A saw, to a place no one knows: refused before any carrier call.
            old = await a.report(report("ann", SPACE_NEEDLE, 90))
            assert old.status_code == 409
            again = await a.report(report("ann", EMPIRE_STATE, 130))
            assert again.json()["changes"] == {"location": "unchanged", "endpoint": "unchanged"}
            assert a.operations(seq) == []
            held = a.simulator.state["endpoints"][endpoint_id_for("ann")]["locationId"]
            assert held == moved.json()["locationId"]
            stored = await pipeline_of(a).ledger.get("ann")
            assert stored is not None and stored.confirmed
            assert stored.location_id == held

    run(scenario())


def test_reads_at_one_replica_follow_a_move_made_at_another(postgres_url: str) -> None:
    """Replica A caches the device's first place and number; B then moves it and gives it a
    new number. A's location read and the name and number a PIDF-LO report without them
    keeps are B's, as A's call-time query answers: not what A's cache still holds."""
    from gateway.store import upgrade

    upgrade(postgres_url)
    settings = gateway_settings(database_url=postgres_url)

    async def scenario() -> None:
        sim_app = new_simulator(settings)
        async with gateway(settings, sim_app=sim_app) as a, gateway(settings, sim_app=sim_app) as b:
            assert (await a.report(report("ann", WHITE_HOUSE, 100))).status_code == 200
            assert pipeline_of(a).cached("ann") is not None
            moved = await b.report(report("ann", EMPIRE_STATE, 110, phone="+12025550188"))
            assert moved.status_code == 200
            read = await a.http.get("/v1/devices/ann/location")
            assert read.status_code == 200
            assert read.json()["locationId"] == moved.json()["locationId"]
            assert read.json()["telephoneNumber"] == "+12025550188"
            caller = await pipeline_of(a).current_caller("ann", read_carrier=False)
            assert caller == ("ALICE SMITH", "+12025550188")

    run(scenario())


def test_history_is_kept_and_paged(settings: Settings) -> None:
    async def scenario() -> None:
        async with gateway(settings) as gw:
            for i, place in enumerate([WHITE_HOUSE, EMPIRE_STATE, SPACE_NEEDLE, WHITE_HOUSE]):
                assert (await gw.report(report("hist", place, i * 10))).status_code == 200
            # An unchanged report is not a change: no history row.
            assert (await gw.report(report("hist", WHITE_HOUSE, 50))).status_code == 200
            page = (await gw.http.get("/v1/devices/hist/history?limit=3")).json()
            assert [e["kind"] for e in page["entries"]] == ["applied"] * 3
            assert page["entries"][0]["observedAt"].startswith("2026-11-01T12:00:30")
            assert page["entries"][0]["credential"].startswith("admin-key-")
            ids = [e["id"] for e in page["entries"]]
            assert ids == sorted(ids, reverse=True)
            rest = (
                await gw.http.get(f"/v1/devices/hist/history?limit=3&before={page['nextBefore']}")
            ).json()
            assert len(rest["entries"]) == 1
            assert rest["entries"][0]["fromLocationId"] is None
            assert rest["nextBefore"] is None
            bad = await gw.http.get("/v1/devices/hist/history?limit=0")
            assert bad.status_code == 422

    run(scenario())


def test_reconciliation_repairs_what_regressed_and_keeps_admin_edits(
    settings: Settings,
) -> None:
    async def scenario() -> None:
        async with gateway(settings) as gw:
            white = (await gw.report(report("rec", WHITE_HOUSE, 0))).json()["locationId"]
            empire = (await gw.report(report("other", EMPIRE_STATE, 0))).json()["locationId"]
            endpoint_id = endpoint_id_for("rec")
            # Something outside the gateway puts the device somewhere else at the carrier.
            sim = httpx.AsyncClient(
                transport=SimulatorTransport(app=gw.sim_app),
                base_url=settings.bandwidth_base_url,
                auth=(settings.bandwidth_username, str(settings.bandwidth_password)),
            )
            async with sim:
                from gateway.bandwidth import codec

                stray = Endpoint(endpoint_id, "rec", "ALICE SMITH", empire, "+12025550143")
                path = f"/accounts/{settings.bandwidth_account_id}/e911s/{endpoint_id}"
                answer = await sim.put(path, content=codec.encode(stray))
                assert answer.status_code == 200
            pipeline = pipeline_of(gw)
            store = pipeline.ledger
            assert isinstance(store, StateStore)
            checked = await pipeline.reconcile(store, "test", batch=100, interval=0)
            assert checked == 2
            held = gw.simulator.state["endpoints"][endpoint_id]["locationId"]
            assert held == white
            repairs = gw.metrics.registry.get_sample_value(
                "dlr_reconcile_repairs_total", {"reason": "regressed"}
            )
            assert repairs == 1

            # An admin edit through the facade becomes the desired binding: kept.
            edited = await gw.http.put(
                f"/v1/endpoints/{endpoint_id}",
                json={
                    "alternateEndUserId": "rec",
                    "callerName": "FRONT DESK",
                    "telephoneNumber": "+12025550143",
                    "locationId": empire,
                },
            )
            assert edited.status_code == 200, edited.text
            await pipeline.reconcile(store, "test", batch=100, interval=0)
            record = gw.simulator.state["endpoints"][endpoint_id]
            assert (record["locationId"], record["callerName"]) == (empire, "FRONT DESK")
            history = (await gw.http.get("/v1/devices/rec/history")).json()["entries"]
            # Newest first: the admin's edit, the repair, the report the carrier first took.
            assert [e["kind"] for e in history] == ["admin_edit", "repaired", "applied"]
            repaired = history[1]
            assert (repaired["fromLocationId"], repaired["toLocationId"]) == (empire, white)

            # The device's next report still applies as usual.
            back = await gw.report(report("rec", WHITE_HOUSE, 10))
            assert back.status_code == 200
            assert gw.simulator.state["endpoints"][endpoint_id]["locationId"] == white

    run(scenario())


def test_a_report_observed_before_an_admin_deleted_the_device_does_not_bring_it_back(
    settings: Settings,
) -> None:
    """An admin deletes a device, and a report observed before the deletion arrives late (a
    queue, a retry): superseded, as an older report is, before any carrier call (not even
    its location's), also after a restart. A report observed after the deletion creates the
    device again; an admin's endpoint for a deleted device is kept against a late report as
    well."""

    async def scenario() -> None:
        sim_app = new_simulator(settings)
        async with gateway(settings, sim_app=sim_app) as gw:
            before = datetime.now(UTC)
            for aeui in ("gone", "kept"):
                placed = await gw.report(report(aeui, WHITE_HOUSE, 100))
                assert placed.status_code == 200, placed.text
                deleted = await gw.http.delete(f"/v1/endpoints/{placed.json()['endpointId']}")
                assert deleted.status_code == 200, deleted.text
            white = placed.json()["locationId"]
        for _ in range(2):  # the second time on a restarted gateway: the store remembers
            async with gateway(settings, sim_app=sim_app) as gw:
                since = gw.last_seq()
                late = await gw.report(report("gone", EMPIRE_STATE, 200))
                assert gw.operations(since) == []
                assert late.status_code == 409, late.text
                assert late.json()["type"] == "/problems/superseded"
                assert datetime.fromisoformat(late.json()["newestObservedAt"]) >= before
                assert endpoint_id_for("gone") not in gw.simulator.state["endpoints"]
                assert await pipeline_of(gw).ledger.get("gone") is None
        async with gateway(settings, sim_app=sim_app) as gw:
            now = datetime.now(UTC).isoformat()
            back = await gw.report(report("gone", EMPIRE_STATE, observedAt=now))
            assert back.status_code == 200, back.text
            assert back.json()["changes"]["endpoint"] == "created"
            held = gw.simulator.state["endpoints"][endpoint_id_for("gone")]
            assert held["locationId"] == back.json()["locationId"]
            desk = {
                "alternateEndUserId": "kept",
                "callerName": "FRONT DESK",
                "telephoneNumber": report("kept", None)["telephoneNumber"],
                "locationId": white,
            }
            created = await gw.http.post("/v1/endpoints", json=desk)
            assert created.status_code == 201, created.text
            late = await gw.report(report("kept", EMPIRE_STATE, 200))
            assert late.status_code == 409, late.text
            held = gw.simulator.state["endpoints"][endpoint_id_for("kept")]
            assert (held["locationId"], held["callerName"]) == (white, "FRONT DESK")

    run(scenario())


def test_a_delete_retried_after_its_answer_was_lost_still_forgets_the_device(
    settings: Settings,
) -> None:
    """An admin's DELETE reached the carrier, but its answer was lost (a timeout, the pod
    killed): the store still binds the device. Retried, the carrier has no such endpoint:
    the device goes all the same, recorded, so reconciliation does not create the endpoint
    again and no read or 911 query answers the deleted device's place."""

    async def scenario() -> None:
        async with gateway(settings) as gw:
            assert (await gw.report(report("gone", WHITE_HOUSE, 0))).status_code == 200
            endpoint_id = endpoint_id_for("gone")
            del gw.simulator.store.endpoints[endpoint_id]  # the first DELETE, applied
            again = await gw.http.delete(f"/v1/endpoints/{endpoint_id}")
            assert again.status_code == 200, again.text
            pipeline = pipeline_of(gw)
            assert await pipeline.ledger.get("gone") is None
            assert (await gw.http.get("/v1/devices/gone/location")).status_code == 404
            store = pipeline.ledger
            assert isinstance(store, StateStore)
            await pipeline.reconcile(store, "t", batch=10, interval=0)
            assert endpoint_id not in gw.simulator.store.endpoints
            history = (await gw.http.get("/v1/devices/gone/history")).json()["entries"]
            assert [e["kind"] for e in history] == ["deleted", "applied"]
            # An endpoint no one has, and the gateway binds no device to: still 404.
            nobody = await gw.http.delete(f"/v1/endpoints/{endpoint_id_for('nobody')}")
            assert nobody.status_code == 404

    run(scenario())


async def _dead_replicas_claim(gw: Gateway, aeui: str) -> tuple[StateStore, str, str, str]:
    """``aeui`` at the White House, then a dead replica's claim of the Empire State for it,
    never written to the carrier: the store, its endpoint ID, the location the carrier
    holds and the one claimed."""
    white = (await gw.report(report(aeui, WHITE_HOUSE, 0))).json()["locationId"]
    empire = (await gw.report(report(f"{aeui}-2", EMPIRE_STATE, 0))).json()["locationId"]
    store = pipeline_of(gw).ledger
    assert isinstance(store, StateStore)
    stored = await store.get(aeui)
    assert stored is not None and stored.confirmed
    moved = dataclasses.replace(
        stored, location_id=empire, observed_at=stored.observed_at + timedelta(seconds=5)
    )
    assert (await store.claim(moved, credential="dead-replica")).won
    endpoint_id = endpoint_id_for(aeui)
    assert gw.simulator.state["endpoints"][endpoint_id]["locationId"] == white
    return store, endpoint_id, white, empire


def test_an_orphaned_write_is_repaired_before_its_periodic_turn(settings: Settings) -> None:
    """A replica killed between its claim and the carrier's answer leaves an unconfirmed
    binding the carrier never got. The next pass re-applies it once it is ``orphaned_after``
    old, although the device was checked moments ago (its periodic turn is an hour away)."""

    async def scenario() -> None:
        async with gateway(settings) as gw:
            store, endpoint_id, white, empire = await _dead_replicas_claim(gw, "orph")
            pipeline = pipeline_of(gw)

            # Not an orphan yet, and not due for a periodic check: nothing is touched.
            assert await pipeline.reconcile(store, "t", batch=10, interval=3600) == 0
            checked = await pipeline.reconcile(
                store, "t", batch=10, interval=3600, orphaned_after=3600
            )
            assert checked == 0
            assert gw.simulator.state["endpoints"][endpoint_id]["locationId"] == white

            checked = await pipeline.reconcile(
                store, "t", batch=10, interval=3600, orphaned_after=0
            )
            assert checked == 1
            assert gw.simulator.state["endpoints"][endpoint_id]["locationId"] == empire
            row = await store.get("orph")
            assert row is not None and row.confirmed and row.location_id == empire

    run(scenario())


def test_an_orphaned_write_is_repaired_with_periodic_checks_turned_off(
    settings: Settings,
) -> None:
    """``GATEWAY_RECONCILE_INTERVAL=0`` turns the periodic checks off, not the repair of a
    write a dead replica left uncertain: once the app ran no pass at all, and the carrier
    kept the old place for good."""
    quick = dataclasses.replace(
        settings,
        reconcile_interval=0.0,
        reconcile_tick=0.05,
        report_deadline=2.0,
        upstream_settle_timeout=0.5,
    )

    async def scenario() -> None:
        async with gateway(quick) as gw:
            store, endpoint_id, _, empire = await _dead_replicas_claim(gw, "orph0")
            for _ in range(300):  # orphaned 2.5 s after the claim; passes every 0.05 s
                if gw.simulator.state["endpoints"][endpoint_id]["locationId"] == empire:
                    break
                await asyncio.sleep(0.05)
            assert gw.simulator.state["endpoints"][endpoint_id]["locationId"] == empire
            row = await store.get("orph0")
            assert row is not None and row.confirmed and row.location_id == empire

    run(scenario())


def test_a_database_outage_never_acknowledges(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.create_database()
    from gateway.store import upgrade

    upgrade(url)

    async def scenario() -> None:
        settings = gateway_settings(database_url=url)
        async with gateway(settings) as gw:
            assert (await gw.report(report("out", WHITE_HOUSE, 0))).status_code == 200
            seq = gw.last_seq()
            # The group commit's own connection is open (an unchanged report used it).
            assert (await gw.report(report("out", WHITE_HOUSE, 1))).status_code == 200
            await asyncio.to_thread(postgres.stop)
            try:
                moved = await gw.report(report("out", EMPIRE_STATE, 10))
                same = await gw.report(report("out", WHITE_HOUSE, 11))
                ready = await gw.http.get("/readyz")
            finally:
                await asyncio.to_thread(postgres.start)
            # An unchanged report is not acknowledged either: its time was not stored.
            assert same.status_code == 503, same.text
            assert same.json()["type"] == "/problems/database-unavailable"
            # Back: the next unchanged report reconnects and is stored.
            again = await gw.report(report("out", WHITE_HOUSE, 12))
            assert again.status_code == 200, again.text
            assert again.json()["changes"] == {"location": "unchanged", "endpoint": "unchanged"}
            assert moved.status_code == 503, moved.text
            assert moved.json()["type"] == "/problems/database-unavailable"
            assert int(moved.headers["retry-after"]) >= 1
            assert gw.operations(seq) == []  # nothing written upstream
            # Every pod shares the database: readiness stays, and says so. Reports get 503
            # with Retry-After on every pod alike; the call-time query answers from memory.
            assert ready.status_code == 200, ready.text
            assert ready.json() | {"database": "unavailable", "fallback": "memory"} == ready.json()
            available = gw.metrics.registry.get_sample_value
            assert available("dlr_state_store_available", {"backend": "postgresql"}) == 0

    try:
        run(scenario())
    finally:
        postgres.drop_database(url)


def _through(holding: Holding) -> Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport]:
    """A ``wrap`` for ``gateway``: its carrier requests go through ``holding``."""

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        holding.inner = inner
        return holding

    return wrap


def _api(settings: Settings, api: str) -> tuple[Settings, Any, str]:
    """``settings`` on the carrier API ``api``, a simulator of it, and the method of an
    endpoint's move there."""
    if api == "seed":
        return settings, new_simulator(settings), "PUT"
    setup = dataclasses.replace(settings, bandwidth_api="v2")
    config = SimulatorConfig(
        account_id=setup.bandwidth_account_id,
        username=setup.bandwidth_username,
        password=str(setup.bandwidth_password),
    )
    return setup, create_v2_simulator(config, order_seconds=0.02), "PATCH"


@dataclasses.dataclass
class _Raced:
    """Two replicas on one carrier, each carrier request of theirs through a ``Holding``,
    and device ``ann`` placed at the White House through ``one``."""

    one: Gateway
    two: Gateway
    first: Holding
    second: Holding
    #: The method of an endpoint's move on this carrier API.
    move: str
    endpoint_id: str

    async def held_move(self, place: str) -> tuple[Hold, asyncio.Task[httpx.Response]]:
        """``ann``'s report of a move to ``place`` at ``one``, claimed, its write held
        before it leaves."""
        waits = self.first.hold(self.move, landed=False)
        moving = asyncio.create_task(self.one.report(report("ann", place, 10)))
        await waits.reached.wait()
        return waits, moving


@contextlib.asynccontextmanager
async def _raced(settings: Settings, api: str) -> AsyncIterator[_Raced]:
    setup, sim_app, move = _api(settings, api)
    first, second = Holding(httpx.AsyncBaseTransport()), Holding(httpx.AsyncBaseTransport())
    async with (
        gateway(setup, sim_app=sim_app, wrap=_through(first)) as one,
        gateway(setup, sim_app=sim_app, wrap=_through(second)) as two,
    ):
        placed = await one.report(report("ann", WHITE_HOUSE, 0))
        assert placed.status_code == 200, placed.text
        yield _Raced(one, two, first, second, move, placed.json()["endpointId"])


@pytest.mark.parametrize("api", ["seed", "v2"])
def test_a_reports_write_landing_after_an_admins_edit_is_put_right(
    settings: Settings, api: str
) -> None:
    """Two replicas. A report's move (to P) is claimed at replica A, whose write is slow to
    leave; an admin's edit of the device's endpoint (to E) reaches the carrier through
    replica B first, and B is slow to record it. A's write lands after the admin's (the
    carrier takes P: it has no conditional writes) and A confirms its claim, no newer one
    being there yet; then B records the admin's edit, the device's desired binding from
    then on. Once the gateway's own follow-up work has settled, the carrier holds E, what
    the store says, not A's older P until a periodic check."""

    async def scenario() -> None:
        async with _raced(settings, api) as raced:
            one, two, endpoint_id = raced.one, raced.two, raced.endpoint_id
            key = "locationId" if api == "seed" else "addressId"

            def held(gw: Gateway) -> str:
                return str(gw.simulator.state["endpoints"][endpoint_id][key])

            other = await two.report(report("bob", EMPIRE_STATE, 0))
            empire = other.json()["locationId"]
            report_waits, moving = await raced.held_move(SPACE_NEEDLE)  # A claimed P
            admin_answer_waits = raced.second.hold(raced.move, landed=True)
            desk = {
                "alternateEndUserId": "ann",
                "callerName": "ALICE SMITH",
                "telephoneNumber": report("ann", None)["telephoneNumber"],
                "locationId": empire,
            }
            editing = asyncio.create_task(two.http.put(f"/v1/endpoints/{endpoint_id}", json=desk))
            await admin_answer_waits.reached.wait()  # the carrier holds E
            report_waits.released.set()
            moved = await moving  # the carrier took P after E; A's claim confirmed
            assert moved.status_code == 200, moved.text
            space = moved.json()["locationId"]
            assert held(one) == space
            admin_answer_waits.released.set()
            edited = await editing
            assert edited.status_code == 200, edited.text
            await asyncio.gather(pipeline_of(one).idle(), pipeline_of(two).idle())
            stored = await pipeline_of(one).ledger.get("ann")
            assert stored is not None and stored.location_id == empire
            assert stored.source == "admin"
            assert held(one) == empire
            # Put right by B's check after the edit, which found the carrier holding P.
            history = (await one.http.get("/v1/devices/ann/history")).json()["entries"]
            assert [e["kind"] for e in history[:3]] == ["repaired", "admin_edit", "applied"]
            assert (history[0]["fromLocationId"], history[0]["toLocationId"]) == (space, empire)

    run(scenario())


@pytest.mark.parametrize("api", ["seed", "v2"])
def test_a_reports_write_landing_after_an_admins_delete_is_deleted_again(
    settings: Settings, api: str
) -> None:
    """Two replicas. A report's move is claimed at replica A, whose write is slow to leave;
    an admin deletes the device's endpoint through replica B (the device gets a tombstone).
    A's write then finds no endpoint and creates it again, and A's confirmation is refused
    (the row is gone). Once the gateway's own follow-up work has settled, the carrier holds
    no endpoint for the deleted device (not one kept for ever: the store has no row for the
    reconciler to check), recorded; the report is not answered as applied."""

    async def scenario() -> None:
        async with _raced(settings, api) as raced:
            one, two, endpoint_id = raced.one, raced.two, raced.endpoint_id
            report_waits, moving = await raced.held_move(EMPIRE_STATE)  # A claimed the move
            gone = await two.http.delete(f"/v1/endpoints/{endpoint_id}")
            assert gone.status_code == 200, gone.text
            assert endpoint_id not in one.simulator.state["endpoints"]
            report_waits.released.set()
            moved = await moving
            await asyncio.gather(pipeline_of(one).idle(), pipeline_of(two).idle())
            assert await pipeline_of(one).ledger.get("ann") is None
            assert endpoint_id not in one.simulator.state["endpoints"]
            # Its write was undone: not answered as applied.
            assert moved.status_code == 409, moved.text
            assert moved.json()["type"] == "/problems/superseded"
            history = (await one.http.get("/v1/devices/ann/history")).json()["entries"]
            assert history[0]["kind"] == "deleted"
            assert history[0]["credential"] == "gateway"
            # The device reports again after its deletion: created again, and kept.
            now = datetime.now(UTC).isoformat()
            back = await two.report(report("ann", SPACE_NEEDLE, observedAt=now))
            assert back.status_code == 200, back.text
            await asyncio.gather(pipeline_of(one).idle(), pipeline_of(two).idle())
            assert endpoint_id in one.simulator.state["endpoints"]
            assert (await pipeline_of(one).repairs.repair("ann")) is False

    run(scenario())


@pytest.mark.parametrize("api", ["seed", "v2"])
def test_a_reports_write_confirmed_before_an_admins_delete_is_recorded_is_deleted_again(
    settings: Settings, api: str
) -> None:
    """As above, but the admin's deletion reaches the carrier through replica B, and B is
    slow to record it: A's write lands after the deletion (creating the endpoint again) and
    A confirms its claim, the row still being there. B's deletion of the row then finds it
    changed since B read it: the carrier is checked at once, and the endpoint deleted
    again."""

    async def scenario() -> None:
        async with _raced(settings, api) as raced:
            one, two, endpoint_id = raced.one, raced.two, raced.endpoint_id
            report_waits, moving = await raced.held_move(EMPIRE_STATE)  # A claimed the move
            admin_answer_waits = raced.second.hold("DELETE", landed=True)
            deleting = asyncio.create_task(two.http.delete(f"/v1/endpoints/{endpoint_id}"))
            await admin_answer_waits.reached.wait()  # the carrier took the deletion
            for _ in range(1000):  # v2: its order, done a moment later
                if endpoint_id not in one.simulator.state["endpoints"]:
                    break
                await asyncio.sleep(0.01)
            assert endpoint_id not in one.simulator.state["endpoints"]
            report_waits.released.set()
            moved = await moving  # created again; A's claim confirmed
            assert moved.status_code == 200, moved.text
            assert endpoint_id in one.simulator.state["endpoints"]
            admin_answer_waits.released.set()
            gone = await deleting
            assert gone.status_code == 200, gone.text
            await asyncio.gather(pipeline_of(one).idle(), pipeline_of(two).idle())
            assert await pipeline_of(one).ledger.get("ann") is None
            assert endpoint_id not in one.simulator.state["endpoints"]
            history = (await one.http.get("/v1/devices/ann/history")).json()["entries"]
            assert [(e["kind"], e["credential"]) for e in history[:2]] == [
                ("deleted", "gateway"),
                ("deleted", "admin-key-0"),
            ]

    run(scenario())


@pytest.mark.parametrize("api", ["seed", "v2"])
def test_the_repair_of_a_deleted_device_deletes_only_its_own_ghost(
    settings: Settings, api: str
) -> None:
    """The repair that deletes an endpoint a late write re-created for a deleted device
    leaves alone the endpoint of a device the gateway never deleted, and (on the seed API,
    whose endpoints name their device) another device's endpoint at the deleted one's ID.
    An admin's endpoint for the deleted device, created at the carrier just before such a
    repair runs (at another replica) and recorded after it, is written back at once."""

    async def scenario() -> None:
        setup, sim_app, _ = _api(settings, api)
        async with gateway(setup, sim_app=sim_app) as one, gateway(setup, sim_app=sim_app) as two:
            upstream = two.app.state.services.upstream
            white = (await one.report(report("ann", WHITE_HOUSE, 0))).json()["locationId"]

            def desk(aeui: str, endpoint_id: str | None = None) -> Endpoint:
                return Endpoint(
                    endpoint_id=endpoint_id or endpoint_id_for(aeui),
                    alternate_end_user_id=aeui,
                    caller_name="FRONT DESK",
                    location_id=white,
                    telephone_number=report(aeui, None)["telephoneNumber"],
                )

            # Never deleted, no row: the carrier's endpoint is not the gateway's to delete.
            await upstream.create_endpoint(desk("carol"))
            assert await pipeline_of(one).repairs.repair("carol") is False
            assert endpoint_id_for("carol") in one.simulator.state["endpoints"]
            assert await pipeline_of(one).repairs.repair("ann") is False
            assert endpoint_id_for("ann") in one.simulator.state["endpoints"]
            gone = await one.http.delete(f"/v1/endpoints/{endpoint_id_for('ann')}")
            assert gone.status_code == 200, gone.text
            if api == "seed":
                # Deleted, but the endpoint at its ID is another device's.
                await upstream.create_endpoint(desk("erin", endpoint_id_for("ann")))
                assert await pipeline_of(one).repairs.repair("ann") is False
                assert (
                    one.simulator.state["endpoints"][endpoint_id_for("ann")]["alternateEndUserId"]
                    == "erin"
                )
                await upstream.delete_endpoint(endpoint_id_for("ann"))
            # An admin creates the deleted device's endpoint through B (as the handler does:
            # the row read, the carrier written, then the edit recorded); a repair at A runs
            # in between, and deletes it, the device having no row yet.
            before = await pipeline_of(two).before_edit("ann")
            created = await upstream.create_endpoint(desk("ann"))
            assert await pipeline_of(one).repairs.repair("ann") is True
            assert endpoint_id_for("ann") not in one.simulator.state["endpoints"]
            await pipeline_of(two).admin_edited(created, credential="admin", before=before)
            await asyncio.gather(pipeline_of(one).idle(), pipeline_of(two).idle())
            stored = await pipeline_of(one).ledger.get("ann")
            assert stored is not None and stored.source == "admin"
            assert endpoint_id_for("ann") in one.simulator.state["endpoints"]

    run(scenario())
