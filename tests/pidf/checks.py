"""Structural checks of the documents the gateway writes: the RFCs' namespaces, element
names and element order, independent of the code that writes them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import defusedxml.ElementTree as SafeET

PIDF = "urn:ietf:params:xml:ns:pidf"
GP = "urn:ietf:params:xml:ns:pidf:geopriv10"
CA = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
GBP = "urn:ietf:params:xml:ns:pidf:geopriv10:basicPolicy"
GML = "http://www.opengis.net/gml"
GS = "http://www.opengis.net/pidflo/1.0"
HELD = "urn:ietf:params:xml:ns:geopriv:held"

#: RFC 5139 section 5, typed out again here rather than imported from the code under test.
RFC5139_ORDER = (
    *("country", "A1", "A2", "A3", "A4", "A5", "A6", "PRM", "PRD", "RD", "STS", "POD", "POM"),
    *("RDSEC", "RDBR", "RDSUBBR", "HNO", "HNS", "LMK", "LOC", "FLR", "NAM", "PC", "BLD", "UNIT"),
    *("ROOM", "SEAT", "PLC", "PCN", "POBOX", "ADDCODE"),
)


def parse_xml(data: bytes) -> ET.Element:
    root: ET.Element = SafeET.fromstring(data)
    return root


def tags(element: ET.Element) -> list[str]:
    return [str(child.tag) for child in element]


def check_presence(presence: ET.Element) -> dict[str, ET.Element]:
    """Assert a written PIDF-LO's structure; returns its location elements by kind."""
    assert presence.tag == f"{{{PIDF}}}presence"
    assert ":" in presence.get("entity", "")
    found: dict[str, ET.Element] = {}
    assert len(presence) >= 1
    for item in presence:
        assert item.tag == f"{{{PIDF}}}tuple"
        assert item.get("id")
        # RFC 3863: status, then contact, then timestamp.
        order = tags(item)
        assert order[0] == f"{{{PIDF}}}status"
        # The timestamp is left out when the observation time is not known.
        assert order[1:] in (
            [f"{{{PIDF}}}contact", f"{{{PIDF}}}timestamp"],
            [f"{{{PIDF}}}timestamp"],
            [f"{{{PIDF}}}contact"],
            [],
        )
        assert item.findtext(f"{{{PIDF}}}timestamp", "Z").endswith("Z")
        status = item.find(f"{{{PIDF}}}status")
        assert status is not None
        assert tags(status) == [f"{{{GP}}}geopriv"]
        geopriv = status[0]
        # RFC 4119 / RFC 5491: location-info, then usage-rules, then (optional) method.
        assert tags(geopriv) in (
            [f"{{{GP}}}location-info", f"{{{GP}}}usage-rules"],
            [f"{{{GP}}}location-info", f"{{{GP}}}usage-rules", f"{{{GP}}}method"],
        )
        rules = geopriv[1]
        assert tags(rules) == [f"{{{GBP}}}retransmission-allowed", f"{{{GBP}}}retention-expiry"]
        assert rules[0].text == "false"
        assert (rules[1].text or "").endswith("Z")
        info = geopriv[0]
        assert len(info) == 1
        location = info[0]
        if location.tag == f"{{{CA}}}civicAddress":
            names = [str(child.tag) for child in location]
            assert all(name.startswith(f"{{{CA}}}") for name in names)
            local = [name.split("}")[1] for name in names]
            assert local == sorted(local, key=RFC5139_ORDER.index)
            assert len(set(local)) == len(local)
            found["civic"] = location
        elif location.tag == f"{{{GML}}}Point":
            assert location.get("srsName") == "urn:ogc:def:crs:EPSG::4326"
            assert tags(location) == [f"{{{GML}}}pos"]
            found["point"] = location
        else:
            assert location.tag == f"{{{GS}}}Circle"
            assert location.get("srsName") == "urn:ogc:def:crs:EPSG::4326"
            assert tags(location) == [f"{{{GML}}}pos", f"{{{GS}}}radius"]
            assert location[1].get("uom") == "urn:ogc:def:uom:EPSG::9001"
            found["circle"] = location
    return found


def civic_values(civic: ET.Element) -> dict[str, str]:
    return {str(child.tag).split("}")[1]: child.text or "" for child in civic}


def mutated(seed: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """``seed`` with each ``(at, cut, piece)`` edit applied: ``cut`` bytes at ``at`` (taken
    modulo the length) replaced by ``piece``; what the XML fuzz tests send."""
    data = bytearray(seed)
    for at, cut, piece in edits:
        at %= len(data) + 1
        data[at : at + cut] = piece
    return bytes(data)
