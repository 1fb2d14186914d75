"""JSON out: answers and log lines, written by orjson.

orjson writes the same compact JSON as ``json.dumps(..., separators=(",", ":"))``, an order
of magnitude faster, which on the unchanged-report path is a visible share of the whole
request (docs/benchmarks.md). It refuses what the standard library takes:
integers beyond 64 bits and strings holding lone surrogates (both can come from a client's
JSON); those go through ``json``, ASCII-escaped, so that nothing a client sends makes an
answer or a log line fail.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON. ``NaN`` and infinities become ``null`` (orjson);
    a value only ``json`` can write is ASCII-escaped (where ``NaN`` is refused instead)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


def dumps_line(value: Any) -> str:
    """``value`` as one line of JSON text for a log: any key or value it cannot write as
    JSON is written as its ``str()``; never fails for what a record may carry."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    except TypeError:
        return json.dumps(value, default=str)


class JSONResponse(_StarletteJSONResponse):
    """Starlette's ``JSONResponse``, rendered by ``dumps``."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
