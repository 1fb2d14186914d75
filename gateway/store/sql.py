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
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, Self, TypedDict, TypeVar, Unpack

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.dlr.binding import Binding, newest
from gateway.store.base import (
    Claim,
    HistoryEntry,
    HistoryRecord,
    LeaseFilters,
    LocationRecord,
    NumberState,
)
from gateway.store.driver import DriverPaths
from gateway.store.engine import (
    READ_ONLY,
    is_missing_table,
    make_engine,
    unavailable_as_store_error,
)
from gateway.store.errors import SchemaNotCurrent, StoreUnavailable
from gateway.store.groupcommit import GroupCommit
from gateway.store.kept import CLOSE_WAIT, _Kept
from gateway.store.leases import record_check, release_lease, take_leases
from gateway.store.mapping import (
    binding_of,
    claim_values,
    claimed,
    device_or_tombstone,
    dumps,
    entry_of,
    from_us,
    insert_for,
    keep_tombstone,
    last_heard,
    may_use_number,
    number_state_of,
    record_values,
    refuse_deleted,
    to_us,
    tombstone_of,
)
from gateway.store.migrate import (
    current_revision,
    head_revision,
    revision_and_usable,
    upgrade_engine,
)
from gateway.store.ownership import change_number, hold_number, release_owned
from gateway.store.portable import advance_rows, confirm_rows
from gateway.store.shielded import outcome_dropped, run_shielded, shielded_unit
from gateway.store.tables import deleted_devices, devices, history, locations, numbers
from gateway.store.urls import ensure_directory, is_sqlite, parse

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

PURGE_CHUNK = 5_000
#: PostgreSQL: group-committed advance batches in flight at once (connections kept for them).
ADVANCE_CONCURRENCY = 4
#: PostgreSQL: group-committed confirmation batches in flight at once (on the same kept
#: connections: at most ``KEPT_CONNECTIONS`` in all).
CONFIRM_CONCURRENCY = 2
KEPT_CONNECTIONS = ADVANCE_CONCURRENCY + CONFIRM_CONCURRENCY


def _utcnow() -> datetime:
    return datetime.now(UTC)


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


class StoreOptions(TypedDict, total=False):
    """``SqlStateStore``'s options that ``connect`` passes on (their defaults are its own)."""

    clock: Callable[[], datetime] | None
    ping_timeout: float
    max_batch: int
    linger: float
    driver_sql: bool


class SqlStateStore(DriverPaths):
    """``StateStore`` on SQLAlchemy Core, for PostgreSQL and SQLite."""

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
        driver_sql: bool = True,
    ) -> None:
        self.engine = engine
        self.driver_sql = driver_sql
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
        self._kept_busy: set[_Kept] = set()
        self._kept_closing: set[asyncio.Task[None]] = set()
        self._kept_closed = False
        #: Units of work in flight (see ``_whole``), kept until done.
        self._units: set[asyncio.Task[Any]] = set()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        create: bool = False,
        check_schema: bool = True,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        **options: Unpack[StoreOptions],
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
        store = cls(engine, parsed, command_timeout=command_timeout, **options)
        try:
            if create:
                await store.upgrade()
            elif check_schema:
                await store.require_current_schema()
        except BaseException:
            await store.close()
            raise
        return store

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- plumbing ------------------------------------------------------------------------

    def transaction(
        self, *, read_only: bool = False
    ) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """One transaction on the state store's engine, taking SQLite's one-writer turn, for
        the modules that keep their own tables beside the store's (wiremap, outbox, imports):
        ``StoreUnavailable``, or ``SchemaNotCurrent`` for a missing table. A caller cancelled
        on SQLite stops waiting at once; the transaction rolls back on its own
        (``gateway.store.shielded``; ``close`` waits for it)."""
        return self._unit(read_only=read_only)

    @contextlib.asynccontextmanager
    async def _unit(self, *, read_only: bool = False) -> AsyncIterator[AsyncConnection]:
        """One transaction; connectivity failures become ``StoreUnavailable``."""
        engine = self._reader if read_only else self.engine
        try:
            with unavailable_as_store_error():
                async with self._begin(engine) as connection:
                    yield connection
        except Exception as exc:
            if is_missing_table(exc):
                raise SchemaNotCurrent(None, head_revision()) from exc
            raise

    def _begin(
        self, engine: AsyncEngine
    ) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        if self._serial is None:
            # PostgreSQL: a statement cancelled part-way costs its pooled connection only.
            return engine.begin()
        if asyncio.current_task() in self._units:
            # Detached (``_whole``): its caller's cancellation does not reach it.
            return self._in_turn(engine)
        # A caller that may be cancelled mid-statement (``transaction``, the schema checks).
        return shielded_unit(engine, self._serial, finish=self._detach, leave=self._leave)

    @contextlib.asynccontextmanager
    async def _in_turn(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        assert self._serial is not None
        async with self._serial, engine.begin() as connection:
            yield connection

    async def _detach(self, work: Coroutine[Any, Any, T]) -> T:
        # Known from its start, not from its caller's cancellation (which ``close`` may
        # come before): ``close`` waits for it either way.
        return await run_shielded(work, self._units)

    def _leave(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` on its own, its caller gone (``close`` waits for it)."""
        task = asyncio.ensure_future(work)
        self._units.add(task)
        task.add_done_callback(self._units.discard)
        task.add_done_callback(outcome_dropped)

    def _now(self) -> int:
        return to_us(self._clock())

    # -- lifecycle -----------------------------------------------------------------------

    async def close(self) -> None:
        await self._advances.close()
        await self._confirms.close()
        # The units in flight first (their callers may have left): one may be using a kept
        # connection, or be waiting for the file's lock (up to the busy timeout) to roll back.
        if self._units:
            await asyncio.wait(set(self._units), timeout=CLOSE_WAIT)
        await self._drop_all_kept()
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
            current, usable = await connection.run_sync(revision_and_usable)
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
    async def get(self, aeui: str) -> Binding | None:
        async with self._unit(read_only=True) as connection:
            row = (
                await connection.execute(sa.select(devices).where(devices.c.aeui == aeui))
            ).first()
        return None if row is None else binding_of(row)

    @_whole
    async def get_or_deleted(self, aeui: str) -> tuple[Binding | None, datetime | None]:
        async with self._unit(read_only=True) as connection:
            row = (await connection.execute(device_or_tombstone(aeui))).one()
        if row.aeui is not None:
            return binding_of(row), None
        return None, None if row.deleted_at is None else from_us(row.deleted_at)

    @_whole
    async def claim(self, binding: Binding, *, credential: str, check_number: bool = True) -> Claim:
        to_us(binding.observed_at)  # a naive time is refused before any statement
        if self.dialect == "sqlite" and self.driver_sql:
            return await self._claim_sqlite(binding, credential=credential, check=check_number)
        async with self._unit() as connection:
            now = self._now()
            values = claim_values(binding, now)
            while True:
                # FOR UPDATE: the row stays ours until commit.
                row = (
                    await connection.execute(
                        sa.select(devices).where(devices.c.aeui == binding.aeui).with_for_update()
                    )
                ).first()
                if row is not None:
                    break
                refuse_deleted(binding, await tombstone_of(connection, binding.aeui))
                inserted = await connection.execute(
                    insert_for(connection, devices)
                    .values(aeui=binding.aeui, version=1, coordinates_version=1, **values)
                    .on_conflict_do_nothing(index_elements=[devices.c.aeui])
                    .returning(devices.c.aeui)
                )
                if inserted.first() is not None:
                    # The device's row first, then its number's, always in that order (two
                    # claims locking them the other way round would deadlock); refused, the
                    # insert rolls back with the rest.
                    if check_number:
                        await hold_number(connection, binding, now, credential)
                    return Claim(True, None, claimed(binding, version=1, now=now))
                # A concurrent claim inserted the device first: lock its row and compare.
            previous = binding_of(row)
            if newest(previous) > newest(binding):
                return Claim(False, previous, previous)
            if check_number:
                await hold_number(connection, binding, now, credential)
            version = previous.version + 1
            await connection.execute(
                sa.update(devices)
                .where(devices.c.aeui == binding.aeui)
                .values(version=version, coordinates_version=version, **values)
            )
        return Claim(True, previous, claimed(binding, version=version, now=now))

    async def _advance_portable(
        self, batch: Sequence[tuple[str, tuple[int, int | None]]]
    ) -> set[str]:
        async with self._unit() as connection:
            return await advance_rows(connection, batch, self._now())

    async def _confirm_portable(
        self, batch: Sequence[tuple[str, tuple[int, HistoryRecord | None]]], now: int
    ) -> set[str]:
        async with self._unit() as connection:
            return await confirm_rows(connection, batch, now)

    @property
    def advance_stats(self) -> tuple[int, int]:
        """``(calls, statements)`` of ``advance`` so far."""
        return self._advances.calls, self._advances.batches

    @_whole
    async def delete(self, aeui: str, *, deleted_at: datetime | None = None) -> Binding | None:
        async with self._unit() as connection:
            row = (
                await connection.execute(
                    sa.delete(devices).where(devices.c.aeui == aeui).returning(*devices.c)
                )
            ).first()
            gone = None if row is None else binding_of(row)
            if deleted_at is not None:
                stamp = to_us(deleted_at if gone is None else max(deleted_at, newest(gone)))
                await keep_tombstone(connection, aeui, stamp)
        return gone

    @_whole
    async def bound_to(self, endpoint_id: str, *, limit: int = 2) -> list[Binding]:
        # Indexed (revision 0009): every endpoint delete asks, retried ones included.
        query = sa.select(devices).where(devices.c.endpoint_id == endpoint_id).limit(limit)
        async with self._unit(read_only=True) as connection:
            return [binding_of(row) for row in (await connection.execute(query)).all()]

    @_whole
    async def callers(
        self, telephone_number: str, *, limit: int = 20, every_holder: bool = False
    ) -> list[Binding]:
        query = sa.select(devices).where(devices.c.telephone_number == telephone_number)
        if not every_holder:
            query = query.where(may_use_number())
        vouched = sa.func.coalesce(devices.c.attested_number == devices.c.telephone_number, False)
        query = query.order_by(vouched.desc(), last_heard().desc(), devices.c.aeui).limit(
            max(1, limit)
        )
        async with self._unit(read_only=True) as connection:
            rows = (await connection.execute(query)).all()
        return [binding_of(row) for row in rows]

    # -- callback numbers ----------------------------------------------------------------

    @_whole
    async def set_number(
        self, telephone_number: str, *, owner: str | None, shared: bool, credential: str
    ) -> tuple[NumberState | None, NumberState | None]:
        async with self._unit() as connection:
            return await change_number(
                connection,
                telephone_number,
                owner=owner,
                shared=shared,
                now=self._now(),
                credential=credential,
            )

    @_whole
    async def release_numbers(self, aeui: str, *, credential: str) -> list[str]:
        async with self._unit() as connection:
            return await release_owned(connection, aeui, self._now(), credential)

    @_whole
    async def number(self, telephone_number: str) -> NumberState | None:
        async with self._unit(read_only=True) as connection:
            row = (
                await connection.execute(
                    sa.select(numbers).where(numbers.c.telephone_number == telephone_number)
                )
            ).first()
        return None if row is None else number_state_of(row)

    # -- locations -----------------------------------------------------------------------

    @_whole
    async def locations_known(self, location_id: str) -> bool:
        async with self._unit(read_only=True) as connection:
            found = await connection.execute(
                sa.select(sa.literal(1)).where(locations.c.location_id == location_id)
            )
            return found.first() is not None

    @_whole
    async def remember_location(self, location: LocationRecord) -> None:
        async with self._unit() as connection:
            await connection.execute(
                insert_for(connection, locations)
                .values(
                    location_id=location.location_id,
                    address=dumps(location.address),
                    status=location.status,
                    latitude=location.latitude,
                    longitude=location.longitude,
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
        return [entry_of(row) for row in rows]

    def history_rows(self, records: Sequence[HistoryRecord]) -> list[dict[str, Any]]:
        """The ``history`` rows of ``records``, appended now (one time stamp for all): the
        call-time queries', written with their events (``OutboxStore.write_events``)."""
        now = self._now()
        return [record_values(r, now) for r in records]

    @_whole
    async def record(self, entry: HistoryRecord) -> int:
        async with self._unit() as connection:
            inserted = await connection.execute(
                sa.insert(history).values(record_values(entry, self._now())).returning(history.c.id)
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
                break
        async with self._unit() as connection:
            await connection.execute(
                sa.delete(deleted_devices).where(deleted_devices.c.deleted_at < cutoff)
            )
        return total

    # -- reconciliation ------------------------------------------------------------------

    @_whole
    async def lease(
        self, owner: str, *, limit: int, lease_seconds: float, **filters: Unpack[LeaseFilters]
    ) -> list[Binding]:
        if limit <= 0:
            return []
        now = self._now()
        until = now + round(lease_seconds * 1_000_000)
        return await self.run_unit(
            functools.partial(
                take_leases, owner=owner, limit=limit, now=now, until=until, filters=filters
            )
        )

    @_whole
    async def release(self, aeui: str, owner: str) -> bool:
        return await self.run_unit(functools.partial(release_lease, aeui=aeui, owner=owner))

    @_whole
    async def checked(
        self, aeui: str, owner: str, confirmed: bool | None, *, version: int | None = None
    ) -> bool:
        return await self.run_unit(
            functools.partial(
                record_check,
                aeui=aeui,
                owner=owner,
                confirmed=confirmed,
                version=version,
                now=self._now(),
            )
        )


#: Connect to the state store at a URL (``SqlStateStore.connect``: PostgreSQL or SQLite).
#: ``create`` migrates to head first (the embedded default, tests); otherwise, unless
#: ``check_schema`` is false, a schema that is not current raises ``SchemaNotCurrent``. A
#: database that cannot be reached raises ``StoreUnavailable``.
open_store = SqlStateStore.connect
