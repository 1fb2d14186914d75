"""The one mapping between the records and the state store's rows (``gateway.store.tables``).

Instants are integer microseconds since the epoch; JSON is compact text with sorted keys.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeGuard

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.dlr.binding import Binding, address_from_json, address_json, newest
from gateway.store.base import (
    DeviceDeleted,
    HistoryEntry,
    HistoryKind,
    HistoryRecord,
    NumberOwned,
    NumberState,
    number_key,
)
from gateway.store.tables import deleted_devices, devices, numbers

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_us(moment: datetime | None) -> int:
    """An aware datetime as integer microseconds since the epoch (exact)."""
    if moment is None or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is required, not {moment!r}")
    return (moment - EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def dumps(value: Mapping[str, Any] | None) -> str | None:
    """Compact JSON, keys sorted, by orjson (faster than ``json``; a move writes several);
    what orjson refuses (integers beyond 64 bits, lone surrogates) goes through ``json``."""
    if value is None:
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def loads(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    loaded = json.loads(value)
    return loaded if isinstance(loaded, dict) else None


def binding_of(row: Any) -> Binding:
    """A ``devices`` row (SQLAlchemy's, or ``DriverRow``) as a binding."""
    return Binding(
        aeui=row.aeui,
        carrier_endpoint_id=row.endpoint_id,
        location_id=row.location_id,
        address=address_from_json(loads(row.address)),
        caller_name=row.caller_name,
        telephone_number=row.telephone_number,
        observed_at=from_us(row.observed_at),
        source=row.source,
        confirmed=bool(row.confirmed),
        latitude=row.latitude,
        longitude=row.longitude,
        version=row.version,
        # A release without ``heard_at`` moves ``applied_at`` only: the later of the two.
        heard_at=from_us(max(row.heard_at or 0, row.applied_at)),
        attested=row.attested_number is not None and row.attested_number == row.telephone_number,
        ordered_at=None if row.ordered_at is None else from_us(row.ordered_at),
        **_coordinates(row),
    )


def _coordinates(row: Any) -> dict[str, Any]:
    """The coordinates' source and accuracy, when written at the row's current version (a
    claim by a release that does not know these columns leaves them behind, stale)."""
    if row.coordinates_version is None or row.coordinates_version != row.version:
        return {}
    return {
        "coordinates_source": row.coordinates_source,
        "accuracy_meters": row.coordinates_accuracy,
    }


def entry_of(
    row: sa.Row[Any], json_of: Callable[[str | None], dict[str, Any] | None] = loads
) -> HistoryEntry:
    """A ``history`` row as an entry (``json_of`` reads its before and after)."""
    return HistoryEntry(
        id=row.id,
        aeui=row.aeui,
        at=from_us(row.at),
        credential=row.credential,
        source=row.source,
        kind=row.kind,
        observed_at=None if row.observed_at is None else from_us(row.observed_at),
        from_location_id=row.from_location_id,
        to_location_id=row.to_location_id,
        before=json_of(row.from_json),
        after=json_of(row.to_json),
    )


def claim_values(binding: Binding, now: int) -> dict[str, Any]:
    """The ``devices`` columns a claim writes (all but the key and the versions)."""
    return {
        "endpoint_id": binding.endpoint_id,
        "location_id": binding.location_id,
        "address": None if binding.address is None else dumps(address_json(binding.address)),
        "caller_name": binding.caller_name,
        "telephone_number": binding.telephone_number,
        "observed_at": to_us(binding.observed_at),
        "source": binding.source,
        "applied_at": now,
        "confirmed": False,
        "latitude": binding.latitude,
        "longitude": binding.longitude,
        "coordinates_source": binding.coordinates_source,
        "coordinates_accuracy": binding.accuracy_meters,
        "heard_at": now,
        "attested_number": binding.telephone_number if binding.attested else None,
        "ordered_at": None if binding.ordered_at is None else to_us(binding.ordered_at),
    }


def refuse_number(binding: Binding, owner: str | None, shared: bool) -> None:
    """``NumberOwned`` unless the binding may use its number (its token attested it)."""
    state = NumberState(binding.telephone_number, owner, shared, EPOCH)
    if not binding.attested and state.refuses(binding.aeui):
        assert owner is not None
        raise NumberOwned(binding.telephone_number, owner)


def refuse_deleted(binding: Binding, deleted_at: int | None) -> None:
    """``DeviceDeleted`` when an admin deleted the device (its tombstone's ``deleted_at``)
    after the binding's newest report: the claim would bring back a device deleted since."""
    if deleted_at is not None and to_us(newest(binding)) < deleted_at:
        raise DeviceDeleted(binding.aeui, from_us(deleted_at))


def device_or_tombstone(aeui: str) -> sa.Select[Any]:
    """One row: ``aeui``'s ``devices`` columns (NULL without a row) and its tombstone's
    ``deleted_at`` (NULL without one)."""
    probe = sa.select(sa.literal(aeui, sa.String(64)).label("probe")).subquery()
    joined = probe.outerjoin(devices, devices.c.aeui == probe.c.probe).outerjoin(
        deleted_devices, deleted_devices.c.aeui == probe.c.probe
    )
    return sa.select(devices, deleted_devices.c.deleted_at).select_from(joined)


async def tombstone_of(connection: AsyncConnection, aeui: str) -> int | None:
    """When an admin deleted ``aeui`` (``keep_tombstone``), if one did."""
    found = await connection.scalar(
        sa.select(deleted_devices.c.deleted_at).where(deleted_devices.c.aeui == aeui)
    )
    return None if found is None else int(found)


async def keep_tombstone(connection: AsyncConnection, aeui: str, deleted_at: int) -> None:
    """Remember that ``aeui`` was deleted at ``deleted_at`` (a later time already kept stays)."""
    insert = insert_for(connection, deleted_devices).values(aeui=aeui, deleted_at=deleted_at)
    kept = deleted_devices.c.deleted_at
    await connection.execute(
        insert.on_conflict_do_update(
            index_elements=[deleted_devices.c.aeui],
            set_={
                "deleted_at": sa.case(
                    (kept > insert.excluded.deleted_at, kept), else_=insert.excluded.deleted_at
                )
            },
        )
    )


def number_taken(binding: Binding, now: int, credential: str) -> dict[str, Any]:
    """The history row of a device becoming a number's first holder."""
    after = {"owner": binding.aeui, "shared": False}
    key = number_key(binding.telephone_number)
    record = HistoryRecord(
        key, HistoryKind.NUMBER_OWNED, credential, binding.source, None, after, None
    )
    return record_values(record, now)


def may_use_number() -> sa.ColumnElement[bool]:
    """``_MAY_USE_NUMBER`` as an expression over ``devices``."""
    other_owner = sa.exists().where(
        numbers.c.telephone_number == devices.c.telephone_number,
        numbers.c.shared.is_(False),
        numbers.c.owner_aeui != devices.c.aeui,
    )
    return sa.or_(devices.c.attested_number == devices.c.telephone_number, ~other_owner)


def last_heard() -> sa.ColumnElement[int]:
    """When the gateway last heard from the device, over ``devices``: the later of
    ``heard_at`` and ``applied_at`` (a release without ``heard_at`` moves ``applied_at`` only)."""
    return sa.case(
        (devices.c.heard_at > devices.c.applied_at, devices.c.heard_at),
        else_=devices.c.applied_at,
    )


def number_state_of(row: Any) -> NumberState:
    return NumberState(
        row.telephone_number, row.owner_aeui, bool(row.shared), from_us(row.updated_at)
    )


def number_change(
    telephone_number: str,
    before: NumberState | None,
    after: NumberState | None,
    now: int,
    credential: str,
) -> dict[str, Any]:
    """The history row of an admin's change to a number's ownership."""
    if after is None:
        kind = HistoryKind.NUMBER_RELEASED
    elif after.shared:
        kind = HistoryKind.NUMBER_SHARED
    else:
        kind = HistoryKind.NUMBER_ASSIGNED
    record = HistoryRecord.by_admin(
        number_key(telephone_number),
        kind,
        credential,
        None if before is None else before.as_json(),
        None if after is None else after.as_json(),
    )
    return record_values(record, now)


def record_values(record: HistoryRecord, now: int) -> dict[str, Any]:
    """The ``history`` row of ``record``, appended at ``now``."""

    def location(value: Mapping[str, Any] | None) -> str | None:
        found = None if value is None else value.get("locationId")
        return found if isinstance(found, str) else None

    return {
        "aeui": record.aeui,
        "at": now,
        "credential": record.credential,
        "source": record.source,
        "kind": str(record.kind),
        "observed_at": None if record.observed_at is None else to_us(record.observed_at),
        "from_location_id": location(record.before),
        "to_location_id": location(record.after),
        "from_json": dumps(record.before),
        "to_json": dumps(record.after),
    }


#: The history kinds that say the carrier took a device's binding. A write a newer claim
#: overtook is recorded unless one of these already records an observation as new as its
#: own: the history never says the carrier took it after a newer one (``Ledger.confirm``).
TAKEN_KINDS = (HistoryKind.APPLIED.value, HistoryKind.REPAIRED.value)
#: A confirmation's ``applied`` record is not appended when the history already has an
#: entry of ``TAKEN_KINDS`` for the same binding of the same observation (a repair that found
#: the carrier holding a write confirms it again after the write's own confirmation): the
#: carrier took it once. SQL over ``r`` (the record, as one row) and ``h`` (the history).
SAME_TAKING_SQL = (
    "EXISTS (SELECT 1 FROM history AS h WHERE h.aeui = r.aeui "  # noqa: S608 - constants
    f"AND h.kind IN ({', '.join(repr(kind) for kind in TAKEN_KINDS)}) "
    "AND h.observed_at = r.observed_at AND h.to_json = r.to_json)"
)


def overtaken_record(record: HistoryRecord | None) -> TypeGuard[HistoryRecord]:
    """Whether ``record``, of a write whose confirmation a newer claim refused, may still be
    recorded: only with its observation time, which places it among the others."""
    return record is not None and record.observed_at is not None


def claimed(binding: Binding, *, version: int, now: int) -> Binding:
    return dataclasses.replace(binding, version=version, confirmed=False, heard_at=from_us(now))


def insert_for(
    on: AsyncConnection | AsyncEngine | sa.Connection, table: sa.Table
) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` with the dialect's ``ON CONFLICT`` clauses."""
    if on.dialect.name == "postgresql":
        # Imported here, where its engine has loaded it already: a gateway on SQLite never
        # loads PostgreSQL's dialect (docs/benchmarks.md, "third pass").
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    return sqlite.insert(table)
