"""The tables of address normalization: Pub 28 and Canada Post abbreviations, states,
provinces, postal-code shapes and what is not dispatchable."""

from __future__ import annotations

import re
from dataclasses import fields

from scourgify.address_constants import (
    DIRECTIONAL_REPLACEMENTS,
    LONGHAND_STREET_TYPES,
    OCCUPANCY_TYPE_ABBREVIATIONS,
    STATE_ABBREVIATIONS,
    STREET_TYPE_ABBREVIATIONS,
)

from gateway.bandwidth.models import Address, wire_name

MAX_ADDRESS_LINE2 = 60
MAX_CALLER_NAME = 50
#: Longest value accepted in any one address field.
MAX_FIELD = 100
#: Longest free-form address line accepted.
MAX_FREEFORM = 500
MAX_HOUSE_NUMBER = 20


# --------------------------------------------------------------------------- tables

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Address))
WIRE_TO_FIELD: dict[str, str] = {wire_name(name): name for name in FIELD_NAMES}

DIRECTIONALS: dict[str, str] = {
    **{v: v for v in DIRECTIONAL_REPLACEMENTS.values()},
    **DIRECTIONAL_REPLACEMENTS,
}
DIRECTIONAL_CODES = frozenset(DIRECTIONAL_REPLACEMENTS.values())

SUFFIXES: dict[str, str] = {
    **{v: v for v in STREET_TYPE_ABBREVIATIONS.values() if " " not in v},
    **{k: v for k, v in STREET_TYPE_ABBREVIATIONS.items() if " " not in k and " " not in v},
}
SUFFIX_CODES = frozenset(SUFFIXES.values())

_HIGHWAY_ABBRS = frozenset(
    {"US HWY", "US RTE", "STATE HWY", "STATE RTE", "STATE RD", "COUNTY HWY", "COUNTY RD"}
    | {"COUNTY RTE", "HWY", "RTE"}
)
#: Highway-style leading words -> the spelled-out USPS form ("US HWY" -> "US HIGHWAY").
HIGHWAYS: dict[str, str] = {
    k: LONGHAND_STREET_TYPES[v]
    for k, v in STREET_TYPE_ABBREVIATIONS.items()
    if v in _HIGHWAY_ABBRS and v in LONGHAND_STREET_TYPES
}
HIGHWAYS.update({v: LONGHAND_STREET_TYPES[v] for v in _HIGHWAY_ABBRS if v in LONGHAND_STREET_TYPES})
HIGHWAYS.update({"RT": "ROUTE", "US RT": "US ROUTE", "STATE RT": "STATE ROUTE"})
HIGHWAYS.update({v: v for v in list(HIGHWAYS.values())})

# Pub 28 Appendix C2; scourgify spells two of them differently from the publication.
DESIGNATORS: dict[str, str] = {
    k: v for k, v in OCCUPANCY_TYPE_ABBREVIATIONS.items() if k != "#" and k != "HANGER"
}
DESIGNATORS.update({"HANGAR": "HNGR", "UPPER": "UPPR", "FLR": "FL", "APPT": "APT"})
# Canada Post's French ones.
DESIGNATORS.update({"BUREAU": "BUREAU", "APPARTEMENT": "APP", "APP": "APP"})
DESIGNATORS.update({v: v for v in list(DESIGNATORS.values())})
DESIGNATOR_CODES = frozenset(DESIGNATORS.values())

#: Pub 28 designators that need a unit number after them (the others, BSMT, FRNT, LBBY,
#: LOWR, OFC, PH, REAR, SIDE, UPPR, name a part of the building by themselves).
RANGED_DESIGNATORS = frozenset(
    {"#", "APT", "BLDG", "DEPT", "FL", "HNGR", "KEY", "LOT", "PIER", "RM", "SLIP", "SPC"}
    | {"STE", "STOP", "TRLR", "UNIT", "BUREAU", "APP"}
)

#: Street types that name only a roadway (no lake, creek, park or hill): a unit designator
#: without its number after one is a unit (``MAIN ST REAR``); after the others it may end
#: the street's name (``WILLOW CREEK SIDE``, ``LAKE FRONT``) and stays there.
ROADWAY_TYPES = frozenset(
    {"ALY", "AVE", "BLVD", "BYP", "CIR", "CSWY", "CT", "DR", "EXPY", "FWY", "HWY", "LN"}
    | {"LOOP", "PIKE", "PKWY", "PL", "PLZ", "RD", "ROW", "SKWY", "SQ", "ST", "TER", "TPKE"}
    | {"TRL", "WAY", "XING"}
)

#: Street types written before the name, with their standard short forms: Spanish in Puerto
#: Rico (Pub 28 section 29 keeps them in the street name: ``AVE ASHFORD``, ``CALLE 1``),
#: French in Canada (Canada Post's: ``RUE NOTRE-DAME``, ``BOUL RENE-LEVESQUE``).
SPANISH_TYPES: dict[str, str] = {
    **{code: code for code in ("CALLE", "AVE", "PASEO", "PLAZA", "PASAJE", "CARR", "PARQUE")},
    **{code: code for code in ("VEREDA", "VISTA", "VIA", "CALLEJON", "PATIO", "BLVD")},
    **{code: code for code in ("CAMINO", "CALETA", "MARGINAL")},
    **{"AVENIDA": "AVE", "CARRETERA": "CARR", "BULEVAR": "BLVD"},
}
FRENCH_TYPES: dict[str, str] = {
    **{code: code for code in ("RUE", "AV", "BOUL", "CH", "MONTEE", "RANG", "RTE", "PL", "IMP")},
    **{code: code for code in ("ALLEE", "QUAI", "RLE", "COTE", "CROIS", "TSSE", "PROM")},
    **{"AVENUE": "AV", "BOULEVARD": "BOUL", "CHEMIN": "CH", "ROUTE": "RTE", "PLACE": "PL"},
    **{"IMPASSE": "IMP", "RUELLE": "RLE", "CARRE": "CAR", "CROISSANT": "CROIS"},
    **{"TERRASSE": "TSSE", "PROMENADE": "PROM", "SENTIER": "SENT", "AUTOROUTE": "AUT"},
}
#: Types that are never an English street's first word; the others (``AVE``, ``PLACE``,
#: ``VISTA``) start a prefix-type street only when its last word is not an English suffix:
#: ``AVE ASHFORD`` and ``AVENUE LAURIER``, but ``VISTA ST`` and ``AVENUE RD``.
ALWAYS_PREFIX_TYPES = frozenset(
    {"CALLE", "AVENIDA", "PASAJE", "CARRETERA", "CARR", "CALLEJON", "VEREDA", "CALETA"}
    | {"MARGINAL", "BULEVAR", "RUE", "BOULEVARD", "BOUL", "CHEMIN", "CH", "MONTEE", "RANG"}
    | {"IMPASSE", "IMP", "RUELLE", "RLE", "CROISSANT", "CROIS", "TERRASSE", "TSSE"}
    | {"SENTIER", "AUTOROUTE", "AV"}
)
#: Canada Post's directionals, French ones included (``O`` for ouest).
FRENCH_DIRECTIONALS: dict[str, str] = {
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
CA_DIRECTIONAL_CODES = frozenset({*DIRECTIONAL_REPLACEMENTS.values(), "O", "NO", "SO"})
#: Words before a French directional that make it part of the name (``RUE DE L EST``).
FRENCH_ARTICLES = frozenset({"DE", "DU", "DES", "L", "LA", "LE", "LES", "D"})

#: A kilometre marker as the house number (Puerto Rico's rural roads): ``KM 5.4``.
KM_RE = re.compile(r"(?:KM|KILOMETRO|KILOMETER|KILOMETRE) ?(\d{1,3}(?:\.\d{1,2})?)")
ROAD_KM_RE = re.compile(rf"(.+) {KM_RE.pattern}")
#: A Wisconsin/Illinois grid house number: ``W204 N11509`` is ``W204N11509``.
GRID_RE = re.compile(r"([NSEW]\d+)[ -]?([NSEW]\d+)")

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


def ordinal_of(n: int) -> str:
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
            table[word] = ordinal_of(n)
    return table


ORDINAL_WORDS = _ordinal_words()

_US_STATES_TEXT = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ "
    "NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR VI GU AS MP"
)
#: The 50 states, DC and the inhabited territories.
US_STATES = frozenset(_US_STATES_TEXT.split())
MILITARY_STATES = frozenset({"AA", "AE", "AP"})
PROVINCES = frozenset("AB BC MB NB NL NS NT NU ON PE QC SK YT".split())  # noqa: SIM905
STATE_NAMES: dict[str, str] = {
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
STATE_NAMES.update({code: code for code in US_STATES | MILITARY_STATES | PROVINCES})

COUNTRIES: dict[str, str] = {
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
POSTAL_PROVINCES: dict[str, frozenset[str]] = {
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

CITY_WORDS = {"ST": "SAINT", "STE": "SAINTE", "MT": "MOUNT", "FT": "FORT"}

POSTAL_RE = re.compile(r"[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] \d[ABCEGHJ-NPRSTV-Z]\d")
POSTAL_ANYWHERE_RE = re.compile(r"\b[A-Z]\d[A-Z] ?\d[A-Z]\d\b")
ZIP_RE = re.compile(r"\d{5}")
PLUS4_RE = re.compile(r"\d{4}")
HOUSE_NUMBER_RE = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*")
HOUSE_SUFFIX_RE = re.compile(r"[A-Z0-9]{1,3}|\d{1,2}/\d{1,2}")
_FRACTION_RE = re.compile(r"\d{1,2}/\d{1,2}")

NOT_DISPATCHABLE: tuple[tuple[re.Pattern[str], str], ...] = (
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

VULGAR_FRACTIONS = {"½": " 1/2", "¼": " 1/4", "¾": " 3/4", "⅓": " 1/3", "⅔": " 2/3"}
SPACE_RUN = re.compile(r"\s+")
