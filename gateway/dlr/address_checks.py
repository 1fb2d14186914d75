"""Address validation: field errors and warnings, and the ZIP data's agreement.

Not dispatchable, refused with an error: PO boxes, rural-route and highway-contract boxes
(``RR 2 BOX 15``: a mail delivery point, not a civic location), ``GENERAL DELIVERY``,
intersections, military (APO/FPO) addresses.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace

from gateway.bandwidth.models import Address, wire_name
from gateway.dlr.address_canonical import canon_city, canonical, unwritable
from gateway.dlr.address_tables import (
    CA_DIRECTIONAL_CODES,
    DESIGNATOR_CODES,
    DIRECTIONAL_CODES,
    FIELD_NAMES,
    HOUSE_NUMBER_RE,
    HOUSE_SUFFIX_RE,
    KM_RE,
    MAX_ADDRESS_LINE2,
    MAX_FIELD,
    MAX_HOUSE_NUMBER,
    MILITARY_STATES,
    NOT_DISPATCHABLE,
    PLUS4_RE,
    POSTAL_PROVINCES,
    POSTAL_RE,
    PROVINCES,
    RANGED_DESIGNATORS,
    SPACE_RUN,
    SUFFIX_CODES,
    US_STATES,
    ZIP_RE,
)
from gateway.dlr.errors import FieldError
from gateway.zipdata import ZipInfo, zip_info


@dataclass(frozen=True, slots=True)
class Normalized:
    address: Address | None
    errors: tuple[FieldError, ...] = ()
    warnings: tuple[FieldError, ...] = ()
    suggestions: tuple[Address, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors


# --------------------------------------------------------------------------- ZIP data


def zip_record(zip_code: str) -> ZipInfo | None:
    return zip_info(zip_code)


def _city_key(city: str) -> str:
    return canon_city(city, "US") or ""


# --------------------------------------------------------------------------- validation


def _line1(address: Address) -> str:
    parts = (address.house_number, address.street_name, address.street_suffix)
    return " ".join(p for p in parts if p)


def not_dispatchable(text: str) -> str | None:
    spaced = SPACE_RUN.sub(" ", text.replace("#", " # ")).strip()
    for pattern, reason in NOT_DISPATCHABLE:
        if pattern.search(spaced):
            return f"not a dispatchable location: {reason}"
    return None


class Report:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.warnings: list[FieldError] = []
        self.suggestions: list[Address] = []
        self.refused: set[str] = set()

    def error(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))
        self.refused.add(field)

    def warn(self, field: str, message: str) -> None:
        self.warnings.append(FieldError(field, message))

    def result(self, address: Address | None) -> Normalized:
        return Normalized(
            address=address,
            errors=tuple(self.errors),
            warnings=tuple(self.warnings),
            suggestions=tuple(self.suggestions),
        )


_REQUIRED = ("house_number", "street_name", "city", "state_code", "zip")


def _validate(address: Address, report: Report) -> None:
    country = address.country or "US"
    if country not in ("US", "CA"):
        report.error("country", f"unsupported country {country!r}: only US and CA can be routed")
    for name in _REQUIRED:
        if "address" in report.refused:
            break  # the whole address was refused already; "required" would only add noise
        if getattr(address, name) is None and wire_name(name) not in report.refused:
            report.error(wire_name(name), "is required")

    if address.house_number is not None:
        hn = address.house_number
        if len(hn) > MAX_HOUSE_NUMBER:
            report.error("houseNumber", f"is too long (at most {MAX_HOUSE_NUMBER} characters)")
        elif KM_RE.fullmatch(hn):
            pass  # a kilometre marker, decimal point and all
        elif "." in hn:
            report.error(
                "houseNumber",
                "has a decimal point, which only a kilometre marker may have (KM 5.4); "
                "a house number is whole",
            )
        elif not HOUSE_NUMBER_RE.fullmatch(hn) or not any(c.isdigit() for c in hn):
            report.error(
                "houseNumber", "must be a house number (digits, letters and hyphens, e.g. 123-45)"
            )
    if address.house_suffix is not None and not HOUSE_SUFFIX_RE.fullmatch(address.house_suffix):
        report.error("houseSuffix", "must be a short house number suffix such as A, B or 1/2")
    canadian = country == "CA"
    for name in ("prefix_directional", "post_directional"):
        value = getattr(address, name)
        if value is None or value in (CA_DIRECTIONAL_CODES if canadian else DIRECTIONAL_CODES):
            continue
        codes = "N S E W NE NW SE SW" + (" O NO SO" if canadian else "")
        report.error(wire_name(name), f"must be a directional: {codes}")
    if address.street_suffix is not None and address.street_suffix not in SUFFIX_CODES:
        report.warn("streetSuffix", f"{address.street_suffix!r} is not a USPS street suffix")

    reason = not_dispatchable(_line1(address))
    if reason:
        report.error("streetName", reason)
    if address.address_line2 is not None:
        if len(address.address_line2) > MAX_ADDRESS_LINE2:
            report.error("addressLine2", f"is too long (at most {MAX_ADDRESS_LINE2} characters)")
        reason = not_dispatchable(address.address_line2)
        if reason:
            report.error("addressLine2", reason)
        _check_units(address.address_line2, report)

    if country == "US":
        _validate_us(address, report)
    elif country == "CA":
        _validate_ca(address, report)


def _check_units(line2: str, report: Report) -> None:
    """Each unit once, each with its number: ``RM 101 BLDG C``, not ``APT 4 APT 5`` or ``APT``."""
    tokens = line2.split()
    seen: set[str] = set()
    for i, token in enumerate(tokens):
        if token not in RANGED_DESIGNATORS:
            continue
        if token in seen:
            report.error(
                "addressLine2",
                f"names {token} twice; send the one unit the caller is in",
            )
            return
        seen.add(token)
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if following is None or following in DESIGNATOR_CODES:
            report.warn(
                "addressLine2",
                f"{token} has no number: without it the PSAP cannot tell which one "
                f"(write it as {token} 4B)",
            )


def _zip_of_form(
    address: Address, report: Report, form: re.Pattern[str], message: str
) -> str | None:
    """The address's ZIP or postal code when it has the country's ``form``; ``None`` when it
    has none, or (reporting ``message``) another form."""
    code = address.zip
    if code is not None and not form.fullmatch(code):
        report.error("zip", message)
        return None
    return code


def _validate_us(address: Address, report: Report) -> None:
    state = address.state_code
    state_ok = False
    if state is not None:
        if state in MILITARY_STATES:
            report.error(
                "stateCode", "not a dispatchable location: military (APO/FPO/DPO) mail address"
            )
        elif state not in US_STATES:
            report.error("stateCode", f"{state!r} is not a US state or territory code")
        else:
            state_ok = True
    if address.plus_four is not None and not PLUS4_RE.fullmatch(address.plus_four):
        report.error("plusFour", "must be 4 digits")
    zip_code = _zip_of_form(
        address, report, ZIP_RE, "must be a 5-digit ZIP code (ZIP+4 as 12345-6789 or in plusFour)"
    )
    if zip_code is None:
        return
    record = zip_record(zip_code)
    if record is None:
        report.error("zip", f"unknown ZIP code {zip_code}")
        return
    zip_state = record.state
    if zip_state in MILITARY_STATES:
        report.error("zip", "not a dispatchable location: military (APO/FPO/DPO) ZIP code")
        return
    if state_ok and zip_state != state:
        report.error("zip", f"ZIP code {zip_code} is in {zip_state}, not in {state}")
        return
    if record.zip_code_type == "PO BOX":
        report.warn("zip", f"ZIP code {zip_code} serves PO boxes only; check the street ZIP")
    if address.city is None or not state_ok:
        return
    listed = record.city
    acceptable = record.acceptable_cities
    keys = {_city_key(listed), *(_city_key(c) for c in acceptable)}
    if _city_key(address.city) in keys:
        return
    suggestion = canon_city(listed, "US")
    report.warn(
        "city",
        f"{address.city!r} is not a city the ZIP data lists for {zip_code} "
        f"(listed: {suggestion}); it may be a neighbourhood name",
    )
    if suggestion:
        report.suggestions.append(replace(address, city=suggestion))


def _validate_ca(address: Address, report: Report) -> None:
    province = address.state_code
    if province is not None and province not in PROVINCES:
        report.error("stateCode", f"{province!r} is not a Canadian province or territory code")
        province = None
    if address.plus_four is not None:
        report.error("plusFour", "is not used for Canadian addresses")
    postal = _zip_of_form(address, report, POSTAL_RE, "must be a Canadian postal code like A1A 1A1")
    if postal is None:
        return
    if province is not None and province not in POSTAL_PROVINCES.get(postal[0], frozenset()):
        report.error("zip", f"postal code {postal} is not in {province}")


# --------------------------------------------------------------------------- inputs


def from_values(values: Mapping[str, object], report: Report) -> Address:
    """Check value types and sizes; the accepted values as an Address (not yet canonical)."""
    kept: dict[str, str | None] = {}
    for name in FIELD_NAMES:
        value = values.get(name)
        field = wire_name(name)
        if value is None:
            kept[name] = None
        elif not isinstance(value, str):
            report.error(field, "must be a string")
            kept[name] = None
        elif len(value) > MAX_FIELD:
            report.error(field, f"is too long (at most {MAX_FIELD} characters)")
            kept[name] = None
        else:
            letter = unwritable(value)
            if letter is not None:
                report.error(field, unwritable_message(letter))
            kept[name] = value
    return Address(**kept)


def unwritable_message(letter: str) -> str:
    """The error for a letter the carrier's records cannot hold (see ``unwritable``)."""
    name = unicodedata.name(letter, f"U+{ord(letter):04X}")
    return (
        f'holds "{letter}" ({name}), which has no form in Latin letters and digits, the '
        "only ones the carrier's records hold: write it in them"
    )


def checked_result(address: Address, report: Report) -> Normalized:
    result = canonical(address)
    # Canonical spellings can be longer than the input ("ST" -> "SAINT"); a field still too
    # long is refused and dropped, so that normalizing the output again gives the same output.
    for name in FIELD_NAMES:
        value = getattr(result, name)
        if isinstance(value, str) and len(value) > MAX_FIELD:
            if wire_name(name) not in report.refused:
                report.error(wire_name(name), f"is too long (at most {MAX_FIELD} characters)")
            result = replace(result, **{name: None})
    _validate(result, report)
    return report.result(result)
