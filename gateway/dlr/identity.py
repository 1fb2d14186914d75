"""Who a device is: its Alternate End User ID, caller name and callback number, checked by
one set of rules wherever they come in (a report, an admin's endpoint, a device token).
"""

from __future__ import annotations

import functools
import re

import phonenumbers

from gateway.dlr.address import validate_caller_name

__all__ = ["MAX_AEUI", "aeui_problem", "caller_name_problem", "e164"]

#: The carrier's limit on an AEUI.
MAX_AEUI = 30

#: C0 and C1 controls, DEL, surrogates and non-characters: never part of an identifier.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")


def aeui_problem(value: object) -> str | None:
    """Why ``value`` is not an AEUI (1 to 30 characters, no control characters, no
    surrounding spaces: never altered, so a device is always the one it says), or ``None``."""
    if not isinstance(value, str):
        return "expected a string"
    if len(value) > MAX_AEUI:
        return f"at most {MAX_AEUI} characters"
    if _CONTROL.search(value):
        return "contains control characters"
    if not value.strip() or value != value.strip():
        return "must be non-empty, without surrounding spaces"
    return None


def caller_name_problem(value: object) -> str | None:
    """Why ``value`` is not a caller name (``validate_caller_name``), or ``None``; a valid
    one is used without its surrounding spaces."""
    found = validate_caller_name(value)
    return None if found is None else found.message


#: Bounded well below the fleet: a repeated report skips parsing altogether (the report
#: memo), so this serves the reports that changed; 8 192 entries hold ~2 MB, 65 536 held 14.
@functools.lru_cache(maxsize=8192)
def e164(text: str) -> str | None:
    """``text`` as E.164 when it is a valid US or Canadian number written in E.164, else
    ``None``. Pure, so memoized: a device sends the same number with every report."""
    if not text.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number) or phonenumbers.region_code_for_number(
        number
    ) not in ("US", "CA"):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
