"""HELD messages: requests read, answers and errors written in the RFCs' shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.pidf.document import LocationObject
from gateway.pidf.geodetic import Shape
from gateway.pidf.held import (
    DeviceId,
    HeldError,
    LocationRequest,
    device_from_uri,
    read_request,
    write_error,
    write_response,
)
from tests.pidf import samples
from tests.pidf.checks import HELD, check_presence, parse_xml

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def test_the_rfc_shaped_request_is_read() -> None:
    assert read_request(samples.HELD_REQUEST) == LocationRequest(
        types=("civic", "geodetic"),
        exact=True,
        response_time=8.0,
        device=(DeviceId("aeui", "alice-laptop"),),
    )


def test_an_empty_request_asks_for_any_location_of_the_requester() -> None:
    assert read_request(samples.held_request()) == LocationRequest()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"response_time": "emergencyRouting"}, None),
        ({"response_time": "emergencyDispatch"}, None),
        ({"response_time": "250"}, 0.25),
        ({"response_time": "9" * 40}, 86_400.0),
    ],
)
def test_response_time(kwargs: dict[str, str], expected: float | None) -> None:
    assert read_request(samples.held_request(**kwargs)).response_time == expected


@pytest.mark.parametrize(
    ("uri", "device"),
    [
        ("tel:+1-202-555-0143", DeviceId("tel", "+12025550143")),
        ("tel:+12025550143;ext=22", DeviceId("tel", "+12025550143")),
        ("sip:alice-laptop@example.com", DeviceId("aeui", "alice-laptop")),
        ("SIPS:alice@example.com;transport=tls", DeviceId("aeui", "alice")),
        ("pres:front%20desk@example.com", DeviceId("aeui", "front desk")),
    ],
)
def test_device_uris(uri: str, device: DeviceId) -> None:
    assert device_from_uri(uri) == device


@pytest.mark.parametrize(
    "uri", ["tel:2025550143", "mailto:a@b", "sip:example.com", "alice", "sip:%20a@b"]
)
def test_device_uris_that_name_no_device(uri: str) -> None:
    with pytest.raises(HeldError) as caught:
        device_from_uri(uri)
    assert caught.value.code == "badIdentifier"


def test_msisdn_is_a_number() -> None:
    request = read_request(samples.held_request(device="<msisdn>12025550143</msisdn>"))
    assert request.device == (DeviceId("tel", "+12025550143"),)


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (b"<locationRequest", "xmlError"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "xmlError"),
        (b'<locationResponse xmlns="urn:ietf:params:xml:ns:geopriv:held"/>', "unsupportedMessage"),
        (b"<locationRequest/>", "unsupportedMessage"),
        (samples.held_request(types="civic somewhere"), "requestError"),
        (samples.held_request(types="civic", exact="maybe"), "requestError"),
        (samples.held_request(response_time="-5"), "requestError"),
        (samples.held_request(response_time="soon"), "requestError"),
        (samples.held_request(device="<hostname>desk-7</hostname>"), "badIdentifier"),
        (samples.held_request(device="<imei>490154203237518</imei>"), "badIdentifier"),
        (samples.held_request(device=""), "badIdentifier"),
        (samples.held_request(device="<msisdn>+1 202</msisdn>"), "badIdentifier"),
        (
            b'<locationRequest xmlns="urn:ietf:params:xml:ns:geopriv:held">'
            b"<locationType>civic</locationType><locationType>any</locationType>"
            b"</locationRequest>",
            "requestError",
        ),
        (
            b'<locationRequest xmlns="urn:ietf:params:xml:ns:geopriv:held"><bogus/>'
            b"</locationRequest>",
            "requestError",
        ),
    ],
)
def test_bad_requests_get_their_code(document: bytes, code: str) -> None:
    with pytest.raises(HeldError) as caught:
        read_request(document)
    assert caught.value.code == code


def test_unknown_extensions_are_ignored() -> None:
    document = samples.held_request(types="geodetic").replace(
        b"</locationRequest>", b'<x:hint xmlns:x="urn:example:ext">wifi</x:hint></locationRequest>'
    )
    assert read_request(document).types == ("geodetic",)


def test_error_document() -> None:
    data = write_error("locationUnknown", "no location is registered")
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<error ')
    assert b'xmlns="urn:ietf:params:xml:ns:geopriv:held"' in data
    root = parse_xml(data)
    assert root.tag == f"{{{HELD}}}error"
    assert root.get("code") == "locationUnknown"
    assert [child.tag for child in root] == [f"{{{HELD}}}message"]
    assert root[0].get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    assert root[0].text == "no location is registered"
    with pytest.raises(ValueError, match="not a HELD error code"):
        write_error("oops", "x")


def test_location_response_carries_one_pidf_lo() -> None:
    lo = LocationObject(
        entity="pres:alice@example.com",
        timestamp=NOW,
        retention_expiry=NOW + timedelta(days=1),
        civic={"country": "US", "A1": "NY", "RD": "5TH"},
        shape=Shape(40.7484, -73.9857),
        contact="tel:+12025550143",
    )
    data = write_response(lo)
    root = parse_xml(data)
    assert root.tag == f"{{{HELD}}}locationResponse"
    assert len(root) == 1
    found = check_presence(root[0])
    assert set(found) == {"civic", "point"}
    # Both documents in their default namespaces, as in RFC 5985's examples.
    assert b'xmlns="urn:ietf:params:xml:ns:geopriv:held"' in data
    assert b'xmlns="urn:ietf:params:xml:ns:pidf"' in data
