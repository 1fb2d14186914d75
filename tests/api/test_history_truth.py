"""The history says only what happened: what the carrier took, and every admin change and
delete; and no answer presents an unknown observation time as "now"."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from pathlib import Path
from typing import Any

from gateway.dlr.ids import endpoint_id_for
from gateway.pidf.document import read_presence
from gateway.store import StateStore
from gateway.store.base import RECIPIENTS_KEY
from tests.api.test_admin import WHITE_HOUSE as WHITE_HOUSE_ADDRESS
from tests.harness import (
    EMPIRE_STATE,
    WHITE_HOUSE,
    Gateway,
    RefuseEndpointWrites,
    at,
    gateway,
    gateway_settings,
    report,
)

REFUSING = functools.partial(RefuseEndpointWrites, description="telephoneNumber: not ours")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def history(gw: Gateway, aeui: str) -> list[dict[str, Any]]:
    page = await gw.http.get(f"/v1/devices/{aeui}/history")
    assert page.status_code == 200, page.text
    entries: list[dict[str, Any]] = page.json()["entries"]
    return entries


def test_a_report_the_carrier_refused_is_not_in_the_history(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = gateway_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
        async with gateway(settings) as gw:
            assert (await gw.report(report("known", WHITE_HOUSE, 0))).status_code == 200
            sim_app = gw.sim_app
        async with gateway(settings, sim_app=sim_app, wrap=REFUSING) as gw:
            new = await gw.report(report("new", WHITE_HOUSE, 1))
            assert new.status_code == 422, new.text
            assert new.json()["type"] == "/problems/upstream-rejected"
            assert await history(gw, "new") == []
            store = gw.app.state.services.pipeline.ledger
            assert isinstance(store, StateStore)
            assert await store.get("new") is None
            moved = await gw.report(report("known", EMPIRE_STATE, 2))
            assert moved.status_code == 422
            assert [e["kind"] for e in await history(gw, "known")] == ["applied"]
            row = await store.get("known")
            assert row is not None and row.confirmed
            assert (
                row.location_id
                == (await gw.http.get("/v1/devices/known/location")).json()["locationId"]
            )

    run(scenario())


def test_every_admin_change_and_delete_is_recorded() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            created = await gw.http.post("/v1/locations", json={"address": WHITE_HOUSE_ADDRESS})
            assert created.status_code == 201
            location_id = created.json()["locationId"]
            updated = await gw.http.put(
                f"/v1/locations/{location_id}",
                json={"address": WHITE_HOUSE_ADDRESS, "description": "HQ"},
            )
            assert updated.status_code == 200
            endpoint = await gw.http.post(
                "/v1/endpoints",
                json={
                    "alternateEndUserId": "desk",
                    "callerName": "FRONT DESK",
                    "telephoneNumber": "+12025550101",
                    "locationId": location_id,
                },
            )
            assert endpoint.status_code == 201, endpoint.text
            gone = await gw.http.delete(f"/v1/endpoints/{endpoint_id_for('desk')}")
            assert gone.status_code == 200
            kinds = [(e["kind"], e["credential"]) for e in await history(gw, "desk")]
            assert kinds == [("deleted", "admin-key-0"), ("admin_edit", "admin-key-0")]
            deleted = (await history(gw, "desk"))[0]
            assert deleted["before"]["locationId"] == location_id and deleted["after"] is None
            assert (await gw.http.delete(f"/v1/locations/{location_id}")).status_code == 200
            page = (await gw.http.get(f"/v1/locations/{location_id}/history")).json()
            assert [e["kind"] for e in page["entries"]] == [
                "location_deleted",
                "location_updated",
                "location_created",
            ]
            assert page["entries"][1]["after"]["description"] == "HQ"
            assert page["locationId"] == location_id
            recipient = await gw.http.post(
                "/v1/notification-recipients", json={"emailAddress": "ops@example.com"}
            )
            assert recipient.status_code == 201
            store = gw.app.state.services.pipeline.ledger
            assert isinstance(store, StateStore)
            (entry,) = await store.history(RECIPIENTS_KEY)
            assert entry.kind == "recipient_created"
            assert entry.after is not None and entry.after["emailAddress"] == "ops@example.com"

    run(scenario())


def test_an_unknown_observation_time_is_never_now(tmp_path: Path) -> None:
    async def scenario() -> None:
        shared = gateway_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
        fix = {"latitude": 38.89768, "longitude": -77.03655, "accuracyMeters": 8}
        async with gateway(shared) as gw:
            sent = await gw.report(report("a", WHITE_HOUSE, 0, geo=fix))
            assert sent.status_code == 200
            sim_app = gw.sim_app
        # Restarted on the same store: the observation time and the fix are the ledger's.
        async with gateway(shared, sim_app=sim_app) as gw:
            read = (await gw.http.get("/v1/devices/a/location")).json()
            assert read["observedAt"] == at(0)
            assert (read["latitude"], read["precision"], read["radiusMeters"]) == (
                38.89768,
                "gps",
                8,
            )
            pidf = await gw.http.get(
                "/v1/devices/a/location", headers={"Accept": "application/pidf+xml"}
            )
            assert read_presence(pidf.content).timestamp == "2026-11-01T12:00:00Z"
        # A replica whose store never saw the report: unknown, and said to be unknown.
        async with gateway(sim_app=sim_app) as gw:
            read = (await gw.http.get("/v1/devices/a/location")).json()
            assert read["observedAt"] is None
            assert read["latitude"] is None and read["precision"] is None
            pidf = await gw.http.get(
                "/v1/devices/a/location", headers={"Accept": "application/pidf+xml"}
            )
            assert read_presence(pidf.content).timestamp is None

    run(scenario())


def test_a_write_whose_answer_was_lost_is_recorded_when_found_at_the_carrier() -> None:
    """A replica dies between the carrier's answer and its confirmation (or a crash loses the
    confirmation with its record): the check that finds the carrier holding the binding
    records it."""

    async def scenario() -> None:
        async with gateway() as gw:
            x = (await gw.report(report("a", WHITE_HOUSE, 0))).json()["locationId"]
            y = (await gw.report(report("b", EMPIRE_STATE, 0))).json()["locationId"]
            services = gw.app.state.services
            store = services.pipeline.ledger
            assert isinstance(store, StateStore)
            row = await store.get("a")
            assert row is not None and row.location_id == x
            # The claim of a move, and its write at the carrier, whose answer never came back.
            moved = dataclasses.replace(row, location_id=y, observed_at=row.observed_at)
            assert (await store.claim(moved, credential="device-token")).won
            held = await services.upstream.get_endpoint(row.endpoint_id)
            await services.upstream.update_endpoint(
                row.endpoint_id, dataclasses.replace(held, location_id=y)
            )
            assert [e["toLocationId"] for e in await history(gw, "a")] == [x]
            assert not await services.pipeline.repair("a")  # nothing to write
            found, applied = await history(gw, "a")
            assert (found["kind"], found["credential"], found["toLocationId"]) == (
                "applied",
                "gateway",
                y,
            )
            assert applied["toLocationId"] == x
            stored = await store.get("a")
            assert stored is not None and stored.confirmed

    run(scenario())
