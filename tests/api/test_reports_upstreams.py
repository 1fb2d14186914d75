"""The report pipeline's behaviour on either carrier API (``BANDWIDTH_API=seed|v2``): the
fewest calls, order, reconciliation, and the v2 API's asynchronous orders (202 pending)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.bandwidth.v2.models import ValidationStatus
from gateway.dlr.ids import endpoint_id_for
from gateway.dlr.pipeline import Pipeline
from gateway.settings import Settings
from gateway.simulator import SimulatorConfig
from gateway.simulator.v2 import V2Simulator, create_v2_simulator
from gateway.store import StateStore
from tests.bandwidth.v2.helpers import StatusReads
from tests.harness import (
    EMPIRE_STATE,
    SPACE_NEEDLE,
    WHITE_HOUSE,
    WILLIS_TOWER,
    Gateway,
    gateway,
    gateway_settings,
    new_simulator,
    phone_of,
    report,
    until,
)

#: Reads that only follow a v2 order to its end: bounded, and never writes.
STATUS_READS = ("getOrderDetails",)


@dataclass(frozen=True)
class Upstream:
    name: str
    settings: Callable[..., Settings]
    simulator: Callable[..., Starlette]
    #: The writes each case costs, in the API's own operation names.
    new_device: list[str]
    new_place: list[str]
    known_place: list[str]
    renamed: list[str]
    endpoint_key: str

    def held(self, gw: Gateway, aeui: str) -> str:
        return str(gw.simulator.state["endpoints"][endpoint_id_for(aeui)][self.endpoint_key])

    def misplace(self, gw: Gateway, aeui: str, location_id: str) -> None:
        """Something outside the gateway puts the device elsewhere at the carrier."""
        endpoint_id = endpoint_id_for(aeui)
        if isinstance(gw.simulator, V2Simulator):
            gw.simulator.v2.endpoints[endpoint_id].address_id = location_id
            return
        import dataclasses

        store: Any = gw.simulator.store
        store.endpoints[endpoint_id] = dataclasses.replace(
            store.endpoints[endpoint_id], location_id=location_id
        )


def _v2_settings(**changes: Any) -> Settings:
    return gateway_settings(bandwidth_api="v2", **changes)


def _v2_simulator(
    settings: Settings,
    order_seconds: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
    **config: Any,
) -> Starlette:
    return create_v2_simulator(
        SimulatorConfig(
            account_id=settings.bandwidth_account_id,
            username=settings.bandwidth_username,
            password=str(settings.bandwidth_password),
            **config,
        ),
        order_seconds=order_seconds,
        clock=clock,
    )


@dataclass
class Stopped:
    """The simulator's clock, still until the test moves it: its orders end when the test
    says, however long a loaded machine takes to get there."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


SEED = Upstream(
    "seed",
    gateway_settings,
    new_simulator,
    new_device=["createLocation", "updateEndpoint", "createEndpoint"],
    new_place=["createLocation", "updateEndpoint"],
    known_place=["updateEndpoint"],
    renamed=["updateEndpoint"],
    endpoint_key="locationId",
)
V2 = Upstream(
    "v2",
    _v2_settings,
    _v2_simulator,
    # The endpoint is looked for (404) before it is added; v2 cannot rename in place.
    new_device=["addAddress", "getEndpoint", "addEndpoints"],
    new_place=["addAddress", "updateEndpoint"],
    known_place=["updateEndpoint"],
    renamed=["deleteEndpoint", "addEndpoints"],
    endpoint_key="addressId",
)
UPSTREAMS = pytest.mark.parametrize("up", [SEED, V2], ids=lambda u: u.name)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def calls(gw: Gateway, since: int) -> tuple[list[str], int]:
    """The operations since ``since`` without the status reads, and how many of those."""
    ops = gw.operations(since)
    return [op for op in ops if op not in STATUS_READS], sum(op in STATUS_READS for op in ops)


async def _gw(up: Upstream, settings: Settings | None = None, **sim: Any) -> Any:
    settings = settings or up.settings()
    return gateway(settings, sim_app=up.simulator(settings, **sim))


def pipeline_of(gw: Gateway) -> Pipeline:
    found: Pipeline = gw.app.state.services.pipeline
    return found


@UPSTREAMS
def test_each_case_costs_the_fewest_calls(up: Upstream) -> None:
    async def scenario() -> None:
        async with await _gw(up) as gw:
            first = await gw.report(report("alice", WHITE_HOUSE, 0))
            assert first.status_code == 200, first.text
            assert first.json()["changes"] == {"location": "created", "endpoint": "created"}
            writes, reads = calls(gw, 0)
            assert writes == up.new_device
            assert reads <= 3

            seq = gw.last_seq()
            same = await gw.report(report("alice", WHITE_HOUSE, 10))
            assert same.json()["changes"] == {"location": "unchanged", "endpoint": "unchanged"}
            assert gw.operations(seq) == []  # unchanged: no call at all

            seq = gw.last_seq()
            moved = await gw.report(report("alice", EMPIRE_STATE, 20))
            assert moved.json()["changes"] == {"location": "created", "endpoint": "updated"}
            assert calls(gw, seq)[0] == up.new_place

            seq = gw.last_seq()
            back = await gw.report(report("alice", WHITE_HOUSE, 30))
            assert back.json()["changes"] == {"location": "unchanged", "endpoint": "updated"}
            writes, reads = calls(gw, seq)
            assert writes == up.known_place
            assert reads <= 3

            seq = gw.last_seq()
            renamed = await gw.report(report("alice", WHITE_HOUSE, 40, caller="ALICE JONES"))
            assert renamed.status_code == 200, renamed.text
            assert calls(gw, seq)[0] == up.renamed
            assert up.held(gw, "alice") == back.json()["locationId"]

    run(scenario())


@UPSTREAMS
def test_reports_for_one_device_are_applied_in_order(up: Upstream) -> None:
    async def scenario() -> None:
        async with await _gw(up, latency_ms=3) as gw:
            places = [WHITE_HOUSE, EMPIRE_STATE, SPACE_NEEDLE, WILLIS_TOWER] * 2
            answers = await asyncio.gather(
                *(gw.report(report("frank", place, i)) for i, place in enumerate(places))
            )
            assert {a.status_code for a in answers} <= {200, 409}
            newest = max(i for i, a in enumerate(answers) if a.status_code == 200)
            assert newest == len(places) - 1  # the newest report is never superseded
            assert up.held(gw, "frank") == answers[newest].json()["locationId"]

            seq = gw.last_seq()
            old = await gw.report(report("frank", WHITE_HOUSE, 1))
            assert old.status_code == 409
            assert old.json()["type"] == "/problems/superseded"
            assert gw.operations(seq) == []

    run(scenario())


@UPSTREAMS
def test_reconciliation_repairs_what_regressed(up: Upstream) -> None:
    async def scenario() -> None:
        async with await _gw(up) as gw:
            white = (await gw.report(report("rec", WHITE_HOUSE, 0))).json()["locationId"]
            empire = (await gw.report(report("other", EMPIRE_STATE, 0))).json()["locationId"]
            up.misplace(gw, "rec", empire)
            pipeline = pipeline_of(gw)
            store = pipeline.ledger
            assert isinstance(store, StateStore)
            checked = await pipeline.reconcile(store, "test", batch=100, interval=0)
            assert checked == 2
            assert up.held(gw, "rec") == white
            repairs = gw.metrics.registry.get_sample_value(
                "dlr_reconcile_repairs_total", {"reason": "regressed"}
            )
            assert repairs == 1
            history = (await gw.http.get("/v1/devices/rec/history")).json()["entries"]
            assert [e["kind"] for e in history] == ["repaired", "applied"]

    run(scenario())


@UPSTREAMS
def test_the_facade_lists_and_reads_on_either_api(up: Upstream) -> None:
    async def scenario() -> None:
        async with await _gw(up) as gw:
            done = await gw.report(report("facade", WHITE_HOUSE, 0))
            location_id = done.json()["locationId"]
            endpoint_id = endpoint_id_for("facade")
            listed = (await gw.http.get("/v1/endpoints")).json()
            assert [e["endpointId"] for e in listed["endpoints"]] == [endpoint_id]
            one = (await gw.http.get(f"/v1/endpoints/{endpoint_id}")).json()
            assert (one["locationId"], one["callerName"]) == (location_id, "ALICE SMITH")
            assert one["alternateEndUserId"] == "facade"
            where = (await gw.http.get(f"/v1/locations/{location_id}")).json()
            assert where["address"]["city"] == "WASHINGTON"
            assert (await gw.http.get("/v1/locations")).json()["locations"][0]["locationId"] == (
                location_id
            )
            missing = await gw.http.get("/v1/endpoints/nobody")
            assert missing.status_code == 404

    run(scenario())


# -- the v2 API's asynchronous orders ---------------------------------------------------


def test_v2_an_order_past_the_follow_timeout_is_202_then_completes_in_the_background() -> None:
    async def scenario() -> None:
        settings = _v2_settings(bandwidth_v2_follow_timeout=0.2, report_deadline=2.0)
        sim = _v2_simulator(settings, order_seconds=0.6)
        async with gateway(settings, sim_app=sim) as gw:
            answer = await gw.report(report("slow", WHITE_HOUSE, 0))
            assert answer.status_code == 202, answer.text
            body = answer.json()
            assert body["pending"] is True and body["orderId"]
            assert body["endpointId"] == endpoint_id_for("slow")
            location_id = body["locationId"]
            simulator: V2Simulator = gw.simulator  # type: ignore[assignment]
            assert endpoint_id_for("slow") not in simulator.v2.endpoints
            # Nothing is reported as done: the device's history is empty for now.
            history = (await gw.http.get("/v1/devices/slow/history")).json()["entries"]
            assert history == []
            # The repair follows the order in the background and records the outcome.
            await pipeline_of(gw).idle()
            assert simulator.v2.endpoints[endpoint_id_for("slow")].address_id == location_id
            history = (await gw.http.get("/v1/devices/slow/history")).json()["entries"]
            assert [e["kind"] for e in history] == ["applied"]
            stored = await pipeline_of(gw).ledger.get("slow")
            assert stored is not None and stored.confirmed
            # The next unchanged report costs nothing.
            seq = gw.last_seq()
            same = await gw.report(report("slow", WHITE_HOUSE, 5))
            assert same.status_code == 200
            assert gw.operations(seq) == []
            pending = gw.metrics.registry.get_sample_value(
                "dlr_upstream_orders_total", {"outcome": "pending"}
            )
            assert pending == 1.0
            assert (
                gw.metrics.registry.get_sample_value("dlr_reports_total", {"result": "pending"})
                == 1.0
            )

    run(scenario())


def test_v2_an_order_that_fails_after_the_202_is_recorded_and_not_retried_forever() -> None:
    """The carrier took the write (202 pending), then its order failed, and the carrier
    refuses the re-write too (the address turned INVALID there): the device's history and a
    ``provisioning_failed`` event say so in the carrier's words, the binding stays
    unconfirmed (nothing half-done reported as done), and the reconciler does not hammer the
    carrier with the same refused write every tick."""

    async def scenario() -> None:
        settings = _v2_settings(bandwidth_v2_follow_timeout=0.2)  # the default deadline, 8 s
        clock = Stopped()
        sim = _v2_simulator(settings, order_seconds=0.6, clock=clock)
        async with gateway(settings, sim_app=sim) as gw:
            answer = await gw.report(report("doomed", WHITE_HOUSE, 0))
            assert answer.status_code == 202, answer.text
            location_id = answer.json()["locationId"]
            simulator: V2Simulator = gw.simulator  # type: ignore[assignment]
            account = simulator.v2
            account.addresses[location_id] = account.addresses[location_id].model_copy(
                update={"validation_status": ValidationStatus.INVALID}
            )
            for order in account.orders.values():
                order.error = f"address {location_id} is INVALID: it cannot route 911 calls"
            clock.now += 0.6  # the order's time comes: it fails
            await pipeline_of(gw).idle()
            assert endpoint_id_for("doomed") not in account.endpoints
            history = (await gw.http.get("/v1/devices/doomed/history")).json()["entries"]
            assert [e["kind"] for e in history] == ["provisioning_failed"]
            (failed,) = history
            assert failed["before"] is None  # the carrier holds no endpoint for it
            assert failed["after"]["locationId"] == location_id
            assert "INVALID" in failed["after"]["carrierError"]["message"]
            stored = await pipeline_of(gw).ledger.get("doomed")
            assert stored is not None and not stored.confirmed
            await gw.app.state.events.emitter.idle()  # events are written after the fact
            events = (await gw.http.get("/v1/events")).json()["events"]
            (event,) = [e for e in events if e["type"] == "provisioning_failed"]
            assert event["data"]["aeui"] == "doomed" and "INVALID" in event["data"]["reason"]
            assert event["data"]["outcomeUnknown"] is False

            # The reconciler's orphan pass checks it once, then leaves it for a while.
            store: StateStore = pipeline_of(gw).ledger  # type: ignore[assignment]
            reconciler = pipeline_of(gw).reconciler
            seq = gw.last_seq()
            checked = await reconciler.reconcile(
                store, "r", batch=10, interval=3600.0, orphaned_after=0.0
            )
            assert checked == 1
            writes = [op for op in gw.operations(seq) if op not in STATUS_READS]
            assert writes and all(op != "getOrderDetails" for op in writes)
            seq = gw.last_seq()
            for _ in range(3):
                assert (
                    await reconciler.reconcile(
                        store, "r", batch=10, interval=3600.0, orphaned_after=30.0
                    )
                    == 0
                )
            assert gw.operations(seq) == []
            # Refused again: recorded once for this claim, not once per attempt.
            history = (await gw.http.get("/v1/devices/doomed/history")).json()["entries"]
            assert [e["kind"] for e in history] == ["provisioning_failed"]

    run(scenario())


def test_v2_a_move_whose_order_status_cannot_be_read_is_kept_not_undone() -> None:
    """The carrier took the move (202), then answered its status reads 503: the report
    fails (503), but the order goes on and completes. The gateway keeps the move as the
    device's desired binding, as the carrier does; it does not go back to the old place
    and mark that confirmed while the carrier holds the new one."""
    wraps: list[StatusReads] = []

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        wraps.append(StatusReads(inner, 503, "busy"))
        return wraps[0]

    async def scenario() -> None:
        settings = _v2_settings(bandwidth_v2_follow_timeout=1.0, report_deadline=3.0)
        sim = _v2_simulator(settings, order_seconds=0.3)
        async with gateway(settings, sim_app=sim, wrap=wrap) as gw:
            assert (await gw.report(report("held", WHITE_HOUSE, 0))).status_code == 200
            wraps[0].refused = True
            moved = await gw.report(report("held", EMPIRE_STATE, 10))
            assert moved.status_code == 503, moved.text
            await asyncio.sleep(0.4)  # the order completes at the carrier meanwhile
            wraps[0].refused = False
            await pipeline_of(gw).idle()
            held = V2.held(gw, "held")
            stored = await pipeline_of(gw).ledger.get("held")
            assert stored is not None and stored.location_id == held
            assert stored.confirmed
            read = (await gw.http.get("/v1/devices/held/location")).json()
            assert read["locationId"] == held
            assert read["address"]["city"] == "NEW YORK"

    run(scenario())


def test_v2_a_number_changed_at_another_replica_is_not_kept_by_a_move(tmp_path: Path) -> None:
    """v2 moves an endpoint with a PATCH that carries only its address; a new name or
    number takes a delete and an add. Replica B gave the device a new number; replica A,
    which wrote the old one, then applies a report (and an admin's edit) with the old
    number again: the carrier must hold that number, not keep B's while the gateway
    records the report as applied."""
    settings = _v2_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    first, second = "+12025550101", "+12025550102"

    async def scenario() -> None:
        sim = _v2_simulator(settings)
        async with gateway(settings, sim_app=sim) as a, gateway(settings, sim_app=sim) as b:
            assert (await a.report(report("num", WHITE_HOUSE, 0, phone=first))).status_code == 200
            assert (
                await b.report(report("num", EMPIRE_STATE, 10, phone=second))
            ).status_code == 200
            back = await a.report(report("num", SPACE_NEEDLE, 20, phone=first))
            assert back.status_code == 200, back.text
            endpoint_id = endpoint_id_for("num")
            held = a.simulator.v2.endpoints[endpoint_id]
            assert (held.phone_number, held.address_id) == (first, back.json()["locationId"])

            assert (
                await b.report(report("num", SPACE_NEEDLE, 30, phone=second))
            ).status_code == 200
            edited = await a.http.put(
                f"/v1/endpoints/{endpoint_id}",
                json={
                    "alternateEndUserId": "num",
                    "callerName": "ALICE SMITH",
                    "telephoneNumber": first,
                    "locationId": back.json()["locationId"],
                },
            )
            assert edited.status_code == 200, edited.text
            assert a.simulator.v2.endpoints[endpoint_id].phone_number == first

    run(scenario())


class _RefuseNumber(httpx.AsyncBaseTransport):
    """The carrier refuses (400) every endpoint add that carries ``number``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, number: str) -> None:
        self.inner = inner
        self.number = number

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        adding = request.method == "POST" and request.url.path.endswith("/endpoints")
        if adding and self.number.encode() in await request.aread():
            errors = [{"type": "bad-request", "description": "number not allowed", "code": 1}]
            return httpx.Response(400, json={"errors": errors})
        return await self.inner.handle_async_request(request)


def test_v2_a_new_number_refused_after_the_delete_leaves_no_endpoint_believed_held() -> None:
    """v2 changes a number by a delete and an add. When the add is refused, the carrier
    holds no endpoint for the device any longer: the gateway must not go back to believing
    the old one confirmed, so the device's next report at its old place and number writes
    the endpoint again instead of being found unchanged (no call, and no endpoint)."""
    old, new = "+12025550101", "+12025550102"

    async def scenario() -> None:
        settings = _v2_settings()
        sim = _v2_simulator(settings)
        refuse = functools.partial(_RefuseNumber, number=new)
        async with gateway(settings, sim_app=sim, wrap=refuse) as gw:
            assert (await gw.report(report("renum", WHITE_HOUSE, 0, phone=old))).status_code == 200
            refused = await gw.report(report("renum", WHITE_HOUSE, 10, phone=new))
            assert refused.status_code == 422, refused.text
            await pipeline_of(gw).idle()
            endpoint_id = endpoint_id_for("renum")
            assert endpoint_id not in gw.simulator.v2.endpoints  # deleted, not added
            stored = await pipeline_of(gw).ledger.get("renum")
            assert stored is not None and not stored.confirmed
            history = (await gw.http.get("/v1/devices/renum/history")).json()["entries"]
            assert history[0]["kind"] == "provisioning_failed"

            back = await gw.report(report("renum", WHITE_HOUSE, 20, phone=old))
            assert back.status_code == 200, back.text
            assert back.json()["changes"]["endpoint"] != "unchanged"
            assert gw.simulator.v2.endpoints[endpoint_id].phone_number == old

    run(scenario())


def test_v2_an_admin_delete_after_a_restart_forgets_the_device(tmp_path: Path) -> None:
    """v2 keeps no AEUI on an endpoint: only the process that wrote it knew whose it was.
    After a restart (or at another replica) an admin's DELETE must still forget the device,
    or reconciliation creates the endpoint again and the call-time query keeps answering
    the deleted device's place."""
    settings = _v2_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")

    async def scenario() -> None:
        sim = _v2_simulator(settings)
        async with gateway(settings, sim_app=sim) as gw:
            assert (await gw.report(report("del", WHITE_HOUSE, 0))).status_code == 200
        async with gateway(settings, sim_app=sim) as gw:
            endpoint_id = endpoint_id_for("del")
            deleted = await gw.http.delete(f"/v1/endpoints/{endpoint_id}")
            assert deleted.status_code == 200, deleted.text
            pipeline = pipeline_of(gw)
            assert await pipeline.ledger.get("del") is None
            history = (await gw.http.get("/v1/devices/del/history")).json()["entries"]
            assert [e["kind"] for e in history] == ["deleted", "applied"]
            store: StateStore = pipeline.ledger  # type: ignore[assignment]
            await pipeline.reconcile(store, "t", batch=10, interval=0)
            assert endpoint_id not in gw.simulator.v2.endpoints

    run(scenario())


def test_v2_an_admin_delete_whose_order_is_still_open_forgets_the_device() -> None:
    """An admin's DELETE whose order is still open when the gateway answers (202: the
    carrier took it) left the device in the state store: its location read and the
    call-time query kept answering its place, and reconciliation added the endpoint again
    once the carrier had deleted it. The device is forgotten (``deleted``) with the 202."""

    async def scenario() -> None:
        settings = _v2_settings(bandwidth_v2_follow_timeout=0.2, report_deadline=2.0)
        clock = Stopped()
        sim = _v2_simulator(settings, order_seconds=1.0, clock=clock)
        async with gateway(settings, sim_app=sim) as gw:
            assert (await gw.report(report("del", WHITE_HOUSE, 0))).status_code == 202
            clock.now += 1.0
            pipeline = pipeline_of(gw)
            await pipeline.idle()
            endpoint_id = endpoint_id_for("del")
            deleted = await gw.http.delete(f"/v1/endpoints/{endpoint_id}")
            assert deleted.status_code == 202, deleted.text
            assert deleted.json()["pending"] is True
            assert await pipeline.ledger.get("del") is None
            history = (await gw.http.get("/v1/devices/del/history")).json()["entries"]
            assert [e["kind"] for e in history] == ["deleted", "applied"]
            clock.now += 1.0  # the delete is carried out
            store: StateStore = pipeline.ledger  # type: ignore[assignment]
            await pipeline.reconcile(store, "t", batch=10, interval=0)
            await pipeline.idle()
            clock.now += 1.0  # an add the reconciler might have sent is carried out too
            gone = await gw.http.get(f"/v1/endpoints/{endpoint_id}")
            assert gone.status_code == 404, gone.text

    run(scenario())


def test_v2_an_admin_edited_device_is_still_read_after_a_restart(tmp_path: Path) -> None:
    """A device an admin moved has no address in the store, so its location is read from
    the carrier, whose v2 endpoint names no AEUI: after a restart (or at another replica)
    the endpoint at the device's own ID is still the device's, not "no location"."""
    settings = _v2_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")

    async def scenario() -> None:
        sim = _v2_simulator(settings)
        async with gateway(settings, sim_app=sim) as gw:
            assert (await gw.report(report("adm", WHITE_HOUSE, 0))).status_code == 200
            other = await gw.report(report("adm-2", EMPIRE_STATE, 0))
            edited = await gw.http.put(
                f"/v1/endpoints/{endpoint_id_for('adm')}",
                json={
                    "alternateEndUserId": "adm",
                    "callerName": "FRONT DESK",
                    "telephoneNumber": phone_of("adm"),
                    "locationId": other.json()["locationId"],
                },
            )
            assert edited.status_code == 200, edited.text
        async with gateway(settings, sim_app=sim) as gw:
            read = await gw.http.get("/v1/devices/adm/location")
            assert read.status_code == 200, read.text
            assert read.json()["locationId"] == other.json()["locationId"]
            assert read.json()["callerName"] == "FRONT DESK"

    run(scenario())


def test_v2_an_invalid_address_is_422_with_the_carriers_words() -> None:
    async def scenario() -> None:
        async with await _gw(V2) as gw:
            # Valid to the gateway's own checks; the carrier cannot deliver there.
            refused = await gw.report(
                report("inv", "100 Undeliverable St, Washington, DC 20500", 0)
            )
            assert refused.status_code == 422, refused.text
            problem = refused.json()
            assert problem["type"] == "/problems/unroutable-address"
            assert "INVALID" in problem["detail"]
            assert await pipeline_of(gw).ledger.get("inv") is None  # nothing half-done

    run(scenario())


def test_v2_the_facade_answers_501_where_v2_cannot() -> None:
    async def scenario() -> None:
        async with await _gw(V2) as gw:
            done = await gw.report(report("f501", WHITE_HOUSE, 0))
            location_id = done.json()["locationId"]
            changed = await gw.http.put(
                f"/v1/locations/{location_id}",
                json={
                    "address": {
                        "houseNumber": "1600",
                        "streetName": "PENNSYLVANIA",
                        "streetSuffix": "AVE",
                        "postDirectional": "NW",
                        "city": "WASHINGTON",
                        "stateCode": "DC",
                        "zip": "20500",
                    },
                    "description": "renamed",
                },
            )
            assert changed.status_code == 501, changed.text
            problem = changed.json()
            assert problem["type"] == "/problems/not-supported-upstream"
            assert "create a location" in problem["instead"]

    run(scenario())


def test_v2_a_slow_carrier_still_answers_202_before_the_reports_deadline() -> None:
    """The follow ends before the report's own deadline, whatever its timeout: writes that
    took most of the deadline leave the order pending (202), not the report failed (503)."""

    async def scenario() -> None:
        settings = _v2_settings(bandwidth_v2_follow_timeout=1.4, report_deadline=1.5)
        sim = _v2_simulator(settings, order_seconds=5.0, latency_ms=250)
        async with gateway(settings, sim_app=sim) as gw:
            answer = await gw.report(report("late", WHITE_HOUSE, 0))
            assert answer.status_code == 202, answer.text
            assert answer.json()["pending"] is True
            await pipeline_of(gw).aclose()  # the background follow-up is tested above

    run(scenario())


@contextlib.asynccontextmanager
async def _restarted_behind_an_open_add(tmp_path: Path) -> AsyncIterator[tuple[Gateway, Stopped]]:
    """A gateway restarted (a new app on the same SQLite file) while device ``slow``'s add is
    still open at the carrier (its orders take 1 s of the simulator's stopped clock)."""
    settings = _v2_settings(
        bandwidth_v2_follow_timeout=0.2,
        report_deadline=2.0,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'state.db'}",
    )
    clock = Stopped()
    sim = _v2_simulator(settings, order_seconds=1.0, clock=clock)
    async with gateway(settings, sim_app=sim) as before:
        assert (await before.report(report("slow", WHITE_HOUSE, 0))).status_code == 202
    async with gateway(settings, sim_app=sim) as after:
        yield after, clock


def test_v2_a_report_after_a_restart_behind_an_open_add_is_503_not_404(tmp_path: Path) -> None:
    """The gateway restarted (a new app on the same store) while a new device's add was
    still open at the carrier: the carrier answers the add 409 and the endpoint's read 404.
    The device's next report was answered 404 "the carrier has no such record"; it is a
    503 now (nothing sent, the report not applied: the device reports again), and once the
    order has ended the device's next report is carried to the carrier."""

    async def scenario() -> None:
        async with _restarted_behind_an_open_add(tmp_path) as (after, clock):
            moved = await after.report(report("slow", EMPIRE_STATE, 10))
            assert moved.status_code == 503, moved.text
            clock.now += 1.0  # the first order ends
            again = await after.report(report("slow", EMPIRE_STATE, 20))
            assert again.status_code in (200, 202), again.text
            clock.now += 1.0
            await pipeline_of(after).idle()
            assert V2.held(after, "slow") == again.json()["locationId"]

    run(scenario())


def test_v2_the_same_report_again_while_its_order_is_open_is_202_not_503() -> None:
    """A device moved (202: its order still open) and reports the same place again, as a
    device does every so often: nothing new to send, the carrier has taken this very
    change. It was answered 503 "the carrier cannot be reached" and its report undone (a
    slow carrier an outage to every device that reports); it is answered 202 with the open
    order's ID now, and its time is kept."""

    async def scenario() -> None:
        settings = _v2_settings(bandwidth_v2_follow_timeout=0.2, report_deadline=2.0)
        clock = Stopped()
        sim = _v2_simulator(settings, order_seconds=1.0, clock=clock)
        async with gateway(settings, sim_app=sim) as gw:
            assert (await gw.report(report("dev", WHITE_HOUSE, 0))).status_code == 202
            clock.now += 1.0
            await pipeline_of(gw).idle()
            moved = await gw.report(report("dev", EMPIRE_STATE, 10))
            assert moved.status_code == 202, moved.text
            seq = gw.last_seq()
            again = await gw.report(report("dev", EMPIRE_STATE, 20))
            assert again.status_code == 202, again.text
            assert again.json()["orderId"] == moved.json()["orderId"]
            assert again.json()["locationId"] == moved.json()["locationId"]
            assert calls(gw, seq)[0] == []  # nothing written again
            clock.now += 1.0
            await pipeline_of(gw).idle()
            stored = await pipeline_of(gw).ledger.get("dev")
            assert stored is not None and stored.confirmed
            assert stored.location_id == V2.held(gw, "dev") == moved.json()["locationId"]
            assert stored.observed_at is not None and stored.observed_at.second == 20
            # A move elsewhere while an order is open is still held back (503).
            moved = await gw.report(report("dev", WHITE_HOUSE, 30))
            assert moved.status_code == 202, moved.text
            back = await gw.report(report("dev", EMPIRE_STATE, 40))
            assert back.status_code == 503, back.text

    run(scenario())


def test_v2_a_restart_behind_an_open_add_is_no_refusal_to_the_reconciler(tmp_path: Path) -> None:
    """After a restart behind a new device's add still open, the reconciler's check of the
    unconfirmed device met the same 409-then-404 and took it for the carrier's refusal: a
    ``provisioning_failed`` in the device's history (and an event) for an order that was
    only slow. It is checked again later now, and confirmed once the order has ended."""

    async def scenario() -> None:
        async with _restarted_behind_an_open_add(tmp_path) as (after, clock):
            pipeline = pipeline_of(after)
            store: StateStore = pipeline.ledger  # type: ignore[assignment]
            for _ in range(2):
                await pipeline.reconciler.reconcile(
                    store, "r", batch=10, interval=3600.0, orphaned_after=0.0
                )
                await pipeline.idle()
                history = (await after.http.get("/v1/devices/slow/history")).json()["entries"]
                assert "provisioning_failed" not in [e["kind"] for e in history]
                clock.now += 1.0  # the order ends
            stored = await pipeline.ledger.get("slow")
            assert stored is not None and stored.confirmed
            assert [e["kind"] for e in history] == ["applied"]

    run(scenario())


def test_v2_a_deleted_devices_open_order_is_settled_by_the_reconcilers_ticks() -> None:
    """An admin's delete answered pending: no later read settles its order (the device is
    gone), so the gateway's oldest open order grew for the life of the process and
    ``DlrUpstreamOrderStuck`` paged. The reconciler's ticks check such orders."""

    async def scenario() -> None:
        settings = _v2_settings(
            bandwidth_v2_follow_timeout=0.2, report_deadline=2.0, reconcile_tick=0.05
        )
        clock = Stopped()
        sim = _v2_simulator(settings, order_seconds=1.0, clock=clock)
        async with gateway(settings, sim_app=sim) as gw:
            upstream = gw.app.state.services.upstream
            assert (await gw.report(report("del", WHITE_HOUSE, 0))).status_code == 202
            clock.now += 1.0
            await pipeline_of(gw).idle()
            deleted = await gw.http.delete(f"/v1/endpoints/{endpoint_id_for('del')}")
            assert deleted.status_code == 202, deleted.text

            def oldest() -> float:
                found = gw.metrics.registry.get_sample_value(
                    "dlr_upstream_order_oldest_open_seconds"
                )
                return found or 0.0

            await until(lambda: oldest() > 0.0)
            await asyncio.sleep(0.2)
            assert oldest() > 0.0  # still open at the carrier: kept
            upstream.sweep_after = 0.0
            clock.now += 1.0  # the carrier carries the delete out
            await until(lambda: oldest() == 0.0)

    run(scenario())
