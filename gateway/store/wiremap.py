"""The wiremap's store on the state store's database (PostgreSQL or SQLite).

Its tables (``gateway.store.tables``): ``network_entries`` holds one row per entry (its ID
is derived from its kind and key, so the primary key refuses the same subnet or BSSID twice);
``network_version`` holds one counter, bumped in the transaction of every change, that
replicas poll to know when to reload.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.bandwidth.models import Address, wire_name
from gateway.network.wiremap import Entry, Kind, Stale
from gateway.store.tables import network_entries, network_version

if TYPE_CHECKING:
    from gateway.store.sql import SqlStateStore

_WIRE = {wire_name(f.name): f.name for f in dataclasses.fields(Address)}

#: Rows per INSERT statement of a batch (SQLite's bound-parameter limit is 32 766).
_CHUNK = 1000


def _row(entry: Entry, now: int) -> dict[str, Any]:
    return {
        "id": entry.id,
        "kind": entry.kind.value,
        "key": entry.key,
        "port_id": entry.port_id,
        "address": json.dumps(
            {wire_name(k): v for k, v in dataclasses.asdict(entry.address).items() if v},
            sort_keys=True,
            separators=(",", ":"),
        ),
        "location_id": entry.location_id,
        "description": entry.description,
        "updated_at": now,
    }


def _entry(row: Any) -> Entry:
    data = json.loads(row.address)
    address = Address(**{_WIRE[k]: v for k, v in data.items() if k in _WIRE})
    return Entry(Kind(row.kind), row.key, address, row.port_id, row.location_id, row.description)


async def _version(connection: AsyncConnection) -> int:
    """The wiremap's version (0 before its first change)."""
    return int(await connection.scalar(sa.select(network_version.c.version)) or 0)


class SqlWiremapStore:
    """The wiremap in the state store's database, through its units of work."""

    def __init__(self, state: SqlStateStore) -> None:
        self._state = state

    async def version(self) -> int:
        async with self._state.transaction(read_only=True) as connection:
            return await _version(connection)

    async def load(self) -> tuple[int, list[Entry]]:
        async with self._state.transaction(read_only=True) as connection:
            version = await _version(connection)
            rows = await connection.execute(sa.select(network_entries))
            return version, [_entry(row) for row in rows]

    async def _bump(self, connection: Any) -> int:
        updated = await connection.execute(
            sa.update(network_version)
            .where(network_version.c.id == 1)
            .values(version=network_version.c.version + 1)
            .returning(network_version.c.version)
        )
        found = updated.scalar()
        if found is None:  # the migration inserts the row; recreate it if someone removed it
            await connection.execute(sa.insert(network_version).values(id=1, version=1))
            return 1
        return int(found)

    async def put(self, entries: Sequence[Entry], *, expect: int | None = None) -> int:
        now = time.time_ns() // 1000  # microseconds, as the store's own times
        async with self._state.transaction() as connection:
            # The bump first: its row lock orders this write after any other in flight, and
            # its value says whether one landed since the writer read the map.
            version = await self._bump(connection)
            if expect is not None and version != expect + 1:
                raise Stale
            ids = [entry.id for entry in entries]
            for start in range(0, len(ids), _CHUNK):
                await connection.execute(
                    sa.delete(network_entries).where(
                        network_entries.c.id.in_(ids[start : start + _CHUNK])
                    )
                )
            rows = [_row(entry, now) for entry in entries]
            for start in range(0, len(rows), _CHUNK):
                await connection.execute(sa.insert(network_entries), rows[start : start + _CHUNK])
            return version

    async def delete(self, entry_id: str) -> tuple[int, Entry | None]:
        async with self._state.transaction() as connection:
            gone = (
                await connection.execute(
                    sa.delete(network_entries)
                    .where(network_entries.c.id == entry_id)
                    .returning(*network_entries.c)
                )
            ).first()
            if gone is None:
                return await _version(connection), None
            return await self._bump(connection), _entry(gone)
