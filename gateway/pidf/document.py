"""PIDF-LO documents (RFC 4119, RFC 5491): read one, write one.

Reading takes what a location report needs from a ``<presence>``: the ``entity``, the civic
address and the Point or Circle, the ``<timestamp>`` and a ``tel:`` ``<contact>``. Location may
sit in any ``<tuple>`` (``status/geopriv``) or, per RFC 4479, in a ``<dm:device>`` or
``<dm:person>``; tuples without location (plain presence) are skipped. RFC 5491 puts each way
of describing a place in its own tuple, so one civic address and one shape may come from
different tuples; two *different* civic addresses or shapes are refused, because picking one
could send a 911 call to the wrong place. Elements are matched by namespace, whatever their
prefix; unknown extension elements are ignored with a warning.

Writing gives one tuple for the civic address and one for the shape (RFC 5491 section 3.4),
each with usage rules that forbid retransmission and set a retention expiry, in the element
order of the RFCs' schemas: ``tuple`` = ``status``, ``contact``, ``timestamp``; ``geopriv`` =
``location-info``, ``usage-rules``; ``usage-rules`` = ``retransmission-allowed``,
``retention-expiry``; civic elements in RFC 5139 order.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.dlr.errors import FieldError
from gateway.pidf.civic import CIVIC_ORDER
from gateway.pidf.errors import DocumentError
from gateway.pidf.geodetic import SHAPES, Shape, read_shape, write_shape
from gateway.pidf.namespaces import (
    BASIC_POLICY,
    CIVIC,
    CIVIC_LEGACY,
    DATA_MODEL,
    GEOPRIV,
    GEOSHAPE,
    GML,
    GML_LEGACY,
    MAX_XML_BYTES,
    PIDF,
    parse,
    q,
    split,
)
from gateway.xmlsafe import checked, serialize, text, with_default_namespace

PRESENCE = q(PIDF, "presence")

#: One civic address as read: (element, text) in document order.
CivicPairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Presence:
    """What a PIDF-LO says about where its target is."""

    entity: str | None
    civic: CivicPairs | None
    shape: Shape | None
    #: The newest ``<timestamp>`` of the tuples that carry location, as written.
    timestamp: str | None
    #: The first ``<contact>`` of those tuples, as written (a ``tel:`` URI is a callback number).
    contact: str | None
    warnings: tuple[FieldError, ...] = ()


@dataclass(frozen=True, slots=True)
class LocationObject:
    """What the gateway writes as a PIDF-LO."""

    entity: str
    #: When the location was observed; ``None``: not known (no ``<timestamp>`` is written).
    timestamp: datetime | None
    retention_expiry: datetime
    #: Civic elements (RFC 5139 names) -> text; written in schema order.
    civic: Mapping[str, str] = field(default_factory=dict)
    shape: Shape | None = None
    #: A ``tel:`` URI: the callback number.
    contact: str | None = None
    #: How the location was found (geopriv ``<method>``, e.g. ``Wiremap``); ``None``: not said.
    method: str | None = None


@dataclass
class _Found:
    civics: list[CivicPairs] = field(default_factory=list)
    shapes: list[Shape] = field(default_factory=list)
    timestamps: list[str] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[FieldError] = field(default_factory=list)
    #: Shapes that could not be read: errors, unless a civic address says where instead.
    shape_errors: list[FieldError] = field(default_factory=list)
    #: Location elements in a namespace the gateway does not read: (local name, namespace).
    foreign: list[tuple[str, str]] = field(default_factory=list)


#: Elements that describe a place, by local name: the namespaces they are read in.
_PLACE_ELEMENTS: dict[str, tuple[str, ...]] = {
    "civicAddress": (CIVIC, CIVIC_LEGACY),
    **{name: (GML,) for name in ("location", "Point", "Polygon")},
    **{name: (GEOSHAPE,) for name in ("Circle", "Ellipse", "ArcBand", "Sphere", "Ellipsoid")},
    "Prism": (GEOSHAPE,),
}


def read_presence(data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> Presence:
    """Read a PIDF-LO; ``XmlError`` or ``DocumentError`` for anything else (never another)."""
    root = parse(data, max_bytes=max_bytes)
    if root.tag != PRESENCE:
        _, local = split(root.tag)
        raise DocumentError(
            [FieldError("presence", f"expected a PIDF <presence> ({PIDF}), not <{local}>")]
        )
    found = _Found()
    for child in root:
        geoprivs, timestamp, contact = _location_carrier(child)
        if not geoprivs:
            continue
        for geopriv in geoprivs:
            _read_geopriv(geopriv, found)
        if timestamp:
            found.timestamps.append(timestamp)
        if contact:
            found.contacts.append(contact)
    if found.civics:
        # The civic address says where: a shape that cannot be read only loses precision.
        found.warnings.extend(
            FieldError(e.field, f"ignored ({e.message}); the civic address is used")
            for e in found.shape_errors
        )
    else:
        found.errors.extend(found.shape_errors)
    if not found.civics and not found.shapes and not found.errors:
        found.errors.append(_no_location(found.foreign))
    if len(set(found.civics)) > 1:
        found.errors.append(
            FieldError(
                "civicAddress",
                f"the document holds {len(set(found.civics))} different civic addresses; "
                "send the device's one",
            )
        )
    if len(set(found.shapes)) > 1:
        found.errors.append(
            FieldError(
                "location-info",
                f"the document holds {len(set(found.shapes))} different shapes; "
                "send the device's one",
            )
        )
    if found.errors:
        raise DocumentError(found.errors)
    entity = (root.get("entity") or "").strip() or None
    return Presence(
        entity=entity,
        civic=found.civics[0] if found.civics else None,
        shape=found.shapes[0] if found.shapes else None,
        timestamp=_newest(found.timestamps),
        contact=found.contacts[0] if found.contacts else None,
        warnings=tuple(found.warnings),
    )


def _no_location(foreign: list[tuple[str, str]]) -> FieldError:
    """Why there is no location: none at all, or one in a namespace the gateway does not read."""
    if not foreign:
        return FieldError("location-info", "the document holds no civic address, Point or Circle")
    local, namespace = foreign[0]
    expected = " or ".join(_PLACE_ELEMENTS[local])
    return FieldError(
        f"location-info.{local}",
        f"<{local}> is in the namespace {namespace!r}, which the gateway does not read: "
        f"expected {expected}",
    )


def _location_carrier(child: ET.Element) -> tuple[list[ET.Element], str, str]:
    """The geopriv elements, timestamp and contact of a tuple, device or person."""
    if child.tag == q(PIDF, "tuple"):
        # Each <status> and each <location-info> is read, not only the first: a second one
        # naming another place must be refused, never silently passed over.
        statuses = child.findall(q(PIDF, "status"))
        geoprivs = [g for status in statuses for g in status.findall(q(GEOPRIV, "geopriv"))]
        timestamp = text(child.find(q(PIDF, "timestamp")))
        return geoprivs, timestamp, text(child.find(q(PIDF, "contact")))
    if child.tag in (q(DATA_MODEL, "device"), q(DATA_MODEL, "person")):
        geoprivs = child.findall(q(GEOPRIV, "geopriv"))
        return geoprivs, text(child.find(q(DATA_MODEL, "timestamp"))), ""
    return [], "", ""


def _read_geopriv(geopriv: ET.Element, found: _Found) -> None:
    infos = geopriv.findall(q(GEOPRIV, "location-info"))
    if not infos:
        found.errors.append(FieldError("location-info", "a geopriv element has none"))
    for info in infos:
        for item in info:
            _read_place(item, found, "location-info")


def _read_place(item: ET.Element, found: _Found, where: str) -> None:
    namespace, local = split(item.tag)
    if not local:
        return  # a comment or processing instruction
    if local == "civicAddress" and namespace in (CIVIC, CIVIC_LEGACY):
        found.civics.append(_read_civic(item, namespace, found))
    elif item.tag in SHAPES:
        try:
            found.shapes.append(read_shape(item, where))
        except DocumentError as exc:
            found.shape_errors.extend(exc.errors)
    elif local == "location" and namespace in (GML, GML_LEGACY) and where == "location-info":
        # RFC 4119's and RFC 6442's examples wrap the shape: <gml:location><gml:Point>.
        for shape in item:
            _read_place(shape, found, f"{where}.location")
    elif namespace in (GML, GML_LEGACY, GEOSHAPE):
        found.shape_errors.append(
            FieldError(
                f"{where}.{local}",
                "only Point and Circle shapes are read; send the position as one",
            )
        )
    else:
        if local in _PLACE_ELEMENTS:
            found.foreign.append((local, namespace))
        found.warnings.append(
            FieldError(f"{where}.{local}", f"ignored: unknown element ({namespace})")
        )


def _read_civic(element: ET.Element, namespace: str, found: _Found) -> CivicPairs:
    pairs: list[tuple[str, str]] = []
    for child in element:
        child_namespace, local = split(child.tag)
        if not local:
            continue
        if child_namespace == namespace:
            pairs.append((local, text(child)))
        else:
            found.warnings.append(
                FieldError(
                    f"civicAddress.{local}", f"ignored: extension element ({child_namespace})"
                )
            )
    return tuple(pairs)


def _newest(timestamps: list[str]) -> str | None:
    """The newest timestamp; the first unreadable one if any (so that it is reported)."""
    if not timestamps:
        return None
    dated: list[tuple[datetime, str]] = []
    for stamp in timestamps:
        try:
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00").replace("z", "+00:00"))
            if when.tzinfo is None:
                return stamp
            dated.append((when.astimezone(UTC), stamp))
        except (ValueError, OverflowError):
            return stamp
    return max(dated, key=lambda pair: pair[0])[1]


# -- writing -----------------------------------------------------------------------------


def rfc3339(when: datetime) -> str:
    """UTC, whole seconds, ``Z``: the form every PIDF reader accepts."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tuple(
    presence: ET.Element, tuple_id: str, lo: LocationObject
) -> tuple[ET.Element, ET.Element]:
    """A tuple with its geopriv: ``(tuple, location-info)``; usage rules, contact and timestamp
    are written here, the location by the caller."""
    item = ET.SubElement(presence, q(PIDF, "tuple"), {"id": tuple_id})
    status = ET.SubElement(item, q(PIDF, "status"))
    geopriv = ET.SubElement(status, q(GEOPRIV, "geopriv"))
    info = ET.SubElement(geopriv, q(GEOPRIV, "location-info"))
    rules = ET.SubElement(geopriv, q(GEOPRIV, "usage-rules"))
    ET.SubElement(rules, q(BASIC_POLICY, "retransmission-allowed")).text = "false"
    ET.SubElement(rules, q(BASIC_POLICY, "retention-expiry")).text = rfc3339(lo.retention_expiry)
    if lo.method is not None:
        ET.SubElement(geopriv, q(GEOPRIV, "method")).text = checked(lo.method)
    if lo.contact:
        ET.SubElement(item, q(PIDF, "contact")).text = checked(lo.contact)
    if lo.timestamp is not None:
        ET.SubElement(item, q(PIDF, "timestamp")).text = rfc3339(lo.timestamp)
    return item, info


def presence_element(lo: LocationObject) -> ET.Element:
    """The PIDF-LO as an element (to embed in a HELD ``locationResponse``)."""
    presence = ET.Element(PRESENCE, {"entity": checked(lo.entity)})
    if lo.civic:
        _, info = _tuple(presence, "civic", lo)
        civic = ET.SubElement(info, q(CIVIC, "civicAddress"))
        for element in CIVIC_ORDER:
            value = lo.civic.get(element)
            if value:
                ET.SubElement(civic, q(CIVIC, element)).text = checked(value)
    if lo.shape is not None:
        _, info = _tuple(presence, "geodetic", lo)
        write_shape(info, lo.shape)
    return presence


def write_presence(lo: LocationObject) -> bytes:
    """The PIDF-LO document, ``presence`` in the default namespace."""
    return serialize(with_default_namespace(presence_element(lo), PIDF))
