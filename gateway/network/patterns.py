"""The text forms of network identities, as regular expressions: the one gate every input
passes (the API's JSON, a CSV row, a HELD ``<ip>``/``<mac>``) and the API document's
patterns, so that a value the document allows is one the gateway takes.

Each means the same in ECMA-262 and in Python's ``re`` (``gateway.dlr.patterns``).
"""

from __future__ import annotations

import re

from gateway.dlr.patterns import (
    CONTROL_CHARACTERS,
    END,
    FORMAT_CHARACTERS,
    SURROGATES,
    WHITESPACE,
)

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_V4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = r"[0-9A-Fa-f]{1,4}"
#: ``::`` then an IPv4 address: IPv4-compatible or -translated (IPv6 networks), or
#: ``::ffff:`` IPv4-mapped (an IPv4 network written in IPv6).
_COMPATIBLE = rf"::(?:[Ff]{{4}}:0{{1,4}}:)?{_V4}"
_MAPPED = rf"::[Ff]{{4}}:{_V4}"
#: RFC 4291 section 2.2's text forms (``::`` for one or more zero groups; an IPv4 tail).
_V6_FORMS = (
    rf"(?:{_H}:){{7}}{_H}",
    rf"(?:{_H}:){{1,7}}:",
    rf"(?:{_H}:){{1,6}}:{_H}",
    rf"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}",
    rf"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}",
    rf"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}",
    rf"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
    rf"{_H}:(?::{_H}){{1,6}}",
    rf":(?:(?::{_H}){{1,7}}|:)",
    rf"(?:{_H}:){{6}}{_V4}",
    _COMPATIBLE,
    _MAPPED,
    rf"(?:{_H}:){{1,4}}:{_V4}",
)
_V6 = "|".join(_V6_FORMS)
_V4_LENGTH = r"(?:3[0-2]|[12]?[0-9])"
_V6_LENGTH = r"(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])"

#: An IPv4 or IPv6 address (no zone index: it names no network).
IP_PATTERN = f"^(?:{_V4}|(?:{_V6})){END}"
#: A network in CIDR form; a bare address is a host route. The gateway's own gate, which
#: names what is wrong with a prefix too short (``gateway.network.wiremap.parse_subnet``).
SUBNET_FORM = f"^(?:{_V4}(?:/{_V4_LENGTH})?|(?:{_V6})(?:/{_V6_LENGTH})?){END}"

_UNMAPPED_V6 = "|".join(form for form in _V6_FORMS if form != _MAPPED)
#: What the API document allows of ``SUBNET_FORM``: a prefix of /8 at least (IPv4), /16 (IPv6),
#: /104 for ``::ffff:`` and an IPv4 address (the IPv4 network it names, /8 at least).
SUBNET_PATTERN = (
    f"^(?:{_V4}(?:/(?:3[0-2]|[12][0-9]|[89]))?"
    f"|{_MAPPED}(?:/(?:12[0-8]|11[0-9]|10[4-9]))?"
    f"|(?:{_UNMAPPED_V6})(?:/(?:12[0-8]|1[01][0-9]|[2-9][0-9]|1[6-9]))?){END}"
)

_X = "[0-9A-Fa-f]"
_SEP = "[-:]"
#: Six hex pairs (``AA-BB-CC-DD-EE-FF``, ``:`` or ``-``), Cisco's ``aabb.ccdd.eeff``, or 12
#: digits: a MAC address, as an observed BSSID or a chassis ID is written.
MAC_PATTERN = (
    f"^(?:{_X}{{2}}(?:{_SEP}{_X}{{2}}){{5}}|{_X}{{4}}\\.{_X}{{4}}\\.{_X}{{4}}|{_X}{{12}}){END}"
)
#: A BSSID of a wiremap entry: a ``*`` may replace its last hex digit or its last two (a
#: six-pair form's last pair may also be a single ``*``).
_LAST = rf"(?:{_X}{{2}}|{_X}\*|\*\*)"
BSSID_PATTERN = (
    f"^(?:{_X}{{2}}(?:{_SEP}{_X}{{2}}){{4}}{_SEP}(?:{_LAST}|\\*)"
    f"|{_X}{{4}}\\.{_X}{{4}}\\.{_X}{{2}}{_LAST}|{_X}{{10}}{_LAST}){END}"
)
#: What no wiremap text holds: control characters, and the invisible format characters that
#: could show one entry as another (bidirectional controls, zero-width characters: the rule of
#: caller names, ``gateway.dlr.patterns.FORMAT_CHARACTERS``).
_UNSHOWN = f"{CONTROL_CHARACTERS}{FORMAT_CHARACTERS}"
#: A chassis ID, a port ID: any text with something besides whitespace, and none of those
#: characters (surrounding whitespace is dropped).
NAME_PATTERN = f"^[^{_UNSHOWN}]*[^{_UNSHOWN}{WHITESPACE}][^{_UNSHOWN}]*{END}"
#: An entry's description: any text without those characters.
TEXT_PATTERN = f"^[^{_UNSHOWN}]*{END}"

#: A location ID at the carrier: its own rule (``gateway.dlr.ids``).
LOCATION_ID_PATTERN = f"^[A-Za-z0-9]{{1,32}}{END}"

IP = re.compile(IP_PATTERN)
SUBNET = re.compile(SUBNET_FORM)
MAC = re.compile(MAC_PATTERN)
BSSID = re.compile(BSSID_PATTERN)
NAME = re.compile(NAME_PATTERN)
LOCATION_ID = re.compile(LOCATION_ID_PATTERN)
TEXT = re.compile(TEXT_PATTERN)
#: What no text may hold: control characters, and lone surrogates (no pattern names those).
CONTROL = re.compile(f"[{CONTROL_CHARACTERS}{SURROGATES}]")
#: Invisible format characters (bidirectional controls, zero-width characters).
FORMAT = re.compile(f"[{FORMAT_CHARACTERS}]")
