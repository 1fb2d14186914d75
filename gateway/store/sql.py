"""The state store on SQLAlchemy Core: one implementation for PostgreSQL and SQLite.

Dialect-specific SQL only where the dialects differ: ``INSERT .. ON CONFLICT`` comes from
each dialect's ``insert``, and the group-committed ``advance`` joins a batch passed as one
parameter (``unnest`` of arrays on PostgreSQL, ``json_each`` on SQLite). On PostgreSQL, row
locks (``FOR UPDATE``, ``SKIP LOCKED`` for leases) keep replicas from racing; on SQLite,
``BEGIN IMMEDIATE`` makes every write transaction exclusive, and the store runs one unit of
work at a time on its single connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.base import (
    Claim,
    HistoryEntry,
    HistoryKind,
    HistoryRecord,
    NumberOwned,
    NumberState,
    StateStore,
    StoredBinding,
    number_key,
)
from gateway.store.engine import (
    READ_ONLY,
    UNAVAILABLE_SQLSTATES,
    is_missing_table,
    make_engine,
    unavailable_as_store_error,
)
from gateway.store.errors import SchemaNotCurrent, StoreUnavailable
from gateway.store.groupcommit import GroupCommit
from gateway.store.migrate import (
    ahead_but_usable,
    current_revision,
    head_revision,
    upgrade_engine,
)
from gateway.store.tables import devices, history, locations, numbers
from gateway.store.urls import ensure_directory, is_memory, is_sqlite, parse

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
PURGE_CHUNK = 5_000
#: PostgreSQL: group-committed advance batches in flight at once (connections kept for them).
ADVANCE_CONCURRENCY = 4
#: PostgreSQL: group-committed confirmation batches in flight at once (on the same kept
#: connections: at most ``KEPT_CONNECTIONS`` in all).
CONFIRM_CONCURRENCY = 2
KEPT_CONNECTIONS = ADVANCE_CONCURRENCY + CONFIRM_CONCURRENCY


def to_us(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is required, not {moment!r}")
    return (moment - EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def _dumps(value: Mapping[str, Any] | None) -> str | None:
    """Compact JSON, keys sorted, by orjson (~10x faster: a move writes several of these);
    what orjson refuses (integers beyond 64 bits, lone surrogates) goes through ``json``."""
    if value is None:
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _loads(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    loaded = json.loads(value)
    return loaded if isinstance(loaded, dict) else None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _binding(row: Any) -> StoredBinding:
    """A ``devices`` row (SQLAlchemy's, or ``_Row``) as a binding."""
    return StoredBinding(
        aeui=row.aeui,
        endpoint_id=row.endpoint_id,
        location_id=row.location_id,
        address=_loads(row.address),
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


def _entry(row: sa.Row[Any]) -> HistoryEntry:
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
        before=_loads(row.from_json),
        after=_loads(row.to_json),
    )


#: The group-committed advance, for each driver itself (``_advance_many``): the batch goes
#: as one parameter, arrays ``unnest``\ ed on PostgreSQL, a JSON array on SQLite.
#: A device may use its number unless another device owns it alone and its token did not
#: attest it (``NumberState.refuses``): the advance and the callers' query hold to it.
_MAY_USE_NUMBER = (
    "(d.attested_number = d.telephone_number OR NOT EXISTS (SELECT 1 FROM numbers AS n "
    "WHERE n.telephone_number = d.telephone_number AND NOT n.shared "
    "AND n.owner_aeui <> d.aeui))"
)
_ADVANCE_ASYNCPG = (
    "UPDATE devices AS d SET observed_at = v.t, heard_at = $4 "  # noqa: S608 - constants
    "FROM unnest($1::varchar[], $2::bigint[], $3::integer[]) AS v(aeui, t, version) "
    "WHERE d.aeui = v.aeui AND (v.version IS NULL OR d.version = v.version) "
    f"AND d.observed_at <= v.t AND {_MAY_USE_NUMBER} "
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
_INSERT_HISTORY_SQLITE3 = (
    f"INSERT INTO history ({', '.join(_HISTORY_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _HISTORY_COLUMNS)})"
)
#: The confirmation with the history of what the carrier took, in one statement: the
#: records of the devices confirmed (``$4``…``$13``: the history's columns, as arrays).
_CONFIRM_RECORDING_ASYNCPG = (
    f"WITH c AS ({_CONFIRM_ASYNCPG}), h AS ("  # noqa: S608 - constants of this module
    f"INSERT INTO history ({', '.join(_HISTORY_COLUMNS)}) "
    "SELECT r.* FROM unnest($4::varchar[], $5::bigint[], $6::varchar[], $7::varchar[], "
    "$8::varchar[], $9::bigint[], $10::varchar[], $11::varchar[], $12::text[], $13::text[]) "
    f"AS r({', '.join(_HISTORY_COLUMNS)}) WHERE r.aeui IN (SELECT aeui FROM c)) "
    "SELECT aeui FROM c"
)
_SELECT_NUMBER_SQLITE3 = "SELECT owner_aeui, shared FROM numbers WHERE telephone_number = ?"
_INSERT_NUMBER_SQLITE3 = (
    "INSERT INTO numbers (telephone_number, owner_aeui, shared, updated_at) VALUES (?, ?, 0, ?)"
)
_ADVANCE_SQLITE3 = (
    "UPDATE devices AS d SET observed_at = v.t, heard_at = ? "  # noqa: S608 - constants
    "FROM (SELECT json_extract(value, '$[0]') AS aeui, json_extract(value, '$[1]') AS t, "
    "json_extract(value, '$[2]') AS version FROM json_each(?)) AS v "
    "WHERE d.aeui = v.aeui AND (v.version IS NULL OR d.version = v.version) "
    f"AND d.observed_at <= v.t AND {_MAY_USE_NUMBER} "
    "RETURNING aeui"  # SQLite's RETURNING takes no table names
)


def _whole(
    method: Callable[Concatenate[SqlStateStore, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[SqlStateStore, P], Coroutine[Any, Any, T]]:
    """Run the method's unit of work to its end even when its caller is cancelled.

    A caller gives up (a report's deadline) by being cancelled; cancelling a statement
    part-way makes SQLAlchemy invalidate its connection, and an in-memory SQLite database
    lives only as long as its one connection. So the work runs as its own task: a
    cancelled caller stops waiting, the transaction commits or rolls back whole.
    """

    async def detached(store: SqlStateStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await store._detach(method(store, *args, **kwargs))

    functools.update_wrapper(detached, method)
    return detached


class SqlStateStore(StateStore):
    def __init__(
        self,
        engine: AsyncEngine,
        url: URL,
        *,
        clock: Callable[[], datetime] | None = None,
        ping_timeout: float = 2.0,
        max_batch: int = 500,
        linger: float = 0.0,
        command_timeout: float = 10.0,
    ) -> None:
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name
        self._reader = engine.execution_options(**{READ_ONLY: True})
        self._clock = clock or _utcnow
        self._ping_timeout = ping_timeout
        # SQLite: one unit of work at a time (single writer; a shared in-memory connection).
        self._serial: asyncio.Lock | None = asyncio.Lock() if is_sqlite(url) else None
        self._advances: GroupCommit[str, tuple[int, int | None], bool] = GroupCommit(
            self._advance_many,
            max_batch=max_batch,
            linger=linger,
            # SQLite has one writer: one batch at a time. PostgreSQL commits batches side by
            # side, each waiting for its own WAL flush.
            concurrency=1 if is_sqlite(url) else ADVANCE_CONCURRENCY,
        )
        #: A claim's confirmation once the carrier took the write: one statement for all
        #: that arrive together, not a transaction each (no linger: a report waits for it).
        self._confirms: GroupCommit[str, tuple[int, HistoryRecord | None], bool] = GroupCommit(
            self._confirm_many,
            max_batch=max_batch,
            concurrency=1 if is_sqlite(url) else CONFIRM_CONCURRENCY,
        )
        self._command_timeout = command_timeout
        #: The connections the store keeps for its hottest statements (``_kept``), idle ones
        #: here: one per batch in flight, at most ``KEPT_CONNECTIONS`` on PostgreSQL; one on
        #: SQLite, where batches and claims take turns.
        self._kept_connections: list[_Kept] = []
        #: Units of work whose callers stopped waiting (see ``_whole``), kept until done.
        self._orphans: set[asyncio.Task[Any]] = set()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        create: bool = False,
        check_schema: bool = True,
        clock: Callable[[], datetime] | None = None,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        ping_timeout: float = 2.0,
        max_batch: int = 500,
        linger: float = 0.0,
    ) -> SqlStateStore:
        parsed = parse(url)
        if create:
            ensure_directory(parsed)
        engine = make_engine(
            parsed,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )
        store = cls(
            engine,
            parsed,
            clock=clock,
            ping_timeout=ping_timeout,
            max_batch=max_batch,
            linger=linger,
            command_timeout=command_timeout,
        )
        try:
            if create:
                await store.upgrade()
            elif check_schema:
                await store.require_current_schema()
        except BaseException:
            await store.close()
            raise
        return store

    # -- plumbing ------------------------------------------------------------------------

    def transaction(
        self, *, read_only: bool = False
    ) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """One transaction on the state store's engine, taking SQLite's one-writer turn.

        For the modules that keep their own tables beside the store's (wiremap, outbox,
        imports): connectivity failures become ``StoreUnavailable``, a missing table
        ``SchemaNotCurrent``.
        """
        return self._unit(read_only=read_only)

    @contextlib.asynccontextmanager
    async def _unit(self, *, read_only: bool = False) -> AsyncIterator[AsyncConnection]:
        """One transaction; connectivity failures become ``StoreUnavailable``."""
        engine = self._reader if read_only else self.engine
        async with contextlib.AsyncExitStack() as stack:
            if self._serial is not None:
                await stack.enter_async_context(self._serial)
            try:
                with unavailable_as_store_error():
                    async with engine.begin() as connection:
                        yield connection
            except Exception as exc:
                if is_missing_table(exc):
                    raise SchemaNotCurrent(None, head_revision()) from exc
                raise

    async def _detach(self, work: Coroutine[Any, Any, T]) -> T:
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                self._orphans.add(task)
                task.add_done_callback(self._orphan_done)
            raise

    def _orphan_done(self, task: asyncio.Task[Any]) -> None:
        self._orphans.discard(task)
        if not task.cancelled():
            task.exception()  # its caller is gone; the outcome is the database's to keep

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _now(self) -> int:
        return to_us(self._clock())

    # -- lifecycle -----------------------------------------------------------------------

    async def close(self) -> None:
        await self._advances.close()
        await self._confirms.close()
        await self._drop_all_kept()
        if self._orphans:
            await asyncio.wait(set(self._orphans), timeout=5.0)
        await self.engine.dispose()

    async def ping(self) -> None:
        try:
            async with asyncio.timeout(self._ping_timeout):
                await self._select_one()
        except TimeoutError as exc:
            raise StoreUnavailable(
                f"the state store did not answer within {self._ping_timeout:g} s"
            ) from exc

    @_whole
    async def _select_one(self) -> None:
        async with self._unit(read_only=True) as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def revision(self) -> str | None:
        """The database's schema revision (``None``: never migrated)."""
        async with self._unit(read_only=True) as connection:
            return await connection.run_sync(current_revision)

    async def schema_is_current(self) -> bool:
        return await self.revision() == head_revision()

    async def require_current_schema(self) -> None:
        """At this release's head, or at a newer one this release may run on (a rollback);
        ``SchemaNotCurrent`` (``SchemaTooNew``) otherwise."""
        async with self._unit(read_only=True) as connection:
            current, usable = await connection.run_sync(_revision_and_usable)
        if usable:
            log.warning(
                "the database schema (%s) is newer than this release's (%s), and declared "
                "usable by it: running on it",
                current,
                head_revision(),
            )
        elif current != head_revision():
            raise SchemaNotCurrent(current, head_revision())

    async def upgrade(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            if self._serial is not None:
                await stack.enter_async_context(self._serial)
            await upgrade_engine(self.engine)

    # -- devices -------------------------------------------------------------------------

    @_whole
    async def get(self, aeui: str) -> StoredBinding | None:
        async with self._unit(read_only=True) as connection:
            row = (
                await connection.execute(sa.select(devices).where(devices.c.aeui == aeui))
            ).first()
        return None if row is None else _binding(row)

    @_whole
    async def claim(
        self, binding: StoredBinding, *, credential: str, check_number: bool = True
    ) -> Claim:
        to_us(binding.observed_at)  # a naive time is refused before any statement
        if self.dialect == "sqlite":
            return await self._claim_sqlite(binding, credential=credential, check=check_number)
        async with self._unit() as connection:
            now = self._now()
            values = _claim_values(binding, now)
            while True:
                # FOR UPDATE: the row stays ours until commit.
                row = (
                    await connection.execute(
                        sa.select(devices).where(devices.c.aeui == binding.aeui).with_for_update()
                    )
                ).first()
                if row is not None:
                    break
                inserted = await connection.execute(
                    self._insert(devices)
                    .values(aeui=binding.aeui, version=1, coordinates_version=1, **values)
                    .on_conflict_do_nothing(index_elements=[devices.c.aeui])
                    .returning(devices.c.aeui)
                )
                if inserted.first() is not None:
                    # The device's row first, then its number's, always in that order (two
                    # claims locking them the other way round would deadlock); refused, the
                    # insert rolls back with the rest.
                    if check_number:
                        await self._hold_number(connection, binding, now, credential)
                    return Claim(True, None, _replace(binding, version=1, now=now))
                # A concurrent claim inserted the device first: lock its row and compare.
            previous = _binding(row)
            if previous.observed_at > binding.observed_at:
                return Claim(False, previous, previous)
            if check_number:
                await self._hold_number(connection, binding, now, credential)
            version = previous.version + 1
            await connection.execute(
                sa.update(devices)
                .where(devices.c.aeui == binding.aeui)
                .values(version=version, coordinates_version=version, **values)
            )
        return Claim(True, previous, _replace(binding, version=version, now=now))

    async def _hold_number(
        self, connection: AsyncConnection, binding: StoredBinding, now: int, credential: str
    ) -> None:
        """PostgreSQL: lock the number's row, or make the device its owner; ``NumberOwned``
        (the transaction rolls back) when another device owns it alone."""
        number = binding.telephone_number
        while True:
            row = (
                await connection.execute(
                    sa.select(numbers.c.owner_aeui, numbers.c.shared)
                    .where(numbers.c.telephone_number == number)
                    .with_for_update()
                )
            ).first()
            if row is not None:
                _check_number(binding, row.owner_aeui, bool(row.shared))
                return
            taken = await connection.execute(
                self._insert(numbers)
                .values(
                    telephone_number=number, owner_aeui=binding.aeui, shared=False, updated_at=now
                )
                .on_conflict_do_nothing(index_elements=[numbers.c.telephone_number])
                .returning(numbers.c.telephone_number)
            )
            if taken.first() is not None:
                await connection.execute(
                    sa.insert(history).values(_number_taken(binding, now, credential))
                )
                return
            # Another device took it a moment ago: lock its row and look again.

    async def _claim_sqlite(self, binding: StoredBinding, *, credential: str, check: bool) -> Claim:
        """``claim`` on SQLite, as the statements run on the connection the store keeps: one
        ``BEGIN IMMEDIATE`` transaction (the single writer's lock: no other claim can come
        between the read and the write), without SQLAlchemy's execution path: a claim's CPU
        1.3 -> 0.5 ms, a move's 3.9 -> 2.2 ms (docs/benchmarks.md)."""
        aeui = binding.aeui
        async with self._kept() as (driver, _):
            with _driver_errors():
                await driver.execute("BEGIN IMMEDIATE")
                try:
                    now = self._now()
                    rows = await driver.execute_fetchall(_SELECT_DEVICE_SQLITE3, (aeui,))
                    previous = _binding(_Row(rows[0])) if rows else None
                    if previous is not None and previous.observed_at > binding.observed_at:
                        await driver.execute("ROLLBACK")
                        return Claim(False, previous, previous)
                    if check:
                        await _hold_number_sqlite(driver, binding, now, credential)
                    version = 1 if previous is None else previous.version + 1
                    values = _claim_values(binding, now)
                    values.update(version=version, coordinates_version=version)
                    row = tuple(values[name] for name in _CLAIM_COLUMNS)
                    if previous is None:
                        await driver.execute(_INSERT_DEVICE_SQLITE3, (aeui, *row))
                    else:
                        await driver.execute(_UPDATE_DEVICE_SQLITE3, (*row, aeui))
                    await driver.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(Exception):
                        await driver.execute("ROLLBACK")
                    raise
        return Claim(True, previous, _replace(binding, version=version, now=now))

    async def confirm(
        self, aeui: str, version: int, *, record: HistoryRecord | None = None
    ) -> bool:
        return await self._confirms.submit(aeui, (version, record))

    async def _confirm_many(
        self, batch: Sequence[tuple[str, tuple[int, HistoryRecord | None]]]
    ) -> dict[str, bool]:
        """Confirm many claims (each device at most once) in one statement, on the kept
        connections (autocommit; see ``_advance_many``). On PostgreSQL it commits
        asynchronously like an advance: a database crash may forget the last moment of
        confirmations, which leaves those bindings unconfirmed, and the reconciler then checks
        them against the carrier again: extra reads, never a wrong binding.

        A batch that carries history records (what the carrier took) appends those of the rows
        it confirmed in the same statement (PostgreSQL) or transaction (SQLite). Lost in a
        crash with their confirmations, they come back with them: the reconciler finds those
        bindings unconfirmed, sees the carrier holding them and records them then."""
        if not batch:
            return {}
        now = self._now()  # the gateway just saw the carrier take it: as good as a check
        aeuis = [aeui for aeui, _ in batch]
        versions = [version for _, (version, _record) in batch]
        entries = {
            aeui: tuple(_record_values(record, now)[name] for name in _HISTORY_COLUMNS)
            for aeui, (_version, record) in batch
            if record is not None
        }
        with _driver_errors():
            if self.dialect == "postgresql":
                rows = await self._confirm_postgresql(aeuis, versions, now, entries)
            else:
                rows = await self._confirm_sqlite(aeuis, versions, now, entries)
        confirmed = {row[0] for row in rows}
        return {aeui: aeui in confirmed for aeui in aeuis}

    async def _confirm_postgresql(
        self, aeuis: list[str], versions: list[int], now: int, entries: dict[str, tuple[Any, ...]]
    ) -> list[Any]:
        if not entries:
            return await self._on_kept_postgresql(_CONFIRM_ASYNCPG, aeuis, versions, now)
        columns = [list(column) for column in zip(*entries.values(), strict=True)]
        return await self._on_kept_postgresql(
            _CONFIRM_RECORDING_ASYNCPG, aeuis, versions, now, *columns
        )

    async def _confirm_sqlite(
        self, aeuis: list[str], versions: list[int], now: int, entries: dict[str, tuple[Any, ...]]
    ) -> list[Any]:
        payload = json.dumps([list(pair) for pair in zip(aeuis, versions, strict=True)])
        if not entries:
            return await self._on_kept_sqlite(_CONFIRM_SQLITE3, (now, payload))
        async with self._kept() as (driver, _):
            await driver.execute("BEGIN IMMEDIATE")
            try:
                rows = list(await driver.execute_fetchall(_CONFIRM_SQLITE3, (now, payload)))
                confirmed = _recorded(rows, entries)
                if confirmed:
                    await driver.executemany(_INSERT_HISTORY_SQLITE3, confirmed)
                await driver.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    await driver.execute("ROLLBACK")
                raise
            return rows

    async def advance(
        self, aeui: str, observed_at: datetime, *, version: int | None = None
    ) -> bool:
        return await self._advances.submit(aeui, (to_us(observed_at), version))

    async def _advance_many(
        self, batch: Sequence[tuple[str, tuple[int, int | None]]]
    ) -> dict[str, bool]:
        if not batch:
            return {}
        # The hottest statement there is (every unchanged report), so it goes to the driver
        # itself: SQLAlchemy's execution path and a pooled checkout with its pre-ping cost
        # ~10 times the statement's own CPU (docs/benchmarks.md, "The state store's cost").
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

    @contextlib.asynccontextmanager
    async def _kept(self) -> AsyncIterator[tuple[Any, bool]]:
        """A connection the store keeps for its hottest statements (the batched advances and
        confirmations, SQLite's claims), as its driver's connection, and whether it is new:
        the pool's checkout, reset and SQLAlchemy's wrapping cost more than the statements.
        Kept again after use; closed if the use failed, so the next one starts fresh. On
        SQLite it is held under the store's one-at-a-time lock, as every unit of work is
        (the one connection of an in-memory database is also every unit's)."""
        async with contextlib.AsyncExitStack() as stack:
            if self._serial is not None:
                await stack.enter_async_context(self._serial)
            fresh = not self._kept_connections
            if fresh:
                with unavailable_as_store_error():
                    connection = await self.engine.connect()
                    try:
                        raw = await connection.get_raw_connection()
                    except BaseException:
                        await _drop(connection)
                        raise
                kept = _Kept(connection, raw.driver_connection)
            else:
                kept = self._kept_connections.pop()
            try:
                yield kept.driver, fresh
            except BaseException:
                await self._drop_kept(kept)
                raise
            self._kept_connections.append(kept)

    @contextlib.asynccontextmanager
    async def _kept_postgresql(self) -> AsyncIterator[Any]:
        """A kept connection (asyncpg), committing asynchronously unless told otherwise."""
        async with self._kept() as (driver, fresh):
            if fresh:
                # Advances and confirmations need not wait for the WAL flush (see
                # ``_advance_many`` and ``_confirm_many``). These connections serve nothing else.
                await driver.execute("SET synchronous_commit TO off")
            yield driver

    async def _on_kept_postgresql(self, query: str, *args: Any) -> list[Any]:
        """``query`` with ``args`` on a kept connection (asyncpg): its rows."""
        async with self._kept_postgresql() as driver:
            rows: list[Any] = await driver.fetch(query, *args, timeout=self._command_timeout)
            return rows

    async def _on_kept_sqlite(self, query: str, parameters: tuple[Any, ...]) -> list[Any]:
        """``query`` with ``parameters`` on the kept connection (aiosqlite, in autocommit:
        engine.py; one UPDATE is atomic on its own): its rows."""
        async with self._kept() as (driver, _):
            return list(await driver.execute_fetchall(query, parameters))

    async def _drop_kept(self, kept: _Kept) -> None:
        # Closed, not pooled (a PostgreSQL one carries its session setting), except the
        # connection of an in-memory SQLite database: closing that one would empty it.
        await _drop(kept.connection, invalidate=not is_memory(self.url))

    async def _drop_all_kept(self) -> None:
        connections, self._kept_connections = self._kept_connections, []
        for kept in connections:
            await self._drop_kept(kept)

    @property
    def advance_stats(self) -> tuple[int, int]:
        """``(calls, statements)`` of ``advance`` so far."""
        return self._advances.calls, self._advances.batches

    @_whole
    async def delete(self, aeui: str) -> StoredBinding | None:
        async with self._unit() as connection:
            row = (
                await connection.execute(
                    sa.delete(devices).where(devices.c.aeui == aeui).returning(*devices.c)
                )
            ).first()
        return None if row is None else _binding(row)

    @_whole
    async def callers(
        self, telephone_number: str, *, limit: int = 20, every_holder: bool = False
    ) -> list[StoredBinding]:
        query = sa.select(devices).where(devices.c.telephone_number == telephone_number)
        if not every_holder:
            query = query.where(_may_use_number())
        heard = (sa.func.greatest if self.dialect == "postgresql" else sa.func.max)(
            sa.func.coalesce(devices.c.heard_at, devices.c.applied_at), devices.c.applied_at
        )
        vouched = sa.func.coalesce(devices.c.attested_number == devices.c.telephone_number, False)
        query = query.order_by(vouched.desc(), heard.desc(), devices.c.aeui).limit(max(1, limit))
        async with self._unit(read_only=True) as connection:
            rows = (await connection.execute(query)).all()
        return [_binding(row) for row in rows]

    # -- callback numbers ----------------------------------------------------------------

    @_whole
    async def number(self, telephone_number: str) -> NumberState | None:
        async with self._unit(read_only=True) as connection:
            row = (
                await connection.execute(
                    sa.select(numbers).where(numbers.c.telephone_number == telephone_number)
                )
            ).first()
        return None if row is None else _number_state(row)

    @_whole
    async def set_number(
        self, telephone_number: str, *, owner: str | None, shared: bool, credential: str
    ) -> tuple[NumberState | None, NumberState | None]:
        async with self._unit() as connection:
            now = self._now()
            row = (
                await connection.execute(
                    sa.select(numbers)
                    .where(numbers.c.telephone_number == telephone_number)
                    .with_for_update()
                )
            ).first()
            before = None if row is None else _number_state(row)
            after = None
            if owner is None and not shared:
                await connection.execute(
                    sa.delete(numbers).where(numbers.c.telephone_number == telephone_number)
                )
            else:
                after = NumberState(telephone_number, owner, shared, from_us(now))
                await connection.execute(
                    self._insert(numbers)
                    .values(
                        telephone_number=telephone_number,
                        owner_aeui=owner,
                        shared=shared,
                        updated_at=now,
                    )
                    .on_conflict_do_update(
                        index_elements=[numbers.c.telephone_number],
                        set_={"owner_aeui": owner, "shared": shared, "updated_at": now},
                    )
                )
            if (before and before.as_json()) != (after and after.as_json()):
                await connection.execute(
                    sa.insert(history).values(
                        _number_change(telephone_number, before, after, now, credential)
                    )
                )
        return before, after

    @_whole
    async def release_numbers(self, aeui: str, *, credential: str) -> list[str]:
        async with self._unit() as connection:
            now = self._now()
            released = (
                await connection.execute(
                    sa.delete(numbers)
                    .where(numbers.c.owner_aeui == aeui, numbers.c.shared.is_(False))
                    .returning(*numbers.c)
                )
            ).all()
            for row in released:
                before = _number_state(row)
                await connection.execute(
                    sa.insert(history).values(
                        _number_change(before.telephone_number, before, None, now, credential)
                    )
                )
        return sorted(row.telephone_number for row in released)

    # -- locations -----------------------------------------------------------------------

    @_whole
    async def locations_known(self, location_id: str) -> bool:
        async with self._unit(read_only=True) as connection:
            found = await connection.execute(
                sa.select(sa.literal(1)).where(locations.c.location_id == location_id)
            )
            return found.first() is not None

    @_whole
    async def remember_location(
        self,
        location_id: str,
        address: Mapping[str, Any],
        status: str | None,
        latitude: float | None,
        longitude: float | None,
    ) -> None:
        async with self._unit() as connection:
            await connection.execute(
                self._insert(locations)
                .values(
                    location_id=location_id,
                    address=_dumps(address),
                    status=status,
                    latitude=latitude,
                    longitude=longitude,
                    created_at=self._now(),
                )
                .on_conflict_do_nothing(index_elements=[locations.c.location_id])
            )

    @_whole
    async def forget_location(self, location_id: str) -> bool:
        async with self._unit() as connection:
            result = await connection.execute(
                sa.delete(locations).where(locations.c.location_id == location_id)
            )
        return bool(result.rowcount)

    # -- history -------------------------------------------------------------------------

    @_whole
    async def history(
        self, aeui: str, *, limit: int = 50, before_id: int | None = None
    ) -> list[HistoryEntry]:
        query = sa.select(history).where(history.c.aeui == aeui)
        if before_id is not None:
            query = query.where(history.c.id < before_id)
        query = query.order_by(history.c.id.desc()).limit(max(0, limit))
        async with self._unit(read_only=True) as connection:
            rows = (await connection.execute(query)).all()
        return [_entry(row) for row in rows]

    @_whole
    async def record_many(self, records: Sequence[HistoryRecord]) -> None:
        """One transaction, one multi-row insert: the emergency query's history writer
        drains its queue this way, so a burst of queries costs the database few writes."""
        if not records:
            return
        async with self._unit() as connection:
            now = self._now()
            await connection.execute(sa.insert(history), [_record_values(r, now) for r in records])

    @_whole
    async def record(
        self,
        aeui: str,
        *,
        kind: str,
        credential: str,
        source: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        observed_at: datetime | None,
    ) -> int:
        entry = HistoryRecord(aeui, kind, credential, source, before, after, observed_at)
        async with self._unit() as connection:
            inserted = await connection.execute(
                sa.insert(history)
                .values(_record_values(entry, self._now()))
                .returning(history.c.id)
            )
            return int(inserted.scalar_one())

    @_whole
    async def purge_history(self, older_than: datetime) -> int:
        """In chunks, each its own transaction, so a large purge never holds long locks."""
        cutoff = to_us(older_than)
        chunk = (
            sa.select(history.c.id)
            .where(history.c.at < cutoff)
            .order_by(history.c.id)
            .limit(PURGE_CHUNK)
            .scalar_subquery()
        )
        total = 0
        while True:
            async with self._unit() as connection:
                result = await connection.execute(sa.delete(history).where(history.c.id.in_(chunk)))
            total += result.rowcount
            if result.rowcount < PURGE_CHUNK:
                return total

    # -- reconciliation ------------------------------------------------------------------

    @_whole
    async def lease(
        self,
        owner: str,
        *,
        limit: int,
        lease_seconds: float,
        older_than: datetime | None = None,
        only_unconfirmed: bool = False,
        applied_before: datetime | None = None,
        skip_unconfirmed_since: datetime | None = None,
    ) -> list[StoredBinding]:
        if limit <= 0:
            return []
        async with self._unit() as connection:
            now = self._now()
            until = now + round(lease_seconds * 1_000_000)
            free = [sa.or_(devices.c.lease_until.is_(None), devices.c.lease_until <= now)]
            if older_than is not None:
                free.append(
                    sa.or_(devices.c.checked_at.is_(None), devices.c.checked_at < to_us(older_than))
                )
            if only_unconfirmed:
                free.append(devices.c.confirmed.is_(False))
            if applied_before is not None:
                free.append(devices.c.applied_at < to_us(applied_before))
            if skip_unconfirmed_since is not None:
                free.append(
                    sa.or_(
                        devices.c.confirmed.is_(True),
                        devices.c.applied_at < to_us(skip_unconfirmed_since),
                    )
                )
            # The queue pattern: lock the candidates, skipping rows another replica is
            # leasing right now (PostgreSQL; SQLite's write lock already excludes everyone).
            candidates = (
                sa.select(devices.c.aeui)
                .where(*free)
                .order_by(devices.c.checked_at.asc().nulls_first(), devices.c.aeui)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .cte("candidates")
            )
            rows = list(
                await connection.execute(
                    sa.update(devices)
                    .where(devices.c.aeui == candidates.c.aeui, *free)
                    .values(lease_owner=owner, lease_until=until)
                    .returning(*devices.c)
                )
            )
        rows.sort(key=lambda row: (row.checked_at is not None, row.checked_at or 0, row.aeui))
        return [_binding(row) for row in rows]

    @_whole
    async def release(self, aeui: str, owner: str) -> bool:
        async with self._unit() as connection:
            result = await connection.execute(
                sa.update(devices)
                .where(devices.c.aeui == aeui, devices.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )
        return bool(result.rowcount)

    @_whole
    async def checked(
        self, aeui: str, owner: str, confirmed: bool, *, version: int | None = None
    ) -> bool:
        confirmed_value: sa.ColumnElement[bool] | bool = confirmed
        if version is not None:
            confirmed_value = sa.case(
                (devices.c.version == version, sa.literal(confirmed)), else_=devices.c.confirmed
            )
        async with self._unit() as connection:
            now = self._now()
            result = await connection.execute(
                sa.update(devices)
                .where(devices.c.aeui == aeui, devices.c.lease_owner == owner)
                .values(
                    checked_at=now,
                    confirmed=confirmed_value,
                    lease_owner=None,
                    lease_until=None,
                )
            )
        return bool(result.rowcount)


@dataclasses.dataclass(frozen=True, slots=True)
class _Kept:
    """A connection the store keeps checked out, and its driver's connection under it."""

    connection: AsyncConnection
    driver: Any


async def _drop(connection: AsyncConnection, *, invalidate: bool = False) -> None:
    with contextlib.suppress(Exception):
        if invalidate:
            await connection.invalidate()
        await connection.close()


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


def _revision_and_usable(connection: sa.Connection) -> tuple[str | None, bool]:
    current = current_revision(connection)
    return current, ahead_but_usable(connection, current)


def _claim_values(binding: StoredBinding, now: int) -> dict[str, Any]:
    """The ``devices`` columns a claim writes (all but the key and the versions)."""
    return {
        "endpoint_id": binding.endpoint_id,
        "location_id": binding.location_id,
        "address": _dumps(binding.address),
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
    }


def _check_number(binding: StoredBinding, owner: str | None, shared: bool) -> None:
    """``NumberOwned`` unless the binding may use its number (its token attested it)."""
    state = NumberState(binding.telephone_number, owner, shared, EPOCH)
    if not binding.attested and state.refuses(binding.aeui):
        assert owner is not None
        raise NumberOwned(binding.telephone_number, owner)


def _number_taken(binding: StoredBinding, now: int, credential: str) -> dict[str, Any]:
    """The history row of a device becoming a number's first holder."""
    return _history_values(
        number_key(binding.telephone_number),
        at=now,
        kind=HistoryKind.NUMBER_OWNED,
        credential=credential,
        source=binding.source,
        observed_at=None,
        before=None,
        after={"owner": binding.aeui, "shared": False},
    )


async def _hold_number_sqlite(
    driver: Any, binding: StoredBinding, now: int, credential: str
) -> None:
    """``SqlStateStore._hold_number`` inside ``_claim_sqlite``'s transaction."""
    number = binding.telephone_number
    rows = await driver.execute_fetchall(_SELECT_NUMBER_SQLITE3, (number,))
    if rows:
        _check_number(binding, rows[0][0], bool(rows[0][1]))
        return
    await driver.execute(_INSERT_NUMBER_SQLITE3, (number, binding.aeui, now))
    entry = _number_taken(binding, now, credential)
    await driver.execute(_INSERT_HISTORY_SQLITE3, tuple(entry[n] for n in _HISTORY_COLUMNS))


def _may_use_number() -> sa.ColumnElement[bool]:
    """``_MAY_USE_NUMBER`` as an expression over ``devices``."""
    other_owner = sa.exists().where(
        numbers.c.telephone_number == devices.c.telephone_number,
        numbers.c.shared.is_(False),
        numbers.c.owner_aeui != devices.c.aeui,
    )
    return sa.or_(devices.c.attested_number == devices.c.telephone_number, ~other_owner)


def _number_state(row: Any) -> NumberState:
    return NumberState(
        row.telephone_number, row.owner_aeui, bool(row.shared), from_us(row.updated_at)
    )


def _number_change(
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
    return _history_values(
        number_key(telephone_number),
        at=now,
        kind=kind,
        credential=credential,
        source="admin",
        observed_at=None,
        before=None if before is None else before.as_json(),
        after=None if after is None else after.as_json(),
    )


def _recorded(rows: list[Any], entries: dict[str, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The history rows of the confirmed devices (a confirmation's rows name them)."""
    return [entries[row[0]] for row in rows if row[0] in entries]


def _record_values(record: HistoryRecord, now: int) -> dict[str, Any]:
    return _history_values(
        record.aeui,
        at=now,
        kind=record.kind,
        credential=record.credential,
        source=record.source,
        observed_at=None if record.observed_at is None else to_us(record.observed_at),
        before=record.before,
        after=record.after,
    )


class _Row:
    """A ``devices`` row from the driver, read by column name as ``_binding`` reads one."""

    __slots__ = ("_values",)

    def __init__(self, values: Sequence[Any]) -> None:
        self._values = dict(zip(_DEVICE_COLUMNS, values, strict=True))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


def _replace(binding: StoredBinding, *, version: int, now: int) -> StoredBinding:
    return dataclasses.replace(binding, version=version, confirmed=False, heard_at=from_us(now))


def _history_values(
    aeui: str,
    *,
    at: int,
    kind: str,
    credential: str,
    source: str,
    observed_at: int | None,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> dict[str, Any]:
    def location(value: Mapping[str, Any] | None) -> str | None:
        found = None if value is None else value.get("locationId")
        return found if isinstance(found, str) else None

    return {
        "aeui": aeui,
        "at": at,
        "credential": credential,
        "source": source,
        "kind": str(kind),
        "observed_at": observed_at,
        "from_location_id": location(before),
        "to_location_id": location(after),
        "from_json": _dumps(before),
        "to_json": _dumps(after),
    }
