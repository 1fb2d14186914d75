"""HELD by network identity: ``<ip>``, ``<mac>`` and the request's own source address,
through the wiremap; who may ask; ``locationUnknown`` when nothing matches."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.pidf.held import read_request
from gateway.pidf.namespaces import GEOPRIV
from tests.api.test_held import ask, device, error_code, located
from tests.api.test_network import HQ
from tests.harness import Gateway, from_host, gateway, gateway_settings
from tests.pidf import samples
from tests.pidf.checks import civic_values, parse_xml

HELD_TYPE = {"Content-Type": "application/held+xml"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def mapped(gw: Gateway) -> None:
    for collection, key, place in [
        ("subnets", {"subnet": "10.1.0.0/16"}, "Floor 3 Room 301"),
        ("subnets", {"subnet": "2001:db8:1::/48"}, "Floor 5"),
        ("access-points", {"bssid": "00-A0-C9-14-4C-1*"}, "Floor 7"),
    ]:
        body = {**key, "address": {**HQ, "addressLine2": place}}
        assert (await gw.http.post(f"/v1/network/{collection}", json=body)).status_code == 201


def place(response: httpx.Response) -> str:
    found = located(response)
    method = parse_xml(response.content).find(f".//{{{GEOPRIV}}}method")
    assert method is not None and method.text == "Wiremap"
    return civic_values(found["civic"])["FLR"] + "/" + civic_values(found["civic"])["ROOM"]


def test_ip_and_mac_requests_parse() -> None:
    request = read_request(samples.held_request(device="<ip v='4'>10.1.2.3</ip>"))
    assert [(d.kind, d.value) for d in request.device] == [("ip", "10.1.2.3")]


def test_admin_asks_by_ip_and_by_mac() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            await mapped(gw)
            by_ip = samples.held_request(device="<ip v='4'>10.1.200.7</ip>")
            assert place(await ask(gw, by_ip)) == "3/301"
            by_ip6 = samples.held_request(device="<ip v='6'>2001:db8:1:ff::9</ip>")
            found = located(await ask(gw, by_ip6))
            assert civic_values(found["civic"])["FLR"] == "5"
            by_mac = samples.held_request(device="<mac>00a0c9144c1d</mac>")
            assert civic_values(located(await ask(gw, by_mac))["civic"])["FLR"] == "7"
            miss = samples.held_request(device="<ip v='4'>192.0.2.1</ip>")
            assert error_code(await ask(gw, miss)) == "locationUnknown"
            bad = samples.held_request(device="<ip v='4'>10.1.0.0/16</ip>")
            assert error_code(await ask(gw, bad)) == "badIdentifier"
            mixed = samples.held_request(device="<ip v='4'>10.1.2.3</ip><mac>00a0c9144c1d</mac>")
            assert error_code(await ask(gw, mixed)) == "badIdentifier"

    run(scenario())


def test_a_device_token_never_reads_the_wiremap() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            await mapped(gw)
            by_ip = samples.held_request(device="<ip v='4'>10.1.2.3</ip>")
            assert error_code(await ask(gw, by_ip, **device("alice"))) == "badIdentifier"
            by_mac = samples.held_request(device="<mac>00a0c9144c1d</mac>")
            assert error_code(await ask(gw, by_mac, **device("alice"))) == "badIdentifier"

    run(scenario())


def test_source_address_only_from_trusted_networks() -> None:
    async def scenario() -> None:
        settings = gateway_settings(network_trusted_cidrs=("10.1.0.0/16", "2001:db8::/32"))
        async with gateway(settings) as gw:
            await mapped(gw)
            plain = samples.held_request()
            async with from_host(gw, "10.1.2.3") as host:
                answer = await host.post("/v1/held", content=plain, headers=HELD_TYPE)
                assert place(answer) == "3/301"
                # Without credentials a host may ask only about itself.
                other = samples.held_request(device="<ip v='4'>10.1.9.9</ip>")
                answer = await host.post("/v1/held", content=other, headers=HELD_TYPE)
                assert error_code(answer) == "badIdentifier"
            async with from_host(gw, "2001:db8:2::1") as host:  # trusted, but not mapped
                answer = await host.post("/v1/held", content=plain, headers=HELD_TYPE)
                assert error_code(answer) == "locationUnknown"
            async with from_host(gw, "192.0.2.50") as host:  # not a trusted network
                answer = await host.post("/v1/held", content=plain, headers=HELD_TYPE)
                assert answer.status_code == 401
                assert answer.headers["content-type"] == "application/problem+json"

    run(scenario())


def test_behind_a_trusted_proxy_the_source_address_is_the_client_it_saw() -> None:
    """Through an ingress (a trusted proxy) a host is located by the address the ingress
    saw, and asks without credentials only from inside the trusted networks: a hop it forges
    is not read, nor the header of a peer that is not a trusted proxy."""

    async def held_from(gw: Gateway, peer: str, forwarded: str) -> httpx.Response:
        headers = {**HELD_TYPE, "X-Forwarded-For": forwarded}
        async with from_host(gw, peer) as host:
            return await host.post("/v1/held", content=samples.held_request(), headers=headers)

    async def scenario() -> None:
        settings = gateway_settings(
            network_trusted_cidrs=("10.1.0.0/16",), trusted_proxies=("10.244.0.0/16",)
        )
        async with gateway(settings) as gw:
            await mapped(gw)
            assert place(await held_from(gw, "10.244.1.5", "10.1.2.3")) == "3/301"
            assert (await held_from(gw, "10.244.1.5", "10.1.2.3, 192.0.2.50")).status_code == 401
            assert (await held_from(gw, "192.0.2.50", "10.1.2.3")).status_code == 401

    run(scenario())


def test_no_trusted_networks_no_source_address_requests() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            await mapped(gw)
            async with from_host(gw, "10.1.2.3") as host:
                answer = await host.post(
                    "/v1/held", content=samples.held_request(), headers=HELD_TYPE
                )
                assert answer.status_code == 401

    run(scenario())
