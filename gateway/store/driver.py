"""The state store's hottest statements, run on the drivers themselves (asyncpg, aiosqlite).

SQLAlchemy's execution path and a pooled checkout cost more than these statements do
(docs/benchmarks.md), so the batched ``advance`` and ``confirm``, and ``claim`` on SQLite,
run on connections the store keeps, with SQL written here. ``driver_sql=False`` runs the
same operations through SQLAlchemy (``gateway.store.sql``); a test holds the two equal.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.dlr.binding import Binding, newest
from gateway.store.base import Claim, HistoryRecord
from gateway.store.engine import UNAVAILABLE_SQLSTATES, unavailable_as_store_error
from gateway.store.errors import SchemaNotCurrent, StoreUnavailable
from gateway.store.groupcommit import GroupCommit
from gateway.store.kept import KeptConnections
from gateway.store.mapping import (
    SAME_TAKING_SQL,
    TAKEN_KINDS,
    binding_of,
    claim_values,
    claimed,
    number_taken,
    overtaken_record,
    record_values,
    refuse_deleted,
    refuse_number,
    to_us,
)
from gateway.store.migrate import head_revision
from gateway.store.tables import devices, history
from gateway.store.units import run_on_driver_thread

T = TypeVar("T")

#: The group-committed advance, for each driver itself (``_advance_many``): the batch goes
#: as one parameter, arrays ``unnest``\ ed on PostgreSQL, a JSON array on SQLite.
#: A device may use its number unless another device owns it alone and its token did not
#: attest it (``NumberState.refuses``): the advance and the callers' query hold to it.
_MAY_USE_NUMBER = (
    "(d.attested_number = d.telephone_number OR NOT EXISTS (SELECT 1 FROM numbers AS n "
    "WHERE n.telephone_number = d.telephone_number AND NOT n.shared "
    "AND n.owner_aeui <> d.aeui))"
)
#: An advance's time is not older than the device's order (``newest``: the later of the two).
_NOT_OLDER = "d.observed_at <= v.t AND (d.ordered_at IS NULL OR d.ordered_at <= v.t)"
_ADVANCE_ASYNCPG = (
    "UPDATE devices AS d SET observed_at = v.t, heard_at = $4 "  # noqa: S608 - constants
    "FROM unnest($1::varchar[], $2::bigint[], $3::integer[]) AS v(aeui, t, version) "
    "WHERE d.aeui = v.aeui AND (v.version IS NULL OR d.version = v.version) "
    f"AND {_NOT_OLDER} AND {_MAY_USE_NUMBER} "
    "RETURNING d.aeui"
)
_CONFIRM_ASYNCPG = (
    "UPDATE devices AS d SET confirmed = true, checked_at = $3 "
    "FROM unnest($1::varchar[], $2::integer[]) AS v(aeui, version) "
    "WHERE d.aeui = v.aeui AND d.version = v.version "
    "RETURNING d.aeui"
)
_CONFIRM_SQLITE3 = (
    "UPDATE devices SET confirmed = 1, checked_at = ? "
    "FROM (SELECT json_extract(value, '$[0]') AS aeui, json_extract(value, '$[1]') AS version "
    "FROM json_each(?)) AS v "
    "WHERE devices.aeui = v.aeui AND devices.version = v.version "
    "RETURNING aeui"
)
# The claim's statements on SQLite (``_claim_sqlite``), written from the tables' own column
# names (constants of this package, never input).
_DEVICE_COLUMNS = tuple(column.name for column in devices.c)
_CLAIM_COLUMNS = (
    "endpoint_id",
    "location_id",
    "address",
    "caller_name",
    "telephone_number",
    "observed_at",
    "source",
    "applied_at",
    "confirmed",
    "latitude",
    "longitude",
    "coordinates_source",
    "coordinates_accuracy",
    "heard_at",
    "attested_number",
    "ordered_at",
    "version",
    "coordinates_version",
)
_HISTORY_COLUMNS = tuple(c.name for c in history.c if c.name != "id")
_SELECT_DEVICE_SQLITE3 = f"SELECT {', '.join(_DEVICE_COLUMNS)} FROM devices WHERE aeui = ?"  # noqa: S608
_INSERT_DEVICE_SQLITE3 = (
    f"INSERT INTO devices (aeui, {', '.join(_CLAIM_COLUMNS)}) "  # noqa: S608
    f"VALUES (?{', ?' * len(_CLAIM_COLUMNS)})"
)
_UPDATE_DEVICE_SQLITE3 = (
    f"UPDATE devices SET {', '.join(f'{c} = ?' for c in _CLAIM_COLUMNS)} "  # noqa: S608
    "WHERE aeui = ?"
)
#: History records appended as they are (the outbox's ``write_events``: the call-time
#: query's), as ``sqlite3``'s ``executemany``: through SQLAlchemy, its parameter handling
#: cost more CPU than the insert.
APPEND_HISTORY_SQLITE3 = (
    f"INSERT INTO history ({', '.join(_HISTORY_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(f':{name}' for name in _HISTORY_COLUMNS)})"
)
#: A confirmation's history record, unless it is an ``applied`` one the history already has.
_INSERT_HISTORY_SQLITE3 = (
    f"INSERT INTO history ({', '.join(_HISTORY_COLUMNS)}) "  # noqa: S608
    f"SELECT r.* FROM (SELECT {', '.join(f'? AS {name}' for name in _HISTORY_COLUMNS)}) AS r "
    f"WHERE NOT (r.kind = 'applied' AND {SAME_TAKING_SQL})"
)
#: The confirmation with the history of what the carrier took, in one statement: the
#: records of the devices confirmed (``$4``…``$13``: the history's columns, as arrays).
_CONFIRM_RECORDING_ASYNCPG = (
    f"WITH c AS ({_CONFIRM_ASYNCPG}), h AS ("  # noqa: S608 - constants of this module
    f"INSERT INTO history ({', '.join(_HISTORY_COLUMNS)}) "
    "SELECT r.* FROM unnest($4::varchar[], $5::bigint[], $6::varchar[], $7::varchar[], "
    "$8::varchar[], $9::bigint[], $10::varchar[], $11::varchar[], $12::text[], $13::text[]) "
    f"AS r({', '.join(_HISTORY_COLUMNS)}) WHERE r.aeui IN (SELECT aeui FROM c) "
    f"AND NOT (r.kind = 'applied' AND {SAME_TAKING_SQL})) "
    "SELECT aeui FROM c"
)
#: A write a newer claim overtook, that the carrier took (``record_overtaken`` in
#: ``gateway.store.portable`` is the same): its history record is appended unless an entry
#: of ``TAKEN_KINDS`` records an observation as new (``r``: the record, as one row).
_NO_NEWER_ENTRY = (
    "NOT EXISTS (SELECT 1 FROM history AS h WHERE h.aeui = r.aeui "  # noqa: S608 - constants
    f"AND h.kind IN ({', '.join(repr(kind) for kind in TAKEN_KINDS)}) "
    "AND h.observed_at >= r.observed_at)"
)
#: On SQLite, in the confirmation's ``BEGIN IMMEDIATE`` transaction: the record's columns,
#: then the version it confirmed (the device's row must be at a newer one).
_RECORD_OVERTAKEN_SQLITE3 = (
    f"INSERT INTO history ({', '.join(_HISTORY_COLUMNS)}) "  # noqa: S608 - constants
    f"SELECT r.* FROM (SELECT {', '.join(f'? AS {name}' for name in _HISTORY_COLUMNS)}) AS r "
    "WHERE EXISTS (SELECT 1 FROM devices AS d WHERE d.aeui = r.aeui AND d.version > ?) "
    f"AND {_NO_NEWER_ENTRY}"
)
#: On PostgreSQL, in a transaction of its own: the device's row is locked first (a newer
#: version, else nothing is appended), so that whoever confirms or records it meanwhile
#: goes before or after this, and the insert (a statement of its own, so it sees what went
#: before) finds what they recorded.
_LOCK_OVERTAKEN_ASYNCPG = "SELECT 1 FROM devices WHERE aeui = $1 AND version > $2 FOR UPDATE"
_HISTORY_TYPES_ASYNCPG = tuple(
    "bigint"
    if isinstance(c.type, sa.BigInteger)
    else "text"
    if isinstance(c.type, sa.Text)
    else "varchar"
    for c in history.c
    if c.name != "id"
)
_RECORD_OVERTAKEN_ASYNCPG = (
    f"INSERT INTO history ({', '.join(_HISTORY_COLUMNS)}) "  # noqa: S608 - constants
    "SELECT r.* FROM (VALUES ("
    + ", ".join(f"${i}::{kind}" for i, kind in enumerate(_HISTORY_TYPES_ASYNCPG, start=1))
    + f")) AS r({', '.join(_HISTORY_COLUMNS)}) WHERE {_NO_NEWER_ENTRY}"
)
_SELECT_NUMBER_SQLITE3 = "SELECT owner_aeui, shared FROM numbers WHERE telephone_number = ?"
_SELECT_DELETED_SQLITE3 = "SELECT deleted_at FROM deleted_devices WHERE aeui = ?"
_INSERT_NUMBER_SQLITE3 = (
    "INSERT INTO numbers (telephone_number, owner_aeui, shared, updated_at) VALUES (?, ?, 0, ?)"
)
_ADVANCE_SQLITE3 = (
    "UPDATE devices AS d SET observed_at = v.t, heard_at = ? "  # noqa: S608 - constants
    "FROM (SELECT json_extract(value, '$[0]') AS aeui, json_extract(value, '$[1]') AS t, "
    "json_extract(value, '$[2]') AS version FROM json_each(?)) AS v "
    "WHERE d.aeui = v.aeui AND (v.version IS NULL OR d.version = v.version) "
    f"AND {_NOT_OLDER} AND {_MAY_USE_NUMBER} "
    "RETURNING aeui"  # SQLite's RETURNING takes no table names
)


@contextlib.contextmanager
def _driver_errors() -> Iterator[None]:
    """What the drivers raise, as the store's errors (``unavailable_as_store_error`` does
    it for what comes through SQLAlchemy)."""
    try:
        yield
    except (StoreUnavailable, SchemaNotCurrent):
        raise
    except Exception as exc:
        text = str(exc)
        state = getattr(exc, "sqlstate", None)
        if state == "42P01" or "no such table" in text:
            raise SchemaNotCurrent(None, head_revision()) from exc
        unavailable = isinstance(exc, OSError | TimeoutError | sqlite3.OperationalError) or (
            isinstance(state, str) and state.startswith(UNAVAILABLE_SQLSTATES)
        )
        if unavailable or _is_asyncpg_disconnect(exc):
            raise StoreUnavailable(
                f"the state store is unavailable: {type(exc).__name__}: "
                f"{text.splitlines()[0] if text else ''}"
            ) from exc
        raise


def _is_asyncpg_disconnect(exc: BaseException) -> bool:
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    return isinstance(
        exc,
        asyncpg.exceptions.InterfaceError
        | asyncpg.exceptions.ConnectionDoesNotExistError
        | asyncpg.exceptions.PostgresConnectionError,
    )


async def _in_thread(driver: Any, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work(connection)`` on aiosqlite's thread, with its ``sqlite3`` connection: the
    statements of a transaction in one hand-over to that thread and back, not one each
    (a hand-over costs a thread switch and a wake-up of the event loop: more CPU than the
    statement)."""
    result: T = await driver._execute(lambda: work(driver._conn))
    return result


def _immediate(work: Callable[[sqlite3.Connection], T], connection: sqlite3.Connection) -> T:
    """``work`` between ``BEGIN IMMEDIATE`` and ``COMMIT`` (the single writer's lock: nothing
    can come between its reads and its writes), rolled back when it raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
        connection.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            connection.execute("ROLLBACK")
        raise
    return result


def _hold_number_sqlite(
    connection: sqlite3.Connection, binding: Binding, now: int, credential: str
) -> None:
    """``SqlStateStore._hold_number`` inside ``_claim_sqlite``'s transaction."""
    number = binding.telephone_number
    rows = connection.execute(_SELECT_NUMBER_SQLITE3, (number,)).fetchall()
    if rows:
        refuse_number(binding, rows[0][0], bool(rows[0][1]))
        return
    connection.execute(_INSERT_NUMBER_SQLITE3, (number, binding.aeui, now))
    entry = number_taken(binding, now, credential)
    connection.execute(_INSERT_HISTORY_SQLITE3, tuple(entry[n] for n in _HISTORY_COLUMNS))


def _claim_sqlite3(
    connection: sqlite3.Connection, binding: Binding, now: int, credential: str, check: bool
) -> Claim:
    """``_claim_sqlite``'s statements, in ``run_driver_unit``'s transaction."""
    aeui = binding.aeui
    rows = connection.execute(_SELECT_DEVICE_SQLITE3, (aeui,)).fetchall()
    previous = binding_of(DriverRow(rows[0])) if rows else None
    if previous is not None and newest(previous) > newest(binding):
        return Claim(False, previous, previous)  # nothing written
    if previous is None:
        deleted = connection.execute(_SELECT_DELETED_SQLITE3, (aeui,)).fetchall()
        refuse_deleted(binding, deleted[0][0] if deleted else None)
    if check:
        _hold_number_sqlite(connection, binding, now, credential)
    version = 1 if previous is None else previous.version + 1
    values = claim_values(binding, now)
    values.update(version=version, coordinates_version=version)
    row = tuple(values[name] for name in _CLAIM_COLUMNS)
    if previous is None:
        connection.execute(_INSERT_DEVICE_SQLITE3, (aeui, *row))
    else:
        connection.execute(_UPDATE_DEVICE_SQLITE3, (*row, aeui))
    return Claim(True, previous, claimed(binding, version=version, now=now))


def _confirm_recording_sqlite3(
    connection: sqlite3.Connection,
    now: int,
    payload: str,
    entries: dict[str, tuple[Any, ...]],
    overtaken: dict[str, int],
) -> list[Any]:
    """``_confirm_sqlite``'s statements with history records, in ``run_driver_unit``'s
    transaction; then those of the ``overtaken`` candidates (device: version) it did not
    confirm."""
    rows = connection.execute(_CONFIRM_SQLITE3, (now, payload)).fetchall()
    confirmed = _recorded(rows, entries)
    if confirmed:
        connection.executemany(_INSERT_HISTORY_SQLITE3, confirmed)
    late = _unconfirmed(rows, overtaken)
    if late:
        connection.executemany(
            _RECORD_OVERTAKEN_SQLITE3, [(*entries[aeui], version) for aeui, version in late]
        )
    return rows


def _recorded(rows: list[Any], entries: dict[str, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The history rows of the confirmed devices (a confirmation's rows name them)."""
    return [entries[row[0]] for row in rows if row[0] in entries]


def _unconfirmed(rows: list[Any], overtaken: dict[str, int]) -> list[tuple[str, int]]:
    """The candidates (device: version) a confirmation's rows do not name, in batch order
    (none, in the common case that every one was confirmed)."""
    confirmed = {row[0] for row in rows}
    return [(aeui, version) for aeui, version in overtaken.items() if aeui not in confirmed]


async def _record_overtaken_asyncpg(
    driver: Any, entry: tuple[Any, ...], version: int, command_timeout: float
) -> None:
    """``_RECORD_OVERTAKEN_ASYNCPG`` under ``_LOCK_OVERTAKEN_ASYNCPG``, in a transaction of
    its own that commits durably (the kept connections do not wait for the WAL flush): the
    entry has no second chance, as a confirmation has with the reconciler. One device at a
    time: it never holds one device's lock while waiting for another's."""
    async with driver.transaction():
        timeout = command_timeout
        await driver.execute("SET LOCAL synchronous_commit TO on", timeout=timeout)
        if await driver.fetchval(_LOCK_OVERTAKEN_ASYNCPG, entry[0], version, timeout=timeout):
            await driver.execute(_RECORD_OVERTAKEN_ASYNCPG, *entry, timeout=timeout)


class _Confirming(NamedTuple):
    """A batch of confirmations as the driver paths take it: the devices and their claimed
    versions, the time, the history columns of the records to append (by device), and the
    devices a newer claim may have overtaken (device: version)."""

    aeuis: list[str]
    versions: list[int]
    now: int
    entries: dict[str, tuple[Any, ...]]
    overtaken: dict[str, int]


class DriverRow:
    """A ``devices`` row from the driver, read by column name as ``binding_of`` reads one."""

    __slots__ = ("_values",)

    def __init__(self, values: Sequence[Any]) -> None:
        self._values = dict(zip(_DEVICE_COLUMNS, values, strict=True))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


class DriverPaths(KeptConnections):
    """The driver-level operations of ``SqlStateStore`` (a base class of it)."""

    _advances: GroupCommit[str, tuple[int, int | None], bool]
    _confirms: GroupCommit[str, tuple[int, HistoryRecord | None], bool]
    _now: Callable[[], int]
    #: False: every operation goes through SQLAlchemy (``PortablePaths``), the reference
    #: these driver paths are tested against.
    driver_sql: bool

    async def _advance_portable(
        self, batch: Sequence[tuple[str, tuple[int, int | None]]]
    ) -> set[str]:
        raise NotImplementedError

    async def _confirm_portable(
        self, batch: Sequence[tuple[str, tuple[int, HistoryRecord | None]]], now: int
    ) -> set[str]:
        raise NotImplementedError

    def transaction(
        self, *, read_only: bool = False
    ) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        raise NotImplementedError

    async def run_unit(self, work: Callable[[sa.Connection], T]) -> T:
        """``work`` in one transaction, given a synchronous connection; its result. On SQLite
        (``driver_sql``) the whole unit is one hand-over to the driver's thread
        (``gateway.store.units``), not one per statement; elsewhere the same statements run
        through ``AsyncConnection.run_sync``, so the two paths cannot disagree."""
        if self.dialect == "sqlite" and self.driver_sql:
            async with self._kept() as (driver, _):
                # SQLAlchemy's errors (unavailable_as_store_error), then the driver's.
                with _driver_errors(), unavailable_as_store_error():
                    return await _in_thread(driver, lambda _: run_on_driver_thread(driver, work))
        async with self.transaction() as connection:
            return await connection.run_sync(work)

    @property
    def uses_sqlite3(self) -> bool:
        """Whether ``run_driver_unit`` runs (SQLite, with ``driver_sql``)."""
        return self.dialect == "sqlite" and self.driver_sql

    async def run_driver_unit(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in one ``BEGIN IMMEDIATE`` transaction on SQLite's own connection, on
        the driver's thread: statements written for ``sqlite3``, without SQLAlchemy's
        execution path (only where ``uses_sqlite3``)."""
        async with self._kept() as (driver, _):
            with _driver_errors():
                return await _in_thread(driver, functools.partial(_immediate, work))

    async def _claim_sqlite(self, binding: Binding, *, credential: str, check: bool) -> Claim:
        """``claim`` on SQLite, as the statements run on the connection the store keeps: one
        ``BEGIN IMMEDIATE`` transaction (the single writer's lock: no other claim can come
        between the read and the write), without SQLAlchemy's execution path, which costs
        more CPU than the claim's statements (docs/benchmarks.md)."""
        work = functools.partial(
            _claim_sqlite3, binding=binding, now=self._now(), credential=credential, check=check
        )
        return await self.run_driver_unit(work)

    async def confirm(
        self, aeui: str, version: int, *, record: HistoryRecord | None = None
    ) -> bool:
        return await self._confirms.submit(aeui, (version, record))

    async def _confirm_many(
        self, batch: Sequence[tuple[str, tuple[int, HistoryRecord | None]]]
    ) -> dict[str, bool]:
        """Confirm many claims (each device at most once) in one statement, on the kept
        connections (autocommit; see ``_advance_many``), with the history records of the rows
        confirmed and of those a newer claim overtook (``Ledger.confirm``)."""
        # On PostgreSQL it commits asynchronously like an advance: a crash may forget the
        # last moment of confirmations and their records (the same statement); the
        # reconciler then finds those bindings unconfirmed, sees the carrier holding them
        # and records them: extra reads, never a wrong binding. The overtaken rows' records
        # are appended after, in the same transaction on SQLite, in one of their own each on
        # PostgreSQL (``_record_overtaken_asyncpg``); an error there fails the batch.
        if not batch:
            return {}
        now = self._now()  # the gateway just saw the carrier take it: as good as a check
        aeuis = [aeui for aeui, _ in batch]
        versions = [version for _, (version, _record) in batch]
        entries = {
            aeui: tuple(record_values(record, now)[name] for name in _HISTORY_COLUMNS)
            for aeui, (_version, record) in batch
            if record is not None
        }
        if not self.driver_sql:
            confirmed = await self._confirm_portable(batch, now)
            return {aeui: aeui in confirmed for aeui in aeuis}
        # The candidates, should a newer claim have overtaken them (device: version).
        overtaken = {aeui: version for aeui, (version, record) in batch if overtaken_record(record)}
        confirming = _Confirming(aeuis, versions, now, entries, overtaken)
        with _driver_errors():
            if self.dialect == "postgresql":
                rows = await self._confirm_postgresql(confirming)
            else:
                rows = await self._confirm_sqlite(confirming)
        confirmed = {row[0] for row in rows}
        return {aeui: aeui in confirmed for aeui in aeuis}

    async def _confirm_postgresql(self, confirming: _Confirming) -> list[Any]:
        aeuis, versions, now, entries, overtaken = confirming
        if not entries:
            return await self._on_kept_postgresql(_CONFIRM_ASYNCPG, aeuis, versions, now)
        columns = [list(column) for column in zip(*entries.values(), strict=True)]
        async with self._kept_postgresql() as driver:
            rows: list[Any] = await driver.fetch(
                _CONFIRM_RECORDING_ASYNCPG,
                aeuis,
                versions,
                now,
                *columns,
                timeout=self._command_timeout,
            )
            for aeui, version in _unconfirmed(rows, overtaken):
                await _record_overtaken_asyncpg(
                    driver, entries[aeui], version, self._command_timeout
                )
            return rows

    async def _confirm_sqlite(self, confirming: _Confirming) -> list[Any]:
        aeuis, versions, now, entries, overtaken = confirming
        payload = json.dumps([list(pair) for pair in zip(aeuis, versions, strict=True)])
        if not entries:
            return await self._on_kept_sqlite(_CONFIRM_SQLITE3, (now, payload))
        work = functools.partial(
            _confirm_recording_sqlite3,
            now=now,
            payload=payload,
            entries=entries,
            overtaken=overtaken,
        )
        return await self.run_driver_unit(work)

    async def advance(
        self, aeui: str, observed_at: datetime, *, version: int | None = None
    ) -> bool:
        return await self._advances.submit(aeui, (to_us(observed_at), version))

    async def _advance_many(
        self, batch: Sequence[tuple[str, tuple[int, int | None]]]
    ) -> dict[str, bool]:
        if not batch:
            return {}
        if not self.driver_sql:
            moved = await self._advance_portable(batch)
            return {aeui: aeui in moved for aeui, _ in batch}
        # The hottest statement there is (every unchanged report), so it goes to the driver
        # itself: SQLAlchemy's execution path and a pooled checkout with its pre-ping cost
        # several times the statement's own CPU (docs/benchmarks.md).
        # One UPDATE is atomic on its own: it runs in autocommit, no BEGIN/COMMIT.
        #
        # On PostgreSQL it commits asynchronously (``synchronous_commit = off``, on the
        # connections kept for it only): the new time is visible to every replica at once,
        # as the order across replicas needs, and durable within the WAL writer's delay
        # (~0.6 s at most); a database crash may forget that last moment of *unchanged*
        # reports' times, never a change of binding (claims commit synchronously). Waiting
        # for each flush instead bounds unchanged reports by the disk's fsync rate.
        with _driver_errors():
            now = self._now()
            if self.dialect == "postgresql":
                rows = await self._on_kept_postgresql(
                    _ADVANCE_ASYNCPG,
                    [aeui for aeui, _ in batch],
                    [t for _, (t, _version) in batch],
                    [version for _, (_t, version) in batch],
                    now,
                )
            else:
                payload = json.dumps([[aeui, t, v] for aeui, (t, v) in batch])
                rows = await self._on_kept_sqlite(_ADVANCE_SQLITE3, (now, payload))
        moved = {row[0] for row in rows}
        return {aeui: aeui in moved for aeui, _ in batch}
