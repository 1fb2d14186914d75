"""Addresses as people write them, end to end: each shape of the corpus is reported by a device
through the gateway, and the carrier ends up holding exactly the normalized address.

The corpus is ``tests.dlr.test_address`` (``CORPUS``, ``CANADA_FREE_FORM``): a shape fixed there
is carried through the whole gateway here too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.api.schemas import record_to_json
from gateway.bandwidth.models import Address
from tests.dlr.test_address import CANADA_FREE_FORM, CORPUS
from tests.harness import gateway, report

#: A callback number of the place, as its devices have (territories have their own codes).
_AREA_CODES = {"PR": "787", "VI": "340", "GU": "671", "AS": "684", "MP": "670"}


def callback_for(address: Address, device: int) -> str:
    """The ``device``-th device's own number (a number has one owner)."""
    if address.country == "CA":
        return f"+1416555{device:04d}"
    return f"+1{_AREA_CODES.get(address.state_code or '', '202')}555{device:04d}"


def test_every_shape_of_the_corpus_is_provisioned_as_normalized() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            for i, (raw, expected) in enumerate([*CORPUS, *CANADA_FREE_FORM]):
                body = report(f"shape-{i}", raw, phone=callback_for(expected, i))
                response = await gw.report(body)
                assert response.status_code == 200, (raw, response.text)
                answer: dict[str, Any] = response.json()
                assert answer["address"] == record_to_json(expected), raw
                assert answer["telephoneNumber"] == callback_for(expected, i)
                held = gw.simulator.state["locations"][answer["locationId"]]["address"]
                assert held == record_to_json(expected), raw

    asyncio.run(scenario())


def test_a_kilometre_marker_reaches_the_carrier_with_its_decimal_point() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            body = report("km-device", "Carr 2 Km 5.4, Bayamon, PR 00959", phone="+17875550143")
            response = await gw.report(body)
            assert response.status_code == 200, response.text
            held = gw.simulator.state["locations"][response.json()["locationId"]]["address"]
            assert held["houseNumber"] == "KM 5.4"
            assert held["streetName"] == "CARR 2"

    asyncio.run(scenario())


def test_a_unit_without_its_number_is_provisioned_with_a_warning() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            body = report("no-unit", "500 E 1st St Apt, Springfield, IL 62701")
            response = await gw.report(body)
            assert response.status_code == 200, response.text
            warnings = response.json()["warnings"]
            assert [w["field"] for w in warnings] == ["address.addressLine2"]
            assert "has no number" in warnings[0]["message"]

    asyncio.run(scenario())


def test_a_suite_in_the_street_name_reaches_the_carrier_as_address_line2() -> None:
    """``streetName`` "5th Ave Ste 3000": the carrier got ``5TH AVE STE 3000`` as the street
    and no addressLine2, so the suite was not where the PSAP looks for it."""
    empire = {"houseNumber": "350", "city": "New York", "stateCode": "NY", "zip": "10118"}

    async def scenario() -> None:
        sent: list[httpx.Request] = []
        async with gateway(record=sent) as gw:
            street = empire | {"streetName": "5th Ave Ste 3000"}
            response = await gw.report(report("suite", street, phone="+12125550143"))
            assert response.status_code == 200, response.text
            [create] = [r for r in sent if r.method == "POST" and r.url.path.endswith("/locations")]
            assert b"<streetName>5TH</streetName>" in create.content
            assert b"<streetSuffix>AVE</streetSuffix>" in create.content
            assert b"<addressLine2>STE 3000</addressLine2>" in create.content

            # A second suite in addressLine2: refused, saying so, rather than one dropped.
            twice = street | {"addressLine2": "Suite 3001"}
            refused = await gw.report(report("suite", twice, 10, phone="+12125550143"))
            assert refused.status_code == 422, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            errors = refused.json()["errors"]
            assert any("STE twice" in e["message"] for e in errors), errors

    asyncio.run(scenario())
