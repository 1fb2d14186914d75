"""``/v1/network/*`` and reports with network observations: every kind, conflicts, hostile
input, the admin-only rule, resolution, and provisioning through the report pipeline."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import pytest

from gateway.api.auth import DeviceTokens
from gateway.dlr.binding import address_from_json
from gateway.network.egress import warn_if_unchecked
from gateway.network.wiremap import Entry, Kind
from gateway.store import SqlStateStore, open_store
from gateway.store.wiremap import SqlWiremapStore
from tests.harness import (
    JWT_SECRET,
    SPACE_NEEDLE,
    WHITE_HOUSE_ADDRESS,
    Gateway,
    from_host,
    gateway,
    gateway_settings,
    report,
)

HQ = {**WHITE_HOUSE_ADDRESS, "addressLine2": "Floor 3 Room 301"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def device(aeui: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {DeviceTokens(secret=JWT_SECRET).mint(aeui, 300)}"}


async def add(gw: Gateway, collection: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await gw.http.post(f"/v1/network/{collection}", json={"address": HQ, **body})
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


@pytest.mark.parametrize(
    ("collection", "key", "canonical"),
    [
        ("subnets", {"subnet": "10.1.0.0/16"}, {"subnet": "10.1.0.0/16"}),
        ("subnets", {"subnet": "2001:DB8:1::/48"}, {"subnet": "2001:db8:1::/48"}),
        ("access-points", {"bssid": "aa:bb:cc:dd:ee:f*"}, {"bssid": "AA-BB-CC-DD-EE-F*"}),
        ("switches", {"chassisId": "00:11:22:33:44:55"}, {"chassisId": "00-11-22-33-44-55"}),
        (
            "ports",
            {"chassisId": "sw-core-1", "portId": "Gi1/0/7"},
            {"chassisId": "sw-core-1", "portId": "Gi1/0/7"},
        ),
    ],
)
def test_each_kind_create_list_read_update_delete(
    collection: str, key: dict[str, str], canonical: dict[str, str]
) -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            created = await add(gw, collection, {**key, "description": "desk"})
            assert {k: created[k] for k in canonical} == canonical
            assert created["address"]["addressLine2"] == "FL 3 RM 301"
            path = f"/v1/network/{collection}/{created['id']}"
            # Read, it says what a write said of it (a port of an unknown switch).
            assert (await gw.http.get(path)).json() == created
            listed = (await gw.http.get(f"/v1/network/{collection}")).json()
            assert [e["id"] for e in listed["entries"]] == [created["id"]]
            assert listed["total"] == 1 and listed["nextOffset"] is None
            moved = {**key, "address": {**HQ, "addressLine2": "Floor 4"}}
            updated = await gw.http.put(path, json=moved)
            assert updated.status_code == 200, updated.text
            assert (await gw.http.get(path)).json()["address"]["addressLine2"] == "FL 4"
            assert (await gw.http.delete(path)).status_code == 204
            assert (await gw.http.get(path)).status_code == 404
            again = await gw.http.post(f"/v1/network/{collection}", json={"address": HQ, **key})
            assert again.status_code == 201  # gone for good: it may be created anew

    run(scenario())


def test_conflicts_are_refused_and_a_port_of_an_unknown_switch_is_a_warning() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            await add(gw, "subnets", {"subnet": "10.1.0.0/16"})
            twice = await gw.http.post(
                "/v1/network/subnets", json={"subnet": "10.1.0.0/16", "address": HQ}
            )
            assert twice.status_code == 409
            assert twice.headers["content-type"] == "application/problem+json"
            assert twice.json()["type"] == "/problems/wiremap-conflict"
            assert twice.json()["conflictsWith"]["subnet"] == "10.1.0.0/16"
            await add(gw, "access-points", {"bssid": "AA-BB-CC-DD-EE-*"})
            overlap = await gw.http.post(
                "/v1/network/access-points", json={"bssid": "AA-BB-CC-DD-EE-1*", "address": HQ}
            )
            assert overlap.status_code == 409 and "overlaps" in overlap.json()["detail"]
            port = await add(gw, "ports", {"chassisId": "sw-9", "portId": "1"})
            assert "no switch entry" in port["warnings"][0]["message"]
            key_change = await gw.http.put(
                f"/v1/network/ports/{port['id']}",
                json={"chassisId": "sw-9", "portId": "2", "address": HQ},
            )
            assert key_change.status_code == 422

    run(scenario())


@pytest.mark.parametrize(
    ("collection", "body", "field"),
    [
        ("subnets", {"subnet": "10.1.2.3/16/8"}, "subnet"),
        ("subnets", {"subnet": "10.0.0.0/8", "locationId": "x" * 33}, "locationId"),
        ("subnets", {"subnet": "10.0.0.0/8", "locationId": "../admin"}, "locationId"),
        ("subnets", {"subnet": "10.0.0.0/" + "9" * 5000}, "subnet"),
        ("subnets", {"subnet": "::/129"}, "subnet"),
        # Every address (an admin's typo for 10.0.0.0/8 was read as 0.0.0.0/0, with a
        # warning): every device anywhere that reports an address would match it.
        ("subnets", {"subnet": "10.0.0.0/0"}, "subnet"),
        ("subnets", {"subnet": "::/0"}, "subnet"),
        ("subnets", {"subnet": "::ffff:0.0.0.0/96"}, "subnet"),
        ("subnets", {"subnet": 10}, "subnet"),
        ("access-points", {"bssid": "AA-BB-CC-DD-E*-**"}, "bssid"),
        ("access-points", {"bssid": "AA-BB-CC-DD-EE-FF-00"}, "bssid"),
        ("switches", {"chassisId": "x" * 65}, "chassisId"),
        ("ports", {"chassisId": "sw-1"}, "portId"),
        ("switches", {"chassisId": "sw\u0000"}, "chassisId"),
        # Invisible format characters: a right-to-left override shows "sw-core-1" as another
        # entry's ID in the console and the CSV export; a zero-width space hides a twin.
        ("switches", {"chassisId": "sw-\u202e1-eroc"}, "chassisId"),
        ("switches", {"chassisId": "sw-core-1\u200b"}, "chassisId"),
        ("ports", {"chassisId": "sw-1", "portId": "Gi1/0/\u20667\u2069"}, "portId"),
        ("subnets", {"subnet": "10.0.0.0/8", "description": "HQ \u202eroolf"}, "description"),
        ("subnets", {"subnet": "10.0.0.0/8", "description": "HQ\u00ad3"}, "description"),
        ("subnets", {"subnet": "10.0.0.0/8", "description": "d" * 201}, "description"),
        ("subnets", {"subnet": "10.0.0.0/8", "surprise": 1}, "surprise"),
    ],
)
def test_hostile_entries_get_a_clear_422(collection: str, body: dict[str, Any], field: str) -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            answer = await gw.http.post(f"/v1/network/{collection}", json={"address": HQ, **body})
            assert answer.status_code == 422, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert field in {e["field"] for e in answer.json()["errors"]}

    run(scenario())


def test_an_address_is_validated_like_a_reports() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            answer = await gw.http.post(
                "/v1/network/subnets",
                json={"subnet": "10.0.0.0/8", "address": {"streetName": "PO Box 5"}},
            )
            assert answer.status_code == 422
            assert all(e["field"].startswith("address") for e in answer.json()["errors"])

    run(scenario())


def test_only_admins_reach_the_wiremap() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            entry = await add(gw, "subnets", {"subnet": "10.0.0.0/8"})
            token = device("alice")
            for method, path, body in [
                ("GET", "/v1/network/subnets", None),
                ("GET", f"/v1/network/subnets/{entry['id']}", None),
                ("POST", "/v1/network/resolve", {"ip": "10.1.1.1"}),
                ("POST", "/v1/network/subnets", {"subnet": "11.0.0.0/8", "address": HQ}),
                ("DELETE", f"/v1/network/subnets/{entry['id']}", None),
            ]:
                answer = await gw.http.request(method, path, json=body, headers=token)
                assert answer.status_code == 403, (method, path)
                anonymous = await gw.http.request(
                    method, path, json=body, headers={"Authorization": ""}
                )
                assert anonymous.status_code == 401
            assert (await gw.http.get(f"/v1/network/subnets/{entry['id']}")).status_code == 200

    run(scenario())


def test_resolve_says_which_entry_wins_and_why() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            await add(gw, "subnets", {"subnet": "10.0.0.0/8"})
            await add(gw, "subnets", {"subnet": "10.1.0.0/16", "description": "B1"})
            await add(gw, "switches", {"chassisId": "sw-1"})
            await add(gw, "ports", {"chassisId": "sw-1", "portId": "7"})

            async def resolve(body: dict[str, str]) -> tuple[str, str | None]:
                answer = await gw.http.post("/v1/network/resolve", json=body)
                assert answer.status_code == 200, answer.text
                found = answer.json()
                return found["source"], found["entry"]["description"]

            assert await resolve({"ip": "10.1.2.3"}) == ("subnet", "B1")
            assert await resolve({"ip": "10.2.2.3", "chassisId": "sw-1"}) == ("switch", None)
            assert await resolve({"chassisId": "sw-1", "portId": "7"}) == ("port", None)
            miss = await gw.http.post("/v1/network/resolve", json={"ip": "192.0.2.1"})
            assert miss.status_code == 404 and "IP 192.0.2.1" in miss.json()["detail"]
            bad = await gw.http.post("/v1/network/resolve", json={"ip": "10.0.0.0/8"})
            assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "ip"
            metrics = gw.metrics.registry
            assert metrics.get_sample_value("dlr_network_resolutions_total", {"source": "port"})
            assert metrics.get_sample_value("dlr_network_misses_total") == 1
            assert metrics.get_sample_value("dlr_network_entries", {"kind": "subnet"}) == 2

    run(scenario())


def test_a_report_located_by_the_network_is_provisioned_with_the_place() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            await add(gw, "subnets", {"subnet": "10.1.0.0/16"})
            typed = {"houseNumber": "350", "streetName": "5th Ave", "city": "New York",
                     "stateCode": "NY", "zip": "10118"}  # fmt: skip
            body = report("desk", typed, network={"ip": "10.1.2.3"})
            since = gw.last_seq()
            answer = await gw.report(body)
            assert answer.status_code == 200, answer.text
            found = answer.json()
            assert found["locationSource"] == "subnet"  # the wiremap beats what was typed
            assert found["address"]["addressLine2"] == "FL 3 RM 301"
            assert found["address"]["zip"] == "20500"
            # The same calls as any new report: the location, then the endpoint.
            assert gw.operations(since) == ["createLocation", "updateEndpoint", "createEndpoint"]
            held = (await gw.http.get(f"/v1/locations/{found['locationId']}")).json()
            assert held["address"]["addressLine2"] == "FL 3 RM 301"
            since = gw.last_seq()
            again = await gw.report(report("desk", typed, 1, network={"ip": "10.1.9.9"}))
            assert again.status_code == 200
            assert again.json()["changes"] == {"location": "unchanged", "endpoint": "unchanged"}
            assert gw.operations(since) == []  # unchanged: no carrier call
            history = (await gw.http.get("/v1/devices/desk/history")).json()
            assert history["entries"][0]["source"] == "wiremap:subnet"
            # Nothing matches and nothing else was sent: 422 naming what was tried.
            lost = await gw.report(report("lost", None, network={"bssid": "00:00:00:00:00:01"}))
            assert lost.status_code == 422
            assert "BSSID 00-00-00-00-00-01" in lost.json()["errors"][0]["message"]
            # No match, but an address: the address locates the device.
            typed_only = await gw.report(report("other", typed, network={"ip": "192.0.2.1"}))
            assert typed_only.json()["locationSource"] == "address"
            bad = await gw.report(report("x", typed, network={"ip": "10.0.0.0/8", "bssid": "z"}))
            assert bad.status_code == 422
            assert {e["field"] for e in bad.json()["errors"]} == {"network.ip", "network.bssid"}

    run(scenario())


def test_a_changed_entry_moves_its_devices_at_their_next_report_not_before() -> None:
    """As README says: a device located through an entry keeps the place it was given
    until its next report, which is located afresh (the change itself calls no carrier)."""

    async def scenario() -> None:
        async with gateway() as gw:
            entry = await add(gw, "subnets", {"subnet": "10.1.0.0/16"})
            first = (await gw.report(report("desk", None, network={"ip": "10.1.2.3"}))).json()
            endpoint = first["endpointId"]
            since = gw.last_seq()
            moved = {"subnet": "10.1.0.0/16", "address": {**HQ, "addressLine2": "Floor 4"}}
            changed = await gw.http.put(f"/v1/network/subnets/{entry['id']}", json=moved)
            assert changed.status_code == 200, changed.text
            assert gw.operations(since) == []
            held = gw.simulator.state["endpoints"][endpoint]
            assert held["locationId"] == first["locationId"]
            again = await gw.report(report("desk", None, 1, network={"ip": "10.1.2.3"}))
            assert again.status_code == 200, again.text
            assert again.json()["address"]["addressLine2"] == "FL 4"
            held = gw.simulator.state["endpoints"][endpoint]
            assert held["locationId"] == again.json()["locationId"] != first["locationId"]

    run(scenario())


@pytest.mark.parametrize(
    "body",
    [
        {"subnet": "10.0.0.0/8", "address": {"zip": 20500}},
        {"subnet": "10.0.0.0/8", "address": {**HQ, "color": "red"}},
        {"subnet": "10.0.0.0/8", "address": {**HQ, "city": "W" * 10_000}},
        {"subnet": "10.0.0.0/8", "address": ["1600 Pennsylvania Ave"]},
        {"subnet": "10.0.0.0/8", "address": {**HQ, "addressLine2": "PO BOX 7"}},
        {"subnet": "10.0.0.0/8", "locationId": "x" * 65},
        {"subnet": ["10.0.0.0/8"], "address": HQ},
        {"bssid": "AA-BB-CC-DD-EE-FF", "address": HQ},  # the wrong collection's key
    ],
)
def test_hostile_addresses_and_shapes_are_422_never_500(body: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            answer = await gw.http.post("/v1/network/subnets", json=body)
            assert answer.status_code == 422, answer.text
            assert answer.json()["errors"]
            resolve = await gw.http.post("/v1/network/resolve", json=[body])
            assert resolve.status_code == 422

    run(scenario())


def test_a_change_at_one_replica_reaches_the_other(tmp_path: Path) -> None:
    """Two gateways on one state store: what one writes, the other resolves within its
    refresh interval (polled, not pushed)."""

    async def scenario() -> None:
        settings = gateway_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
            network_refresh_seconds=0.05,
        )
        async with gateway(settings) as one, gateway(settings) as two:
            entry = await add(one, "subnets", {"subnet": "10.5.0.0/16"})

            async def seen_by_two() -> int:
                answer = await two.http.post("/v1/network/resolve", json={"ip": "10.5.1.1"})
                return answer.status_code

            for _ in range(200):
                if await seen_by_two() == 200:
                    break
                await asyncio.sleep(0.05)
            assert await seen_by_two() == 200
            assert (await one.http.delete(f"/v1/network/subnets/{entry['id']}")).status_code == 204
            for _ in range(200):
                if await seen_by_two() == 404:
                    break
                await asyncio.sleep(0.05)
            assert await seen_by_two() == 404

    run(scenario())


def test_list_queries_are_read_strictly_and_allow_names_every_method() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            for query in ("?=null", "?limit=4&x=1", "?limit=0", "?limit=1&limit=2", "?offset=-1"):
                answer = await gw.http.get(f"/v1/network/subnets{query}")
                assert answer.status_code == 422, (query, answer.text)
            assert (await gw.http.get("/v1/network/subnets?limit=1000")).status_code == 200
            refused = await gw.http.request("OPTIONS", "/v1/network/subnets")
            assert refused.status_code == 405
            assert set(refused.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
            item = await gw.http.request("OPTIONS", "/v1/network/ports/x")
            assert set(item.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}

    run(scenario())


def test_an_entry_located_by_a_carrier_location_id() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            created = await gw.http.post("/v1/locations", json={"address": WHITE_HOUSE_ADDRESS})
            assert created.status_code == 201, created.text
            location_id = created.json()["locationId"]
            body = {"subnet": "10.3.0.0/16", "locationId": location_id}
            entry = await gw.http.post("/v1/network/subnets", json=body)
            assert entry.status_code == 201, entry.text
            assert entry.json()["locationId"] == location_id
            assert entry.json()["address"]["zip"] == "20500"
            # A location the carrier does not hold: the carrier's state, named.
            body = {"subnet": "10.4.0.0/16", "locationId": "nosuchlocation1"}
            missing = await gw.http.post("/v1/network/subnets", json=body)
            assert missing.status_code == 422
            assert missing.json()["type"] == "/problems/unknown-location"

    run(scenario())


def test_an_entry_address_that_cannot_be_routed_is_refused_as_a_reports_is() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            body = {"subnet": "10.9.0.0/16", "address": {**HQ, "addressLine2": "0" * 59}}
            answer = await gw.http.post("/v1/network/subnets", json=body)
            assert answer.status_code == 422, answer.text
            assert answer.json()["type"] == "/problems/unroutable-address"
            fields = {e["field"] for e in answer.json()["errors"]}
            assert fields == {"address.addressLine2"}, fields
            report_answer = await gw.report(report("d1", body["address"]))
            assert report_answer.json()["type"] == "/problems/unroutable-address"

    run(scenario())


def test_a_subnet_match_the_devices_own_gps_fix_contradicts_is_not_used() -> None:
    """A device's private address is anyone's network behind NAT: a laptop at home in
    Seattle on ``192.168.1.23`` (its router's) matched the company's ``192.168.1.0/24`` and
    was provisioned at HQ in Washington, its own address and a 10 m GPS fix in Seattle only
    a warning. A subnet match that the report's fix contradicts is not used now: the report
    is located by its own address (or fix), with a warning naming ``network``. A fix that
    agrees keeps the subnet's place, and an access point's match is unchanged."""
    seattle = {"latitude": 47.6205, "longitude": -122.3493, "accuracyMeters": 10}
    capitol = {"latitude": 38.8977, "longitude": -77.0365, "accuracyMeters": 10}

    async def scenario() -> None:
        async with gateway() as gw:
            await add(gw, "subnets", {"subnet": "192.168.1.0/24"})
            await add(gw, "access-points", {"bssid": "00-A0-C9-14-4C-1*"})
            home = report("home", SPACE_NEEDLE, network={"ip": "192.168.1.23"}, geo=seattle)
            answer = await gw.report(home)
            assert answer.status_code == 200, answer.text
            found = answer.json()
            assert found["locationSource"] == "address", found
            assert found["address"]["zip"] == "98109"
            assert any(w["field"] == "network" for w in found["warnings"]), found["warnings"]
            office = report("desk", SPACE_NEEDLE, network={"ip": "192.168.1.9"}, geo=capitol)
            at_hq = (await gw.report(office)).json()
            assert at_hq["locationSource"] == "subnet" and at_hq["address"]["zip"] == "20500"
            wifi = report("ap", SPACE_NEEDLE, network={"bssid": "00-A0-C9-14-4C-1D"}, geo=seattle)
            by_ap = (await gw.report(wifi)).json()
            assert by_ap["locationSource"] == "access-point", by_ap

    run(scenario())


def test_a_private_subnet_match_stands_only_for_a_report_from_a_trusted_egress() -> None:
    """A laptop at home on ``192.168.1.23`` (its router's), reporting its typed address and no
    GPS fix, matched HQ's ``192.168.1.0/24`` and was provisioned at HQ. With
    ``GATEWAY_NETWORK_TRUSTED_EGRESS`` set, a private subnet match stands only for a report
    the gateway heard from inside it (its TCP peer); otherwise the report is located by its
    own address, warned about ``network``, and one with nothing else to go by is refused. A
    BSSID names one network anywhere: its match stands from wherever it is heard."""
    settings = gateway_settings(network_trusted_egress=("198.51.100.0/24",))

    async def send(gw: Gateway, peer: str, body: dict[str, Any]) -> Any:
        async with from_host(gw, peer) as client:
            headers = device(body["alternateEndUserId"])
            return await client.post("/v1/location-reports", json=body, headers=headers)

    async def scenario() -> None:
        async with gateway(settings) as gw:
            await add(gw, "subnets", {"subnet": "192.168.1.0/24"})
            await add(gw, "subnets", {"subnet": "100.64.0.0/10"})  # carrier-grade NAT
            await add(gw, "access-points", {"bssid": "00-A0-C9-14-4C-1*"})
            home = report("home", SPACE_NEEDLE, network={"ip": "192.168.1.23"})
            answer = await send(gw, "203.0.113.7", home)
            assert answer.status_code == 200, answer.text
            found = answer.json()
            assert found["locationSource"] == "address", found
            assert found["address"]["zip"] == "98109"
            assert [w["field"] for w in found["warnings"]] == ["network"], found["warnings"]
            shared = report("cgn", SPACE_NEEDLE, network={"ip": "100.64.9.9"})
            assert (await send(gw, "203.0.113.7", shared)).json()["locationSource"] == "address"
            # The same private address, heard from the enterprise's egress: the office.
            office = report("desk", SPACE_NEEDLE, network={"ip": "192.168.1.9"})
            at_hq = (await send(gw, "198.51.100.20", office)).json()
            assert at_hq["locationSource"] == "subnet" and at_hq["address"]["zip"] == "20500"
            # An IPv4-mapped peer (a dual-stack socket) is the IPv4 address it is.
            mapped = report("desk2", SPACE_NEEDLE, network={"ip": "192.168.1.10"})
            assert (await send(gw, "::ffff:198.51.100.20", mapped)).json()["locationSource"] == (
                "subnet"
            )
            alone = await send(gw, "203.0.113.7", report("lone", None, network=home["network"]))
            assert alone.status_code == 422, alone.text
            errors = alone.json()["errors"]
            assert errors[0]["field"] == "network" and "private" in errors[0]["message"]
            wifi = report("ap", SPACE_NEEDLE, network={"bssid": "00-A0-C9-14-4C-1D"})
            assert (await send(gw, "203.0.113.7", wifi)).json()["locationSource"] == "access-point"
            # Counted by what located the report: the three distrusted matches did not.
            counted = functools.partial(
                gw.metrics.registry.get_sample_value, "dlr_network_resolutions_total"
            )
            assert counted({"source": "subnet"}) == 2
            assert counted({"source": "subnet-distrusted"}) == 3
            assert counted({"source": "access-point"}) == 1

    run(scenario())


def test_behind_a_trusted_proxy_the_egress_check_reads_the_client_it_saw() -> None:
    """Behind ingress-nginx every report's TCP peer is an ingress pod: with the pods'
    network in ``GATEWAY_TRUSTED_PROXIES`` a report is heard from the address the ingress
    saw (the nearest ``X-Forwarded-For`` hop), so the office's reports match their subnet
    and a home's do not, whatever hops a device forges; another peer's header is unread."""
    settings = gateway_settings(
        network_trusted_egress=("198.51.100.0/24",), trusted_proxies=("10.244.0.0/16",)
    )

    async def source(gw: Gateway, peer: str, aeui: str, forwarded: str | None) -> str:
        headers = device(aeui)
        if forwarded is not None:
            headers["X-Forwarded-For"] = forwarded
        body = report(aeui, SPACE_NEEDLE, network={"ip": "192.168.1.9"})
        async with from_host(gw, peer) as client:
            answer = await client.post("/v1/location-reports", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        found: str = answer.json()["locationSource"]
        return found

    async def scenario() -> None:
        async with gateway(settings) as gw:
            await add(gw, "subnets", {"subnet": "192.168.1.0/24"})
            ingress = "10.244.1.5"
            assert await source(gw, ingress, "office", "198.51.100.20") == "subnet"
            assert await source(gw, ingress, "home", "203.0.113.7") == "address"
            # A device at home forges the office's egress; the ingress appends what it saw.
            forged = "198.51.100.20, 203.0.113.7"
            assert await source(gw, ingress, "forger", forged) == "address"
            assert await source(gw, ingress, "bare", None) == "address"  # the pod's own
            # Not a trusted proxy: its header is not read, its own address is outside.
            assert await source(gw, "192.0.2.1", "direct", "198.51.100.20") == "address"

    run(scenario())


def test_without_trusted_egress_a_private_subnet_matches_and_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Unset, behaviour is as before (any subnet match stands), and a replica that starts with
    private subnets in its wiremap logs that a home network on the same range matches them."""

    async def scenario() -> None:
        async with gateway() as gw:
            await add(gw, "subnets", {"subnet": "192.168.1.0/24"})
            async with from_host(gw, "203.0.113.7") as client:
                body = report("home", SPACE_NEEDLE, network={"ip": "192.168.1.23"})
                answer = await client.post(
                    "/v1/location-reports", json=body, headers=device("home")
                )
            assert answer.json()["locationSource"] == "subnet", answer.text
            wiremap = gw.app.state.wiremap
            assert warn_if_unchecked(wiremap.index, ())
            assert not warn_if_unchecked(wiremap.index, ("198.51.100.0/24",))

    with caplog.at_level("WARNING", logger="gateway.network"):
        run(scenario())
    assert "GATEWAY_NETWORK_TRUSTED_EGRESS is not set" in caplog.text


def test_an_entry_stored_before_todays_checks_is_listed_with_why_and_never_resolves() -> None:
    """A subnet wider than /8 an older version stored would locate every client in it at
    one address: the admin sees it (a warning), resolution skips it, and it can be deleted."""

    async def scenario() -> None:
        async with gateway() as gw:
            wiremap = gw.app.state.wiremap
            hq = address_from_json(HQ)
            assert hq is not None
            await wiremap.store.put([Entry(Kind.SUBNET, "8.0.0.0/5", hq)])
            await wiremap.refresh()
            listed = (await gw.http.get("/v1/network/subnets")).json()["entries"]
            assert [e["subnet"] for e in listed] == ["8.0.0.0/5"]
            (warning,) = listed[0]["warnings"]
            assert warning["field"] == "subnet" and "not served" in warning["message"]
            resolved = await gw.http.post("/v1/network/resolve", json={"ip": "9.1.2.3"})
            assert resolved.status_code == 404
            gone = await gw.http.delete(f"/v1/network/subnets/{listed[0]['id']}")
            assert gone.status_code == 204
            assert (await gw.http.get("/v1/network/subnets")).json()["entries"] == []

    run(scenario())


def test_a_replica_starts_on_a_wiremap_holding_entries_it_does_not_serve(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An older version's subnet with its host bits set is held, not served: the start-up
    check of private subnets reads the served ones and the replica starts."""
    settings = gateway_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    hq = address_from_json(HQ)
    assert hq is not None

    async def scenario() -> None:
        store = await open_store(settings.database_url, create=True)
        assert isinstance(store, SqlStateStore)
        async with store:
            held = [Entry(Kind.SUBNET, "10.1.2.3/16", hq), Entry(Kind.SUBNET, "10.2.0.0/16", hq)]
            await SqlWiremapStore(store).put(held)
        with caplog.at_level("WARNING", logger="gateway.network"):
            async with gateway(settings) as gw:
                found = await gw.http.post("/v1/network/resolve", json={"ip": "10.2.0.1"})
                assert found.status_code == 200, found.text
                missed = await gw.http.post("/v1/network/resolve", json={"ip": "10.1.2.3"})
                assert missed.status_code == 404, missed.text
        logged = [r.getMessage() for r in caplog.records]
        assert any("1 wiremap entries are not served" in m for m in logged), logged
        assert any("private subnet(s) (e.g. 10.2.0.0/16)" in m for m in logged), logged

    run(scenario())
