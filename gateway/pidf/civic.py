"""RFC 5139 civic addresses <-> the carrier's address fields (the JSON API's ``Address``).
The mapping, element by element (what is kept, dropped with a warning, or refused), is in
docs/architecture.md ("Civic addresses")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scourgify.address_constants import OCCUPANCY_TYPE_ABBREVIATIONS

from gateway.bandwidth.models import Address
from gateway.dlr.errors import FieldError

#: RFC 5139 section 5: the civicAddress sequence, in schema order.
CIVIC_ORDER: tuple[str, ...] = (
    "country",
    "A1",
    "A2",
    "A3",
    "A4",
    "A5",
    "A6",
    "PRM",
    "PRD",
    "RD",
    "STS",
    "POD",
    "POM",
    "RDSEC",
    "RDBR",
    "RDSUBBR",
    "HNO",
    "HNS",
    "LMK",
    "LOC",
    "FLR",
    "NAM",
    "PC",
    "BLD",
    "UNIT",
    "ROOM",
    "SEAT",
    "PLC",
    "PCN",
    "POBOX",
    "ADDCODE",
)
CIVIC_ELEMENTS = frozenset(CIVIC_ORDER)

#: One civic element -> one carrier field (the JSON API's camelCase name).
_DIRECT: dict[str, str] = {
    "country": "country",
    "A1": "stateCode",
    "A3": "city",
    "PRD": "prefixDirectional",
    "RD": "streetName",
    "STS": "streetSuffix",
    "POD": "postDirectional",
    "HNO": "houseNumber",
    "HNS": "houseSuffix",
    "PC": "zip",
}

#: Where an error about a carrier field points when no element supplied the field.
DEFAULT_SOURCES: dict[str, str] = {
    **{wire: element for element, wire in _DIRECT.items()},
    "plusFour": "PC",
    "addressLine2": "LOC",
}

#: The suite line's parts, in the order they are written, with their designators.
SUITE_ELEMENTS: tuple[str, ...] = ("BLD", "FLR", "UNIT", "ROOM", "SEAT", "LOC")
_SUITE_DESIGNATORS: dict[str, str] = {
    "BLD": "BLDG",
    "FLR": "FL",
    "UNIT": "UNIT",
    "ROOM": "RM",
    "SEAT": "SEAT",
}
_ELEMENT_OF_DESIGNATOR = {code: element for element, code in _SUITE_DESIGNATORS.items()}
#: Every Publication 28 unit designator, long and short (``SUITE``, ``STE``, ``#``, ...).
_DESIGNATOR_WORDS = frozenset(
    {*OCCUPANCY_TYPE_ABBREVIATIONS, *OCCUPANCY_TYPE_ABBREVIATIONS.values(), "SEAT", "FLR"}
)
#: The canonical short forms a normalized suite line is made of.
_DESIGNATOR_CODES = frozenset({*OCCUPANCY_TYPE_ABBREVIATIONS.values(), "SEAT", "HNGR", "UPPR"})

_DROPPED: dict[str, str] = {
    "A2": "a county is not part of the carrier's address",
    "A4": "a city division is not part of the carrier's address",
    "A5": "a neighbourhood or block is not part of the carrier's address",
    "LMK": "a landmark is not part of the carrier's address",
    "PLC": "a place type is not part of the carrier's address",
    "ADDCODE": "an additional code is not part of the carrier's address",
}

_REFUSED: dict[str, str] = {
    "POM": "a road post-modifier cannot be placed in the carrier's address; write it into RD",
    "RDSEC": "a road section cannot be placed in the carrier's address",
    "RDBR": "a road branch cannot be placed in the carrier's address",
    "RDSUBBR": "a road sub-branch cannot be placed in the carrier's address",
    "POBOX": "a PO box is a mail delivery point, not a dispatchable location",
}


@dataclass(frozen=True, slots=True)
class CivicMapping:
    """A civic address read as the carrier's fields."""

    #: The carrier's address fields, named as in the JSON API (``houseNumber``, ``zip``).
    address: dict[str, str]
    #: ``NAM``: the caller name.
    caller_name: str | None
    #: Carrier field -> the civic element it came from (for naming errors after the input).
    sources: dict[str, str]
    errors: tuple[FieldError, ...] = ()
    warnings: tuple[FieldError, ...] = ()


def _starts_with_designator(value: str) -> bool:
    first = value.split(" ", 1)[0].upper().rstrip(".")
    return first in _DESIGNATOR_WORDS


def compose_suite(parts: Mapping[str, str]) -> str | None:
    """The suite line for ``BLD``/``FLR``/``UNIT``/``ROOM``/``SEAT``/``LOC`` values.

    A value that already starts with a designator (``UNIT`` = ``STE 3000``, ``FLR`` =
    ``Floor 3``) is written as it is; others get their element's designator (``FL 3``).
    """
    pieces: list[str] = []
    for element in SUITE_ELEMENTS:
        value = parts.get(element)
        if not value:
            continue
        if element == "LOC" or _starts_with_designator(value):
            pieces.append(value)
        else:
            pieces.append(f"{_SUITE_DESIGNATORS[element]} {value}")
    return " ".join(pieces) or None


def split_suite(line: str) -> dict[str, str]:
    """A canonical suite line as civic elements; ``{"LOC": line}`` when it does not split
    into them exactly (so that composing the parts again gives ``line`` back)."""
    tokens = line.split()
    parts: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        value = following if following not in _DESIGNATOR_CODES else None
        element = _ELEMENT_OF_DESIGNATOR.get(token)
        if element is not None and element not in parts and value is not None:
            parts[element] = value
            i += 2
        elif token in _DESIGNATOR_CODES and "UNIT" not in parts:
            # STE 3000, APT 5, # 5, BSMT: the designator is part of the unit's value.
            parts["UNIT"] = f"{token} {value}" if value is not None else token
            i += 2 if value is not None else 1
        else:
            return {"LOC": line}
    if compose_suite(parts) != line:
        return {"LOC": line}
    return parts


def to_address(pairs: Iterable[tuple[str, str]], *, where: str = "civicAddress") -> CivicMapping:
    """Map civic elements (name, text) to the carrier's fields; never raises.

    ``pairs`` are the children of a ``civicAddress`` in its own namespace, in document order,
    text already whitespace-collapsed. An empty element counts as absent.
    """
    errors: list[FieldError] = []
    warnings: list[FieldError] = []
    values: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        field = f"{where}.{name}"
        if name not in CIVIC_ELEMENTS:
            errors.append(FieldError(field, "unknown civic address element (RFC 5139)"))
            continue
        if name in seen:
            errors.append(FieldError(field, "appears more than once"))
            continue
        seen.add(name)
        if value:
            values[name] = value
    address: dict[str, str] = {}
    sources: dict[str, str] = {}
    for element, wire in _DIRECT.items():
        if element in values:
            address[wire] = values[element]
            sources[wire] = element
    _street(values, address, sources, errors, warnings, where)
    _city(values, address, sources, warnings, where)
    suite = {e: values[e] for e in SUITE_ELEMENTS if e in values}
    line = compose_suite(suite)
    if line is not None:
        address["addressLine2"] = line
        sources["addressLine2"] = next(iter(suite))
    for element, reason in _DROPPED.items():
        if element in values:
            warnings.append(FieldError(f"{where}.{element}", f"ignored: {reason}"))
    for element, reason in _REFUSED.items():
        if element in values:
            errors.append(FieldError(f"{where}.{element}", reason))
    return CivicMapping(address, values.get("NAM"), sources, tuple(errors), tuple(warnings))


def _street(
    values: Mapping[str, str],
    address: dict[str, str],
    sources: dict[str, str],
    errors: list[FieldError],
    warnings: list[FieldError],
    where: str,
) -> None:
    if "A6" in values:
        if "RD" in values:
            warnings.append(FieldError(f"{where}.A6", "ignored: RD names the street"))
        else:
            # RFC 4119 had no RD: its A6 was the street.
            address["streetName"] = values["A6"]
            sources["streetName"] = "A6"
    if "PRM" in values:
        if "streetName" in address:
            address["streetName"] = f"{values['PRM']} {address['streetName']}"
        else:
            errors.append(FieldError(f"{where}.PRM", "a road pre-modifier needs RD"))


def _city(
    values: Mapping[str, str],
    address: dict[str, str],
    sources: dict[str, str],
    warnings: list[FieldError],
    where: str,
) -> None:
    if "PCN" not in values:
        return
    if "city" in address:
        warnings.append(FieldError(f"{where}.PCN", "ignored: A3 names the city"))
    else:
        address["city"] = values["PCN"]
        sources["city"] = "PCN"


def from_address(address: Address, *, caller_name: str | None = None) -> dict[str, str]:
    """A canonical address as civic elements, in RFC 5139 order (absent values left out)."""
    out: dict[str, str] = {
        "country": address.country or "",
        "A1": address.state_code or "",
        "A3": address.city or "",
        "PRD": address.prefix_directional or "",
        "RD": address.street_name or "",
        "STS": address.street_suffix or "",
        "POD": address.post_directional or "",
        "HNO": address.house_number or "",
        "HNS": address.house_suffix or "",
        "NAM": caller_name or "",
    }
    if address.zip:
        out["PC"] = f"{address.zip}-{address.plus_four}" if address.plus_four else address.zip
    if address.address_line2:
        out.update(split_suite(address.address_line2))
    return {element: out[element] for element in CIVIC_ORDER if out.get(element)}
