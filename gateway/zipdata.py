"""The US ZIP data the gateway uses, held once, compactly, for the whole process.

The ``zipcodes`` package hands its data out as some 43 000 dicts of 14 fields each, and
``zipcodes.list_all()`` keeps that list for the life of the process (its cost is in
docs/benchmarks.md). The address validator (``gateway.dlr.address``) and the offline geocoder
(``gateway.geocoding.offline``) need a handful of those fields, so this module reads the
data a ZIP prefix at a time (``zipcodes.similar_to``: never the whole list at once, and
nothing cached by ``zipcodes``) and keeps one small named tuple per ZIP, its repeated
strings interned.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

__all__ = ["ZipInfo", "zip_info", "zip_table"]


class ZipInfo(NamedTuple):
    """What the gateway reads of one ZIP code's record, as the data spells it."""

    zip_code: str
    city: str
    state: str
    #: ``STANDARD``, ``PO BOX``, ``UNIQUE`` or ``MILITARY``.
    zip_code_type: str
    active: bool
    #: ``US`` for almost all; military ZIPs name the country they serve, some are empty.
    country: str
    #: ``None`` when the data has no usable coordinate.
    latitude: float | None
    longitude: float | None
    acceptable_cities: tuple[str, ...]


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    return sys.intern(str(value)) if value is not None else ""


def _info(z: dict[str, Any]) -> ZipInfo:
    return ZipInfo(
        zip_code=str(z["zip_code"]),
        city=_text(z.get("city")),
        state=_text(z.get("state")),
        zip_code_type=_text(z.get("zip_code_type")),
        active=bool(z.get("active")),
        country=_text(z.get("country")),
        latitude=_float(z.get("lat")),
        longitude=_float(z.get("long")),
        acceptable_cities=tuple(_text(c) for c in z.get("acceptable_cities") or ()),
    )


def _records() -> Iterator[dict[str, Any]]:
    import zipcodes  # its data is compiled in; nothing is read until asked

    for prefix in range(100):
        # ~430 records at a time; each batch is dropped before the next is read.
        yield from zipcodes.similar_to(f"{prefix:02d}")  # type: ignore[no-untyped-call]


def _dump() -> None:
    """Write the compact table as JSON rows on stdout (run in a child, see ``_load``)."""
    json.dump([list(_info(z)) for z in _records()], sys.stdout, separators=(",", ":"))


def _from_child() -> list[list[Any]] | None:
    """The rows, read by a short-lived child process, or ``None`` when that fails.

    On its first query the ``zipcodes`` extension unpacks its data set into memory it never
    releases; reading it in a child keeps that out of the gateway, which receives only the
    rows.
    """
    command = [sys.executable, "-c", "import gateway.zipdata as z; z._dump()"]
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and code, no shell
            command, capture_output=True, timeout=120, check=True
        )
        rows: list[list[Any]] = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return rows


def _load() -> dict[str, ZipInfo]:
    rows = _from_child()
    if rows is None:  # no child processes here: read the data in this process
        return {info.zip_code: info for info in map(_info, _records())}
    table: dict[str, ZipInfo] = {}
    for row in rows:
        z, city, state, kind, active, country, lat, lon, acceptable = row
        table[z] = ZipInfo(
            z,
            sys.intern(city),
            sys.intern(state),
            sys.intern(kind),
            active,
            sys.intern(country),
            lat,
            lon,
            tuple(sys.intern(c) for c in acceptable),
        )
    return table


_table: dict[str, ZipInfo] | None = None
_lock = threading.Lock()


def zip_table() -> dict[str, ZipInfo]:
    """Five-digit ZIP -> its ``ZipInfo``, loaded on first use (about 0.7 s)."""
    global _table
    table = _table
    if table is None:
        with _lock:
            table = _table
            if table is None:
                table = _table = _load()
    return table


def zip_info(zip_code: str) -> ZipInfo | None:
    """The ZIP's record, or ``None`` for a ZIP the data does not know."""
    return zip_table().get(zip_code)
