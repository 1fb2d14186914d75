"""The report pipeline end to end: fewest upstream calls, concurrency, order, restarts."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.dlr.ids import endpoint_id_for
from tests.harness import (
    EMPIRE_STATE,
    EMPIRE_STATE_ADDRESS,
    SPACE_NEEDLE,
    WHITE_HOUSE,
    WHITE_HOUSE_ADDRESS,
    WILLIS_TOWER,
    gateway,
    gateway_settings,
    new_simulator,
    report,
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_each_case_costs_the_fewest_upstream_calls() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            # First report of a new device at a new place: create location, update (404),
            # create endpoint.
            first = await gw.report(report("alice", WHITE_HOUSE, 0))
            assert first.status_code == 200, first.text
            assert first.json()["changes"] == {"location": "created", "endpoint": "created"}
            assert gw.operations() == ["createLocation", "updateEndpoint", "createEndpoint"]

            # Unchanged: zero calls.
            seq = gw.last_seq()
            same = await gw.report(report("alice", WHITE_HOUSE, 10))
            assert same.json()["changes"] == {"location": "unchanged", "endpoint": "unchanged"}
            assert gw.operations(seq) == []

            # A different spelling of the same place is the same location: zero calls.
            respelled = "1600 PENNSYLVANIA AVENUE NORTHWEST, WASHINGTON DC 20500"
            assert (await gw.report(report("alice", respelled, 15))).status_code == 200
            assert gw.operations(seq) == []

            # Move to a new location: create it, update the endpoint.
            moved = await gw.report(report("alice", EMPIRE_STATE, 20))
            assert moved.json()["changes"] == {"location": "created", "endpoint": "updated"}
            assert gw.operations(seq) == ["createLocation", "updateEndpoint"]

            # Move back to a location known to exist: one call.
            seq = gw.last_seq()
            back = await gw.report(report("alice", WHITE_HOUSE, 30))
            assert back.json()["changes"] == {"location": "unchanged", "endpoint": "updated"}
            assert gw.operations(seq) == ["updateEndpoint"]

            # A new caller name is a change too: one call.
            seq = gw.last_seq()
            renamed = await gw.report(report("alice", WHITE_HOUSE, 40, caller="ALICE JONES"))
            assert renamed.json()["changes"]["endpoint"] == "updated"
            assert gw.operations(seq) == ["updateEndpoint"]

            state = gw.simulator.state
            endpoint = state["endpoints"][endpoint_id_for("alice")]
            assert endpoint["callerName"] == "ALICE JONES"
            assert endpoint["locationId"] == back.json()["locationId"]

    run(scenario())


def test_answer_carries_the_binding() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            response = await gw.report(report("bob", EMPIRE_STATE + ", Floor 86", 0))
            body = response.json()
            assert body["alternateEndUserId"] == "bob"
            assert body["endpointId"] == endpoint_id_for("bob")
            assert body["address"]["houseNumber"] == "350"
            assert body["address"]["zip"] == "10118"
            assert body["address"]["addressLine2"].startswith("FL")
            assert body["observedAt"].startswith("2026-11-01T12:00:00")
            assert body["status"] == "GEOCODED"
            location = gw.simulator.state["locations"][body["locationId"]]
            assert location["address"]["addressLine2"] == body["address"]["addressLine2"]

            current = await gw.http.get("/v1/devices/bob/location")
            assert current.status_code == 200
            assert current.json()["locationId"] == body["locationId"]
            assert "changes" not in current.json()

    run(scenario())


def test_forty_devices_at_one_new_address_share_one_create() -> None:
    async def scenario() -> None:
        async with gateway(latency_ms=5) as gw:
            answers = await asyncio.gather(
                *(gw.report(report(f"dev-{i}", SPACE_NEEDLE, 0)) for i in range(40))
            )
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            ops = gw.operations()
            assert ops.count("createLocation") == 1
            assert ops.count("createEndpoint") == 40
            assert len({a.json()["locationId"] for a in answers}) == 1

    run(scenario())


def test_restart_relearns_and_stays_correct() -> None:
    async def scenario() -> None:
        settings = gateway_settings()
        sim_app = new_simulator(settings)
        async with gateway(settings, sim_app=sim_app) as gw:
            assert (await gw.report(report("carol", WHITE_HOUSE, 0))).status_code == 200
            assert (await gw.report(report("dave", WILLIS_TOWER, 0))).status_code == 200
        # A fresh app: empty caches, same carrier.
        async with gateway(settings, sim_app=sim_app) as gw:
            seq = gw.last_seq()
            same = await gw.report(report("carol", WHITE_HOUSE, 10))
            assert same.status_code == 200
            # Re-learning costs calls, but never a duplicate: "already exists" is success,
            # and the location is then read, so that the answer is what the carrier holds.
            assert gw.operations(seq) == ["createLocation", "getLocation", "updateEndpoint"]
            assert same.json()["changes"]["location"] == "unchanged"
            held = gw.simulator.state["locations"][same.json()["locationId"]]
            assert same.json()["status"] == held["status"] == "GEOCODED"
            assert same.json()["latitude"] == held["latitude"]

            seq = gw.last_seq()
            moved = await gw.report(report("dave", WHITE_HOUSE, 10))
            assert moved.status_code == 200
            assert gw.operations(seq) == ["updateEndpoint"]  # carol's report taught WHITE_HOUSE

            state = gw.simulator.state
            assert len(state["endpoints"]) == 2
            assert len(state["locations"]) == 2
            assert {e["locationId"] for e in state["endpoints"].values()} == {
                same.json()["locationId"]
            }
            # Reading a device after a restart goes to the carrier.
        async with gateway(settings, sim_app=sim_app) as gw:
            current = await gw.http.get("/v1/devices/dave/location")
            assert current.status_code == 200
            assert current.json()["address"]["city"] == "WASHINGTON"
            assert (await gw.http.get("/v1/devices/nobody/location")).status_code == 404

    run(scenario())


def test_out_of_order_reports_are_superseded() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            assert (await gw.report(report("erin", WHITE_HOUSE, 100))).status_code == 200
            seq = gw.last_seq()
            old = await gw.report(report("erin", EMPIRE_STATE, 50))
            assert old.status_code == 409
            problem = old.json()
            assert problem["type"] == "/problems/superseded"
            assert problem["newestObservedAt"].startswith("2026-11-01T12:01:40")
            assert gw.operations(seq) == []
            current = (await gw.http.get("/v1/devices/erin/location")).json()
            assert current["address"]["city"] == "WASHINGTON"

            # Same instant: applied idempotently (here: a real change at the same time).
            same_instant = await gw.report(report("erin", EMPIRE_STATE, 100))
            assert same_instant.status_code == 200
            again = await gw.report(report("erin", EMPIRE_STATE, 100))
            assert again.status_code == 200
            assert again.json()["changes"] == {"location": "unchanged", "endpoint": "unchanged"}

    run(scenario())


def test_reports_for_one_device_are_applied_one_at_a_time() -> None:
    async def scenario() -> None:
        async with gateway(latency_ms=3) as gw:
            places = [WHITE_HOUSE, EMPIRE_STATE, SPACE_NEEDLE, WILLIS_TOWER] * 3
            answers = await asyncio.gather(
                *(gw.report(report("frank", place, i)) for i, place in enumerate(places))
            )
            statuses = [a.status_code for a in answers]
            assert set(statuses) <= {200, 409}
            newest = max(i for i, a in enumerate(answers) if a.status_code == 200)
            held = gw.simulator.state["endpoints"][endpoint_id_for("frank")]["locationId"]
            assert held == answers[newest].json()["locationId"]
            assert newest == len(places) - 1  # the newest report is never superseded

    run(scenario())


def test_unroutable_addresses_write_nothing() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            for address in [
                "PO Box 123, Washington, DC 20500",
                "1600 Pennsylvania Ave NW, Washington, CA 20500",
                {"houseNumber": "1", "streetName": "MAIN", "city": "X", "stateCode": "ZZ"},
            ]:
                response = await gw.report(report("gina", address, 0))
                assert response.status_code == 422, response.text
                body = response.json()
                assert body["type"] == "/problems/unroutable-address"
                assert body["errors"]
                # The detail names the first problem (it said "cannot be routed" twice).
                first = body["errors"][0]
                assert body["detail"].startswith(
                    f"The address cannot be routed: {first['field']} {first['message']}"
                ), body["detail"]
                assert ("more)" in body["detail"]) == (len(body["errors"]) > 1)
            assert gw.operations() == []

    run(scenario())


def test_gps_only_report_with_the_offline_geocoder_is_refused() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            # Arlington, VA: no sandbox place near, so the offline geocoder's ZIP answer.
            body = report("hank", None, 0, geo={"latitude": 38.8816, "longitude": -77.0910})
            response = await gw.report(body)
            assert response.status_code == 422
            problem = response.json()
            assert problem["type"] == "/problems/unroutable-address"
            assert "civic address" in problem["errors"][0]["message"]
            assert gw.operations() == []

    run(scenario())


def test_gps_fix_supplies_the_devices_own_coordinates_not_the_locations() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            geo = {"latitude": 38.89768, "longitude": -77.03655, "accuracyMeters": 8}
            response = await gw.report(report("ivy", WHITE_HOUSE, 0, geo=geo))
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["latitude"], body["longitude"]) == (38.89768, -77.03655)
            assert (body["precision"], body["radiusMeters"]) == ("gps", 8)
            assert body["warnings"] == []
            # The location is every device's at that address: one device's fix is not put
            # on it (the carrier fills in its own geocode, a ZIP centroid here).
            location = gw.simulator.state["locations"][body["locationId"]]
            assert location["latitude"] != 38.89768

    run(scenario())


def test_postal_centroid_is_never_sent_as_coordinates() -> None:
    async def scenario() -> None:
        sent: list[httpx.Request] = []
        async with gateway(record=sent) as gw:
            response = await gw.report(report("jack", WILLIS_TOWER, 0))
            assert response.status_code == 200
            creates = [r for r in sent if r.method == "POST" and r.url.path.endswith("/locations")]
            assert len(creates) == 1
            assert b"<streetName>WACKER</streetName>" in creates[0].content
            assert b"<latitude>" not in creates[0].content

    run(scenario())


def test_a_device_flooding_reports_is_rate_limited() -> None:
    async def scenario() -> None:
        settings = gateway_settings(report_rate_per_minute=60.0, report_burst=10)
        async with gateway(settings) as gw:
            answers = [await gw.report(report("flood", WHITE_HOUSE, i)) for i in range(15)]
            statuses = [a.status_code for a in answers]
            assert statuses[:10] == [200] * 10
            assert set(statuses[10:]) == {429}
            limited = answers[-1]
            assert limited.json()["type"] == "/problems/rate-limited"
            assert int(limited.headers["retry-after"]) >= 1
            # Another device is not held back by this one.
            assert (await gw.report(report("calm", WHITE_HOUSE, 0))).status_code == 200
            assert gw.metrics.registry.get_sample_value("dlr_report_rate_limited_total") == 5
            assert (
                gw.metrics.registry.get_sample_value(
                    "dlr_reports_total", {"result": "rate_limited"}
                )
                == 5
            )

    run(scenario())


def test_a_report_to_a_location_an_admin_created_answers_what_the_carrier_holds() -> None:
    """Status and coordinates are the carrier's, as ``GET /v1/locations/{id}`` shows them."""

    async def scenario() -> None:
        async with gateway() as gw:
            created = await gw.http.post("/v1/locations", json={"address": WHITE_HOUSE_ADDRESS})
            assert created.status_code == 201, created.text
            location = created.json()
            answer = await gw.report(report("erin", WHITE_HOUSE, 0, phone="+12025550111"))
            assert answer.status_code == 200, answer.text
            assert answer.json()["locationId"] == location["locationId"]
            for body in (answer.json(), (await gw.http.get("/v1/devices/erin/location")).json()):
                assert body["status"] == location["status"] == "GEOCODED"
                assert (body["latitude"], body["longitude"]) == (
                    location["latitude"],
                    location["longitude"],
                )

    run(scenario())


def test_a_gps_only_report_near_a_sandbox_place_is_provisioned_there() -> None:
    """The sandbox's few street-level places make the GPS path something to try."""

    async def scenario() -> None:
        async with gateway() as gw:
            fix = {"latitude": 40.74844, "longitude": -73.98566, "accuracyMeters": 12}
            response = await gw.report(report("ivan", None, 0, geo=fix))
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["address"] == EMPIRE_STATE_ADDRESS
            # The device's own fix is what the carrier holds.
            assert (body["latitude"], body["longitude"]) == (40.74844, -73.98566)

    run(scenario())
