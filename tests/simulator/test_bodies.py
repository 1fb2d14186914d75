"""Request bodies: read tolerantly, refused safely, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.bandwidth import codec
from gateway.bandwidth.models import Location
from gateway.simulator.app import MAX_BODY_BYTES

from .helpers import Harness, error_of, location_xml

ADDRESS = (
    "<address><houseNumber>1600</houseNumber><streetName>PENNSYLVANIA</streetName>"
    "<city>WASHINGTON</city><stateCode>DC</stateCode><zip>20500</zip></address>"
)


@pytest.mark.parametrize(
    "body",
    [
        # Wrapped in an envelope named after the schema.
        f"<LocationRequest><Location><locationId>W1</locationId>{ADDRESS}</Location></LocationRequest>",
        # Any root name; unknown elements ignored.
        f"<Whatever><locationId>W1</locationId><shoeSize>9</shoeSize>{ADDRESS}</Whatever>",
        # Namespaced, other case.
        f'<b:Location xmlns:b="urn:x"><b:LocationId>W1</b:LocationId>{ADDRESS}</b:Location>',
    ],
)
def test_tolerant_reading(h: Harness, body: str) -> None:
    response = h.post("/locations", body)
    assert response.status_code == 201, response.text
    assert codec.decode(Location, response.content).location_id == "W1"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"<Location>",
        b"not xml at all",
        b'<!DOCTYPE x [<!ENTITY e "boom">]><Location><locationId>&e;</locationId></Location>',
        b'<!DOCTYPE x SYSTEM "http://example.com/x.dtd"><Location/>',
        b"<Location><latitude>north</latitude></Location>",
        b"<Location><latitude>nan</latitude></Location>",
        b"\xff\xfe\x00<",
        b'<?xml version="1.0" encoding="bogus"?><Location/>',
        b"<a>" * 80_000 + b"</a>" * 80_000,
        b"<address>" * 50_000 + b"</address>" * 50_000,
    ],
)
def test_unreadable_bodies_are_400(h: Harness, body: bytes) -> None:
    for path in ("/locations", "", "/notificationRecipients"):
        response = h.post(path, body)
        assert response.status_code == 400, (path, body[:40], response.text)
        assert error_of(response).code in ("INVALID_REQUEST", "INVALID_ADDRESS")
    assert h.sim.state == {"endpoints": {}, "locations": {}, "notificationRecipients": {}}


def test_too_large_body_is_413(h: Harness) -> None:
    body = b"<Location>" + b" " * MAX_BODY_BYTES + b"</Location>"
    response = h.post("/locations", body)
    assert response.status_code == 413
    assert error_of(response).code == "PAYLOAD_TOO_LARGE"
    assert h.sim.calls[-1]["status"] == 413


def test_too_large_body_without_content_length_is_413(h: Harness) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    response = h.run(lambda c: c.post("/api/accounts/9900000/e911s/locations", content=chunks()))
    assert response.status_code == 413


def test_put_on_unknown_id_with_control_characters_is_a_clean_404(h: Harness) -> None:
    response = h.put("/locations/%01%02", location_xml())
    assert response.status_code == 404
    assert error_of(response).code == "NOT_FOUND"
    response = h.get("/%EF%BF%BE")
    assert response.status_code == 404
