"""The CSV formats of ``import`` and ``export``: their columns, reading and writing.

A file is untrusted: its size, its number of rows and each field's length are bounded, it
must be UTF-8 (a byte-order mark is allowed), and anything else is a ``BadFile`` that says
what is wrong, before any row is looked at. Cells are written ``guard``-ed and read
``unguard``-ed (``gateway.rows``): a spreadsheet never runs an exported cell as a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.bandwidth.models import Address
from gateway.rows import guard, unguard

DEVICES = "devices"
LOCATIONS = "locations"
KINDS = (DEVICES, LOCATIONS)

#: The structured address columns, in the carrier's field order, and ``Address`` field each.
ADDRESS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("HouseNumber", "house_number"),
    ("HouseSuffix", "house_suffix"),
    ("PrefixDirectional", "prefix_directional"),
    ("StreetName", "street_name"),
    ("StreetSuffix", "street_suffix"),
    ("PostDirectional", "post_directional"),
    ("AddressLine2", "address_line2"),
    ("City", "city"),
    ("StateCode", "state_code"),
    ("Zip", "zip"),
    ("PlusFour", "plus_four"),
    ("Country", "country"),
)
#: The address on one line ("1600 Pennsylvania Ave NW, Washington, DC 20500"), instead of
#: the structured columns.
ONE_LINE = "Address"

DEVICE_COLUMNS = ("AEUI", "CallerName", "CallbackNumber", "LocationId")
LOCATION_COLUMNS = ("LocationId", "Description")

#: What ``export`` writes: the structured address, never the one-line form.
EXPORT_COLUMNS = {
    DEVICES: (*DEVICE_COLUMNS, *(c for c, _ in ADDRESS_COLUMNS)),
    LOCATIONS: (*LOCATION_COLUMNS, *(c for c, _ in ADDRESS_COLUMNS)),
}
#: Every column a file of each kind may have.
COLUMNS = {kind: (*columns, ONE_LINE) for kind, columns in EXPORT_COLUMNS.items()}
#: Other spellings of a column's name (compared without case, spaces, ``_`` or ``-``).
ALIASES = {
    "alternateenduserid": "AEUI",
    "telephonenumber": "CallbackNumber",
    "phonenumber": "CallbackNumber",
    "name": "CallerName",
    "state": "StateCode",
    "zipcode": "Zip",
    "postalcode": "Zip",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 16 * 1024 * 1024
    max_rows: int = 100_000
    max_field: int = 256


class BadFile(ValueError):
    """The file as a whole cannot be read; nothing in it is used."""


@dataclass(frozen=True, slots=True)
class RawRow:
    """One data row: its line in the file (the header is line 1) and its non-empty cells."""

    line: int
    cells: Mapping[str, str]
    #: Columns whose cell is longer than ``Limits.max_field`` (left out of ``cells``).
    too_long: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Parsed:
    kind: str
    rows: Sequence[RawRow]
    columns: tuple[str, ...] = field(default=())


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " _-")


def _canonical(kind: str) -> dict[str, str]:
    found = {_key(c): c for c in COLUMNS[kind]}
    found.update({a: c for a, c in ALIASES.items() if c in COLUMNS[kind]})
    return found


def read(kind: str, data: bytes, limits: Limits = Limits()) -> Parsed:
    """The rows of a CSV file of ``kind``; ``BadFile`` for a file that cannot be used."""
    if kind not in KINDS:
        raise BadFile(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    if len(data) > limits.max_bytes:
        raise BadFile(f"the file is larger than {limits.max_bytes} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadFile(f"line {line}: the file is not UTF-8 text") from None
    if "\x00" in text:
        raise BadFile("the file contains NUL characters: not a CSV text file")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise BadFile("the file is empty: expected a header row")
        names = _header(kind, header)
        rows: list[RawRow] = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # a blank line
            if len(rows) >= limits.max_rows:
                raise BadFile(f"more than {limits.max_rows} rows")
            if len(cells) > len(names):
                raise BadFile(
                    f"line {reader.line_num}: {len(cells)} cells, the header has {len(names)}"
                )
            kept: dict[str, str] = {}
            too_long: list[str] = []
            for name, cell in zip(names, cells, strict=False):
                if not name:
                    continue
                value = unguard(cell.strip())
                if len(value) > limits.max_field:
                    too_long.append(name)
                elif value:
                    kept[name] = value
            rows.append(RawRow(reader.line_num, kept, tuple(too_long)))
    except csv.Error as exc:
        raise BadFile(f"line {reader.line_num}: {exc}") from None
    return Parsed(kind, rows, tuple(names))


def _header(kind: str, header: list[str]) -> list[str]:
    canonical = _canonical(kind)
    names: list[str] = []
    for raw in header:
        if not raw.strip():
            names.append("")  # an unnamed column (a spreadsheet's trailing one): ignored
            continue
        name = canonical.get(_key(unguard(raw.strip())))
        if name is None:
            expected = ", ".join(COLUMNS[kind])
            raise BadFile(f"line 1: unknown column {raw.strip()[:64]!r}; the columns: {expected}")
        if name in names:
            raise BadFile(f"line 1: column {name} appears twice")
        names.append(name)
    required = ("AEUI", "CallerName", "CallbackNumber") if kind == DEVICES else ()
    missing = [c for c in required if c not in names]
    if missing:
        raise BadFile(f"line 1: missing column(s) {', '.join(missing)}")
    return names


def address_cells(address: Address | None) -> dict[str, str]:
    if address is None:
        return {}
    return {
        column: value
        for column, name in ADDRESS_COLUMNS
        if (value := getattr(address, name)) is not None
    }


def address_of(cells: Mapping[str, str]) -> Address | str | None:
    """The row's address: the one-line column, else the structured ones, else ``None``."""
    if ONE_LINE in cells:
        return cells[ONE_LINE]
    values = {name: cells[column] for column, name in ADDRESS_COLUMNS if column in cells}
    return Address(**values) if values else None


def write(kind: str, rows: Iterable[Mapping[str, str]]) -> str:
    """A CSV file of ``kind`` (``EXPORT_COLUMNS``), every cell ``guard``-ed."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    columns = EXPORT_COLUMNS[kind]
    writer.writerow(columns)
    for row in rows:
        writer.writerow([guard(row.get(c, "")) for c in columns])
    return out.getvalue()
