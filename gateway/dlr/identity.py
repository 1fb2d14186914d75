"""Who a device is: its Alternate End User ID, caller name and callback number, checked by
one set of rules wherever they come in (a report, an admin's endpoint, a device token).
"""

from __future__ import annotations

import re

from gateway.dlr.address import validate_caller_name
from gateway.dlr.numbers import callback_number
from gateway.dlr.patterns import END, SURROGATES, WHITESPACE

__all__ = [
    "AEUI_PATTERN",
    "MAX_AEUI",
    "aeui_problem",
    "callback_number",
    "caller_name_problem",
    "e164",
]

#: The carrier's limit on an AEUI.
MAX_AEUI = 30

#: C0 and C1 controls, DEL and the non-characters: never part of an identifier.
_IDENTIFIER_CONTROLS = r"\x00-\x1f\x7f-\x9f\ufffe\uffff"
_CONTROL = re.compile(f"[{_IDENTIFIER_CONTROLS}{SURROGATES}]")
_NOT_SPACE = f"[^{_IDENTIFIER_CONTROLS}{WHITESPACE}]"
#: An AEUI as the API document states it: no control characters, not empty, no surrounding
#: whitespace (lone surrogates are refused too, outside the pattern).
AEUI_PATTERN = f"^{_NOT_SPACE}(?:[^{_IDENTIFIER_CONTROLS}]*{_NOT_SPACE})?{END}"
_AEUI = re.compile(AEUI_PATTERN)


def aeui_problem(value: object) -> str | None:
    """Why ``value`` is not an AEUI (1 to 30 characters, no control characters, no
    surrounding spaces: never altered, so a device is always the one it says), or ``None``."""
    if not isinstance(value, str):
        return "expected a string"
    if len(value) > MAX_AEUI:
        return f"at most {MAX_AEUI} characters"
    if _CONTROL.search(value):
        return "contains control characters"
    if not _AEUI.search(value):
        return "must be non-empty, without surrounding spaces"
    return None


def caller_name_problem(value: object) -> str | None:
    """Why ``value`` is not a caller name (``validate_caller_name``), or ``None``; a valid
    one is used without its surrounding spaces."""
    found = validate_caller_name(value)
    return None if found is None else found.message


def e164(text: str) -> str | None:
    """``text`` when it is a served callback number written exactly in E.164 (a device
    token's ``phone_number`` claim), else ``None``; reports also take separators
    (``callback_number``)."""
    return text if callback_number(text) == text else None
