"""PIDF-LO documents: read, map to the canonical address, written back, read again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.bandwidth.models import Address
from gateway.dlr.address import normalize
from gateway.pidf.civic import from_address, to_address
from gateway.pidf.document import LocationObject, Presence, read_presence, write_presence
from gateway.pidf.errors import DocumentError, XmlError
from gateway.pidf.geodetic import Shape
from tests.pidf import samples
from tests.pidf.checks import CA, PIDF, check_presence, civic_values, parse_xml

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def canonical(presence: Presence) -> tuple[Address | None, str | None]:
    """The canonical address and caller name a document's civic part maps to."""
    if presence.civic is None:
        return None, None
    mapping = to_address(presence.civic)
    assert mapping.errors == ()
    normalized = normalize(mapping.address)
    assert normalized.valid, normalized.errors
    return normalized.address, mapping.caller_name


def written(presence: Presence) -> bytes:
    """The document the gateway writes for what ``presence`` says."""
    address, caller = canonical(presence)
    return write_presence(
        LocationObject(
            entity=presence.entity or "pres:x@example.com",
            timestamp=NOW,
            retention_expiry=NOW + timedelta(days=1),
            civic=from_address(address, caller_name=caller) if address else {},
            shape=presence.shape,
            contact=presence.contact,
        )
    )


@pytest.mark.parametrize("name", sorted(samples.ALL))
def test_round_trip_keeps_the_place(name: str) -> None:
    first = read_presence(samples.ALL[name])
    out = written(first)
    check_presence(parse_xml(out))
    second = read_presence(out)
    assert canonical(second) == canonical(first)
    assert second.shape == first.shape
    assert second.entity == first.entity
    # And once more: the written form is a fixed point.
    assert written(second) == out


def test_civic_round_trip_keeps_every_mapped_element() -> None:
    first = read_presence(samples.CIVIC)
    out = parse_xml(written(first))
    civic = check_presence(out)["civic"]
    assert civic_values(civic) == dict(first.civic or ())


def test_mixed_document_reads_across_tuples() -> None:
    presence = read_presence(samples.MIXED)
    assert presence.entity == "pres:dave-desk@example.com"
    # The civic tuple's timestamp is newer than the geodetic one's: the newest wins.
    assert presence.timestamp == "2026-11-01T12:00:30Z"
    # The first contact of a tuple with location; the im tuple's sip: contact is skipped.
    assert presence.contact == "tel:+1-312-555-0199"
    assert presence.shape == Shape(41.8789, -87.6359)
    assert [w.field for w in presence.warnings] == ["civicAddress.MP"]
    address, caller = canonical(presence)
    assert address is not None
    assert (address.house_number, address.prefix_directional, address.street_name) == (
        "233",
        "S",
        "WACKER",
    )
    assert address.address_line2 == "STE 3500"
    assert caller == "DAVE JONES"
    out = check_presence(parse_xml(written(presence)))
    # The county went nowhere: the carrier has no field for it.
    assert "A2" not in civic_values(out["civic"])
    assert civic_values(out["civic"])["UNIT"] == "STE 3500"
    assert set(out) == {"civic", "point"}


def test_legacy_civic_street_comes_out_as_rd() -> None:
    presence = read_presence(samples.LEGACY)
    address, _ = canonical(presence)
    assert address is not None and address.street_name == "BROAD"
    values = civic_values(check_presence(parse_xml(written(presence)))["civic"])
    assert values["RD"] == "BROAD"
    assert "A6" not in values


def test_circle_radius_is_kept() -> None:
    out = parse_xml(written(read_presence(samples.CIRCLE)))
    circle = check_presence(out)["circle"]
    assert circle[0].text == "47.6205 -122.3493"
    assert circle[1].text == "35.5"


def test_written_document_declares_the_rfc_namespaces() -> None:
    out = written(read_presence(samples.MIXED)).decode()
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<presence ')
    assert f'xmlns="{PIDF}"' in out
    assert f'xmlns:ca="{CA}"' in out
    assert "<gml:Point" in out


def _broken(reason: str, document: bytes) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        read_presence(document)
    return caught.value


def test_two_different_civic_addresses_are_refused() -> None:
    other = samples.MIXED.replace(b"<HNO>233</HNO>", b"<HNO>235</HNO>")
    doubled = other.replace(
        b"</pidf:presence>",
        samples.MIXED.split(b'<pidf:tuple id="where-civic">')[1]
        .split(b"</pidf:tuple>")[0]
        .join([b'<pidf:tuple id="again">', b"</pidf:tuple></pidf:presence>"]),
    )
    error = _broken("two places", doubled)
    assert [e.field for e in error.errors] == ["civicAddress"]


@pytest.mark.parametrize("repeated", [b"gp:location-info", b"status"])
def test_a_second_place_in_a_repeated_element_is_read_not_passed_over(repeated: bytes) -> None:
    # A second <location-info> in the geopriv, or a second <status> in the tuple, holding
    # another address: reading only the first would provision it without a word.
    start, end = b"<" + repeated, b"</" + repeated + b">"
    inner = samples.CIVIC.split(start, 1)[1].split(end, 1)[0]
    another = (start + inner + end).replace(b"<ca:HNO>350</ca:HNO>", b"<ca:HNO>352</ca:HNO>")
    doubled = samples.CIVIC.replace(end, end + another, 1)
    assert doubled.count(start) == 2
    error = _broken("two places", doubled)
    assert [e.field for e in error.errors] == ["civicAddress"]
    # The same place repeated is one place.
    same = samples.CIVIC.replace(end, end + start + inner + end, 1)
    assert read_presence(same).civic == read_presence(samples.CIVIC).civic


def test_the_same_place_twice_is_fine() -> None:
    tuple_text = samples.CIVIC.split(b'<tuple id="a7x2">')[1].split(b"</tuple>")[0]
    doubled = samples.CIVIC.replace(
        b"</presence>", b'<tuple id="b">' + tuple_text + b"</tuple></presence>"
    )
    assert read_presence(doubled).civic == read_presence(samples.CIVIC).civic


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ((b"EPSG::4326", b"EPSG::3857"), "location-info.Point.srsName"),
        ((b"38.8977 -77.0365", b"38.8977"), "location-info.Point.pos"),
        ((b"38.8977 -77.0365", b"north west"), "location-info.Point.pos"),
        ((b"38.8977 -77.0365", b"NaN 1"), "location-info.Point.pos"),
        # Python's float() reads these; an xs:double is never written so.
        ((b"38.8977 -77.0365", b"3_8.8977 -77.0365"), "location-info.Point.pos"),
        ((b"38.8977 -77.0365", "\uff13\uff18.8977 -77.0365".encode()), "location-info.Point.pos"),
        ((b"geo:Point", b"geo:Polygon"), "location-info.Polygon"),
    ],
)
def test_unreadable_shapes_are_named(change: tuple[bytes, bytes], field: str) -> None:
    error = _broken("shape", samples.POINT.replace(*change))
    assert field in [e.field for e in error.errors]


def test_circle_in_feet_is_refused() -> None:
    document = samples.CIRCLE.replace(b"EPSG::9001", b"EPSG::9002")
    assert [e.field for e in _broken("feet", document).errors] == [
        "location-info.Circle.radius.uom"
    ]


def test_three_dimensional_point_drops_the_altitude() -> None:
    document = samples.POINT.replace(b"EPSG::4326", b"EPSG::4979").replace(
        b"-77.0365<", b"-77.0365 12.5<"
    )
    assert read_presence(document).shape == Shape(38.8977, -77.0365)


@pytest.mark.parametrize("altitude", [b"NaN", b"INF", b"tall", b"1_0"])
def test_three_dimensional_point_with_a_broken_altitude_is_refused(altitude: bytes) -> None:
    """Dropped, but read first: a position whose third number is garbage is not one to
    trust the first two of."""
    document = samples.POINT.replace(b"EPSG::4326", b"EPSG::4979").replace(
        b"-77.0365<", b"-77.0365 " + altitude + b"<"
    )
    assert [e.field for e in _broken("altitude", document).errors] == ["location-info.Point.pos"]


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b"/>', "location-info"),
        (b'<presence xmlns="urn:example:other"/>', "presence"),
        (b"<presence/>", "presence"),
        (
            samples.CIVIC.replace(b"<gp:location-info>", b"<gp:location-infx>").replace(
                b"</gp:location-info>", b"</gp:location-infx>"
            ),
            "location-info",
        ),
    ],
)
def test_documents_without_location_are_refused(document: bytes, field: str) -> None:
    assert [e.field for e in _broken("empty", document).errors] == [field]


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"<presence",
        b"not xml at all",
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY e "x">]><p>&e;</p>',
        b'<?xml version="1.0" encoding="klingon"?><p/>',
    ],
)
def test_unreadable_xml_is_an_xml_error(document: bytes) -> None:
    with pytest.raises(XmlError):
        read_presence(document)


def test_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(XmlError, match="limit"):
        read_presence(samples.CIVIC, max_bytes=100)


# -- documents as real devices send them --------------------------------------------------


def test_a_namespace_declared_with_spaces_around_it_is_read() -> None:
    """RFC 4119 prints ``xmlns:cl=" urn:...:civicLoc"``; devices copy it, space and all."""
    presence = read_presence(samples.SPACED_NAMESPACE)
    address, _ = canonical(presence)
    assert address is not None
    assert (address.house_number, address.street_name, address.zip) == ("2880", "BROADWAY", "10025")
    assert address.address_line2 == "STE 75"
    assert presence.warnings == ()


def test_rfc_4119s_point_in_gml_location_is_read() -> None:
    """The GML 3.0 draft namespace, ``epsg:4326`` and degrees-minutes-seconds."""
    shape = read_presence(samples.RFC4119_POINT).shape
    assert shape is not None
    assert shape.latitude == pytest.approx(40 + 44 / 60 + 54 / 3600)
    assert shape.longitude == pytest.approx(-(73 + 59 / 60 + 9 / 3600))
    assert shape.radius is None


def test_a_point_wrapped_in_gml_location_is_read_with_the_civic_address() -> None:
    presence = read_presence(samples.WRAPPED_POINT)
    assert presence.shape == Shape(41.8789, -87.6359)
    address, caller = canonical(presence)
    assert address is not None and address.street_name == "WACKER"
    assert caller == "HANK HILL"
    assert presence.timestamp == "2026-11-01T12:04:00Z"


@pytest.mark.parametrize(
    ("coordinates", "expected"),
    [
        (b"40:44:54N 73:59:09W", (40.748333, -73.985833)),
        (b"73:59:09W 40:44:54N", (40.748333, -73.985833)),
        (b"33:51:35.9S 151:12:40E", (-33.859972, 151.211111)),
        (b"40.7484N 73.9857W", (40.7484, -73.9857)),
    ],
)
def test_hemisphere_coordinates_say_which_is_the_latitude(
    coordinates: bytes, expected: tuple[float, float]
) -> None:
    document = samples.RFC4119_POINT.replace(b"40:44:54N 73:59:09W", coordinates)
    shape = read_presence(document).shape
    assert shape is not None
    assert (shape.latitude, shape.longitude) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "coordinates",
    [
        b"40.7484 -73.9857",
        b"40:44:54N 40:44:54S",
        b"40:61:00N 73:59:09W",
        b"95N 73W",
        b"40N",
        "\uff14\uff10:44:54N 73:59:09W".encode(),  # fullwidth digits: not XML's numbers
    ],
)
def test_coordinates_that_do_not_say_which_is_which_are_refused(coordinates: bytes) -> None:
    document = samples.RFC4119_POINT.replace(b"40:44:54N 73:59:09W", coordinates)
    fields = [e.field for e in _broken("dms", document).errors]
    assert fields == ["location-info.location.Point.coordinates"]


def test_a_shape_that_cannot_be_read_next_to_a_civic_address_is_a_warning() -> None:
    """The civic address says where: a Polygon beside it is not worth losing the report."""
    document = samples.WRAPPED_POINT.replace(b"gml:Point", b"gml:Polygon")
    presence = read_presence(document)
    assert presence.civic is not None and presence.shape is None
    [warning] = presence.warnings
    assert warning.field == "location-info.location.Polygon"
    assert "the civic address is used" in warning.message


def test_location_in_an_unknown_namespace_names_it_and_the_expected_ones() -> None:
    document = samples.CIVIC.replace(
        b'xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"',
        b'xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddress"',
    )
    [error] = _broken("namespace", document).errors
    assert error.field == "location-info.civicAddress"
    assert "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddress" in error.message
    assert "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr or " in error.message
    assert "civicLoc" in error.message
