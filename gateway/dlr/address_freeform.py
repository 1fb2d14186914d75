"""One free-form US or Canadian address line read into fields, for ``normalize``.

A free-form line is read from its end: country, ZIP or postal code, state or province, then
the city before them (``..., SAN JUAN, PR 00907``); what comes before the city is the street
and its units, read by usaddress, or here for the shapes usaddress misreads (prefix-type
streets, kilometre markers). A line without commas is read whole by usaddress (US only: a
Canadian one must set the city off with commas, or be refused saying so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import usaddress

from gateway.dlr.address_canonical import (
    canon_state,
    clean,
    is_prefix_street,
    prefix_types,
    unwritable,
)
from gateway.dlr.address_checks import (
    Normalized,
    Report,
    checked_result,
    from_values,
    not_dispatchable,
    unwritable_message,
)
from gateway.dlr.address_tables import (
    COUNTRIES,
    DESIGNATORS,
    DIRECTIONALS,
    FRENCH_ARTICLES,
    FRENCH_DIRECTIONALS,
    KM_RE,
    MAX_FREEFORM,
    POSTAL_ANYWHERE_RE,
    PROVINCES,
    STATE_NAMES,
    ZIP_RE,
)

_LABELS: dict[str, str] = {
    "AddressNumberPrefix": "house_number",
    "AddressNumber": "house_number",
    "AddressNumberSuffix": "house_suffix",
    "StreetNamePreDirectional": "prefix_directional",
    "StreetNamePreModifier": "street_name",
    "StreetNamePreType": "street_name",
    "StreetName": "street_name",
    "StreetNamePostType": "street_suffix",
    "StreetNamePostDirectional": "post_directional",
    "Unit": "address_line2",
    "PlaceName": "city",
    "StateName": "state_code",
    "ZipCode": "zip",
    "CountryName": "country",
}
#: usaddress's unit labels read as one: ``RM 101 BLDG C`` is one run of units, not a repeat.
_UNIT_LABELS = {
    "OccupancyType": "Unit",
    "OccupancyIdentifier": "Unit",
    "SubaddressType": "Unit",
    "SubaddressIdentifier": "Unit",
}
_IGNORED_LABELS = frozenset({"Recipient", "BuildingName", "LandmarkName", "NotAddress"})
_LAST_LINE_LABELS = frozenset({"PlaceName", "StateName", "ZipCode", "CountryName"})
_UNPARSED = "could not be parsed unambiguously; send the structured address fields"

_US_POSTAL_RE = re.compile(r"\d{5}(?:-?\d{4})?")
_FSA_RE = re.compile(r"[A-Z]\d[A-Z]")
_LDU_RE = re.compile(r"\d[A-Z]\d")
_URBANIZATION_WORDS = frozenset({"URB", "URBANIZACION"})
#: A house number before a prefix-type street: ``1055``, ``A17``, ``123-45``, ``12B``.
_PREFIX_STREET_RE = re.compile(r"([A-Z]?\d+[A-Z]?(?:-[A-Z0-9]+)?) (.+)")


def _tag(text: str) -> tuple[dict[str, str], str] | None:
    try:
        tagged, kind = usaddress.tag(text, tag_mapping=_UNIT_LABELS)
    except Exception:  # RepeatedLabelError, and anything odd input may provoke
        return None
    return {str(k): str(v) for k, v in tagged.items()}, str(kind)


def _canadian_free_form(words: str) -> bool:
    """Whether a free-form line (cleaned, commas gone) is a Canadian address: it has a postal
    code, or it ends with the country after a province (``TORONTO ON CANADA``, ``... ON CA``)
    or after a ZIP/postal code. A place named "Canada" elsewhere in the line (La Canada
    Flintridge CA; Canada KY) is not the country."""
    if POSTAL_ANYWHERE_RE.search(words):
        return True
    tokens = words.split()
    if len(tokens) < 2 or COUNTRIES.get(tokens[-1]) != "CA":
        return False
    before = tokens[:-1]
    for n in (1, 2, 3):
        if len(before) >= n and STATE_NAMES.get(" ".join(before[-n:])) in PROVINCES:
            return True
    return tokens[-1] != "CA" and ZIP_RE.fullmatch(before[-1]) is not None


@dataclass(frozen=True, slots=True)
class _LastLine:
    """A free-form line read from its end: ``..., CITY, ST 12345[, COUNTRY]``."""

    #: The parts before the city, as separated by commas (street, units, urbanization).
    delivery: tuple[str, ...]
    city: str
    state: str
    postal: str | None
    country: str | None


def _postal_at_end(tokens: list[str]) -> str | None:
    """Take a ZIP (ZIP+4) or a Canadian postal code off the end of ``tokens``."""
    if tokens and _US_POSTAL_RE.fullmatch(tokens[-1]):
        return tokens.pop()
    if len(tokens) >= 2 and _FSA_RE.fullmatch(tokens[-2]) and _LDU_RE.fullmatch(tokens[-1]):
        ldu, fsa = tokens.pop(), tokens.pop()
        return f"{fsa} {ldu}"
    if tokens and len(tokens[-1]) == 6 and POSTAL_ANYWHERE_RE.fullmatch(tokens[-1]):
        return tokens.pop()
    return None


def _state_at_end(tokens: list[str]) -> str | None:
    """Take a state or province off the end of ``tokens``: a code (``DC`` after
    ``WASHINGTON``) as it is, a name by its longest spelling (``WEST VIRGINIA``)."""
    if tokens and len(tokens[-1]) == 2 and tokens[-1] in STATE_NAMES:
        return tokens.pop()
    for n in (4, 3, 2, 1):
        if len(tokens) >= n and " ".join(tokens[-n:]) in STATE_NAMES:
            name = " ".join(tokens[-n:])
            del tokens[-n:]
            return name
    return None


def _last_line(cleaned: str) -> _LastLine | None:
    """City, state, postal code and country off the end of a comma-separated line; ``None``
    when it does not end that way (no commas, no state), and usaddress reads it whole."""
    parts = [p.strip() for p in cleaned.split(",") if p.strip()]
    country = COUNTRIES.get(parts[-1]) if parts else None
    if country is not None:
        parts.pop()
    if len(parts) < 2:
        return None
    tokens = parts.pop().split()
    if country is None and len(tokens) > 1 and tokens[-1] in ("CANADA", "USA"):
        country = COUNTRIES[tokens.pop()]
    postal = _postal_at_end(tokens)
    if not tokens and parts:  # "SPRINGFIELD, IL, 62701"
        tokens = parts.pop().split()
    state = _state_at_end(tokens)
    if state is None:
        return None
    if not tokens:
        if len(parts) < 2:
            return None
        tokens = parts.pop().split()
    if not parts:
        return None
    return _LastLine(tuple(parts), " ".join(tokens), state, postal, country)


def free_form(text: str, report: Report) -> Normalized:
    if len(text) > MAX_FREEFORM:
        report.error("address", f"is too long (at most {MAX_FREEFORM} characters)")
        return report.result(None)
    letter = unwritable(text)
    if letter is not None:
        report.error("address", unwritable_message(letter))
        return report.result(None)
    cleaned = clean(text, keep="-/#&,")
    if not cleaned.replace(",", "").strip():
        report.error("address", "is required")
        return report.result(None)
    words = cleaned.replace(",", " ")
    refusal = not_dispatchable(words)
    line = _last_line(cleaned)
    if line is None:
        if _canadian_free_form(words):
            report.error(
                "address",
                "could not tell the city from the street: write a Canadian address with "
                "commas around the city (290 Bremner Blvd, Toronto, ON M5V 3L9)",
            )
            return report.result(None)
        return _from_tags(cleaned, refusal, {}, report)
    country = line.country
    if country is None and (line.postal and line.postal[0].isalpha()):
        country = "CA"
    state = canon_state(line.state)
    if country is None and state in PROVINCES:
        country = "CA"
    known = {"city": line.city, "state_code": line.state, "zip": line.postal, "country": country}
    delivery = list(line.delivery)
    urbanization = None
    if state == "PR":
        found = [p for p in delivery if p.split()[0] in _URBANIZATION_WORDS]
        if found:
            # Part of a Puerto Rico address: a street name and number can repeat in a ZIP.
            urbanization = "URB " + found[0].split(" ", 1)[-1] if " " in found[0] else None
            delivery = [p for p in delivery if p is not found[0]]
    values = _own_street(delivery, prefix_types(country, state), country == "CA")
    if values is None:
        return _from_tags(", ".join(delivery), refusal, known, report, urbanization)
    if refusal is not None:
        report.error("address", refusal)
    return checked_result(from_values(_with(values, known, urbanization), report), report)


def _with(
    values: dict[str, str | None], known: Mapping[str, str | None], urbanization: str | None
) -> dict[str, str | None]:
    """The street's values with what the line's end said, the urbanization leading line 2."""
    values.update(known)
    if urbanization is not None:
        values["address_line2"] = " ".join(
            v for v in (urbanization, values.get("address_line2")) if v
        )
    return values


def _own_street(
    parts: list[str], types: Mapping[str, str], canadian: bool
) -> dict[str, str | None] | None:
    """The street shapes usaddress misreads: a kilometre marker (``CARR 2 KM 5.4``) and a
    street whose type comes first (``1055 AVE ASHFORD``, ``1 RUE NOTRE-DAME O``), each
    perhaps followed by units (``, BUREAU 3``); ``None`` for anything else (usaddress reads
    it)."""
    if not parts or not all(_is_unit(p.split()[0]) for p in parts[1:]):
        return None
    values = _street_part(parts[0], types, canadian)
    if values is not None and parts[1:]:
        values["address_line2"] = " ".join(p for p in [values["address_line2"], *parts[1:]] if p)
    return values


def _is_unit(word: str) -> bool:
    return word in DESIGNATORS or (word.startswith("#") and len(word) > 1)


def _street_part(
    street: str, types: Mapping[str, str], canadian: bool
) -> dict[str, str | None] | None:
    tokens = street.split()
    for i in range(len(tokens)):
        for width in (1, 2):
            marker = KM_RE.fullmatch(" ".join(tokens[i : i + width]))
            if marker is None:
                continue
            before, after = tokens[:i], tokens[i + width :]
            # CARR 2 KM 5.4 [INT]: the road, then what follows the marker; KM 5.4 CARR 2.
            road, rest = (before, after) if before else _trailing_units(after)
            if not road:
                return None
            return {
                "house_number": f"KM {marker.group(1)}",
                "street_name": " ".join(road),
                "address_line2": " ".join(rest) or None,
            }
    match = _PREFIX_STREET_RE.fullmatch(street)
    if match is None:
        return None
    name_tokens, units = _trailing_units(match.group(2).split())
    directional = None
    if canadian and len(name_tokens) > 2 and name_tokens[-2] not in FRENCH_ARTICLES:
        code = FRENCH_DIRECTIONALS.get(name_tokens[-1]) or DIRECTIONALS.get(name_tokens[-1])
        if code is not None:
            directional = code
            name_tokens = name_tokens[:-1]
    if not is_prefix_street(name_tokens, types):
        return None
    return {
        "house_number": match.group(1),
        "street_name": " ".join(name_tokens),
        "post_directional": directional,
        "address_line2": " ".join(units) or None,
    }


def _trailing_units(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Split ``[..., STE, 3, FL, 2]`` into the street's words and the units after them."""
    end = len(tokens)
    while end > 2:
        if tokens[end - 2] in DESIGNATORS and any(c.isdigit() for c in tokens[end - 1]):
            end -= 2
        elif tokens[end - 1].startswith("#") and _is_unit(tokens[end - 1]):
            end -= 1
        else:
            break
    return tokens[:end], tokens[end:]


def _from_tags(
    text: str,
    refusal: str | None,
    known: Mapping[str, str | None],
    report: Report,
    urbanization: str | None = None,
) -> Normalized:
    """``text`` read by usaddress: the whole line, or (with ``known`` city, state, postal
    code and country read from the line's end) its street part."""
    parsed = _tag(text)
    if parsed is None:
        report.error("address", refusal or _UNPARSED)
        return report.result(None)
    tagged, kind = parsed
    if refusal is None and (kind == "PO Box" or any(k.startswith("USPSBox") for k in tagged)):
        group = tagged.get("USPSBoxGroupType", "")
        refusal = not_dispatchable(f"{group} 1" if group else "PO BOX")
    if refusal is not None:
        report.error("address", refusal)
    elif kind == "Intersection" or "IntersectionSeparator" in tagged:
        report.error(
            "address", "not a dispatchable location: an intersection is not a civic address"
        )
    elif kind == "Ambiguous" and not known:
        report.error("address", _UNPARSED)
    elif known and _LAST_LINE_LABELS & tagged.keys():
        # The street part read as holding a city or a ZIP: no reading to trust.
        report.error("address", _UNPARSED)
    values: dict[str, str | None] = {}
    for label, value in tagged.items():
        target = _LABELS.get(label)
        if target is not None:
            values[target] = f"{values[target]} {value}" if values.get(target) else value
        elif label in _IGNORED_LABELS and not report.errors:
            report.warn("address", f"ignored text that is not part of a civic address: {value!r}")
    if not values and not known:
        if not report.errors:
            report.error("address", "no address could be recognized")
        return report.result(None)
    return checked_result(from_values(_with(values, known, urbanization), report), report)
