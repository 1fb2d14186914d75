"""The XML namespaces and media types of the formats, and the prefixes written for them.

Documents are read by namespace, never by prefix: ``<ca:RD>``, ``<civ:RD>`` and ``<RD>``
under a default namespace are the same element when the namespace is the same.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from gateway.pidf.errors import XmlError
from gateway.xmlsafe import parse_untrusted, trim_namespaces

#: Largest document read when the caller gives no limit; a PIDF-LO is a few kilobytes.
MAX_XML_BYTES = 64 * 1024

PIDF = "urn:ietf:params:xml:ns:pidf"
#: RFC 4479's data model: ``<dm:device>`` and ``<dm:person>`` may carry location too.
DATA_MODEL = "urn:ietf:params:xml:ns:pidf:data-model"
GEOPRIV = "urn:ietf:params:xml:ns:pidf:geopriv10"
#: RFC 5139's civic address.
CIVIC = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
#: RFC 4119's original civic location, which RFC 5139 replaced; still sent by older devices.
CIVIC_LEGACY = "urn:ietf:params:xml:ns:pidf:geopriv10:civicLoc"
BASIC_POLICY = "urn:ietf:params:xml:ns:pidf:geopriv10:basicPolicy"
GML = "http://www.opengis.net/gml"
#: The GML namespace RFC 4119's own Point example uses (GML 3.0 as drafted then).
GML_LEGACY = "urn:opengis:specification:gml:schema-xsd:feature:v3.0"
#: RFC 5491's shapes beyond GML's own (Circle, Ellipse, ArcBand, Sphere, ...).
GEOSHAPE = "http://www.opengis.net/pidflo/1.0"
HELD = "urn:ietf:params:xml:ns:geopriv:held"
HELD_ID = "urn:ietf:params:xml:ns:geopriv:held:id"
XML = "http://www.w3.org/XML/1998/namespace"

PIDF_MEDIA_TYPE = "application/pidf+xml"
HELD_MEDIA_TYPE = "application/held+xml"

#: WGS 84 two- and three-dimensional (RFC 5491 section 3): latitude, longitude[, altitude].
EPSG_4326 = "urn:ogc:def:crs:EPSG::4326"
EPSG_4979 = "urn:ogc:def:crs:EPSG::4979"
#: Metres (RFC 5491 section 5.2.1).
UOM_METRE = "urn:ogc:def:uom:EPSG::9001"

#: Prefixes written; the usual ones in the RFCs' examples.
PREFIXES = {
    "dm": DATA_MODEL,
    "gp": GEOPRIV,
    "ca": CIVIC,
    "gbp": BASIC_POLICY,
    "gml": GML,
    "gs": GEOSHAPE,
    "pidf": PIDF,
    "held": HELD,
    "hid": HELD_ID,
}


def q(namespace: str, name: str) -> str:
    """The element's qualified (Clark) name: ``{namespace}name``."""
    return f"{{{namespace}}}{name}"


def parse(data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> ET.Element:
    """Parse an untrusted body (``gateway.xmlsafe``), namespace names trimmed; ``XmlError``."""
    return trim_namespaces(parse_untrusted(data, max_bytes=max_bytes, error=XmlError))


def split(tag: object) -> tuple[str, str]:
    """``(namespace, local name)`` of an element's tag; ``("", "")`` for comments and PIs."""
    if not isinstance(tag, str):
        return "", ""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


for _prefix, _uri in PREFIXES.items():
    # Global, but only for these namespaces, which nothing else in the gateway writes.
    ET.register_namespace(_prefix, _uri)
