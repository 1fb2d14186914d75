"""Civic address normalization and validation (USPS Publication 28), no I/O.

``normalize`` turns a structured ``Address``, the JSON address object (camelCase keys, the
seed's names) or one free-form US address line into the canonical form, with field-level
errors (not routable) and warnings (routable, but look again). It never raises.

Canonical-form choices (all applied by ``canonical``, which is pure and idempotent):

* Upper case ASCII (accents folded), whitespace collapsed; periods and apostrophes dropped,
  other punctuation dropped except ``-`` and ``/`` (house numbers, fractions) and ``#`` in
  ``address_line2``.
* Street suffixes and directionals use the Pub 28 abbreviations (scourgify's tables):
  ``AVENUE -> AVE``, ``NORTHWEST -> NW``. A street name whose last word is a suffix while
  ``street_suffix`` is empty is split (``"MAIN STREET" -> MAIN`` + ``ST``).
* Highway names are spelled out as USPS does and carry no suffix: ``US HIGHWAY 1``,
  ``STATE ROUTE 9``, ``COUNTY ROAD 12``, ``HIGHWAY 50``, all in ``street_name``.
* Ordinal streets are numeric: ``5th -> 5TH``, spelled-out ordinals up to 99 are converted
  (``FIFTH -> 5TH``, ``TWENTY-FIRST -> 21ST``), and a bare number followed by a suffix gets
  its indicator (``15 ST -> 15TH ST``), so spellings of one street agree.
* House numbers: hyphenated Queens numbers are kept (``123-45``); a fraction goes to
  ``house_suffix`` (``123 1/2 -> 123`` + ``1/2``); one trailing letter goes to
  ``house_suffix`` (``123A``/``123-A``/``123 A -> 123`` + ``A``) when no suffix is given.
* ``address_line2``: unit designators abbreviated (``SUITE -> STE``, ``APARTMENT -> APT``,
  ``FLOOR -> FL``, ``ROOM -> RM``, ``BUILDING -> BLDG``); a ``#`` right after a designator is
  dropped (``APT #5 -> APT 5``); without a designator the Pub 28 form is ``# 5`` (``#5`` and a
  bare ``5`` both become ``# 5``); ``65TH FLOOR -> FL 65``.
* US cities: hyphens and apostrophes become spaces and ``ST/STE/MT/FT`` and a leading
  directional are spelled out (``ST. LOUIS -> SAINT LOUIS``, ``O'FALLON -> O FALLON``), the
  way the USPS city list spells them. Canadian cities keep their words.
* ``state_code`` is the 2-letter code (full names accepted); ``country`` is ``US`` (default
  when absent) or ``CA``; US ``zip`` is 5 digits with ZIP+4 split into ``plus_four``;
  Canadian postal codes are ``A1A 1A1``.

Not dispatchable, refused with an error: PO boxes, rural-route and highway-contract boxes
(``RR 2 BOX 15``: a mail delivery point, not a civic location), ``GENERAL DELIVERY``,
intersections, military (APO/FPO) addresses. Free-form parsing is US-only.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, fields, replace

import usaddress
from cachetools import LRUCache
from scourgify.address_constants import (
    DIRECTIONAL_REPLACEMENTS,
    LONGHAND_DIRECTIONALS,
    LONGHAND_STREET_TYPES,
    OCCUPANCY_TYPE_ABBREVIATIONS,
    STATE_ABBREVIATIONS,
    STREET_TYPE_ABBREVIATIONS,
)

from gateway.bandwidth.models import Address, wire_name
from gateway.zipdata import ZipInfo, zip_info

__all__ = [
    "MAX_ADDRESS_LINE2",
    "MAX_CALLER_NAME",
    "MAX_FIELD",
    "MAX_FREEFORM",
    "FieldError",
    "NormalizeCache",
    "Normalized",
    "canonical",
    "normalize",
    "validate_caller_name",
]

MAX_ADDRESS_LINE2 = 60
MAX_CALLER_NAME = 50
#: Longest value accepted in any one address field.
MAX_FIELD = 100
#: Longest free-form address line accepted.
MAX_FREEFORM = 500
MAX_HOUSE_NUMBER = 20


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Normalized:
    address: Address | None
    errors: tuple[FieldError, ...] = ()
    warnings: tuple[FieldError, ...] = ()
    suggestions: tuple[Address, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors


# --------------------------------------------------------------------------- tables

_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Address))
_WIRE_TO_FIELD: dict[str, str] = {wire_name(name): name for name in _FIELD_NAMES}

_DIRECTIONALS: dict[str, str] = {
    **{v: v for v in DIRECTIONAL_REPLACEMENTS.values()},
    **DIRECTIONAL_REPLACEMENTS,
}
_DIRECTIONAL_CODES = frozenset(DIRECTIONAL_REPLACEMENTS.values())

_SUFFIXES: dict[str, str] = {
    **{v: v for v in STREET_TYPE_ABBREVIATIONS.values() if " " not in v},
    **{k: v for k, v in STREET_TYPE_ABBREVIATIONS.items() if " " not in k and " " not in v},
}
_SUFFIX_CODES = frozenset(_SUFFIXES.values())

_HIGHWAY_ABBRS = frozenset(
    {"US HWY", "US RTE", "STATE HWY", "STATE RTE", "STATE RD", "COUNTY HWY", "COUNTY RD"}
    | {"COUNTY RTE", "HWY", "RTE"}
)
#: Highway-style leading words -> the spelled-out USPS form ("US HWY" -> "US HIGHWAY").
_HIGHWAYS: dict[str, str] = {
    k: LONGHAND_STREET_TYPES[v]
    for k, v in STREET_TYPE_ABBREVIATIONS.items()
    if v in _HIGHWAY_ABBRS and v in LONGHAND_STREET_TYPES
}
_HIGHWAYS.update(
    {v: LONGHAND_STREET_TYPES[v] for v in _HIGHWAY_ABBRS if v in LONGHAND_STREET_TYPES}
)
_HIGHWAYS.update({"RT": "ROUTE", "US RT": "US ROUTE", "STATE RT": "STATE ROUTE"})
_HIGHWAYS.update({v: v for v in list(_HIGHWAYS.values())})

# Pub 28 Appendix C2; scourgify spells two of them differently from the publication.
_DESIGNATORS: dict[str, str] = {
    k: v for k, v in OCCUPANCY_TYPE_ABBREVIATIONS.items() if k != "#" and k != "HANGER"
}
_DESIGNATORS.update({"HANGAR": "HNGR", "UPPER": "UPPR", "FLR": "FL", "APPT": "APT"})
_DESIGNATORS.update({v: v for v in list(_DESIGNATORS.values())})
_DESIGNATOR_CODES = frozenset(_DESIGNATORS.values())

_UNITS = [
    "",
    "FIRST",
    "SECOND",
    "THIRD",
    "FOURTH",
    "FIFTH",
    "SIXTH",
    "SEVENTH",
    "EIGHTH",
    "NINTH",
    "TENTH",
    "ELEVENTH",
    "TWELFTH",
    "THIRTEENTH",
    "FOURTEENTH",
    "FIFTEENTH",
    "SIXTEENTH",
    "SEVENTEENTH",
    "EIGHTEENTH",
    "NINETEENTH",
]
_TENS = ["", "", "TWENTY", "THIRTY", "FORTY", "FIFTY", "SIXTY", "SEVENTY", "EIGHTY", "NINETY"]
_TENTHS = ["", "", "TWENTIETH", "THIRTIETH", "FORTIETH", "FIFTIETH", "SIXTIETH"]
_TENTHS += ["SEVENTIETH", "EIGHTIETH", "NINETIETH"]


def _ordinal(n: int) -> str:
    if n % 100 in (11, 12, 13):
        return f"{n}TH"
    return f"{n}{ {1: 'ST', 2: 'ND', 3: 'RD'}.get(n % 10, 'TH') }"


def _ordinal_words() -> dict[str, str]:
    table: dict[str, str] = {}
    for n in range(1, 100):
        if n < 20:
            words = [_UNITS[n]]
        elif n % 10 == 0:
            words = [_TENTHS[n // 10]]
        else:
            tens, unit = _TENS[n // 10], _UNITS[n % 10]
            words = [f"{tens} {unit}", f"{tens}-{unit}", f"{tens}{unit}"]
        for word in words:
            table[word] = _ordinal(n)
    return table


_ORDINAL_WORDS = _ordinal_words()

_US_STATES_TEXT = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ "
    "NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR VI GU AS MP"
)
#: The 50 states, DC and the inhabited territories.
_US_STATES = frozenset(_US_STATES_TEXT.split())
_MILITARY_STATES = frozenset({"AA", "AE", "AP"})
_PROVINCES = frozenset("AB BC MB NB NL NS NT NU ON PE QC SK YT".split())  # noqa: SIM905
_STATE_NAMES: dict[str, str] = {
    **STATE_ABBREVIATIONS,
    "PUERTO RICO": "PR",
    "VIRGIN ISLANDS": "VI",
    "US VIRGIN ISLANDS": "VI",
    "UNITED STATES VIRGIN ISLANDS": "VI",
    "GUAM": "GU",
    "AMERICAN SAMOA": "AS",
    "NORTHERN MARIANA ISLANDS": "MP",
    "NORTHERN MARIANAS": "MP",
    "WASHINGTON DC": "DC",
    "ALBERTA": "AB",
    "BRITISH COLUMBIA": "BC",
    "MANITOBA": "MB",
    "NEW BRUNSWICK": "NB",
    "NEWFOUNDLAND AND LABRADOR": "NL",
    "NEWFOUNDLAND & LABRADOR": "NL",
    "NEWFOUNDLAND": "NL",
    "NF": "NL",
    "NOVA SCOTIA": "NS",
    "NORTHWEST TERRITORIES": "NT",
    "NUNAVUT": "NU",
    "ONTARIO": "ON",
    "PRINCE EDWARD ISLAND": "PE",
    "QUEBEC": "QC",
    "PQ": "QC",
    "SASKATCHEWAN": "SK",
    "YUKON": "YT",
    "YUKON TERRITORY": "YT",
}
_STATE_NAMES.update({code: code for code in _US_STATES | _MILITARY_STATES | _PROVINCES})

_COUNTRIES: dict[str, str] = {
    "US": "US",
    "USA": "US",
    "U S": "US",
    "U S A": "US",
    "UNITED STATES": "US",
    "UNITED STATES OF AMERICA": "US",
    "AMERICA": "US",
    "CA": "CA",
    "CAN": "CA",
    "CANADA": "CA",
}

#: First letter of a Canadian postal code -> the provinces it serves.
_POSTAL_PROVINCES: dict[str, frozenset[str]] = {
    "A": frozenset({"NL"}),
    "B": frozenset({"NS"}),
    "C": frozenset({"PE"}),
    "E": frozenset({"NB"}),
    "G": frozenset({"QC"}),
    "H": frozenset({"QC"}),
    "J": frozenset({"QC"}),
    "K": frozenset({"ON"}),
    "L": frozenset({"ON"}),
    "M": frozenset({"ON"}),
    "N": frozenset({"ON"}),
    "P": frozenset({"ON"}),
    "R": frozenset({"MB"}),
    "S": frozenset({"SK"}),
    "T": frozenset({"AB"}),
    "V": frozenset({"BC"}),
    "X": frozenset({"NT", "NU"}),
    "Y": frozenset({"YT"}),
}

_CITY_WORDS = {"ST": "SAINT", "STE": "SAINTE", "MT": "MOUNT", "FT": "FORT"}

_POSTAL_RE = re.compile(r"[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] \d[ABCEGHJ-NPRSTV-Z]\d")
_POSTAL_ANYWHERE_RE = re.compile(r"\b[A-Z]\d[A-Z] ?\d[A-Z]\d\b")
_ZIP_RE = re.compile(r"\d{5}")
_PLUS4_RE = re.compile(r"\d{4}")
_HOUSE_NUMBER_RE = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*")
_HOUSE_SUFFIX_RE = re.compile(r"[A-Z0-9]{1,3}|\d{1,2}/\d{1,2}")
_FRACTION_RE = re.compile(r"\d{1,2}/\d{1,2}")

_NOT_DISPATCHABLE: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\bGENERAL DELIVERY\b"),
        "General Delivery is a mail pickup arrangement, not a civic location",
    ),
    (
        re.compile(
            r"\b(?:RR|R R|RURAL (?:ROUTE|RTE|RT)|RFD|HC|HCR|HIGHWAY CONTRACT(?: ROUTE)?|STAR ROUTE)"
            r" ?#? ?\d"
        ),
        "rural-route and highway-contract boxes are mail delivery points, not civic locations",
    ),
    (
        re.compile(r"\b(?:ROUTE|RTE|RT) ?\d+ ?#? ?BOX ?#? ?\d"),
        "rural-route boxes are mail delivery points, not civic locations",
    ),
    (
        re.compile(
            r"\b(?:P ?O|POST OFFICE|POST|POSTAL) ?BOX\b|\bP ?O ?B ?#? ?\d|\bPOB\b"
            r"|\bBOX ?#? ?\d|\bP ?O ?DRAWER\b|\bLOCK ?BOX\b|\bCALLER ?BOX\b"
        ),
        "PO boxes are mail delivery points, not civic locations",
    ),
)

_VULGAR_FRACTIONS = {"½": " 1/2", "¼": " 1/4", "¾": " 3/4", "⅓": " 1/3", "⅔": " 2/3"}
_SPACE_RUN = re.compile(r"\s+")


# --------------------------------------------------------------------------- cleaning


def _fold(text: str) -> str:
    """Upper-case ASCII: accents folded, fractions and dashes made ASCII, controls to spaces."""
    for frac, ascii_frac in _VULGAR_FRACTIONS.items():
        if frac in text:
            text = text.replace(frac, ascii_frac)
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", text):
        if ch.isascii():
            out.append(ch if ch.isprintable() else " ")
            continue
        if ch == "\u2044":
            out.append("/")
            continue
        cat = unicodedata.category(ch)
        if cat == "Mn":
            continue
        if cat == "Pd":
            out.append("-")
        elif ch in "\u2019\u2018\u02bc":
            out.append("'")
        else:
            out.append(" ")
    return "".join(out).upper()


def _clean(text: str, keep: str = "-/", drop: str = ".'`") -> str:
    """Fold; remove ``drop`` characters; other non-alphanumerics but ``keep`` become spaces."""
    folded = _fold(text)
    chars: list[str] = []
    for ch in folded:
        if ch.isalnum() and ch.isascii():
            chars.append(ch)
        elif ch in drop:
            continue
        elif ch in keep:
            chars.append(ch)
        else:
            chars.append(" ")
    return _SPACE_RUN.sub(" ", "".join(chars)).strip()


def _tight(text: str, chars: str = "-/") -> str:
    """Remove spaces around hyphens and slashes: ``123 - 45`` -> ``123-45``."""
    for ch in chars:
        text = re.sub(rf"\s*{re.escape(ch)}\s*", ch, text)
    return text


def _none_if_empty(text: str) -> str | None:
    return text or None


# --------------------------------------------------------------------------- canonical parts


def _canon_house(number: str | None, suffix: str | None) -> tuple[str | None, str | None]:
    num = _none_if_empty(_tight(_clean(number))) if number is not None else None
    suf = _none_if_empty(_clean(suffix).replace(" ", "")) if suffix is not None else None
    if num is not None and suf is None:
        m = re.fullmatch(r"(\S+) (\d{1,2}/\d{1,2})", num)
        if m:
            num, suf = m.group(1), m.group(2)
        else:
            m = re.fullmatch(r"(\d+)(?: |-)?([A-Z])", num)
            if m:
                num, suf = m.group(1), m.group(2)
    return num, suf


def _canon_directional(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = _clean(value, keep="")
    key = cleaned.replace(" ", "")
    return _none_if_empty(_DIRECTIONALS.get(key, cleaned))


def _canon_suffix(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = _clean(value, keep="")
    return _none_if_empty(_SUFFIXES.get(cleaned, cleaned))


def _canon_street(name: str | None, suffix: str | None) -> tuple[str | None, str | None]:
    suf = _canon_suffix(suffix)
    if name is None:
        return None, suf
    tokens = _tight(_clean(name, keep="-/&")).split()
    if not tokens:
        return None, suf
    highway = _highway(tokens)
    if highway is not None:
        return highway, suf
    if suf is None and len(tokens) >= 2 and tokens[-1] in _SUFFIXES:
        suf = _SUFFIXES[tokens[-1]]
        tokens = tokens[:-1]
        highway = _highway(tokens)
        if highway is not None:
            return highway, suf
    joined = " ".join(tokens)
    ordinal = _ORDINAL_WORDS.get(joined)
    if ordinal is not None:
        joined = ordinal
    elif suf is not None and joined.isdigit() and len(joined) <= 4:
        joined = _ordinal(int(joined))
    return joined, suf


def _highway(tokens: list[str]) -> str | None:
    """``[US, HWY, 1]`` -> ``US HIGHWAY 1``; None when the name is not highway-style."""
    for width in (2, 1):
        if len(tokens) != width + 1:
            continue
        longhand = _HIGHWAYS.get(" ".join(tokens[:width]))
        number = tokens[-1]
        if longhand is not None and (any(c.isdigit() for c in number) or len(number) == 1):
            return f"{longhand} {number}"
    return None


def _canon_line2(value: str | None) -> str | None:
    if value is None:
        return None
    tokens = _tight(_clean(value, keep="-/#&")).replace("#", " # ").split()
    out: list[str] = []
    for i, tok in enumerate(tokens):
        if tok == "#" and out and out[-1] in _DESIGNATOR_CODES and i + 1 < len(tokens):
            continue
        out.append(_DESIGNATORS.get(tok, tok))
    if len(out) == 2 and out[1] == "FL":
        m = re.fullmatch(r"(\d+)(?:ST|ND|RD|TH)", out[0])
        if m:
            out = ["FL", m.group(1)]
    if len(out) == 1 and out[0] not in _DESIGNATOR_CODES and any(c.isdigit() for c in out[0]):
        out = ["#", out[0]]
    return _none_if_empty(" ".join(out))


def _canon_city(value: str | None, country: str | None) -> str | None:
    if value is None:
        return None
    if country == "US":
        tokens = _clean(value, keep="", drop=".").split()
        tokens = [_CITY_WORDS.get(t, t) for t in tokens]
        if len(tokens) > 1 and tokens[0] in LONGHAND_DIRECTIONALS:
            tokens[0] = LONGHAND_DIRECTIONALS[tokens[0]]
        return _none_if_empty(" ".join(tokens))
    return _none_if_empty(_clean(value, keep="-&"))


def _canon_state(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = _clean(value, keep="&", drop=".'`")
    return _none_if_empty(_STATE_NAMES.get(cleaned, cleaned))


def _canon_country(value: str | None) -> str:
    if value is None:
        return "US"
    cleaned = _clean(value, keep="", drop=".'`")
    if not cleaned:
        return "US"
    return _COUNTRIES.get(cleaned, cleaned)


def _canon_zip(
    zip_code: str | None, plus_four: str | None, country: str
) -> tuple[str | None, str | None]:
    p4 = _none_if_empty(_clean(plus_four, keep="").replace(" ", "")) if plus_four else None
    if zip_code is None:
        return None, p4
    if country == "CA":
        compact = _clean(zip_code, keep="").replace(" ", "")
        if len(compact) == 6:
            return f"{compact[:3]} {compact[3:]}", p4
        return _none_if_empty(compact), p4
    z = _clean(zip_code, keep="-").replace(" ", "")
    m = re.fullmatch(r"(\d{5})-?(\d{4})", z)
    if m and (p4 is None or p4 == m.group(2)):
        return m.group(1), m.group(2)
    return _none_if_empty(z), p4


def canonical(address: Address) -> Address:
    """The canonical form of an already-structured address, without validation.

    Pure and idempotent: ``canonical(canonical(a)) == canonical(a)``. Fields that are
    not strings at run time are dropped.
    """
    raw = {name: getattr(address, name, None) for name in _FIELD_NAMES}
    v: dict[str, str | None] = {k: (x if isinstance(x, str) else None) for k, x in raw.items()}
    country = _canon_country(v["country"])
    house_number, house_suffix = _canon_house(v["house_number"], v["house_suffix"])
    street_name, street_suffix = _canon_street(v["street_name"], v["street_suffix"])
    zip_code, plus_four = _canon_zip(v["zip"], v["plus_four"], country)
    return Address(
        house_number=house_number,
        house_suffix=house_suffix,
        prefix_directional=_canon_directional(v["prefix_directional"]),
        street_name=street_name,
        street_suffix=street_suffix,
        post_directional=_canon_directional(v["post_directional"]),
        address_line2=_canon_line2(v["address_line2"]),
        city=_canon_city(v["city"], country),
        state_code=_canon_state(v["state_code"]),
        zip=zip_code,
        plus_four=plus_four,
        country=country,
    )


# --------------------------------------------------------------------------- ZIP data


def _zip_record(zip_code: str) -> ZipInfo | None:
    return zip_info(zip_code)


def warm_up() -> None:
    """Load the ZIP data and the address parser now rather than in the first request."""
    _zip_record("00000")
    normalize("1 Main St, Washington, DC 20500")


def _city_key(city: str) -> str:
    return _canon_city(city, "US") or ""


# --------------------------------------------------------------------------- validation


def _line1(address: Address) -> str:
    parts = (address.house_number, address.street_name, address.street_suffix)
    return " ".join(p for p in parts if p)


def _not_dispatchable(text: str) -> str | None:
    spaced = _SPACE_RUN.sub(" ", text.replace("#", " # ")).strip()
    for pattern, reason in _NOT_DISPATCHABLE:
        if pattern.search(spaced):
            return f"not a dispatchable location: {reason}"
    return None


class _Report:
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


def _validate(address: Address, report: _Report) -> None:
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
        elif not _HOUSE_NUMBER_RE.fullmatch(hn) or not any(c.isdigit() for c in hn):
            report.error(
                "houseNumber", "must be a house number (digits, letters and hyphens, e.g. 123-45)"
            )
    if address.house_suffix is not None and not _HOUSE_SUFFIX_RE.fullmatch(address.house_suffix):
        report.error("houseSuffix", "must be a short house number suffix such as A, B or 1/2")
    for name in ("prefix_directional", "post_directional"):
        value = getattr(address, name)
        if value is not None and value not in _DIRECTIONAL_CODES:
            report.error(wire_name(name), "must be a directional: N S E W NE NW SE SW")
    if address.street_suffix is not None and address.street_suffix not in _SUFFIX_CODES:
        report.warn("streetSuffix", f"{address.street_suffix!r} is not a USPS street suffix")

    reason = _not_dispatchable(_line1(address))
    if reason:
        report.error("streetName", reason)
    if address.address_line2 is not None:
        if len(address.address_line2) > MAX_ADDRESS_LINE2:
            report.error("addressLine2", f"is too long (at most {MAX_ADDRESS_LINE2} characters)")
        reason = _not_dispatchable(address.address_line2)
        if reason:
            report.error("addressLine2", reason)

    if country == "US":
        _validate_us(address, report)
    elif country == "CA":
        _validate_ca(address, report)


def _validate_us(address: Address, report: _Report) -> None:
    state = address.state_code
    state_ok = False
    if state is not None:
        if state in _MILITARY_STATES:
            report.error(
                "stateCode", "not a dispatchable location: military (APO/FPO/DPO) mail address"
            )
        elif state not in _US_STATES:
            report.error("stateCode", f"{state!r} is not a US state or territory code")
        else:
            state_ok = True
    if address.plus_four is not None and not _PLUS4_RE.fullmatch(address.plus_four):
        report.error("plusFour", "must be 4 digits")
    zip_code = address.zip
    if zip_code is None:
        return
    if not _ZIP_RE.fullmatch(zip_code):
        report.error("zip", "must be a 5-digit ZIP code (ZIP+4 as 12345-6789 or in plusFour)")
        return
    record = _zip_record(zip_code)
    if record is None:
        report.error("zip", f"unknown ZIP code {zip_code}")
        return
    zip_state = record.state
    if zip_state in _MILITARY_STATES:
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
    suggestion = _canon_city(listed, "US")
    report.warn(
        "city",
        f"{address.city!r} is not a city the ZIP data lists for {zip_code} "
        f"(listed: {suggestion}); it may be a neighbourhood name",
    )
    if suggestion:
        report.suggestions.append(replace(address, city=suggestion))


def _validate_ca(address: Address, report: _Report) -> None:
    province = address.state_code
    if province is not None and province not in _PROVINCES:
        report.error("stateCode", f"{province!r} is not a Canadian province or territory code")
        province = None
    if address.plus_four is not None:
        report.error("plusFour", "is not used for Canadian addresses")
    postal = address.zip
    if postal is None:
        return
    if not _POSTAL_RE.fullmatch(postal):
        report.error("zip", "must be a Canadian postal code like A1A 1A1")
        return
    if province is not None and province not in _POSTAL_PROVINCES.get(postal[0], frozenset()):
        report.error("zip", f"postal code {postal} is not in {province}")


# --------------------------------------------------------------------------- inputs


def _from_values(values: Mapping[str, object], report: _Report) -> Address:
    """Check value types and sizes; the accepted values as an Address (not yet canonical)."""
    kept: dict[str, str | None] = {}
    for name in _FIELD_NAMES:
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
            kept[name] = value
    return Address(**kept)


def _structured(address: Address, report: _Report) -> Normalized:
    result = canonical(address)
    # Canonical spellings can be longer than the input ("ST" -> "SAINT"); a field still too
    # long is refused and dropped, so that normalizing the output again gives the same output.
    for name in _FIELD_NAMES:
        value = getattr(result, name)
        if isinstance(value, str) and len(value) > MAX_FIELD:
            if wire_name(name) not in report.refused:
                report.error(wire_name(name), f"is too long (at most {MAX_FIELD} characters)")
            result = replace(result, **{name: None})
    _validate(result, report)
    return report.result(result)


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
    "OccupancyType": "address_line2",
    "OccupancyIdentifier": "address_line2",
    "SubaddressType": "address_line2",
    "SubaddressIdentifier": "address_line2",
    "PlaceName": "city",
    "StateName": "state_code",
    "ZipCode": "zip",
    "CountryName": "country",
}
_IGNORED_LABELS = frozenset({"Recipient", "BuildingName", "LandmarkName", "NotAddress"})


def _tag(text: str) -> tuple[dict[str, str], str] | None:
    try:
        tagged, kind = usaddress.tag(text)
    except Exception:  # RepeatedLabelError, and anything odd input may provoke
        return None
    return {str(k): str(v) for k, v in tagged.items()}, str(kind)


def _canadian_free_form(words: str) -> bool:
    """Whether a free-form line (cleaned, commas gone) is a Canadian address: it has a postal
    code, or it ends with the country after a province (``TORONTO ON CANADA``, ``... ON CA``)
    or after a ZIP/postal code. A place named "Canada" elsewhere in the line (La Canada
    Flintridge CA; Canada KY) is not the country."""
    if _POSTAL_ANYWHERE_RE.search(words):
        return True
    tokens = words.split()
    if len(tokens) < 2 or _COUNTRIES.get(tokens[-1]) != "CA":
        return False
    before = tokens[:-1]
    for n in (1, 2, 3):
        if len(before) >= n and _STATE_NAMES.get(" ".join(before[-n:])) in _PROVINCES:
            return True
    return tokens[-1] != "CA" and _ZIP_RE.fullmatch(before[-1]) is not None


def _free_form(text: str, report: _Report) -> Normalized:
    if len(text) > MAX_FREEFORM:
        report.error("address", f"is too long (at most {MAX_FREEFORM} characters)")
        return report.result(None)
    cleaned = _clean(text, keep="-/#&,")
    if not cleaned.replace(",", "").strip():
        report.error("address", "is required")
        return report.result(None)
    words = cleaned.replace(",", " ")
    if _canadian_free_form(words):
        report.error(
            "address",
            "free-form parsing is US-only; send a structured address for Canadian addresses",
        )
        return report.result(None)
    refusal = _not_dispatchable(words)
    parsed = _tag(cleaned)
    if parsed is None:
        report.error(
            "address",
            refusal or "could not be parsed unambiguously; send the structured address fields",
        )
        return report.result(None)
    tagged, kind = parsed
    if refusal is None and (kind == "PO Box" or any(k.startswith("USPSBox") for k in tagged)):
        group = tagged.get("USPSBoxGroupType", "")
        refusal = _not_dispatchable(f"{group} 1" if group else "PO BOX")
    if refusal is not None:
        report.error("address", refusal)
    elif kind == "Intersection" or "IntersectionSeparator" in tagged:
        report.error(
            "address", "not a dispatchable location: an intersection is not a civic address"
        )
    elif kind == "Ambiguous":
        report.error(
            "address", "could not be parsed unambiguously; send the structured address fields"
        )
    values: dict[str, str] = {}
    for label, value in tagged.items():
        target = _LABELS.get(label)
        if target is not None:
            values[target] = f"{values[target]} {value}" if target in values else value
        elif label in _IGNORED_LABELS and not report.errors:
            report.warn("address", f"ignored text that is not part of a civic address: {value!r}")
    if not values:
        if not report.errors:
            report.error("address", "no address could be recognized")
        return report.result(None)
    address = _from_values(values, report)
    return _structured(address, report)


def normalize(raw: Address | Mapping[str, object] | str) -> Normalized:
    """Normalize and validate an address; never raises. See the module docstring."""
    report = _Report()
    try:
        if isinstance(raw, str):
            return _free_form(raw, report)
        if isinstance(raw, Address):
            values = {name: getattr(raw, name, None) for name in _FIELD_NAMES}
            return _structured(_from_values(values, report), report)
        if isinstance(raw, Mapping):
            values = {}
            for key, value in raw.items():
                name = _WIRE_TO_FIELD.get(key) if isinstance(key, str) else None
                if name is None:
                    report.warn(str(key)[:MAX_FIELD], "unknown address field ignored")
                else:
                    values[name] = value
            return _structured(_from_values(values, report), report)
        report.error("address", "must be an address object or a one-line address string")
        return report.result(None)
    except Exception as exc:  # a bug here must not take a 911 update down with it
        return Normalized(
            address=None,
            errors=(FieldError("address", f"could not be normalized ({type(exc).__name__})"),),
        )


def validate_caller_name(name: object) -> FieldError | None:
    """``callerName``: required string, 1..50 printable characters after stripping."""
    if name is None:
        return FieldError("callerName", "is required")
    if not isinstance(name, str):
        return FieldError("callerName", "must be a string")
    stripped = name.strip()
    if not stripped:
        return FieldError("callerName", "is required")
    if len(stripped) > MAX_CALLER_NAME:
        return FieldError("callerName", f"is too long (at most {MAX_CALLER_NAME} characters)")
    if not stripped.isprintable():
        return FieldError("callerName", "must contain printable characters only")
    return None


class NormalizeCache:
    """An LRU memo of ``normalize``: devices re-report the same address over and over.

    Free-form strings, ``Address`` records and JSON objects whose values are all strings
    (or null) are cached; anything else is normalized afresh.
    """

    def __init__(self, maxsize: int = 4096) -> None:
        self._cache: LRUCache[Hashable, Normalized] = LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()

    @staticmethod
    def _key(raw: Address | Mapping[str, object] | str) -> Hashable | None:
        if isinstance(raw, str):
            return raw if len(raw) <= MAX_FREEFORM else None
        if isinstance(raw, Address):
            return raw
        items = tuple(raw.items())
        if len(items) > 32 or not all(
            isinstance(k, str) and (v is None or (isinstance(v, str) and len(v) <= MAX_FIELD))
            for k, v in items
        ):
            return None
        return ("mapping", *sorted(items, key=lambda kv: kv[0]))

    def normalize(self, raw: Address | Mapping[str, object] | str) -> Normalized:
        key = self._key(raw)
        if key is None:
            return normalize(raw)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        result = normalize(raw)
        with self._lock:
            self._cache[key] = result
        return result

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
