"""RFC 5491 geodetic shapes: the Point and the Circle, read and written.

Both are WGS 84 with latitude first (``urn:ogc:def:crs:EPSG::4326``); a three-dimensional
Point (``EPSG::4979``) is read with its altitude dropped, because the carrier holds none
(a number all the same: ``NaN`` or garbage there refuses the position). The
``srsName`` is required: it is what says which number is the latitude. A Circle's radius is
in metres (``urn:ogc:def:uom:EPSG::9001``) and becomes the fix's accuracy. Other shapes
(polygons, ellipses, arc bands, spheres, prisms) are refused by the caller, not guessed at.

RFC 4119's own example is read too: a Point in the GML 3.0 draft's namespace, ``srsName``
``epsg:4326`` and ``<gml:coordinates>37:46:30N 122:25:10W</gml:coordinates>``. Its values
are read only with their hemisphere letters, which say unambiguously which is the latitude.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from gateway.dlr.errors import FieldError
from gateway.pidf.errors import DocumentError
from gateway.pidf.namespaces import (
    EPSG_4326,
    EPSG_4979,
    GEOSHAPE,
    GML,
    GML_LEGACY,
    UOM_METRE,
    q,
    split,
)
from gateway.xmlsafe import text

POINT = q(GML, "Point")
CIRCLE = q(GEOSHAPE, "Circle")
#: The shapes read: a Point in either GML namespace, a Circle.
SHAPES = frozenset({POINT, q(GML_LEGACY, "Point"), CIRCLE})
#: The ``srsName`` RFC 4119's example writes: read only with hemisphere letters.
_SHORT_EPSG_4326 = "epsg:4326"
#: ``37:46:30N``, ``122:25:10.5W``, ``37.775N``: degrees[:minutes[:seconds]], a hemisphere.
_DMS = re.compile(
    r"(\d{1,3}(?:\.\d+)?)(?::(\d{1,2}(?:\.\d+)?))?(?::(\d{1,2}(?:\.\d+)?))?([NSEW])", re.ASCII
)
#: An ``xs:double`` as XML Schema writes it (ASCII digits; Python's ``float`` also takes
#: ``1_0`` and other scripts' digits, which no PIDF-LO writer means).
_DOUBLE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?INF|NaN")


@dataclass(frozen=True, slots=True)
class Shape:
    """A Point (``radius`` None) or a Circle around it."""

    latitude: float
    longitude: float
    radius: float | None = None

    @property
    def kind(self) -> str:
        return "Point" if self.radius is None else "Circle"


def _number(value: str, field: str) -> float:
    if not _DOUBLE.fullmatch(value):
        raise DocumentError([FieldError(field, f"expected a number, not {value[:40]!r}")])
    number = float(value)
    if not math.isfinite(number):
        raise DocumentError([FieldError(field, "expected a finite number")])
    return number


def _position(element: ET.Element, where: str, srs: str) -> tuple[float, float]:
    namespace, _ = split(element.tag)
    positions = element.findall(q(GML if namespace == GEOSHAPE else namespace, "pos"))
    field = f"{where}.pos"
    if len(positions) != 1:
        raise DocumentError([FieldError(field, "expected exactly one gml:pos")])
    numbers = text(positions[0]).split(" ") if text(positions[0]) else []
    wanted = 3 if srs == EPSG_4979 else 2
    if len(numbers) != wanted:
        raise DocumentError(
            [FieldError(field, f"expected {wanted} numbers (latitude longitude) for {srs}")]
        )
    for altitude in numbers[2:]:
        _number(altitude, field)  # dropped, but a number (not NaN) or the position is refused
    return _number(numbers[0], field), _number(numbers[1], field)


def _hemisphere_coordinates(element: ET.Element, where: str) -> tuple[float, float] | None:
    """A ``gml:coordinates`` with hemisphere letters (RFC 4119's example), or ``None``."""
    namespace, _ = split(element.tag)
    found = element.findall(q(namespace, "coordinates"))
    if not found:
        return None
    field = f"{where}.coordinates"
    values: dict[str, float] = {}
    for token in " ".join(text(f) for f in found).replace(",", " ").split():
        match = _DMS.fullmatch(token.upper())
        if match is None:
            raise DocumentError(
                [FieldError(field, "expected latitude and longitude like 37:46:30N 122:25:10W")]
            )
        degrees, minutes, seconds, hemisphere = match.groups()
        value = float(degrees) + float(minutes or 0) / 60 + float(seconds or 0) / 3600
        axis = "latitude" if hemisphere in "NS" else "longitude"
        sexagesimal = [float(part) for part in (minutes, seconds) if part]
        if axis in values or any(part >= 60 for part in sexagesimal):
            raise DocumentError([FieldError(field, f"cannot read {token[:40]!r}")])
        values[axis] = -value if hemisphere in "SW" else value
    if set(values) != {"latitude", "longitude"}:
        raise DocumentError(
            [FieldError(field, "expected one latitude (N/S) and one longitude (E/W)")]
        )
    if abs(values["latitude"]) > 90 or abs(values["longitude"]) > 180:
        raise DocumentError([FieldError(field, "is outside the globe")])
    return values["latitude"] + 0.0, values["longitude"] + 0.0


def read_shape(element: ET.Element, where: str) -> Shape:
    """A ``gml:Point`` or ``gs:Circle``; ``DocumentError`` naming ``where`` otherwise."""
    _, local = split(element.tag)
    where = f"{where}.{local}"
    srs = (element.get("srsName") or "").strip()
    if element.tag != CIRCLE and srs.lower() in (_SHORT_EPSG_4326, EPSG_4326.lower()):
        lettered = _hemisphere_coordinates(element, where)
        if lettered is not None:
            return Shape(*lettered)
    if srs not in (EPSG_4326, EPSG_4979):
        raise DocumentError(
            [FieldError(f"{where}.srsName", f"expected {EPSG_4326} (or {EPSG_4979} for 3D)")]
        )
    latitude, longitude = _position(element, where, srs)
    if element.tag != CIRCLE:
        if element.tag not in SHAPES:
            raise DocumentError([FieldError(where, "only Point and Circle shapes are read")])
        return Shape(latitude, longitude)
    radii = element.findall(q(GEOSHAPE, "radius"))
    field = f"{where}.radius"
    if len(radii) != 1:
        raise DocumentError([FieldError(field, "expected exactly one gs:radius")])
    if (radii[0].get("uom") or "").strip() != UOM_METRE:
        raise DocumentError([FieldError(f"{field}.uom", f"expected metres ({UOM_METRE})")])
    radius = _number(text(radii[0]), field)
    if radius < 0:
        raise DocumentError([FieldError(field, "must not be negative")])
    return Shape(latitude, longitude, radius)


def _decimal(value: float) -> str:
    """A coordinate in plain decimal: ``repr`` is the shortest exact form, but may use ``e``."""
    written = repr(float(value))
    if "e" in written or "E" in written:
        written = f"{value:.15f}".rstrip("0").rstrip(".")
    return written


def write_shape(parent: ET.Element, shape: Shape) -> ET.Element:
    """``shape`` as a ``gml:Point`` or ``gs:Circle`` under ``parent``."""
    if not (math.isfinite(shape.latitude) and math.isfinite(shape.longitude)):
        raise ValueError("a shape's coordinates must be finite")
    tag = POINT if shape.radius is None else CIRCLE
    element = ET.SubElement(parent, tag, {"srsName": EPSG_4326})
    ET.SubElement(
        element, q(GML, "pos")
    ).text = f"{_decimal(shape.latitude)} {_decimal(shape.longitude)}"
    if shape.radius is not None:
        if not math.isfinite(shape.radius) or shape.radius < 0:
            raise ValueError("a circle's radius must be finite and not negative")
        radius = ET.SubElement(element, q(GEOSHAPE, "radius"), {"uom": UOM_METRE})
        radius.text = _decimal(shape.radius)
    return element
