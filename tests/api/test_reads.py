"""Reads of a device's location never make the gateway hammer the carrier.

``GET /v1/devices/{aeui}/location``, ``POST /v1/held`` and a PIDF-LO report that keeps the
device's name and number are served from what the gateway knows (its cache, then the state
store); the carrier is read at most once per device per interval (not-found answers too), a
few at a time and at a bounded rate; the per-device rate limit applies to reads; a HELD
request names at most a few devices, deduplicated, and numbers are resolved without the
carrier.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.api.test_held import ask, device, error_code, located
from tests.harness import (
    EMPIRE_STATE,
    WHITE_HOUSE,
    Gateway,
    gateway,
    gateway_settings,
    phone_of,
    report,
)
from tests.pidf import samples
from tests.test_faults import pipeline_of

OWN_NUMBER = phone_of("alice")  # the number the harness's report() gives alice
WILLIS_TOWER = {
    "houseNumber": "233",
    "prefixDirectional": "S",
    "streetName": "WACKER",
    "streetSuffix": "DR",
    "city": "CHICAGO",
    "stateCode": "IL",
    "zip": "60606",
}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def read(gw: Gateway, aeui: str, **headers: str) -> httpx.Response:
    return await gw.http.get(f"/v1/devices/{aeui}/location", headers=headers or None)


def test_a_device_out_of_the_cache_is_read_from_the_state_store() -> None:
    async def scenario() -> None:
        # A cache of one binding: the second device's report pushes the first one out.
        async with gateway(gateway_settings(binding_cache_size=1)) as gw:
            assert (await gw.report(report("alice", EMPIRE_STATE, 0))).status_code == 200
            other = report("bob", WHITE_HOUSE, 0, phone="+12025550199")
            assert (await gw.report(other)).status_code == 200
            assert pipeline_of(gw).cached("alice") is None
            seq = gw.last_seq()
            answers = [await read(gw, "alice", **device("alice")) for _ in range(10)]
            assert {a.status_code for a in answers} == {200}
            assert answers[0].json()["address"]["zip"] == "10118"
            assert gw.operations(seq) == []  # was: a getEndpoint and a getLocation each

    run(scenario())


def test_a_device_the_gateway_does_not_know_costs_one_carrier_read_per_interval() -> None:
    async def scenario() -> None:
        async with gateway(gateway_settings(carrier_read_interval=60.0)) as gw:
            answers = [await read(gw, "ghost", **device("ghost")) for _ in range(20)]
            assert {a.status_code for a in answers} == {404}
            assert gw.operations() == ["getEndpoint"]  # the not-found answer is remembered

    run(scenario())


def test_a_device_an_admin_provisioned_is_read_from_the_carrier_once_per_interval() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            location = await gw.http.post("/v1/locations", json={"address": WILLIS_TOWER})
            assert location.status_code == 201, location.text
            endpoint = {
                "alternateEndUserId": "desk-7",
                "callerName": "DESK SEVEN",
                "telephoneNumber": "+13125550107",
                "locationId": location.json()["locationId"],
            }
            assert (await gw.http.post("/v1/endpoints", json=endpoint)).status_code == 201
            seq = gw.last_seq()
            answers = [await read(gw, "desk-7") for _ in range(20)]
            assert {a.status_code for a in answers} == {200}
            assert answers[-1].json()["address"]["zip"] == "60606"
            assert gw.operations(seq) == ["getEndpoint", "getLocation"]

    run(scenario())


def test_the_per_device_rate_limit_applies_to_reads_apart_from_reports() -> None:
    async def scenario() -> None:
        settings = gateway_settings(report_rate_per_minute=60.0, report_burst=10)
        async with gateway(settings) as gw:
            assert (await gw.report(report("alice", EMPIRE_STATE, 0))).status_code == 200
            answers = [await read(gw, "alice", **device("alice")) for _ in range(12)]
            assert [a.status_code for a in answers] == [200] * 10 + [429] * 2
            refused = answers[-1]
            assert refused.json()["type"] == "/problems/rate-limited"
            assert int(refused.headers["retry-after"]) >= 1
            held = await ask(gw, samples.held_request(), **device("alice"))
            assert held.status_code == 429
            # Reading does not spend the device's reports.
            assert (await gw.report(report("alice", WHITE_HOUSE, 1))).status_code == 200

    run(scenario())


def test_a_held_request_repeating_its_own_number_costs_no_carrier_call() -> None:
    async def scenario() -> None:
        # A cache of one binding: another device's report pushes alice's out, as a restart
        # would (only the state store knows her binding).
        async with gateway(gateway_settings(binding_cache_size=1)) as gw:
            assert (await gw.report(report("alice", EMPIRE_STATE, 0))).status_code == 200
            other = report("bob", WHITE_HOUSE, 0, phone="+12025550199")
            assert (await gw.report(other)).status_code == 200
            assert pipeline_of(gw).cached("alice") is None
            seq = gw.last_seq()
            same = "".join(f"<uri>tel:{OWN_NUMBER}</uri>" for _ in range(2000))
            body = samples.held_request(device=same)
            assert len(body) > 50_000
            assert located(await ask(gw, body, **device("alice")))
            assert gw.operations(seq) == []  # was: 4 002 calls

    run(scenario())


def test_a_held_request_names_at_most_eight_distinct_identifiers() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            assert (await gw.report(report("alice", EMPIRE_STATE, 0))).status_code == 200
            seq = gw.last_seq()
            eight = "".join(f"<uri>tel:+1202555{n:04d}</uri>" for n in range(143, 151))
            nine = eight + "<uri>tel:+12025550199</uri>"
            # Eight is allowed (and names other devices than a token's own: refused as such).
            answer = await ask(gw, samples.held_request(device=eight), **device("alice"))
            assert error_code(answer) == "badIdentifier"
            assert error_code(await ask(gw, samples.held_request(device=nine))) == "requestError"
            many = "".join(f"<uri>tel:+1312555{n:04d}</uri>" for n in range(500))
            assert error_code(await ask(gw, samples.held_request(device=many))) == "requestError"
            assert gw.operations(seq) == []  # was: 500 listEndpoints for the admin's request

    run(scenario())


def test_one_device_flooding_reads_does_not_fail_other_devices_reports() -> None:
    async def scenario() -> None:
        # The carrier takes 50 requests a second; one device reads as fast as it can while
        # 20 others move (one carrier call each). It is rate-limited, and its reads cost
        # the carrier one call in all.
        settings = gateway_settings(report_rate_per_minute=60.0, report_burst=10)
        async with gateway(settings, rate_limit=50.0) as gw:
            places = (EMPIRE_STATE, WHITE_HOUSE)
            for n in range(20):
                registered = await gw.report(report(f"mover-{n}", places[n % 2], 0))
                assert registered.status_code == 200, registered.text
            await asyncio.sleep(1.1)  # the carrier's bucket fills up again
            seq = gw.last_seq()
            flooder = device("flood")

            async def flood() -> list[int]:
                answers = await asyncio.gather(*(read(gw, "flood", **flooder) for _ in range(300)))
                return [a.status_code for a in answers]

            async def move(n: int) -> int:
                return (await gw.report(report(f"mover-{n}", places[(n + 1) % 2], 1))).status_code

            flooded, *moved = await asyncio.gather(flood(), *(move(n) for n in range(20)))
            assert moved == [200] * 20
            assert set(flooded) <= {404, 429}
            assert flooded.count(404) == 10  # the burst; then 429
            assert gw.operations(seq).count("getEndpoint") == 1

    run(scenario())
