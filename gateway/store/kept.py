"""The connections the store keeps checked out for its hottest statements.

The pool's checkout, reset and SQLAlchemy's wrapping cost more than those statements (the
batched advances and confirmations, SQLite's claims and driver-thread units), so the store
keeps a few connections of its own and reaches their drivers directly
(``gateway.store.driver``). On SQLite each is used under the store's one-at-a-time lock,
as every unit of work is; a failed use closes its connection, so the next starts fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.engine import unavailable_as_store_error
from gateway.store.urls import is_memory

#: Seconds ``close`` waits for the kept connections to close (each after the statement it
#: runs: SQLite's busy timeout bounds that one).
CLOSE_WAIT = 15.0


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class _Kept:
    """A connection the store keeps checked out, and its driver's connection under it."""

    connection: AsyncConnection
    driver: Any


async def _drop(connection: AsyncConnection, *, invalidate: bool = False) -> None:
    with contextlib.suppress(Exception):
        if invalidate:
            await connection.invalidate()
        await connection.close()


async def _close_driver(driver: Any) -> None:
    with contextlib.suppress(Exception):
        await driver.close()


class KeptConnections:
    """Keeping, using and closing those connections (a base class of ``SqlStateStore``)."""

    url: URL
    engine: AsyncEngine
    dialect: str
    _serial: asyncio.Lock | None
    _command_timeout: float
    _kept_connections: list[_Kept]
    #: Kept connections in use, and the closing of dropped ones (``_drop_kept``).
    _kept_busy: set[_Kept]
    _kept_closing: set[asyncio.Task[None]]
    _kept_closed: bool

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
            kept = await self._open_kept() if fresh else self._kept_connections.pop()
            self._kept_busy.add(kept)
            try:
                yield kept.driver, fresh
            except BaseException as exc:
                self._kept_busy.discard(kept)
                dropping = self._drop_kept(kept)
                # A cancelled caller stops waiting (``close`` waits for what it left), but
                # not under an in-memory database, where the connection is every unit's.
                if not isinstance(exc, asyncio.CancelledError) or is_memory(self.url):
                    await asyncio.shield(dropping)
                raise
            self._kept_busy.discard(kept)
            if self._kept_closed:  # the store closed while this one was in use
                await asyncio.shield(self._drop_kept(kept))
            else:
                self._kept_connections.append(kept)

    async def _open_kept(self) -> _Kept:
        """A new kept connection. The connect runs to its end even if the caller is
        cancelled (a driver cancelled mid-connect leaves its thread behind); what it opened
        is then closed."""
        opening = asyncio.ensure_future(self._connect_kept())
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            self._closing(self._close_opened(opening))
            raise

    async def _connect_kept(self) -> _Kept:
        with unavailable_as_store_error():
            connection = await self.engine.connect()
            try:
                raw = await connection.get_raw_connection()
            except BaseException:
                await _drop(connection)
                raise
        return _Kept(connection, raw.driver_connection)

    async def _close_opened(self, opening: asyncio.Future[_Kept]) -> None:
        try:
            kept = await opening
        except Exception:
            return
        await self._close_kept(kept)

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

    def _drop_kept(self, kept: _Kept) -> asyncio.Task[None]:
        """Close ``kept`` (in a task ``close`` waits for)."""
        return self._closing(self._close_kept(kept))

    def _closing(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._kept_closing.add(task)
        task.add_done_callback(self._kept_closing.discard)
        return task

    async def _close_kept(self, kept: _Kept) -> None:
        # Closed, not pooled (a PostgreSQL one carries its session setting), except the
        # connection of an in-memory SQLite database: closing that one would empty it.
        if is_memory(self.url):
            await _drop(kept.connection)
            return
        if self.dialect == "sqlite":
            # Through its own thread, after what it is running: invalidating it may stop
            # that thread without waiting, to finish after the event loop has closed.
            await _close_driver(kept.driver)
        await _drop(kept.connection, invalidate=True)

    async def _drop_all_kept(self) -> None:
        """Close every kept connection, idle or still in use (each after its statement),
        waiting up to ``CLOSE_WAIT`` seconds; the ones in use are closed on their return."""
        self._kept_closed = True
        idle, self._kept_connections = self._kept_connections, []
        for kept in idle:
            self._drop_kept(kept)
        if self.dialect == "sqlite" and not is_memory(self.url):
            for kept in self._kept_busy:
                # Queued behind its statement: the one in flight ends, the next one fails.
                self._closing(_close_driver(kept.driver))
        if self._kept_closing:
            await asyncio.wait(set(self._kept_closing), timeout=CLOSE_WAIT)
