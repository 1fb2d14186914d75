"""The readers never raise anything but their declared errors, whatever the bytes."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.pidf.civic import to_address
from gateway.pidf.document import read_presence
from gateway.pidf.errors import PidfError
from gateway.pidf.held import HeldError, read_request
from tests.pidf import samples

_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

_SEEDS = [*samples.ALL.values(), samples.HELD_REQUEST]

#: Fragments that make XML interesting: markup, namespaces, entities, odd characters.
_FRAGMENTS = st.sampled_from(
    [
        b"<",
        b">",
        b"</",
        b"/>",
        b"&amp;",
        b"&x;",
        b"<!DOCTYPE a>",
        b"<![CDATA[x]]>",
        b'xmlns="urn:ietf:params:xml:ns:pidf"',
        b'xmlns:gml="http://www.opengis.net/gml"',
        b"<gml:pos>1e999 -0</gml:pos>",
        b'<gs:radius uom="urn:ogc:def:uom:EPSG::9001">-1</gs:radius>',
        b"\x00",
        b"\xff\xfe",
        "\u00e9".encode(),
        b"9" * 50,
        b" ",
    ]
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A sample document with slices cut, repeated or replaced."""
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        span = draw(st.integers(0, 40))
        how = draw(st.sampled_from(["cut", "insert", "repeat"]))
        if how == "cut":
            del data[at : at + span]
        elif how == "insert":
            data[at:at] = draw(_FRAGMENTS)
        else:
            data[at:at] = data[at : at + span]
    return bytes(data)


_BODIES = st.one_of(st.binary(max_size=300), mutated())


@_FUZZ
@given(_BODIES)
def test_presence_reader_raises_only_pidf_errors(data: bytes) -> None:
    try:
        presence = read_presence(data)
    except PidfError:
        return
    if presence.civic is not None:
        to_address(presence.civic)  # never raises: errors are values


@_FUZZ
@given(_BODIES)
def test_held_reader_raises_only_held_errors(data: bytes) -> None:
    with contextlib.suppress(HeldError):
        read_request(data)


@_FUZZ
@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=20)), max_size=12))
def test_civic_mapping_never_raises(pairs: list[tuple[str, str]]) -> None:
    mapping = to_address(pairs)
    assert all(e.field.startswith("civicAddress.") for e in mapping.errors)
