"""The wiremap as CSV, with the column names Microsoft Teams' LIS uses.

A row maps one network element to a location. Which element: ``Subnet``, ``BSSID``,
``ChassisID`` (a switch) or ``ChassisID`` + ``PortID`` (a port), exactly one of them. Which
location: the civic address columns (``HouseNumber`` ... ``CountryOrRegion``, and ``Location``
for the place inside, e.g. ``FL 3 RM 301``), or a ``LocationId`` alone (a location that exists
at the carrier, whose address is looked up). Every size is bounded: the file, the rows, each
field. Reading never stops at the first bad row: every problem is named with its line (a
row the CSV reader cannot read past, such as a quote never closed, refuses the file). Cells
are written ``guard``-ed and read ``unguard``-ed (``gateway.rows``): a description or a port ID
such as ``=HYPERLINK(...)`` is never run by the spreadsheet an export is opened in.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.bandwidth.models import Address
from gateway.network import patterns
from gateway.network.wiremap import Entry, Kind
from gateway.rows import RowProblem, guard, unguard

KEY_COLUMNS = ("Subnet", "BSSID", "ChassisID", "PortID")
#: Civic address columns -> ``Address`` fields.
ADDRESS_COLUMNS = {
    "HouseNumber": "house_number",
    "HouseNumberSuffix": "house_suffix",
    "PreDirectional": "prefix_directional",
    "StreetName": "street_name",
    "StreetSuffix": "street_suffix",
    "PostDirectional": "post_directional",
    "City": "city",
    "StateOrProvince": "state_code",
    "PostalCode": "zip",
    "CountryOrRegion": "country",
    "Location": "address_line2",
}
COLUMNS = (*KEY_COLUMNS, "LocationId", "Description", *ADDRESS_COLUMNS)


@dataclass(frozen=True, slots=True)
class Row:
    """One row as read: its element, and its location as given (not yet validated)."""

    line: int
    kind: Kind
    key: str
    port_id: str | None
    address: Mapping[str, str] | None
    location_id: str | None
    description: str | None


#: The bounds: past the first two the file is refused whole; a longer field is a row's problem.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ROWS = 200_000
MAX_FIELD = 255


class CsvTooLarge(ValueError):
    """The file is refused whole: too large, not UTF-8, or not CSV the reader can read."""


def read(data: bytes) -> tuple[list[Row], list[RowProblem]]:
    """The rows of a wiremap CSV (UTF-8, a BOM allowed), and every problem found."""
    if len(data) > MAX_FILE_BYTES:
        raise CsvTooLarge(f"the file exceeds {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvTooLarge(f"the file is not UTF-8 (byte {exc.start})") from None
    # Strict: a stray or unclosed quote is an error, never a cell that swallows later rows.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    errors: list[RowProblem] = []
    try:
        header = next(reader)
    except StopIteration:
        return [], [RowProblem(1, "header", "the file is empty")]
    except csv.Error as exc:
        return [], [RowProblem(1, "header", str(exc))]
    names = [h.strip() for h in header]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        errors.append(RowProblem(1, "header", f"unknown columns: {', '.join(unknown[:5])[:200]}"))
    if len(set(names)) != len(names):
        errors.append(RowProblem(1, "header", "a column appears twice"))
    if not {"Subnet", "BSSID", "ChassisID"} & set(names):
        errors.append(RowProblem(1, "header", "needs a Subnet, BSSID or ChassisID column"))
    if errors:
        return [], errors
    rows: list[Row] = []
    count = 0
    while True:
        begins = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # The reader cannot go past it: refused whole, never an import of the rows
            # before it that leaves the rest out without a word (``--skip-invalid``).
            raise CsvTooLarge(f"line {begins}: {exc}: the file cannot be read") from None
        if not any(v.strip() for v in values):
            continue  # a blank line
        count += 1
        if count > MAX_ROWS:  # refused whole, --skip-invalid or not: never a cut-off import
            raise CsvTooLarge(f"the file has more than {MAX_ROWS:,} rows")
        row = _row(reader.line_num, names, values, errors)
        if row is not None:
            rows.append(row)
    return rows, errors


def _row(line: int, names: list[str], values: list[str], errors: list[RowProblem]) -> Row | None:
    if len(values) != len(names):
        errors.append(RowProblem(line, "row", f"{len(values)} fields, the header has {len(names)}"))
        return None
    cells: dict[str, str] = {}
    bad = False
    for name, raw in zip(names, values, strict=True):
        value = unguard(raw.strip())
        if len(value) > MAX_FIELD:
            errors.append(RowProblem(line, name, f"is too long (at most {MAX_FIELD} characters)"))
            bad = True
        elif patterns.CONTROL.search(value):  # as the API refuses them in any field
            errors.append(RowProblem(line, name, "must not hold control characters"))
            bad = True
        elif value:
            cells[name] = value
    keys = [k for k in ("Subnet", "BSSID", "ChassisID") if k in cells]
    if len(keys) != 1:
        message = "give exactly one of Subnet, BSSID, ChassisID (with PortID for a port)"
        errors.append(RowProblem(line, "/".join(keys) or "Subnet", message))
        return None
    if "PortID" in cells and keys[0] != "ChassisID":
        errors.append(RowProblem(line, "PortID", "a port is named by ChassisID and PortID"))
        return None
    kind = {
        "Subnet": Kind.SUBNET,
        "BSSID": Kind.ACCESS_POINT,
        "ChassisID": Kind.PORT if "PortID" in cells else Kind.SWITCH,
    }[keys[0]]
    address = {f: cells[c] for c, f in ADDRESS_COLUMNS.items() if c in cells}
    if not address and "LocationId" not in cells:
        errors.append(RowProblem(line, "LocationId", "give a LocationId or the address columns"))
        return None
    if bad:
        return None
    return Row(
        line,
        kind,
        cells[keys[0]],
        cells.get("PortID"),
        address or None,
        cells.get("LocationId"),
        cells.get("Description"),
    )


def address_of(fields: Mapping[str, str]) -> Address:
    """An ``Address`` from a row's address cells (field names)."""
    return Address(**fields)


def write(entries: Iterable[Entry]) -> str:
    """The entries as CSV (every column, Teams' names), one row each, in the order given."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in entries:
        cells = {
            "Subnet": entry.key if entry.kind is Kind.SUBNET else "",
            "BSSID": entry.key if entry.kind is Kind.ACCESS_POINT else "",
            "ChassisID": entry.key if entry.kind in (Kind.SWITCH, Kind.PORT) else "",
            "PortID": entry.port_id or "",
            "LocationId": entry.location_id or "",
            "Description": entry.description or "",
        }
        for column, name in ADDRESS_COLUMNS.items():
            cells[column] = getattr(entry.address, name) or ""
        if entry.address.plus_four:
            cells["PostalCode"] = f"{entry.address.zip}-{entry.address.plus_four}"
        writer.writerow([guard(cells[c]) for c in COLUMNS])
    return out.getvalue()
