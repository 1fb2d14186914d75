"""Civic address normalization and validation (USPS Publication 28), no I/O.

``normalize`` turns a structured ``Address``, the JSON address object (camelCase keys, the
carrier's names) or one free-form US or Canadian line into the canonical form, with field-level
errors (not routable) and warnings (routable, but look again). It never raises.

The work is split by job: ``address_canonical`` (the canonical form), ``address_checks``
(validation), ``address_freeform`` (reading one line), ``address_tables`` (the tables).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Hashable, Mapping

from cachetools import LRUCache

from gateway.bandwidth.models import Address
from gateway.dlr.address_canonical import canonical
from gateway.dlr.address_checks import (
    Normalized,
    Report,
    checked_result,
    from_values,
    zip_record,
)
from gateway.dlr.address_freeform import free_form
from gateway.dlr.address_tables import (
    FIELD_NAMES,
    MAX_ADDRESS_LINE2,
    MAX_CALLER_NAME,
    MAX_FIELD,
    MAX_FREEFORM,
    WIRE_TO_FIELD,
)
from gateway.dlr.errors import FieldError
from gateway.dlr.patterns import END, FORMAT_CHARACTERS, SURROGATES, WHITESPACE

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


def normalize(raw: Address | Mapping[str, object] | str) -> Normalized:
    """Normalize and validate an address; never raises. See the module docstring."""
    report = Report()
    try:
        if isinstance(raw, str):
            return free_form(raw, report)
        if isinstance(raw, Address):
            values = {name: getattr(raw, name, None) for name in FIELD_NAMES}
            return checked_result(from_values(values, report), report)
        if isinstance(raw, Mapping):
            values = {}
            for key, value in raw.items():
                name = WIRE_TO_FIELD.get(key) if isinstance(key, str) else None
                if name is None:
                    report.warn(str(key)[:MAX_FIELD], "unknown address field ignored")
                else:
                    values[name] = value
            return checked_result(from_values(values, report), report)
        report.error("address", "must be an address object or a one-line address string")
        return report.result(None)
    except Exception as exc:  # a bug here must not take a 911 update down with it
        return Normalized(
            address=None,
            errors=(FieldError("address", f"could not be normalized ({type(exc).__name__})"),),
        )


#: What a caller name may not hold: C0 and C1 controls (line breaks and tabs included), the
#: invisible format characters that could change how a PSAP's screen shows the rest
#: (``FORMAT_CHARACTERS``), and the noncharacters U+FFFE/U+FFFF.
_NOT_IN_NAMES = rf"\x00-\x1f\x7f-\x9f{FORMAT_CHARACTERS}\ufffe\uffff"
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


def warm_up() -> None:
    """Load the ZIP data and the address parser now rather than in the first request."""
    zip_record("00000")
    normalize("1 Main St, Washington, DC 20500")


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
        if len(raw) > 32:
            return None
        for k, v in raw.items():
            if not isinstance(k, str) or not (
                v is None or (isinstance(v, str) and len(v) <= MAX_FIELD)
            ):
                return None
        # By key: the keys are distinct, so the pairs' order never compares their values.
        return ("mapping", *sorted(raw.items()))

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
