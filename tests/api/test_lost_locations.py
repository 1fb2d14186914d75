"""A location the carrier no longer holds (an admin deleted it, the carrier lost it) is never
trusted again: no report at its address stays broken, on any replica, after a restart."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import pytest

from gateway.app import SANDBOX_PREFIX
from gateway.dlr.binding import address_from_json
from gateway.dlr.pipeline.writes import _same_place
from gateway.store import StateStore
from tests.harness import (
    EMPIRE_STATE,
    WHITE_HOUSE,
    WHITE_HOUSE_ADDRESS,
    Gateway,
    RefuseEndpointWrites,
    gateway,
    gateway_settings,
    report,
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def store_of(gw: Gateway) -> StateStore:
    store = gw.app.state.services.pipeline.ledger
    assert isinstance(store, StateStore)
    return store


def test_an_admin_deleted_location_is_created_again_by_the_next_report() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            x = (await gw.report(report("a", WHITE_HOUSE, 0))).json()["locationId"]
            assert (await gw.report(report("a", EMPIRE_STATE, 1))).status_code == 200
            deleted = await gw.http.delete(f"/v1/locations/{x}")
            assert deleted.status_code == 200
            assert not await (await store_of(gw)).locations_known(x)
            again = await gw.report(report("b", WHITE_HOUSE, 2))
            assert again.status_code == 200, again.text
            assert again.json()["changes"] == {"location": "created", "endpoint": "created"}
            assert x in gw.simulator.state["locations"]
            history = (await gw.http.get(f"/v1/locations/{x}/history")).json()
            assert [e["kind"] for e in history["entries"]] == ["location_deleted"]
            assert history["entries"][0]["credential"] == "admin-key-0"
            assert history["entries"][0]["before"]["locationId"] == x

    run(scenario())


def test_a_location_deleted_on_another_replica_or_lost_by_the_carrier(tmp_path: Path) -> None:
    """Replica two still trusts the location (its own cache, and after a restart the shared
    store); the carrier's refusal makes it forget the location, create it again and retry."""

    async def scenario() -> None:
        settings = gateway_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
        async with gateway(settings) as one:
            x = (await one.report(report("a", WHITE_HOUSE, 0))).json()["locationId"]
            assert (await one.report(report("a", EMPIRE_STATE, 1))).status_code == 200
            sim_app = one.sim_app
        async with gateway(settings, sim_app=sim_app) as two:
            # The carrier loses every record (a reset), behind every replica's back.
            reset = await two.http.post(f"{SANDBOX_PREFIX}/_sim/reset")
            assert reset.status_code == 200
            assert await (await store_of(two)).locations_known(x)
            seq = two.last_seq()
            moved = await two.report(report("b", WHITE_HOUSE, 2))
            assert moved.status_code == 200, moved.text
            assert two.operations(seq) == [
                "updateEndpoint",  # 404: a new device
                "createEndpoint",  # 400: the location does not exist
                "getLocation",  # 404: it is gone
                "createLocation",
                "updateEndpoint",  # the write again, from the start
                "createEndpoint",
            ]
            assert x in two.simulator.state["locations"]
            history = (await two.http.get(f"/v1/locations/{x}/history")).json()["entries"]
            assert [(e["kind"], e["credential"]) for e in history] == [("location_lost", "gateway")]
            # Recreated once: the next device at the address costs no location call.
            seq = two.last_seq()
            assert (await two.report(report("c", WHITE_HOUSE, 3))).status_code == 200
            assert "createLocation" not in two.operations(seq)

    run(scenario())


def test_a_refusal_for_another_reason_is_not_retried(tmp_path: Path) -> None:
    """The location is there: the carrier refused the endpoint for a reason of its own, so
    nothing is recreated and the report fails as before (422, the device keeps its binding)."""

    async def scenario() -> None:
        settings = gateway_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
        async with gateway(settings) as gw:
            x = (await gw.report(report("a", WHITE_HOUSE, 0))).json()["locationId"]
            sim_app = gw.sim_app
        refusing = functools.partial(RefuseEndpointWrites, description="callerName: not allowed")
        async with gateway(settings, sim_app=sim_app, wrap=refusing) as gw:
            seq = gw.last_seq()
            refused = await gw.report(report("a", WHITE_HOUSE, 1, caller="NEW NAME"))
            assert refused.status_code == 422, refused.text
            assert refused.json()["type"] == "/problems/upstream-rejected"
            assert gw.operations(seq) == ["getLocation"]  # it exists: no create, no retry
            assert x in gw.simulator.state["locations"]

    run(scenario())


def test_a_location_recreated_at_another_street_under_the_id_is_not_bound_to() -> None:
    """An admin deleted the location and created another one under its derived ID, at the
    same house number, state and ZIP but on another street: binding a device there would
    send its 911 calls to that street. The same address, however the carrier spells it,
    is taken."""

    async def scenario() -> None:
        async with gateway() as gw:
            x = (await gw.report(report("a", WHITE_HOUSE, 0))).json()["locationId"]
            assert (await gw.report(report("a", EMPIRE_STATE, 1))).status_code == 200
            assert (await gw.http.delete(f"/v1/locations/{x}")).status_code == 200
            other = {**WHITE_HOUSE_ADDRESS, "streetName": "OTHER", "streetSuffix": "ST"}
            del other["postDirectional"]
            created = await gw.http.post("/v1/locations", json={"locationId": x, "address": other})
            assert created.status_code == 201, created.text
            refused = await gw.report(report("b", WHITE_HOUSE, 2))
            assert refused.status_code == 422, refused.text
            assert "another address under this address's location ID" in refused.text
            endpoints = gw.simulator.state["endpoints"].values()
            assert all(e["locationId"] != x for e in endpoints)
            # The admin corrects it: the same address under the ID is bound to.
            assert (await gw.http.delete(f"/v1/locations/{x}")).status_code == 200
            body = {"locationId": x, "address": WHITE_HOUSE_ADDRESS}
            assert (await gw.http.post("/v1/locations", json=body)).status_code == 201
            bound = await gw.report(report("b", WHITE_HOUSE, 3))
            assert bound.status_code == 200, bound.text
            assert bound.json()["locationId"] == x
            assert bound.json()["changes"]["location"] == "unchanged"

    run(scenario())


#: 1600 North Street NW (a street named by a directional word).
NORTH_ST = {**WHITE_HOUSE_ADDRESS, "streetName": "NORTH", "streetSuffix": "ST"}
#: 100 N Main St.
MAIN_ST = {
    **WHITE_HOUSE_ADDRESS,
    "prefixDirectional": "N",
    "streetName": "MAIN",
    "streetSuffix": "ST",
    "postDirectional": None,
}


@pytest.mark.parametrize(
    ("ours", "held"),
    [
        # As the gateway sent it, as the simulator keeps it.
        (WHITE_HOUSE_ADDRESS, WHITE_HOUSE_ADDRESS),
        (
            WHITE_HOUSE_ADDRESS,
            {**WHITE_HOUSE_ADDRESS, "city": "Washington", "streetName": " pennsylvania "},
        ),
        (
            WHITE_HOUSE_ADDRESS,
            {
                **WHITE_HOUSE_ADDRESS,
                "streetName": "Pennsylvania Avenue Northwest",
                "streetSuffix": None,
                "postDirectional": None,
                "zip": "20500-0003",
            },
        ),
        (WHITE_HOUSE_ADDRESS, {**WHITE_HOUSE_ADDRESS, "city": None}),  # the carrier's does not say
        (
            {**WHITE_HOUSE_ADDRESS, "addressLine2": "Suite 4"},
            {**WHITE_HOUSE_ADDRESS, "addressLine2": "STE 4"},
        ),
        (
            MAIN_ST,
            {
                **MAIN_ST,
                "prefixDirectional": None,
                "streetName": "North Main Street",
                "streetSuffix": None,
            },
        ),
    ],
)
def test_the_same_place_as_the_carrier_spells_it(
    ours: dict[str, Any], held: dict[str, Any]
) -> None:
    report_address = address_from_json(ours)
    assert report_address is not None
    assert _same_place(address_from_json(held), report_address)


@pytest.mark.parametrize(
    ("ours", "held"),
    [
        (WHITE_HOUSE_ADDRESS, {**WHITE_HOUSE_ADDRESS, "streetName": "OTHER"}),
        (
            WHITE_HOUSE_ADDRESS,
            {
                **WHITE_HOUSE_ADDRESS,
                "streetName": "PENNSYLVANIA AVE",
                "streetSuffix": None,
                "postDirectional": "SE",
            },
        ),
        (WHITE_HOUSE_ADDRESS, {**WHITE_HOUSE_ADDRESS, "streetSuffix": "ST"}),
        (WHITE_HOUSE_ADDRESS, {**WHITE_HOUSE_ADDRESS, "postDirectional": "NE"}),
        (WHITE_HOUSE_ADDRESS, {**WHITE_HOUSE_ADDRESS, "city": "SPRINGFIELD"}),
        (WHITE_HOUSE_ADDRESS, {**WHITE_HOUSE_ADDRESS, "houseNumber": "1601"}),
        (WHITE_HOUSE_ADDRESS, {**WHITE_HOUSE_ADDRESS, "houseSuffix": "A"}),
        (WHITE_HOUSE_ADDRESS, {**WHITE_HOUSE_ADDRESS, "zip": "20501"}),
        (WHITE_HOUSE_ADDRESS, {**WHITE_HOUSE_ADDRESS, "addressLine2": "STE 4"}),
        # The building without the report's suite is not where the caller is.
        ({**WHITE_HOUSE_ADDRESS, "addressLine2": "STE 4"}, WHITE_HOUSE_ADDRESS),
        (
            {**WHITE_HOUSE_ADDRESS, "addressLine2": "STE 4"},
            {**WHITE_HOUSE_ADDRESS, "addressLine2": "STE 5"},
        ),
        (NORTH_ST, {**NORTH_ST, "streetName": "N"}),  # N Street is not North Street
    ],
)
def test_another_place_under_the_id_is_not_the_same(
    ours: dict[str, Any], held: dict[str, Any]
) -> None:
    report_address = address_from_json(ours)
    assert report_address is not None
    assert not _same_place(address_from_json(held), report_address)
