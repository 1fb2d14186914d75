"""An address's canonical form (``canonical``, pure and idempotent): cleaning and the spelling
of each part, as docs/architecture.md ("An address's canonical form") lists them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from scourgify.address_constants import (
    LONGHAND_DIRECTIONALS,
)

from gateway.bandwidth.models import Address
from gateway.dlr.address_tables import (
    ALWAYS_PREFIX_TYPES,
    CITY_WORDS,
    COUNTRIES,
    DESIGNATOR_CODES,
    DESIGNATORS,
    DIRECTIONALS,
    FIELD_NAMES,
    FRENCH_DIRECTIONALS,
    FRENCH_TYPES,
    GRID_RE,
    HIGHWAYS,
    KM_RE,
    ORDINAL_WORDS,
    RANGED_DESIGNATORS,
    ROAD_KM_RE,
    ROADWAY_TYPES,
    SPACE_RUN,
    SPANISH_TYPES,
    STATE_NAMES,
    SUFFIXES,
    VULGAR_FRACTIONS,
    ordinal_of,
)

# --------------------------------------------------------------------------- cleaning


#: Latin letters that Unicode does not decompose into an ASCII letter and a mark.
_LATIN_LETTERS = str.maketrans(
    {
        "ß": "SS",
        "ẞ": "SS",
        "Æ": "AE",
        "æ": "AE",
        "Œ": "OE",
        "œ": "OE",
        "Ø": "O",
        "ø": "O",
        "Ł": "L",
        "ł": "L",
        "Đ": "D",
        "đ": "D",
        "Ð": "D",
        "ð": "D",
        "Þ": "TH",
        "þ": "TH",
        "Ħ": "H",
        "ħ": "H",
        "\u0131": "I",  # dotless i
    }
)


def unwritable(text: str) -> str | None:
    """The first letter or number of ``text`` that has no form in Latin letters and digits
    (a Cyrillic A, U+0410; a CJK character), which folding would otherwise drop: suite ``1``
    and a Cyrillic A is not suite ``1``. Digits of other scripts are written as ASCII digits."""
    if text.isascii():
        return None
    for ch in text.translate(_LATIN_LETTERS):
        if ch.isascii():
            continue
        cat = unicodedata.category(ch)
        if cat[0] not in "LN" or cat == "Nd":
            continue
        if not any(c.isascii() and c.isalnum() for c in unicodedata.normalize("NFKD", ch)):
            return ch
    return None


def _fold(text: str) -> str:
    """Upper-case ASCII: accents folded, fractions, digits and dashes made ASCII, invisible
    format characters dropped, controls to spaces."""
    for frac, ascii_frac in VULGAR_FRACTIONS.items():
        if frac in text:
            text = text.replace(frac, ascii_frac)
    if not text.isascii():
        text = text.translate(_LATIN_LETTERS)
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", text):
        if ch.isascii():
            out.append(ch if ch.isprintable() else " ")
            continue
        if ch == "\u2044":
            out.append("/")
            continue
        cat = unicodedata.category(ch)
        if cat == "Mn" or cat == "Cf":
            continue  # a combining mark, or an invisible one (zero-width space, soft hyphen)
        if cat == "Nd":
            out.append(str(unicodedata.decimal(ch)))
        elif cat == "Pd":
            out.append("-")
        elif ch in "\u2019\u2018\u02bc":
            out.append("'")
        else:
            out.append(" ")
    return "".join(out).upper()


def clean(text: str, keep: str = "-/", drop: str = ".'`") -> str:
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
    return SPACE_RUN.sub(" ", "".join(chars)).strip()


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
    num = _none_if_empty(_tight(clean(number))) if number is not None else None
    suf = _none_if_empty(clean(suffix).replace(" ", "")) if suffix is not None else None
    if num is not None:
        km = KM_RE.fullmatch(num)
        grid = GRID_RE.fullmatch(num)
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
    cleaned = clean(value, keep="")
    key = cleaned.replace(" ", "")
    if country == "CA" and key in FRENCH_DIRECTIONALS:
        return FRENCH_DIRECTIONALS[key]
    return _none_if_empty(DIRECTIONALS.get(key, cleaned))


def _canon_suffix(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = clean(value, keep="")
    return _none_if_empty(SUFFIXES.get(cleaned, cleaned))


def prefix_types(country: str | None, state: str | None) -> Mapping[str, str]:
    """The street types written before the name where the address is (see the tables)."""
    if country == "CA":
        return FRENCH_TYPES
    if state == "PR":
        return SPANISH_TYPES
    return {}


def is_prefix_street(tokens: list[str], types: Mapping[str, str]) -> bool:
    """``AVE ASHFORD``, ``RUE NOTRE-DAME``: a type first, then the name."""
    if len(tokens) < 2 or tokens[0] not in types:
        return False
    return tokens[0] in ALWAYS_PREFIX_TYPES or tokens[-1] not in SUFFIXES


def _canon_street(
    name: str | None, suffix: str | None, types: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    suf = _canon_suffix(suffix)
    if name is None:
        return None, suf
    tokens = _tight(clean(name, keep="-/&")).split()
    if not tokens:
        return None, suf
    highway = _highway(tokens)
    if highway is not None:
        return highway, suf
    if types and is_prefix_street(tokens, types):
        # The type is part of the name: never split off as a suffix (CALLE VISTA).
        return " ".join([types[tokens[0]], *tokens[1:]]), suf
    if suf is None and len(tokens) >= 2 and tokens[-1] in SUFFIXES:
        suf = SUFFIXES[tokens[-1]]
        tokens = tokens[:-1]
        highway = _highway(tokens)
        if highway is not None:
            return highway, suf
    joined = " ".join(tokens)
    ordinal = ORDINAL_WORDS.get(joined)
    if ordinal is not None:
        joined = ordinal
    elif suf is not None and joined.isdigit() and len(joined) <= 4:
        joined = ordinal_of(int(joined))
    return joined, suf


def _directional_out_of_street(name: str, types: Mapping[str, str]) -> tuple[str, str | None]:
    """``PENNSYLVANIA AVE NW`` -> ``PENNSYLVANIA AVE`` + ``NW``: a directional after a
    street's suffix, written in ``street_name`` (the free-form line's reading puts it in
    ``post_directional``, so both spellings derive one location ID)."""
    tokens = _tight(clean(name, keep="-/&")).split()
    if (
        len(tokens) >= 3
        and tokens[-1] in DIRECTIONALS
        and tokens[-2] in SUFFIXES
        and not (types and is_prefix_street(tokens[:-1], types))
    ):
        return " ".join(tokens[:-1]), tokens[-1]
    return name, None


def _highway(tokens: list[str]) -> str | None:
    """``[US, HWY, 1]`` -> ``US HIGHWAY 1``; None when the name is not highway-style."""
    for width in (2, 1):
        if len(tokens) != width + 1:
            continue
        longhand = HIGHWAYS.get(" ".join(tokens[:width]))
        number = tokens[-1]
        if longhand is not None and (any(c.isdigit() for c in number) or len(number) == 1):
            return f"{longhand} {number}"
    return None


def _canon_line2(value: str | None) -> str | None:
    if value is None:
        return None
    tokens = _tight(clean(value, keep="-/#&")).replace("#", " # ").split()
    out: list[str] = []
    for i, tok in enumerate(tokens):
        if tok == "#" and out and out[-1] in DESIGNATOR_CODES and i + 1 < len(tokens):
            continue
        out.append(DESIGNATORS.get(tok, tok))
    if len(out) == 2 and out[1] == "FL":
        m = re.fullmatch(r"(\d+)(?:ST|ND|RD|TH)", out[0])
        if m:
            out = ["FL", m.group(1)]
    if len(out) == 1 and out[0] not in DESIGNATOR_CODES and any(c.isdigit() for c in out[0]):
        out = ["#", out[0]]
    return _none_if_empty(" ".join(out))


def _units_out_of_street(
    street: str, line2: str | None, types: Mapping[str, str]
) -> tuple[str, str | None]:
    """The street name without the units written in it, and the suite line they lead."""
    units: list[str] = []
    name, sep, unit = street.partition("#")
    if sep and name.strip() and unit.strip():
        # "5TH AVE #12", "5TH AVE APT #12": a unit, never part of a street's name; dropping
        # the "#" would send "5TH AVE 12".
        words = name.split()
        if len(words) > 1 and clean(words[-1], keep="") in DESIGNATORS:
            name, unit = " ".join(words[:-1]), f"{words[-1]} {unit}"
        else:
            unit = f"#{unit}"
        street, units = name, [unit]
    words = _tight(clean(street, keep="-/&")).split()
    for start in range(2, len(words)):
        written = _unit_words(words[start:])
        if written and _ends_a_street(words[:start], " " in written[0], types):
            street, units = " ".join(words[:start]), written + units
            break
    kept = [u for u in units if not (line2 and _holds(line2, u))]
    return street, " ".join(p for p in (*kept, line2) if p) or None


def _unit_words(words: list[str]) -> list[str] | None:
    """``words`` read as units, each designator with its number where it has one
    (``STE 3000``, ``REAR``, ``30TH FL`` -> ``FL 30``); None when they are not all units."""
    units: list[str] = []
    i = 0
    while i < len(words):
        code = DESIGNATORS.get(words[i])
        following = words[i + 1] if i + 1 < len(words) else None
        if code is None:
            floor = re.fullmatch(r"(\d{1,3})(?:ST|ND|RD|TH)", words[i])
            if floor is None or following is None or DESIGNATORS.get(following) != "FL":
                return None
            units.append(f"FL {floor.group(1)}")
            i += 2
        elif following is not None and _is_unit_number(following):
            units.append(f"{code} {following}")
            i += 2
        elif code in RANGED_DESIGNATORS:
            return None  # "5TH AVE STE": no number, so not read as a unit
        else:
            units.append(code)
            i += 1
    return units


def _is_unit_number(word: str) -> bool:
    """``3000``, ``4B``, ``12-C``, ``C``: a unit's number (a word is not)."""
    return any(c.isdigit() for c in word) or (len(word) == 1 and word.isalpha())


def _ends_a_street(words: list[str], numbered: bool, types: Mapping[str, str]) -> bool:
    """Whether ``words`` is a complete street that units may follow: a name, then its suffix
    (for a unit without a number, a roadway type) or a directional; with a number, also a
    highway (``US HWY 1``) or a prefix-type street (``CALLE LUNA``)."""
    if len(words) > 1 and words[-1] in DIRECTIONALS:
        if numbered:
            return True
        words = words[:-1]
    if len(words) < 2:
        return False
    suffix = SUFFIXES.get(words[-1])
    if suffix is not None:
        return numbered or suffix in ROADWAY_TYPES
    return numbered and (_highway(words) is not None or is_prefix_street(words, types))


def _holds(line2: str, unit: str) -> bool:
    """Whether ``line2`` already names ``unit`` (``STE 3000`` in ``FL 30 STE 3000``)."""
    have = (_canon_line2(line2) or "").split()
    wanted = (_canon_line2(unit) or "").split()
    n = len(wanted)
    return any(
        have[i : i + n] == wanted and (i + n == len(have) or have[i + n] in DESIGNATOR_CODES)
        for i in range(len(have) - n + 1)
    )


def canon_city(value: str | None, country: str | None) -> str | None:
    if value is None:
        return None
    if country == "US":
        tokens = clean(value, keep="", drop=".").split()
        tokens = [CITY_WORDS.get(t, t) for t in tokens]
        if len(tokens) > 1 and tokens[0] in LONGHAND_DIRECTIONALS:
            tokens[0] = LONGHAND_DIRECTIONALS[tokens[0]]
        return _none_if_empty(" ".join(tokens))
    return _none_if_empty(clean(value, keep="-&"))


def canon_state(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = clean(value, keep="&", drop=".'`")
    return _none_if_empty(STATE_NAMES.get(cleaned, cleaned))


def _canon_country(value: str | None) -> str:
    if value is None:
        return "US"
    cleaned = clean(value, keep="", drop=".'`")
    if not cleaned:
        return "US"
    return COUNTRIES.get(cleaned, cleaned)


def _canon_zip(
    zip_code: str | None, plus_four: str | None, country: str
) -> tuple[str | None, str | None]:
    p4 = _none_if_empty(clean(plus_four, keep="").replace(" ", "")) if plus_four else None
    if zip_code is None:
        return None, p4
    if country == "CA":
        compact = clean(zip_code, keep="").replace(" ", "")
        if len(compact) == 6:
            return f"{compact[:3]} {compact[3:]}", p4
        return _none_if_empty(compact), p4
    z = clean(zip_code, keep="-").replace(" ", "")
    m = re.fullmatch(r"(\d{5})-?(\d{4})", z)
    if m and (p4 is None or p4 == m.group(2)):
        return m.group(1), m.group(2)
    return _none_if_empty(z), p4


def canonical(address: Address) -> Address:
    """The canonical form of an already-structured address, without validation.

    Pure and idempotent: ``canonical(canonical(a)) == canonical(a)``. Fields that are
    not strings at run time are dropped.
    """
    raw = {name: getattr(address, name, None) for name in FIELD_NAMES}
    v: dict[str, str | None] = {k: (x if isinstance(x, str) else None) for k, x in raw.items()}
    country = _canon_country(v["country"])
    state = canon_state(v["state_code"])
    if v["street_name"] is not None:
        v["street_name"], v["address_line2"] = _units_out_of_street(
            v["street_name"], v["address_line2"], prefix_types(country, state)
        )
    if v["street_name"] is not None and not v["street_suffix"] and not v["post_directional"]:
        v["street_name"], v["post_directional"] = _directional_out_of_street(
            v["street_name"], prefix_types(country, state)
        )
    house_number, house_suffix = _canon_house(v["house_number"], v["house_suffix"])
    street_name, street_suffix = _canon_street(
        v["street_name"], v["street_suffix"], prefix_types(country, state)
    )
    if house_number is None and street_name is not None:
        # "CARR 2 KM 5.4" with no house number: the kilometre marker is the house number.
        marker = ROAD_KM_RE.fullmatch(street_name)
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
        city=canon_city(v["city"], country),
        state_code=state,
        zip=zip_code,
        plus_four=plus_four,
        country=country,
    )
