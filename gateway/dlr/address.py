"""Civic address normalization and validation (USPS Publication 28), no I/O.

``normalize`` turns a structured ``Address``, the JSON address object (camelCase keys, the
seed's names) or one free-form US or Canadian line into the canonical form, with field-level
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
  ``house_suffix`` (``123A``/``123-A``/``123 A -> 123`` + ``A``) when no suffix is given;
  Wisconsin/Illinois grid numbers are one number (``W204 N11509 -> W204N11509``); a Puerto
  Rico kilometre marker is the house number, decimal point kept (``CARR 2 KM 5.4`` ->
  ``KM 5.4`` on ``CARR 2``). A decimal point between digits is never dropped anywhere
  (``5.4`` is not ``54``); a house number with one that is not a kilometre marker is refused.
* Street types written before the name stay in it, abbreviated: Spanish in Puerto Rico
  (``AVENIDA ASHFORD -> AVE ASHFORD``, Pub 28 section 29), French in Canada (``BOULEVARD
  RENE-LEVESQUE -> BOUL RENE-LEVESQUE``, Canada Post's forms); such a street is never split at
  a last word that is an English suffix (``CALLE VISTA``). Canadian directionals include the
  French ones (``OUEST -> O``, ``NO``, ``SO``).
* ``address_line2``: unit designators abbreviated (``SUITE -> STE``, ``APARTMENT -> APT``,
  ``FLOOR -> FL``, ``ROOM -> RM``, ``BUILDING -> BLDG``); a ``#`` right after a designator is
  dropped (``APT #5 -> APT 5``); without a designator the Pub 28 form is ``# 5`` (``#5`` and a
  bare ``5`` both become ``# 5``); ``65TH FLOOR -> FL 65``. Several units stay in the order
  written (``RM 101 BLDG C``); a Puerto Rico urbanization leads the line (``URB LAS
  GLADIOLAS``): street names and numbers repeat within a ZIP there, the urbanization tells
  them apart. One kind of unit twice (``APT 4 APT 5``) is refused; a unit without its number
  (``APT``) is a warning.
* US cities: hyphens and apostrophes become spaces and ``ST/STE/MT/FT`` and a leading
  directional are spelled out (``ST. LOUIS -> SAINT LOUIS``, ``O'FALLON -> O FALLON``), the
  way the USPS city list spells them. Canadian cities keep their words.
* ``state_code`` is the 2-letter code (full names accepted); ``country`` is ``US`` (default
  when absent) or ``CA``; US ``zip`` is 5 digits with ZIP+4 split into ``plus_four``;
  Canadian postal codes are ``A1A 1A1``.

Not dispatchable, refused with an error: PO boxes, rural-route and highway-contract boxes
(``RR 2 BOX 15``: a mail delivery point, not a civic location), ``GENERAL DELIVERY``,
intersections, military (APO/FPO) addresses.

A free-form line is read from its end: country, ZIP or postal code, state or province, then
the city before them (``..., SAN JUAN, PR 00907``); what comes before the city is the street
and its units, read by usaddress, or here for the shapes usaddress misreads (prefix-type
streets, kilometre markers). A line without commas is read whole by usaddress (US only: a
Canadian one must set the city off with commas, or be refused saying so).
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
from gateway.dlr.errors import FieldError
from gateway.dlr.patterns import END, SURROGATES, WHITESPACE
from gateway.zipdata import ZipInfo, zip_info

__all__ = [
    "CALLER_NAME_PATTERN",
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
# Canada Post's French ones.
_DESIGNATORS.update({"BUREAU": "BUREAU", "APPARTEMENT": "APP", "APP": "APP"})
_DESIGNATORS.update({v: v for v in list(_DESIGNATORS.values())})
_DESIGNATOR_CODES = frozenset(_DESIGNATORS.values())

#: Pub 28 designators that need a unit number after them (the others, BSMT, FRNT, LBBY,
#: LOWR, OFC, PH, REAR, SIDE, UPPR, name a part of the building by themselves).
_RANGED_DESIGNATORS = frozenset(
    {"#", "APT", "BLDG", "DEPT", "FL", "HNGR", "KEY", "LOT", "PIER", "RM", "SLIP", "SPC"}
    | {"STE", "STOP", "TRLR", "UNIT", "BUREAU", "APP"}
)

#: Street types written before the name, with their standard short forms: Spanish in Puerto
#: Rico (Pub 28 section 29 keeps them in the street name: ``AVE ASHFORD``, ``CALLE 1``),
#: French in Canada (Canada Post's: ``RUE NOTRE-DAME``, ``BOUL RENE-LEVESQUE``).
_SPANISH_TYPES: dict[str, str] = {
    "CALLE": "CALLE",
    "AVENIDA": "AVE",
    "AVE": "AVE",
    "PASEO": "PASEO",
    "PLAZA": "PLAZA",
    "PASAJE": "PASAJE",
    "CARRETERA": "CARR",
    "CARR": "CARR",
    "PARQUE": "PARQUE",
    "VEREDA": "VEREDA",
    "VISTA": "VISTA",
    "VIA": "VIA",
    "CALLEJON": "CALLEJON",
    "PATIO": "PATIO",
    "BULEVAR": "BLVD",
    "BLVD": "BLVD",
    "CAMINO": "CAMINO",
    "CALETA": "CALETA",
    "MARGINAL": "MARGINAL",
}
_FRENCH_TYPES: dict[str, str] = {
    "RUE": "RUE",
    "AVENUE": "AV",
    "AV": "AV",
    "BOULEVARD": "BOUL",
    "BOUL": "BOUL",
    "CHEMIN": "CH",
    "CH": "CH",
    "MONTEE": "MONTEE",
    "RANG": "RANG",
    "ROUTE": "RTE",
    "RTE": "RTE",
    "PLACE": "PL",
    "PL": "PL",
    "IMPASSE": "IMP",
    "IMP": "IMP",
    "ALLEE": "ALLEE",
    "QUAI": "QUAI",
    "RUELLE": "RLE",
    "RLE": "RLE",
    "COTE": "COTE",
    "CARRE": "CAR",
    "CROISSANT": "CROIS",
    "CROIS": "CROIS",
    "TERRASSE": "TSSE",
    "TSSE": "TSSE",
    "PROMENADE": "PROM",
    "PROM": "PROM",
    "SENTIER": "SENT",
    "AUTOROUTE": "AUT",
}
#: Types that are never an English street's first word; the others (``AVE``, ``PLACE``,
#: ``VISTA``) start a prefix-type street only when its last word is not an English suffix:
#: ``AVE ASHFORD`` and ``AVENUE LAURIER``, but ``VISTA ST`` and ``AVENUE RD``.
_ALWAYS_PREFIX_TYPES = frozenset(
    {"CALLE", "AVENIDA", "PASAJE", "CARRETERA", "CARR", "CALLEJON", "VEREDA", "CALETA"}
    | {"MARGINAL", "BULEVAR", "RUE", "BOULEVARD", "BOUL", "CHEMIN", "CH", "MONTEE", "RANG"}
    | {"IMPASSE", "IMP", "RUELLE", "RLE", "CROISSANT", "CROIS", "TERRASSE", "TSSE"}
    | {"SENTIER", "AUTOROUTE", "AV"}
)
#: Canada Post's directionals, French ones included (``O`` for ouest).
_FRENCH_DIRECTIONALS: dict[str, str] = {
    "NORD": "N",
    "SUD": "S",
    "EST": "E",
    "OUEST": "O",
    "NORDEST": "NE",
    "NORDOUEST": "NO",
    "SUDEST": "SE",
    "SUDOUEST": "SO",
    **{code: code for code in ("O", "NO", "SO")},
}
_CA_DIRECTIONAL_CODES = frozenset({*DIRECTIONAL_REPLACEMENTS.values(), "O", "NO", "SO"})
#: Words before a French directional that make it part of the name (``RUE DE L EST``).
_FRENCH_ARTICLES = frozenset({"DE", "DU", "DES", "L", "LA", "LE", "LES", "D"})

#: A kilometre marker as the house number (Puerto Rico's rural roads): ``KM 5.4``.
_KM_RE = re.compile(r"(?:KM|KILOMETRO|KILOMETER|KILOMETRE) ?(\d{1,3}(?:\.\d{1,2})?)")
_ROAD_KM_RE = re.compile(rf"(.+) {_KM_RE.pattern}")
#: A Wisconsin/Illinois grid house number: ``W204 N11509`` is ``W204N11509``.
_GRID_RE = re.compile(r"([NSEW]\d+)[ -]?([NSEW]\d+)")

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
    for i, ch in enumerate(folded):
        if ch.isalnum() and ch.isascii():
            chars.append(ch)
        elif ch == "." and 0 < i < len(folded) - 1 and _digits_around(folded, i):
            chars.append(ch)  # a decimal point (KM 5.4): dropping it would move the caller
        elif ch in drop:
            continue
        elif ch in keep:
            chars.append(ch)
        else:
            chars.append(" ")
    return _SPACE_RUN.sub(" ", "".join(chars)).strip()


def _digits_around(text: str, i: int) -> bool:
    return text[i - 1] in "0123456789" and text[i + 1] in "0123456789"


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
    if num is not None:
        km = _KM_RE.fullmatch(num)
        grid = _GRID_RE.fullmatch(num)
        if km is not None:
            return f"KM {km.group(1)}", suf
        if grid is not None:
            return grid.group(1) + grid.group(2), suf
    if num is not None and suf is None:
        m = re.fullmatch(r"(\S+) (\d{1,2}/\d{1,2})", num)
        if m:
            num, suf = m.group(1), m.group(2)
        else:
            m = re.fullmatch(r"(\d+)(?: |-)?([A-Z])", num)
            if m:
                num, suf = m.group(1), m.group(2)
    return num, suf


def _canon_directional(value: str | None, country: str = "US") -> str | None:
    if value is None:
        return None
    cleaned = _clean(value, keep="")
    key = cleaned.replace(" ", "")
    if country == "CA" and key in _FRENCH_DIRECTIONALS:
        return _FRENCH_DIRECTIONALS[key]
    return _none_if_empty(_DIRECTIONALS.get(key, cleaned))


def _canon_suffix(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = _clean(value, keep="")
    return _none_if_empty(_SUFFIXES.get(cleaned, cleaned))


def _prefix_types(country: str | None, state: str | None) -> Mapping[str, str]:
    """The street types written before the name where the address is (see the tables)."""
    if country == "CA":
        return _FRENCH_TYPES
    if state == "PR":
        return _SPANISH_TYPES
    return {}


def _is_prefix_street(tokens: list[str], types: Mapping[str, str]) -> bool:
    """``AVE ASHFORD``, ``RUE NOTRE-DAME``: a type first, then the name."""
    if len(tokens) < 2 or tokens[0] not in types:
        return False
    return tokens[0] in _ALWAYS_PREFIX_TYPES or tokens[-1] not in _SUFFIXES


def _canon_street(
    name: str | None, suffix: str | None, types: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    suf = _canon_suffix(suffix)
    if name is None:
        return None, suf
    tokens = _tight(_clean(name, keep="-/&")).split()
    if not tokens:
        return None, suf
    highway = _highway(tokens)
    if highway is not None:
        return highway, suf
    if types and _is_prefix_street(tokens, types):
        # The type is part of the name: never split off as a suffix (CALLE VISTA).
        return " ".join([types[tokens[0]], *tokens[1:]]), suf
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
    state = _canon_state(v["state_code"])
    house_number, house_suffix = _canon_house(v["house_number"], v["house_suffix"])
    street_name, street_suffix = _canon_street(
        v["street_name"], v["street_suffix"], _prefix_types(country, state)
    )
    if house_number is None and street_name is not None:
        # "CARR 2 KM 5.4" with no house number: the kilometre marker is the house number.
        marker = _ROAD_KM_RE.fullmatch(street_name)
        if marker is not None:
            street_name, house_number = marker.group(1), f"KM {marker.group(2)}"
    zip_code, plus_four = _canon_zip(v["zip"], v["plus_four"], country)
    return Address(
        house_number=house_number,
        house_suffix=house_suffix,
        prefix_directional=_canon_directional(v["prefix_directional"], country),
        street_name=street_name,
        street_suffix=street_suffix,
        post_directional=_canon_directional(v["post_directional"], country),
        address_line2=_canon_line2(v["address_line2"]),
        city=_canon_city(v["city"], country),
        state_code=state,
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
        elif _KM_RE.fullmatch(hn):
            pass  # a kilometre marker, decimal point and all
        elif "." in hn:
            report.error(
                "houseNumber",
                "has a decimal point, which only a kilometre marker may have (KM 5.4); "
                "a house number is whole",
            )
        elif not _HOUSE_NUMBER_RE.fullmatch(hn) or not any(c.isdigit() for c in hn):
            report.error(
                "houseNumber", "must be a house number (digits, letters and hyphens, e.g. 123-45)"
            )
    if address.house_suffix is not None and not _HOUSE_SUFFIX_RE.fullmatch(address.house_suffix):
        report.error("houseSuffix", "must be a short house number suffix such as A, B or 1/2")
    canadian = country == "CA"
    for name in ("prefix_directional", "post_directional"):
        value = getattr(address, name)
        if value is None or value in (_CA_DIRECTIONAL_CODES if canadian else _DIRECTIONAL_CODES):
            continue
        codes = "N S E W NE NW SE SW" + (" O NO SO" if canadian else "")
        report.error(wire_name(name), f"must be a directional: {codes}")
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
        _check_units(address.address_line2, report)

    if country == "US":
        _validate_us(address, report)
    elif country == "CA":
        _validate_ca(address, report)


def _check_units(line2: str, report: _Report) -> None:
    """Each unit once, each with its number: ``RM 101 BLDG C``, not ``APT 4 APT 5`` or ``APT``."""
    tokens = line2.split()
    seen: set[str] = set()
    for i, token in enumerate(tokens):
        if token not in _RANGED_DESIGNATORS:
            continue
        if token in seen:
            report.error(
                "addressLine2",
                f"names {token} twice; send the one unit the caller is in",
            )
            return
        seen.add(token)
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if following is None or following in _DESIGNATOR_CODES:
            report.warn(
                "addressLine2",
                f"{token} has no number: without it the PSAP cannot tell which one "
                f"(write it as {token} 4B)",
            )


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
    if tokens and len(tokens[-1]) == 6 and _POSTAL_ANYWHERE_RE.fullmatch(tokens[-1]):
        return tokens.pop()
    return None


def _state_at_end(tokens: list[str]) -> str | None:
    """Take a state or province off the end of ``tokens``: a code (``DC`` after
    ``WASHINGTON``) as it is, a name by its longest spelling (``WEST VIRGINIA``)."""
    if tokens and len(tokens[-1]) == 2 and tokens[-1] in _STATE_NAMES:
        return tokens.pop()
    for n in (4, 3, 2, 1):
        if len(tokens) >= n and " ".join(tokens[-n:]) in _STATE_NAMES:
            name = " ".join(tokens[-n:])
            del tokens[-n:]
            return name
    return None


def _last_line(cleaned: str) -> _LastLine | None:
    """City, state, postal code and country off the end of a comma-separated line; ``None``
    when it does not end that way (no commas, no state), and usaddress reads it whole."""
    parts = [p.strip() for p in cleaned.split(",") if p.strip()]
    country = _COUNTRIES.get(parts[-1]) if parts else None
    if country is not None:
        parts.pop()
    if len(parts) < 2:
        return None
    tokens = parts.pop().split()
    if country is None and len(tokens) > 1 and tokens[-1] in ("CANADA", "USA"):
        country = _COUNTRIES[tokens.pop()]
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


def _free_form(text: str, report: _Report) -> Normalized:
    if len(text) > MAX_FREEFORM:
        report.error("address", f"is too long (at most {MAX_FREEFORM} characters)")
        return report.result(None)
    cleaned = _clean(text, keep="-/#&,")
    if not cleaned.replace(",", "").strip():
        report.error("address", "is required")
        return report.result(None)
    words = cleaned.replace(",", " ")
    refusal = _not_dispatchable(words)
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
    state = _canon_state(line.state)
    if country is None and state in _PROVINCES:
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
    values = _own_street(delivery, _prefix_types(country, state), country == "CA")
    if values is None:
        return _from_tags(", ".join(delivery), refusal, known, report, urbanization)
    if refusal is not None:
        report.error("address", refusal)
    return _structured(_from_values(_with(values, known, urbanization), report), report)


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
    return word in _DESIGNATORS or (word.startswith("#") and len(word) > 1)


def _street_part(
    street: str, types: Mapping[str, str], canadian: bool
) -> dict[str, str | None] | None:
    tokens = street.split()
    for i in range(len(tokens)):
        for width in (1, 2):
            marker = _KM_RE.fullmatch(" ".join(tokens[i : i + width]))
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
    if canadian and len(name_tokens) > 2 and name_tokens[-2] not in _FRENCH_ARTICLES:
        code = _FRENCH_DIRECTIONALS.get(name_tokens[-1]) or _DIRECTIONALS.get(name_tokens[-1])
        if code is not None:
            directional = code
            name_tokens = name_tokens[:-1]
    if not _is_prefix_street(name_tokens, types):
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
        if tokens[end - 2] in _DESIGNATORS and any(c.isdigit() for c in tokens[end - 1]):
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
    report: _Report,
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
        refusal = _not_dispatchable(f"{group} 1" if group else "PO BOX")
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
    return _structured(_from_values(_with(values, known, urbanization), report), report)


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


#: What a caller name may not hold: control characters (line breaks and tabs included), the
#: noncharacters U+FFFE/U+FFFF, and the invisible format characters that could change how a
#: PSAP's screen shows the rest (soft hyphen, zero-width, bidirectional controls, line and
#: paragraph separators). A fixed list rather than ``str.isprintable``, whose answer changes
#: with the Unicode version, so that the API document can state it as a pattern.
_NOT_IN_NAMES = (
    r"\x00-\x1f\x7f-\x9f\xad\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f"
    r"\ufeff\ufff9-\ufffb\ufffe\uffff"
)
_NAME_EDGE = f"[^{_NOT_IN_NAMES}{WHITESPACE}]"
#: ``callerName``: surrounding whitespace (stripped), then a name without those characters.
#: The API document carries it as the field's pattern.
CALLER_NAME_PATTERN = (
    f"^[{WHITESPACE}]*{_NAME_EDGE}(?:[^{_NOT_IN_NAMES}]*{_NAME_EDGE})?[{WHITESPACE}]*{END}"
)
_CALLER_NAME = re.compile(CALLER_NAME_PATTERN)
_SURROGATE = re.compile(f"[{SURROGATES}]")


def validate_caller_name(name: object) -> FieldError | None:
    """``callerName``: required string, 1..50 characters after stripping, none of them control
    or invisible format characters (``CALLER_NAME_PATTERN``)."""
    if name is None:
        return FieldError("callerName", "is required")
    if not isinstance(name, str):
        return FieldError("callerName", "must be a string")
    stripped = name.strip()
    if not stripped:
        return FieldError("callerName", "is required")
    if len(stripped) > MAX_CALLER_NAME:
        return FieldError("callerName", f"is too long (at most {MAX_CALLER_NAME} characters)")
    if not _CALLER_NAME.search(name) or _SURROGATE.search(name):
        return FieldError(
            "callerName", "must not contain control characters, line breaks or format characters"
        )
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
