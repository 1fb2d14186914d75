"""Importing a wiremap CSV: the whole file validated first, then applied in batches.

Every bad row is named with its line and column, and nothing is written when one is bad
(unless ``skip_invalid``: the good rows are applied, the bad ones reported). Rows are checked
against each other too (the same element twice, overlapping BSSID wildcards) and against the
wiremap held. Entries already held as given are left alone, so importing a file twice changes
nothing. Batches commit one at a time: an import cut short is finished by running it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.bandwidth.models import Address, wire_name
from gateway.dlr.errors import FieldError
from gateway.network.csvfile import ADDRESS_COLUMNS, address_of, read
from gateway.network.service import Applied, Wiremap
from gateway.network.wiremap import (
    Conflict,
    Entry,
    WiremapError,
    WiremapIndex,
    parse_location_id,
)
from gateway.rows import RowProblem

#: The carrier's address of a location ID (``None``: no such location).
Lookup = Callable[[str], Awaitable[Address | None]]
Progress = Callable[[int, int], None]

BATCH = 1000

_COLUMN_OF = {
    "subnet": "Subnet",
    "bssid": "BSSID",
    "chassisId": "ChassisID",
    "portId": "PortID",
    "locationId": "LocationId",
    "description": "Description",
    "address": "address",
    **{f"address.{wire_name(f)}": c for c, f in ADDRESS_COLUMNS.items()},
    **{wire_name(f): c for c, f in ADDRESS_COLUMNS.items()},
    "address.plusFour": "PostalCode",
}


@dataclass
class ImportResult:
    rows: int = 0
    errors: list[RowProblem] = field(default_factory=list)
    #: What is worth knowing about good rows (a subnet read as its network, an address's
    #: spelling corrected), named as errors are.
    warnings: list[RowProblem] = field(default_factory=list)
    applied: Applied | None = None
    written: bool = False


async def import_csv(
    wiremap: Wiremap,
    data: bytes,
    *,
    lookup: Lookup | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Validate ``data`` whole, then (unless ``dry_run`` or a bad row) apply it."""
    rows, errors = read(data)
    result = ImportResult(rows=len(rows) + len({e.line for e in errors if e.line > 1}))
    entries: list[Entry] = []
    lines: dict[str, int] = {}
    trial = WiremapIndex()
    await wiremap.refresh()
    known: dict[str, Address | None] = {}
    for row in rows:
        address: Address | None = address_of(row.address) if row.address else None
        if address is None and row.location_id is not None:
            try:
                parse_location_id(row.location_id)  # before it goes into the carrier's path
            except WiremapError as exc:
                errors.extend(_named(row.line, exc.errors))
                continue
            if row.location_id not in known:
                known[row.location_id] = None if lookup is None else await lookup(row.location_id)
            address = known[row.location_id]
            if address is None:
                errors.append(
                    RowProblem(row.line, "LocationId", "no location with this ID at the carrier")
                )
                continue
        try:
            entry, notes = wiremap.build(
                row.kind,
                row.key,
                port_id=row.port_id,
                address=address,
                location_id=row.location_id,
                description=row.description,
            )
        except WiremapError as exc:
            errors.extend(_named(row.line, exc.errors))
            continue
        if entry.id in lines:
            errors.append(
                RowProblem(row.line, _key_column(entry), f"the same as line {lines[entry.id]}")
            )
            continue
        try:
            trial.check(entry)
            if wiremap.get(entry.id) is None:
                wiremap.index.check(entry)
        except Conflict as exc:
            errors.append(RowProblem(row.line, _key_column(entry), exc.message))
            continue
        trial.put(entry)
        lines[entry.id] = row.line
        entries.append(entry)
        result.warnings.extend(_named(row.line, notes))
    result.errors = sorted(errors, key=lambda e: e.line)
    if errors and not skip_invalid:
        return result
    result.applied = await wiremap.apply(entries, dry_run=True)
    if dry_run:
        return result
    done = 0
    for start in range(0, len(entries), BATCH):
        batch = entries[start : start + BATCH]
        await wiremap.apply(batch)
        done += len(batch)
        if progress is not None:
            progress(done, len(entries))
    result.written = True
    return result


def _named(line: int, found: tuple[FieldError, ...]) -> list[RowProblem]:
    return [RowProblem(line, _COLUMN_OF.get(e.field, e.field), e.message) for e in found]


def _key_column(entry: Entry) -> str:
    return {"subnet": "Subnet", "access-point": "BSSID"}.get(entry.kind.value, "ChassisID")
