"""The US ZIP data the gateway uses, held once, compactly, for the whole process.

The ``zipcodes`` package hands its data out as some 43 000 dicts of 14 fields each, and
``zipcodes.list_all()`` keeps that list for the life of the process (its cost is in
docs/benchmarks.md). The address validator (``gateway.dlr.address``) and the offline geocoder
(``gateway.geocoding.offline``) need a handful of those fields, so this module reads the
data a ZIP prefix at a time (``zipcodes.similar_to``: never the whole list at once, and
nothing cached by ``zipcodes``) and keeps them as columns: arrays of numbers, and each
distinct string once. A ZIP's ``ZipInfo`` is built when it is asked for.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from array import array
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

__all__ = ["ZipInfo", "ZipTable", "zip_info", "zip_number", "zip_table"]

#: Five-digit ZIP codes: 00000 to 99999.
_ZIP_SPACE = 100_000


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
    return str(value) if value is not None else ""


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


def zip_number(zip_code: str) -> int | None:
    """``"02134"`` -> 2134; ``None`` for anything but five ASCII digits."""
    if len(zip_code) == 5 and zip_code.isascii() and zip_code.isdigit():
        return int(zip_code)
    return None


def columns(infos: Iterable[ZipInfo]) -> dict[str, list[Any]]:
    """The table as plain columns (lists of numbers, and each distinct string once): what the
    child process sends, and what ``ZipTable`` is built from."""
    strings: list[str] = []
    ids: dict[str, int] = {}

    def sid(text: str) -> int:
        found = ids.get(text)
        if found is None:
            found = ids[text] = len(strings)
            strings.append(text)
        return found

    out: dict[str, list[Any]] = {
        key: [] for key in ("zip", "city", "state", "kind", "active", "country", "lat", "lon")
    }
    out["acceptable_end"] = []
    out["acceptable"] = []
    for info in infos:
        number = zip_number(info.zip_code)
        if number is None:
            continue  # not a five-digit ZIP: nothing could look it up
        out["zip"].append(number)
        out["city"].append(sid(info.city))
        out["state"].append(sid(info.state))
        out["kind"].append(sid(info.zip_code_type))
        out["active"].append(1 if info.active else 0)
        out["country"].append(sid(info.country))
        out["lat"].append(info.latitude)
        out["lon"].append(info.longitude)
        out["acceptable"].extend(sid(c) for c in info.acceptable_cities)
        out["acceptable_end"].append(len(out["acceptable"]))
    out["strings"] = strings
    return out


def _coordinates(values: list[float | None]) -> array[float]:
    return array("d", (math.nan if v is None else float(v) for v in values))


class ZipTable(Mapping[str, ZipInfo]):
    """Five-digit ZIP -> ``ZipInfo``, held as columns rather than a dict of named tuples
    (docs/benchmarks.md, "Peak RSS at 100 000 devices")."""

    __slots__ = (
        "_acceptable",
        "_acceptable_end",
        "_active",
        "_city",
        "_country",
        "_kind",
        "_lat",
        "_lon",
        "_row",
        "_state",
        "_strings",
        "_zip",
    )

    def __init__(self, data: Mapping[str, list[Any]]) -> None:
        self._strings = tuple(sys.intern(str(s)) for s in data["strings"])
        self._zip = array("i", data["zip"])
        self._city = array("I", data["city"])
        self._state = array("I", data["state"])
        self._kind = array("I", data["kind"])
        self._country = array("I", data["country"])
        self._active = bytes(data["active"])
        self._lat = _coordinates(data["lat"])
        self._lon = _coordinates(data["lon"])
        self._acceptable_end = array("I", data["acceptable_end"])
        self._acceptable = array("I", data["acceptable"])
        #: ZIP number -> its row, -1 for a ZIP the data does not know.
        self._row = array("i", [-1]) * _ZIP_SPACE
        for row, number in enumerate(self._zip):
            self._row[number] = row

    def row(self, zip_code: str) -> int:
        """The ZIP's row, or -1."""
        number = zip_number(zip_code)
        return -1 if number is None else self._row[number]

    def info(self, row: int) -> ZipInfo:
        strings = self._strings
        lat, lon = self._lat[row], self._lon[row]
        start = self._acceptable_end[row - 1] if row else 0
        acceptable = self._acceptable[start : self._acceptable_end[row]]
        return ZipInfo(
            f"{self._zip[row]:05d}",
            strings[self._city[row]],
            strings[self._state[row]],
            strings[self._kind[row]],
            bool(self._active[row]),
            strings[self._country[row]],
            None if math.isnan(lat) else lat,
            None if math.isnan(lon) else lon,
            tuple(strings[i] for i in acceptable),
        )

    def __getitem__(self, zip_code: str) -> ZipInfo:
        row = self.row(zip_code) if isinstance(zip_code, str) else -1
        if row < 0:
            raise KeyError(zip_code)
        return self.info(row)

    def __contains__(self, zip_code: object) -> bool:
        return isinstance(zip_code, str) and self.row(zip_code) >= 0

    def __iter__(self) -> Iterator[str]:
        return (f"{number:05d}" for number in self._zip)

    def __len__(self) -> int:
        return len(self._zip)

    def rows(self) -> Iterator[ZipInfo]:
        """Every ZIP's record, in the data's order (one built at a time)."""
        return (self.info(row) for row in range(len(self._zip)))


def _dump() -> None:
    """Write the table's columns as JSON on stdout (run in a child, see ``_load``)."""
    json.dump(columns(map(_info, _records())), sys.stdout, separators=(",", ":"))


def _from_child() -> dict[str, list[Any]] | None:
    """The columns, read by a short-lived child process, or ``None`` when that fails.

    On its first query the ``zipcodes`` extension unpacks its data set into memory it never
    releases; reading it in a child keeps that out of the gateway, which receives only the
    columns.
    """
    command = [sys.executable, "-c", "import gateway.zipdata as z; z._dump()"]
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and code, no shell
            command, capture_output=True, timeout=120, check=True
        )
        data: dict[str, list[Any]] = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return data


def _load() -> ZipTable:
    data = _from_child()
    if data is None:  # no child processes here: read the data in this process
        data = columns(map(_info, _records()))
    return ZipTable(data)


_table: ZipTable | None = None
_lock = threading.Lock()


def zip_table() -> ZipTable:
    """Five-digit ZIP -> its ``ZipInfo``, loaded on first use (slow: the gateway's start-up
    loads it, ``gateway.app.warm_up``)."""
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
    table = zip_table()
    row = table.row(zip_code)
    return table.info(row) if row >= 0 else None
