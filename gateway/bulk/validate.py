"""Whole-file validation: every row normalized and checked before anything is written.

A device row needs an AEUI, a caller name, a callback number and a place: an address (one
line or the structured columns) or the ``LocationId`` of a location the gateway holds. A
location row needs an address; its ``LocationId``, when given, must be the one the gateway
derives from that address (devices' reports find their location by it). Duplicates within
the file and callback numbers another device owns are refused too. Each problem names its
line, its column and the reason.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from gateway.bandwidth.models import Address
from gateway.bulk.formats import (
    ADDRESS_COLUMNS,
    DEVICES,
    ONE_LINE,
    Parsed,
    RawRow,
    address_of,
)
from gateway.dlr.identity import aeui_problem, caller_name_problem
from gateway.dlr.ids import location_id_for
from gateway.dlr.numbers import dialled_number
from gateway.dlr.pipeline import Normalizer
from gateway.rows import RowProblem, guard
from gateway.store.base import NumberState

#: What a refused ``CallbackNumber`` is told: a fleet's sheet writes numbers as people do.
NUMBER_RULE = (
    "expected a number of the US, its territories or Canada, e.g. (202) 555-0143, "
    "202-555-0143 or +12025550143"
)


@dataclass(frozen=True, slots=True)
class DeviceRow:
    line: int
    aeui: str
    caller_name: str
    telephone_number: str
    address: Address
    location_id: str


@dataclass(frozen=True, slots=True)
class LocationRow:
    #: A description, at most (the carrier's limit is not stated; a label is short).
    MAX_DESCRIPTION: ClassVar[int] = 128

    line: int
    location_id: str
    description: str | None
    address: Address


Row = DeviceRow | LocationRow


@dataclass(frozen=True, slots=True)
class Checked:
    kind: str
    total: int
    rows: Sequence[Row]
    problems: Sequence[RowProblem]


@dataclass(frozen=True, slots=True)
class Lookups:
    """What validation asks the state store: numbers' owners, known locations' addresses."""

    numbers: Callable[[Sequence[str]], Awaitable[Mapping[str, NumberState]]]
    locations: Callable[[Sequence[str]], Awaitable[Mapping[str, Address]]]


def _place(
    normalize: Normalizer, raw: RawRow, problems: list[RowProblem]
) -> tuple[Address, str] | None:
    given = address_of(raw.cells)
    if given is None:
        return None
    normalized = normalize(given)
    if not normalized.valid or normalized.address is None:
        column = ONE_LINE if ONE_LINE in raw.cells else "Address"
        by_field = {name: c for c, name in ADDRESS_COLUMNS}
        for error in normalized.errors or ():
            where = by_field.get(_snake(error.field), column)
            problems.append(RowProblem(raw.line, where, error.message))
        if not normalized.errors:
            problems.append(RowProblem(raw.line, column, "cannot be parsed"))
        return None
    return normalized.address, location_id_for(normalized.address)


async def _breathe(index: int) -> None:
    """Let the event loop serve others between rows (in the gateway, reports wait otherwise):
    normalizing a large file takes seconds of CPU."""
    if index % 50 == 49:
        await asyncio.sleep(0)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


async def check(parsed: Parsed, normalize: Normalizer, lookups: Lookups) -> Checked:
    """Every row of ``parsed`` checked; the rows that pass, and every problem found."""
    problems: list[RowProblem] = [
        RowProblem(raw.line, column, "longer than the limit on a field")
        for raw in parsed.rows
        for column in raw.too_long
    ]
    long_lines = {p.line for p in problems}
    if parsed.kind == DEVICES:
        rows: list[Row] = list(await _devices(parsed, normalize, lookups, problems, long_lines))
    else:
        rows = list(await _locations(parsed, normalize, problems, long_lines))
    problems.sort(key=lambda p: p.line)
    return Checked(parsed.kind, len(parsed.rows), rows, problems)


async def _devices(
    parsed: Parsed,
    normalize: Normalizer,
    lookups: Lookups,
    problems: list[RowProblem],
    skip: set[int],
) -> list[DeviceRow]:
    ids = sorted({r.cells["LocationId"] for r in parsed.rows if "LocationId" in r.cells})
    known = await lookups.locations(ids) if ids else {}
    written = [dialled_number(r.cells.get("CallbackNumber", "")) for r in parsed.rows]
    owners = await lookups.numbers([n for n in written if n is not None])
    seen_aeui: dict[str, int] = {}
    seen_number: dict[str, tuple[int, str]] = {}
    rows: list[DeviceRow] = []
    for index, raw in enumerate(parsed.rows):
        await _breathe(index)
        found: list[RowProblem] = []
        cells = raw.cells
        aeui = cells.get("AEUI", "")
        reason = aeui_problem(aeui) if aeui else "required"
        if reason is None and aeui in seen_aeui:
            reason = f"the same device as line {seen_aeui[aeui]}"
        if reason is not None:
            found.append(RowProblem(raw.line, "AEUI", reason))
        else:
            seen_aeui[aeui] = raw.line
        name = cells.get("CallerName", "")
        reason = caller_name_problem(name) if name else "required"
        if reason is not None:
            found.append(RowProblem(raw.line, "CallerName", reason))
        number = dialled_number(cells["CallbackNumber"]) if "CallbackNumber" in cells else None
        if number is None:
            reason = NUMBER_RULE if "CallbackNumber" in cells else "required"
            found.append(RowProblem(raw.line, "CallbackNumber", reason))
        place = _place(normalize, raw, found)
        given_id = cells.get("LocationId")
        if place is None and given_id is not None and address_of(cells) is None:
            held = known.get(given_id)
            if held is None:
                found.append(
                    RowProblem(raw.line, "LocationId", "no location the gateway holds has this ID")
                )
            else:
                place = held, given_id
        elif place is not None and given_id is not None and given_id != place[1]:
            found.append(
                RowProblem(
                    raw.line,
                    "LocationId",
                    f"the address is location {place[1]}, not {given_id}",
                )
            )
        elif place is None and address_of(cells) is None:
            found.append(RowProblem(raw.line, "Address", "an address or a LocationId is required"))
        if number is not None and aeui:
            state = owners.get(number)
            if state is not None and state.refuses(aeui):
                found.append(
                    RowProblem(raw.line, "CallbackNumber", f"owned by device {state.owner}")
                )
            elif (state is None or not state.shared) and number in seen_number:
                line, other = seen_number[number]
                if other != aeui:
                    found.append(
                        RowProblem(
                            raw.line,
                            "CallbackNumber",
                            f"also the number of another device on line {line}",
                        )
                    )
            else:
                seen_number.setdefault(number, (raw.line, aeui))
        problems.extend(found)
        if found or raw.line in skip or place is None or number is None:
            continue
        rows.append(DeviceRow(raw.line, aeui, name.strip(), number, place[0], place[1]))
    return rows


async def _locations(
    parsed: Parsed, normalize: Normalizer, problems: list[RowProblem], skip: set[int]
) -> list[LocationRow]:
    seen: dict[str, int] = {}
    rows: list[LocationRow] = []
    for index, raw in enumerate(parsed.rows):
        await _breathe(index)
        found: list[RowProblem] = []
        place = _place(normalize, raw, found)
        if place is None and address_of(raw.cells) is None:
            found.append(RowProblem(raw.line, "Address", "required"))
        description = raw.cells.get("Description")
        if description is not None and len(description) > LocationRow.MAX_DESCRIPTION:
            found.append(
                RowProblem(
                    raw.line, "Description", f"at most {LocationRow.MAX_DESCRIPTION} characters"
                )
            )
        if place is not None:
            given = raw.cells.get("LocationId")
            if given is not None and given != place[1]:
                found.append(
                    RowProblem(
                        raw.line, "LocationId", f"the address is location {place[1]}, not {given}"
                    )
                )
            elif place[1] in seen:
                found.append(
                    RowProblem(raw.line, "Address", f"the same location as line {seen[place[1]]}")
                )
            else:
                seen[place[1]] = raw.line
        problems.extend(found)
        if found or raw.line in skip or place is None:
            continue
        rows.append(LocationRow(raw.line, place[1], description, place[0]))
    return rows


def problems_csv(problems: Sequence[RowProblem]) -> str:
    """The report of bad rows as CSV (``line,field,reason``), cells guarded as exports are."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("line", "field", "reason"))
    for p in problems:
        writer.writerow((p.line, guard(p.field), guard(p.reason)))
    return out.getvalue()
