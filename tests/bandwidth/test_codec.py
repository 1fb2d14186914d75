from __future__ import annotations

import contextlib
import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.bandwidth import codec
from gateway.bandwidth.errors import CodecError
from gateway.bandwidth.models import (
    Address,
    Endpoint,
    EndpointListResponse,
    Location,
    LocationListResponse,
    LocationStatus,
    NotificationRecipient,
    NotificationRecipientListResponse,
    Record,
    wire_name,
)
from gateway.xmlsafe import serialize

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


FULL_ADDRESS = Address(
    house_number="900",
    house_suffix="1/2",
    prefix_directional="N",
    street_name="MAIN CAMPUS",
    street_suffix="DR",
    post_directional="W",
    address_line2="STE 300 & FL 3 <rear>",
    city="RALEIGH",
    state_code="NC",
    zip="27606",
    plus_four="5214",
    country="US",
)
FULL_LOCATION = Location(
    location_id="A1B2C3",
    description="HQ, 3rd floor",
    address=FULL_ADDRESS,
    status=LocationStatus.GEOCODED,
    latitude=35.7796,
    longitude=-78.6382,
)
FULL_ENDPOINT = Endpoint(
    endpoint_id="ep1",
    alternate_end_user_id="device-42",
    caller_name="Zoë O'Brien",
    location_id="A1B2C3",
    telephone_number="+19195551234",
    activated=True,
)
FULL_RECIPIENT = NotificationRecipient(
    id="nr1",
    email_address="security@example.com",
    phone_number="+19195550000",
    description="Front desk",
)

ROUND_TRIPS: list[Record] = [
    FULL_ENDPOINT,
    Endpoint(),
    Endpoint(alternate_end_user_id="device-1", activated=False),
    FULL_LOCATION,
    Location(),
    Location(location_id="X", address=Address(zip="27606")),
    Location(address=Address()),
    FULL_RECIPIENT,
    NotificationRecipient(),
    NotificationRecipient(email_address="a@b.c"),
    EndpointListResponse(total_count=2, endpoints=(FULL_ENDPOINT, Endpoint(endpoint_id="ep2"))),
    EndpointListResponse(),
    EndpointListResponse(total_count=0),
    LocationListResponse(total_count=1, locations=(FULL_LOCATION,)),
    LocationListResponse(locations=(Location(location_id="A"), Location(description="b"))),
    LocationListResponse(),
    NotificationRecipientListResponse(notification_recipients=(FULL_RECIPIENT,)),
    NotificationRecipientListResponse(
        notification_recipients=(NotificationRecipient(id="1"), NotificationRecipient(id="2"))
    ),
    NotificationRecipientListResponse(),
]


@pytest.mark.parametrize("record", ROUND_TRIPS, ids=lambda r: type(r).__name__)
def test_round_trip(record: Record) -> None:
    data = codec.encode(record)
    assert codec.decode(type(record), data) == record
    assert codec.parse(data).tag == type(record).__name__


def test_writes_the_seed_mapping_exactly() -> None:
    data = codec.encode(
        EndpointListResponse(
            total_count=2,
            endpoints=(Endpoint(endpoint_id="a", activated=True), Endpoint(endpoint_id="b")),
        )
    )
    assert data == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b"<EndpointListResponse><totalCount>2</totalCount>"
        b"<endpoints><endpointId>a</endpointId><activated>true</activated></endpoints>"
        b"<endpoints><endpointId>b</endpointId></endpoints>"
        b"</EndpointListResponse>"
    )
    location = codec.encode(Location(location_id="L", address=Address(house_number="1")))
    assert b"<Location><locationId>L</locationId>" in location
    assert b"<address><houseNumber>1</houseNumber></address>" in location


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-7, "0.0000001"),
        (-1e-7, "-0.0000001"),
        (1e22, "10000000000000000000000"),
        (35.7796, "35.7796"),
        (-78.0, "-78.0"),
        (0.0, "0.0"),
    ],
)
def test_numbers_are_plain_decimal(value: float, text: str) -> None:
    root = codec.parse(codec.encode(Location(latitude=value)))
    assert root.findtext("latitude") == text
    assert codec.from_element(Location, root).latitude == value


def test_non_finite_numbers_are_refused() -> None:
    with pytest.raises(CodecError):
        codec.encode(Location(latitude=float("nan")))
    with pytest.raises(CodecError):
        codec.encode(Location(longitude=float("inf")))


def test_booleans_are_true_and_false() -> None:
    assert codec.parse(codec.encode(Endpoint(activated=True))).findtext("activated") == "true"
    assert codec.parse(codec.encode(Endpoint(activated=False))).findtext("activated") == "false"
    for text, value in (("TRUE", True), ("1", True), ("False", False), ("0", False)):
        data = f"<Endpoint><activated>{text}</activated></Endpoint>".encode()
        assert codec.decode(Endpoint, data).activated is value
    with pytest.raises(CodecError, match="activated"):
        codec.decode(Endpoint, b"<Endpoint><activated>yes</activated></Endpoint>")


def test_text_that_xml_cannot_carry_is_refused() -> None:
    with pytest.raises(CodecError):
        codec.encode(Endpoint(caller_name="bell\x07"))


def test_carriage_return_survives() -> None:
    record = Endpoint(caller_name="a\rb\r\nc")
    assert codec.decode(Endpoint, codec.encode(record)) == record


# -- tolerant reading ----------------------------------------------------------


def test_reads_a_fixture_record() -> None:
    assert codec.decode(Endpoint, fixture("endpoint.xml")) == Endpoint(
        endpoint_id="ep1",
        alternate_end_user_id="device-42",
        caller_name="Ada Lovelace",
        location_id="LOC123",
        telephone_number="+19195551234",
        activated=True,
    )


def test_reads_a_wrapped_list_under_a_root_named_xml_ignoring_unknown_elements() -> None:
    assert codec.decode(EndpointListResponse, fixture("endpoint_list_wrapped.xml")) == (
        EndpointListResponse(
            total_count=2,
            endpoints=(
                Endpoint(endpoint_id="ep1", alternate_end_user_id="device-1", activated=False),
                Endpoint(endpoint_id="ep2", caller_name="Second"),
            ),
        )
    )
    recipients = codec.decode(
        NotificationRecipientListResponse, fixture("notification_recipients_wrapped.xml")
    )
    assert [r.id for r in recipients.notification_recipients] == ["nr1", "nr2"]
    assert recipients.notification_recipients[1].description == "Front desk"


def test_reads_an_unwrapped_list_with_a_nested_address() -> None:
    listing = codec.decode(LocationListResponse, fixture("location_list.xml"))
    assert listing.total_count == 1
    (location,) = listing.locations
    assert location.status == "GEOCODED"
    assert location.latitude == pytest.approx(35.7796)
    assert location.address is not None
    assert location.address.plus_four == "5214"
    assert location.address.city == "RALEIGH"


def test_reading_ignores_case_and_namespaces() -> None:
    data = (
        b'<e:Endpoint xmlns:e="urn:x"><e:EndpointId>a</e:EndpointId>'
        b"<ACTIVATED>true</ACTIVATED></e:Endpoint>"
    )
    assert codec.decode(Endpoint, data) == Endpoint(endpoint_id="a", activated=True)


def test_an_empty_number_or_boolean_is_absent() -> None:
    data = (
        b"<LocationListResponse><totalCount/>"
        b"<locations><latitude> </latitude></locations></LocationListResponse>"
    )
    assert codec.decode(LocationListResponse, data) == LocationListResponse(locations=(Location(),))
    assert codec.decode(Endpoint, b"<Endpoint><activated/></Endpoint>") == Endpoint()


def test_a_bad_number_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="latitude"):
        codec.decode(Location, b"<Location><latitude>north</latitude></Location>")
    with pytest.raises(CodecError, match="totalCount"):
        codec.decode(EndpointListResponse, b"<x><totalCount>2.5</totalCount></x>")
    with pytest.raises(CodecError):
        codec.decode(Location, b"<Location><latitude>NaN</latitude></Location>")


# -- the carrier's error body ---------------------------------------------------


def test_response_status_on_its_own() -> None:
    status = codec.response_status(codec.parse(fixture("response_status.xml")))
    assert status == codec.ResponseStatus("12345", "Address could not be validated")


def test_response_status_nested_in_another_root() -> None:
    status = codec.response_status(codec.parse(fixture("response_status_nested.xml")))
    assert status == codec.ResponseStatus("409", "Location A1B2 already exists")


def test_response_status_variants() -> None:
    def found(data: bytes) -> codec.ResponseStatus | None:
        return codec.response_status(codec.parse(data))

    assert found(b"<ErrorCode> 7 </ErrorCode>") == codec.ResponseStatus("7", None)
    assert found(b"<a><b><errorcode>9</errorcode></b></a>") == codec.ResponseStatus("9", None)
    assert found(b"<ResponseStatus><Description>no</Description></ResponseStatus>") == (
        codec.ResponseStatus(None, "no")
    )
    assert found(b"<R><ResponseStatus><x><ErrorCode>3</ErrorCode></x></ResponseStatus></R>") == (
        codec.ResponseStatus("3", None)
    )
    assert found(codec.encode(FULL_LOCATION)) is None
    assert found(codec.encode_response_status("1", "d")) == codec.ResponseStatus("1", "d")


# -- hostile and oversized bodies -----------------------------------------------


def test_billion_laughs_is_refused_before_expansion() -> None:
    with pytest.raises(CodecError, match="hostile") as caught:
        codec.decode(Endpoint, fixture("billion_laughs.xml"))
    assert "lol" not in str(caught.value)


def test_external_entity_is_refused_before_resolution() -> None:
    with pytest.raises(CodecError, match="hostile") as caught:
        codec.decode(Endpoint, fixture("external_entity.xml"))
    assert "root:" not in str(caught.value)


def test_undeclared_entity_is_malformed() -> None:
    with pytest.raises(CodecError, match="malformed"):
        codec.decode(Endpoint, b"<Endpoint><callerName>&e;</callerName></Endpoint>")


def test_oversized_body_is_refused() -> None:
    body = b"<Endpoint><callerName>" + b"x" * codec.MAX_XML_BYTES + b"</callerName></Endpoint>"
    with pytest.raises(CodecError, match="exceeds"):
        codec.decode(Endpoint, body)
    with pytest.raises(CodecError, match="exceeds"):
        codec.decode(Endpoint, codec.encode(FULL_ENDPOINT), max_bytes=50)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not xml",
        b"<Endpoint>",
        b"\xff\xfe<",
        b'<?xml version="1.0" encoding="no-such-codec"?><a/>',
        b"<a>&#0;</a>",
    ],
)
def test_malformed_bodies_are_codec_errors(data: bytes) -> None:
    with pytest.raises(CodecError):
        codec.decode(Endpoint, data)


# -- generated records ------------------------------------------------------------

_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_char = st.characters(codec="utf-8").filter(lambda c: not _ILLEGAL.match(c))
texts = st.text(_char, max_size=20).filter(lambda s: s == s.strip())
floats = st.floats(allow_nan=False, allow_infinity=False)


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


addresses = st.builds(Address, **{name: _opt(texts) for name in Address.__dataclass_fields__})
locations = st.builds(
    Location,
    location_id=_opt(texts),
    description=_opt(texts),
    address=_opt(addresses),
    status=_opt(st.sampled_from(list(LocationStatus)) | texts),
    latitude=_opt(floats),
    longitude=_opt(floats),
)
endpoints = st.builds(
    Endpoint,
    endpoint_id=_opt(texts),
    alternate_end_user_id=_opt(texts),
    caller_name=_opt(texts),
    location_id=_opt(texts),
    telephone_number=_opt(texts),
    activated=_opt(st.booleans()),
)
recipients = st.builds(
    NotificationRecipient, **{n: _opt(texts) for n in NotificationRecipient.__dataclass_fields__}
)


def _not_empty(record: Record) -> bool:
    # An item with no fields at all is written <endpoints/>, which reads as an empty list.
    return any(getattr(record, name) is not None for name in type(record).__dataclass_fields__)


def _items(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(strategy.filter(_not_empty), max_size=4).map(tuple)


counts = _opt(st.integers(min_value=-(2**63), max_value=2**63))
records = st.one_of(
    endpoints,
    locations,
    recipients,
    st.builds(EndpointListResponse, total_count=counts, endpoints=_items(endpoints)),
    st.builds(LocationListResponse, total_count=counts, locations=_items(locations)),
    st.builds(NotificationRecipientListResponse, notification_recipients=_items(recipients)),
)


@given(records)
def test_generated_records_round_trip(record: Record) -> None:
    assert codec.decode(type(record), codec.encode(record)) == record


_SCHEMAS = [Endpoint, Location, NotificationRecipient, EndpointListResponse, LocationListResponse]


@given(st.binary(max_size=512), st.sampled_from(_SCHEMAS))
def test_arbitrary_bytes_raise_only_codec_errors(data: bytes, cls: type[Record]) -> None:
    with contextlib.suppress(CodecError):
        codec.decode(cls, data)


_TAGS = ["Endpoint", "endpoints", "Endpoint", "locations", "address", "latitude", "totalCount",
         "activated", "ErrorCode", "x", "ResponseStatus", "houseNumber"]  # fmt: skip


@st.composite
def xmlish(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(_TAGS))
    if depth > 3 or draw(st.booleans()):
        body = draw(st.sampled_from(["", "1", "-2.5", "true", "x", " ", "1e400", "&amp;", "&x;"]))
    else:
        body = "".join(draw(st.lists(xmlish(depth + 1), max_size=3)))
    return f"<{tag}>{body}</{tag}>"


@given(xmlish(), st.sampled_from(_SCHEMAS))
def test_xml_shaped_input_raises_only_codec_errors(text: str, cls: type[Record]) -> None:
    with contextlib.suppress(CodecError):
        root = codec.parse(text.encode())
        codec.response_status(root)
        assert isinstance(codec.from_element(cls, root), cls)


# -- the encoder against ElementTree -------------------------------------------------


def _tree(parent: ET.Element, record: Any) -> None:
    """The encoder as it was: the record built as an ElementTree (``encode`` must equal it)."""
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if value is None:
            continue
        wire = wire_name(f.name)
        if isinstance(value, tuple):
            for item in value:
                _tree(ET.SubElement(parent, wire), item)
        elif dataclasses.is_dataclass(value):
            _tree(ET.SubElement(parent, wire), value)
        else:
            ET.SubElement(parent, wire).text = codec._text(value)


def _tree_encoded(record: Record) -> bytes:
    root = ET.Element(type(record).__name__)
    _tree(root, record)
    return serialize(root)


# Any text XML can carry: spaces around it, markup characters, carriage returns, nothing.
_raw = st.text(st.sampled_from("a Z&<>\r\n\t'\"é;#]]>") | _char, max_size=12)
_raw_addresses = st.builds(Address, **{n: _opt(_raw) for n in Address.__dataclass_fields__})
_raw_endpoint_texts = {n: _opt(_raw) for n in Endpoint.__dataclass_fields__ if n != "activated"}
_raw_records = st.one_of(
    st.builds(Endpoint, activated=_opt(st.booleans()), **_raw_endpoint_texts),
    st.builds(
        Location, location_id=_opt(_raw), address=_opt(_raw_addresses), latitude=_opt(floats)
    ),
    st.builds(
        EndpointListResponse,
        total_count=counts,
        endpoints=st.lists(st.builds(Endpoint, caller_name=_opt(_raw)), max_size=3).map(tuple),
    ),
    st.builds(
        LocationListResponse,
        locations=st.lists(st.builds(Location, address=_opt(_raw_addresses)), max_size=3).map(
            tuple
        ),
    ),
)


@pytest.mark.parametrize("record", ROUND_TRIPS, ids=lambda r: type(r).__name__)
def test_encode_writes_what_elementtree_writes(record: Record) -> None:
    assert codec.encode(record) == _tree_encoded(record)


@given(_raw_records)
def test_encode_writes_what_elementtree_writes_for_any_text(record: Record) -> None:
    assert codec.encode(record) == _tree_encoded(record)


def test_encode_escapes_markup_and_keeps_empty_elements() -> None:
    record = Location(location_id="", address=Address(), description="a & b <c> \r d")
    expected = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Location><locationId />'
        b"<description>a &amp; b &lt;c&gt; &#13; d</description><address /></Location>"
    )
    assert codec.encode(record) == _tree_encoded(record) == expected
    assert (
        codec.encode(Endpoint())
        == _tree_encoded(Endpoint())
        == (b'<?xml version="1.0" encoding="UTF-8"?>\n<Endpoint />')
    )
