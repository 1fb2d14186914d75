"""``POST /v1/held``: HELD location requests for provisioned devices, and every error.

HELD answers, successes and HELD errors alike, are HTTP 200 ``application/held+xml``
(RFC 5985); HTTP-level trouble (credentials, media type, size) stays problem+json.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api.auth import DeviceTokens
from gateway.app import SANDBOX_PREFIX
from gateway.pidf.document import read_presence
from tests.harness import (
    EMPIRE_STATE,
    JWT_SECRET,
    WHITE_HOUSE,
    Gateway,
    gateway,
    gateway_settings,
    new_simulator,
    report,
)
from tests.pidf import samples
from tests.pidf.checks import HELD, check_presence, civic_values, mutated, parse_xml

HELD_TYPE = {"Content-Type": "application/held+xml"}
ALICE = "<uri>sip:alice@example.com</uri>"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def device(aeui: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {DeviceTokens(secret=JWT_SECRET).mint(aeui, 300)}"}


async def ask(gw: Gateway, body: bytes, **headers: str) -> httpx.Response:
    return await gw.http.post("/v1/held", content=body, headers={**HELD_TYPE, **headers})


def error_code(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/held+xml"
    root = parse_xml(response.content)
    assert root.tag == f"{{{HELD}}}error", response.text
    assert root.findtext(f"{{{HELD}}}message")
    return str(root.get("code"))


def located(response: httpx.Response) -> dict[str, Any]:
    """The location elements of a successful answer, its structure checked on the way."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/held+xml"
    root = parse_xml(response.content)
    assert root.tag == f"{{{HELD}}}locationResponse", response.text
    assert len(root) == 1
    return check_presence(root[0])


async def provisioned(gw: Gateway) -> None:
    """alice at the Empire State Building with a GPS fix (civic, and a Circle of its
    accuracy), bob at the White House with another number (civic only: the offline
    geocoder gives a ZIP centroid, no position)."""
    fix = {"latitude": 40.748817, "longitude": -73.985428, "accuracyMeters": 12}
    alice = report("alice", EMPIRE_STATE + ", Floor 86", 0, phone="+12025550143", geo=fix)
    assert (await gw.report(alice)).status_code == 200
    bob = report("bob", WHITE_HOUSE, 0, caller="BOB", phone="+12025550199")
    assert (await gw.report(bob)).status_code == 200


def test_admin_asks_by_aeui() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            await provisioned(gw)
            found = located(await ask(gw, samples.held_request(device=ALICE)))
            assert set(found) == {"civic", "circle"}
            civic = civic_values(found["civic"])
            assert (civic["HNO"], civic["RD"], civic["FLR"], civic["PC"]) == (
                "350",
                "5TH",
                "86",
                "10118",
            )
            assert civic["NAM"] == "ALICE SMITH"

    run(scenario())


def test_device_asks_for_itself_with_and_without_naming_itself() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            await provisioned(gw)
            plain = await ask(gw, samples.held_request(), **device("alice"))
            assert set(located(plain)) == {"civic", "circle"}
            own_number = samples.held_request(device="<uri>tel:+1-202-555-0143</uri>")
            assert set(located(await ask(gw, own_number, **device("alice")))) == {"civic", "circle"}
            msisdn = samples.held_request(device="<msisdn>12025550143</msisdn>")
            assert located(await ask(gw, msisdn, **device("alice")))
            # A bare E.164 number in <uri>, as some clients send it, is the tel: URI it means.
            bare = samples.held_request(device="<uri>+12025550143</uri>")
            assert set(located(await ask(gw, bare, **device("alice")))) == {"civic", "circle"}
            # The document reads back as the device's location.
            presence = read_presence(parse_xml_child(plain))
            assert presence.contact == "tel:+12025550143"

    run(scenario())


def parse_xml_child(response: httpx.Response) -> bytes:
    """The PIDF-LO inside a locationResponse, as a document of its own."""
    return ET.tostring(parse_xml(response.content)[0])


def test_location_types_and_exact() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            await provisioned(gw)
            civic_only = samples.held_request(types="civic", exact="true", device=ALICE)
            assert set(located(await ask(gw, civic_only))) == {"civic"}
            geodetic = samples.held_request(types="geodetic", device=ALICE)
            assert set(located(await ask(gw, geodetic))) == {"circle"}
            reference = samples.held_request(types="locationURI", exact="true", device=ALICE)
            assert error_code(await ask(gw, reference)) == "cannotProvideLiType"
            # Not exact: what there is, rather than nothing.
            lenient = samples.held_request(types="locationURI", exact="false", device=ALICE)
            assert set(located(await ask(gw, lenient))) == {"civic", "circle"}
            mixed = samples.held_request(types="civic locationURI", exact="true", device=ALICE)
            assert error_code(await ask(gw, mixed)) == "cannotProvideLiType"

    run(scenario())


def test_numbers_are_looked_up_for_admins_in_what_the_gateway_knows() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            await provisioned(gw)
            seq = gw.last_seq()
            by_number = samples.held_request(device="<uri>tel:+12025550199</uri>")
            civic = civic_values(located(await ask(gw, by_number))["civic"])
            assert civic["NAM"] == "BOB"
            bare = samples.held_request(device="<uri> +1-202-555-0199 </uri>")
            assert civic_values(located(await ask(gw, bare))["civic"])["NAM"] == "BOB"
            unknown = samples.held_request(device="<uri>tel:+12025550100</uri>")
            assert error_code(await ask(gw, unknown)) == "locationUnknown"
            assert gw.operations(seq) == []  # the state store knows; never an endpoint list
            # A device token never learns whose another number is, and costs no carrier call.
            seq = gw.last_seq()
            assert error_code(await ask(gw, by_number, **device("alice"))) == "badIdentifier"
            assert gw.operations(seq) == []

    run(scenario())


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<locationRequest", "xmlError"),
        (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>', "xmlError"),
        (samples.CIVIC, "unsupportedMessage"),
        (samples.held_request(types="somewhere"), "requestError"),
        (samples.held_request(response_time="later"), "requestError"),
        # A network identity the wiremap does not hold (tests/api/test_held_network.py).
        (samples.held_request(device="<mac>00a0c9144c1d</mac>"), "locationUnknown"),
        (samples.held_request(device="<mac>00a0c9144c1</mac>"), "badIdentifier"),
        (samples.held_request(device="<uri>mailto:alice@example.com</uri>"), "badIdentifier"),
        (samples.held_request(device="<uri>12025550143</uri>"), "badIdentifier"),
        (samples.held_request(device="<uri>+1202555x143</uri>"), "badIdentifier"),
        # An admin key must name the device.
        (samples.held_request(), "badIdentifier"),
        (samples.held_request(device="<uri>sip:nobody@example.com</uri>"), "locationUnknown"),
        (
            samples.held_request(device=f"{ALICE}<uri>sip:bob@example.com</uri>"),
            "badIdentifier",
        ),
    ],
)
def test_held_errors(body: bytes, code: str) -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            await provisioned(gw)
            assert error_code(await ask(gw, body)) == code

    run(scenario())


def test_device_token_may_not_ask_for_another_device() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            await provisioned(gw)
            other = samples.held_request(device="<uri>pres:bob@example.com</uri>")
            assert error_code(await ask(gw, other, **device("alice"))) == "badIdentifier"
            unknown_self = samples.held_request()
            assert error_code(await ask(gw, unknown_self, **device("carol"))) == "locationUnknown"

    run(scenario())


def test_http_level_failures_stay_problem_json() -> None:
    async def scenario() -> None:
        async with gateway(gateway_settings(max_body_bytes=1024)) as gw:
            anonymous = await ask(gw, samples.held_request(), Authorization="")
            assert anonymous.status_code == 401
            assert anonymous.headers["content-type"] == "application/problem+json"
            assert anonymous.headers["www-authenticate"].startswith("Bearer")
            wrong_type = await gw.http.post(
                "/v1/held", content=samples.held_request(), headers={"Content-Type": "text/xml"}
            )
            assert wrong_type.status_code == 415
            too_big = await ask(gw, samples.held_request() + b" " * 2000)
            assert too_big.status_code == 413
            assert (await gw.http.get("/v1/held")).status_code == 405

    run(scenario())


def test_response_time_bounds_the_lookup() -> None:
    async def scenario() -> None:
        settings_ = gateway_settings()
        sim_app = new_simulator(settings_)
        async with gateway(settings_, sim_app=sim_app) as gw:
            await provisioned(gw)
        # A new replica knows nothing yet: it must ask the carrier, which is slow now.
        async with gateway(settings_, sim_app=sim_app) as gw:
            slow = await gw.http.post(f"{SANDBOX_PREFIX}/_sim/config", json={"latencyMs": 400})
            assert slow.status_code == 200
            hurried = samples.held_request(response_time="50", device=ALICE)
            assert error_code(await ask(gw, hurried)) == "timeout"
            patient = samples.held_request(response_time="emergencyDispatch", device=ALICE)
            answer = await ask(gw, patient)
            # This replica's own store never saw the report: when alice was there and her
            # own fix are unknown to it, so neither is made up (no "now", no carrier point).
            assert set(located(answer)) == {"civic"}
            assert read_presence(parse_xml_child(answer)).timestamp is None

    run(scenario())


_PIECES = st.sampled_from(
    [b"<", b"</device>", b"&amp;", b"\x00", b"<uri>tel:+1</uri>", b"9" * 30, b'exact="x"']
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    seed=st.sampled_from([samples.HELD_REQUEST, samples.held_request(device=ALICE)]),
    edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 30), _PIECES), max_size=4),
)
def test_mutated_requests_always_get_a_held_answer(
    seed: bytes, edits: list[tuple[int, int, bytes]]
) -> None:
    data = mutated(seed, edits)

    async def scenario() -> None:
        async with gateway() as gw:
            response = await ask(gw, data)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/held+xml"
            assert parse_xml(response.content).tag in (
                f"{{{HELD}}}error",
                f"{{{HELD}}}locationResponse",
            )

    run(scenario())
