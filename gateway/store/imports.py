"""Bulk imports' progress in the state store: one row per import, one per line applied.

Its own tables (``gateway.store.tables``), on the state store's engine, so a
crash or Ctrl-C loses nothing: an import resumed (``--resume ID``) skips the lines recorded
here. The device ledger stays the truth of what the carrier holds; a line applied but not
yet recorded here costs no carrier call when it runs again (the pipeline finds it unchanged).
Also the reads ``export`` needs: the devices' bindings and the locations the gateway holds.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.base import NumberState
from gateway.store.mapping import from_us, insert_for
from gateway.store.sql import SqlStateStore
from gateway.store.tables import devices, import_rows, imports, locations, numbers


def _chunks(values: Sequence[str], size: int = 500) -> Iterable[list[str]]:
    """``values`` a few hundred at a time: a statement's parameters are bounded (SQLite)."""
    unique = sorted(set(values))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


def now_us() -> int:
    """Now in microseconds since the epoch: the clock of imports' ``updated_at``."""
    return time.time_ns() // 1000


async def _touched(connection: AsyncConnection, import_id: str, lease: int | None) -> int | None:
    """The import marked alive: its new ``updated_at``. With ``lease`` (the ``updated_at`` its
    run last wrote), only while it is still that: ``None`` once another run has claimed it."""
    now = now_us() if lease is None else max(now_us(), lease + 1)
    where = [imports.c.import_id == import_id]
    if lease is not None:
        where += [imports.c.updated_at == lease, imports.c.state == "running"]
    changed = await connection.execute(imports.update().where(*where).values(updated_at=now))
    return now if changed.rowcount else None


@dataclass(frozen=True, slots=True)
class ImportRecord:
    """An import's row (``imports``: one field a column), its report parsed."""

    import_id: str
    kind: str
    digest: str
    total: int
    state: str
    created_at: int
    updated_at: int
    report: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class LineDone:
    line: int
    outcome: str
    detail: str | None = None


class ImportStore:
    """Imports' progress, over the state store's engine (PostgreSQL or SQLite)."""

    def __init__(self, store: SqlStateStore) -> None:
        self.store = store

    @classmethod
    def of(cls, store: object) -> ImportStore:
        """Over the state store's engine and its transactions (SQLite's one-writer turn)."""
        if not isinstance(store, SqlStateStore):
            raise TypeError("imports need a SQL state store")
        return cls(store)

    async def create(self, import_id: str, kind: str, digest: str, total: int) -> None:
        now = now_us()
        async with self._begin() as connection:
            await connection.execute(
                imports.insert().values(
                    import_id=import_id,
                    kind=kind,
                    digest=digest,
                    total=total,
                    state="running",
                    created_at=now,
                    updated_at=now,
                    report=None,
                )
            )

    async def get(self, import_id: str) -> ImportRecord | None:
        async with self._begin() as connection:
            row = (
                await connection.execute(imports.select().where(imports.c.import_id == import_id))
            ).first()
        if row is None:
            return None
        report = None if row.report is None else json.loads(row.report)
        return ImportRecord(**{**row._mapping, "report": report})

    async def done(self, import_id: str) -> dict[int, LineDone]:
        """The lines already applied (or refused for good), by line number."""
        async with self._begin() as connection:
            rows = await connection.execute(
                sa.select(import_rows.c.line, import_rows.c.outcome, import_rows.c.detail).where(
                    import_rows.c.import_id == import_id
                )
            )
            return {r.line: LineDone(r.line, r.outcome, r.detail) for r in rows}

    async def progress(
        self, import_id: str, failures: int
    ) -> tuple[dict[str, int], list[LineDone]]:
        """Lines done so far by outcome, and the first ``failures`` failed lines."""
        async with self._begin() as connection:
            counted = await connection.execute(
                sa.select(import_rows.c.outcome, sa.func.count())
                .where(import_rows.c.import_id == import_id)
                .group_by(import_rows.c.outcome)
            )
            outcomes = {outcome: int(n) for outcome, n in counted}
            failed = await connection.execute(
                sa.select(import_rows.c.line, import_rows.c.outcome, import_rows.c.detail)
                .where(import_rows.c.import_id == import_id, import_rows.c.outcome == "failed")
                .order_by(import_rows.c.line)
                .limit(failures)
            )
            return outcomes, [LineDone(r.line, r.outcome, r.detail) for r in failed]

    async def record(
        self, import_id: str, lines: Sequence[LineDone], lease: int | None = None
    ) -> int | None:
        """Lines finished: one statement for a batch (a line recorded twice keeps its first);
        the import marked alive as ``touch`` marks it."""
        values = [
            {"import_id": import_id, "line": d.line, "outcome": d.outcome, "detail": d.detail}
            for d in lines
        ]
        async with self._begin() as connection:
            if values:
                statement = insert_for(connection, import_rows).on_conflict_do_nothing()
                await connection.execute(statement, values)
            return await _touched(connection, import_id, lease)

    async def resume(self, import_id: str, stale_after_us: int) -> int | None:
        """A run of the import begins again (``running``, the last run's report gone), unless
        a run of it gave a sign of life within ``stale_after_us``: that run's last sign of
        life, and nothing changed. One conditional statement: of two claims at once, one wins.
        """
        now = now_us()
        alive = sa.and_(imports.c.state == "running", imports.c.updated_at > now - stale_after_us)
        async with self._begin() as connection:
            claimed = await connection.execute(
                imports.update()
                .where(imports.c.import_id == import_id, sa.not_(alive))
                .values(state="running", updated_at=now, report=None)
            )
            if claimed.rowcount:
                return None
            last: int | None = await connection.scalar(
                sa.select(imports.c.updated_at).where(imports.c.import_id == import_id)
            )
            return now if last is None else last

    async def touch(self, import_id: str, lease: int | None = None) -> int | None:
        """The import's run is alive (no line finished lately: ``record`` says so too): its
        new ``updated_at``, the run's next ``lease``; ``None``: another run holds it now."""
        async with self._begin() as connection:
            return await _touched(connection, import_id, lease)

    async def finish(
        self, import_id: str, state: str, report: dict[str, Any], lease: int | None = None
    ) -> bool:
        """The run's end and report; with ``lease``, only while no other run has claimed it."""
        where = [imports.c.import_id == import_id]
        if lease is not None:
            where.append(imports.c.updated_at == lease)
        async with self._begin() as connection:
            changed = await connection.execute(
                imports.update()
                .where(*where)
                .values(state=state, updated_at=now_us(), report=json.dumps(report, sort_keys=True))
            )
        return bool(changed.rowcount)

    # -- what validation and the plan read, many rows a statement ----------------------------

    async def numbers(self, telephone_numbers: Sequence[str]) -> dict[str, NumberState]:
        """Who may use each of these numbers (those with a record)."""
        found: dict[str, NumberState] = {}
        for chunk in _chunks(telephone_numbers):
            query = sa.select(numbers).where(numbers.c.telephone_number.in_(chunk))
            async with self._begin() as connection:
                for r in await connection.execute(query):
                    found[r.telephone_number] = NumberState(
                        r.telephone_number, r.owner_aeui, bool(r.shared), from_us(r.updated_at)
                    )
        return found

    async def bindings(self, aeuis: Sequence[str]) -> dict[str, tuple[str, str, str, bool]]:
        """Each device's desired location, caller name, number and whether it is confirmed."""
        found: dict[str, tuple[str, str, str, bool]] = {}
        for chunk in _chunks(aeuis):
            query = sa.select(
                devices.c.aeui,
                devices.c.location_id,
                devices.c.caller_name,
                devices.c.telephone_number,
                devices.c.confirmed,
            ).where(devices.c.aeui.in_(chunk))
            async with self._begin() as connection:
                for r in await connection.execute(query):
                    found[r.aeui] = (
                        r.location_id,
                        r.caller_name,
                        r.telephone_number,
                        bool(r.confirmed),
                    )
        return found

    async def known_locations(self, location_ids: Sequence[str]) -> set[str]:
        """Those of ``location_ids`` the gateway knows the carrier holds."""
        found: set[str] = set()
        for chunk in _chunks(location_ids):
            query = sa.select(locations.c.location_id).where(locations.c.location_id.in_(chunk))
            async with self._begin() as connection:
                found.update(r.location_id for r in await connection.execute(query))
        return found

    # -- what export reads ------------------------------------------------------------------

    async def devices(self) -> list[dict[str, Any]]:
        """Every device's desired binding, by AEUI (with its address, when it has one)."""
        query = sa.select(
            devices.c.aeui,
            devices.c.caller_name,
            devices.c.telephone_number,
            devices.c.location_id,
            devices.c.address,
        ).order_by(devices.c.aeui)
        async with self._begin() as connection:
            return [dict(r._mapping) for r in await connection.execute(query)]

    async def locations(self, location_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The locations the gateway knows the carrier holds, by ID (all, or those given)."""
        query = sa.select(locations.c.location_id, locations.c.address).order_by(
            locations.c.location_id
        )
        if location_ids is not None:
            query = query.where(locations.c.location_id.in_(list(location_ids)))
        async with self._begin() as connection:
            return [dict(r._mapping) for r in await connection.execute(query)]

    def _begin(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return self.store.transaction()
