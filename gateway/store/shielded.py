"""SQLite's units of work whose callers may be cancelled part-way (``SqlStateStore._unit``).

The modules that keep their own tables beside the store's (outbox, wiremap, imports, the
console's queries) run their statements in a transaction of ``SqlStateStore.transaction``,
in their caller's task: a request's client that disconnects cancels it. SQLAlchemy
invalidates a connection whose statement is cancelled, and closing it then waits for the
statement (the caller's cancellation with it); an in-memory database lives exactly as long
as that one connection, so it was emptied. A cancelled terminate could also leave aiosqlite's
closing waiting for ever, and the event loop's shutdown with it.

Here every operation on the unit's connection runs in a task of its own that the caller
waits for through a shield: a cancelled caller stops waiting at once, and SQLAlchemy never
sees the cancellation. What the caller left (the statement in flight, interrupted: the
transaction cannot commit without the rest of the caller's work; the rollback; the
connection's return to the pool; the store's one-at-a-time turn) ends in a task the store
keeps until done, which ``close`` waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

T = TypeVar("T")


def outcome_dropped(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # its caller is gone (an interrupted statement's error, say)


async def run_shielded(work: Coroutine[Any, Any, T], kept: set[asyncio.Task[Any]]) -> T:
    """``work`` in a task of its own, in ``kept`` until done, awaited through a shield: a
    cancelled caller stops waiting at once; the task runs on, its outcome dropped."""
    task = asyncio.ensure_future(work)
    kept.add(task)
    task.add_done_callback(kept.discard)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(outcome_dropped)
        raise


class ShieldedConnection(AsyncConnection):
    """An ``AsyncConnection`` whose operations each run to their end in a task of their own
    (``execute``, ``scalar``, ``scalars``, ``exec_driver_sql``, ``run_sync``; the unit's own
    start and end); its caller may be cancelled while one is in flight."""

    __slots__ = ("_in_flight", "_transaction")

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._transaction: AsyncTransaction | None = None

    async def _shielded(self, work: Coroutine[Any, Any, T]) -> T:
        return await run_shielded(work, self._in_flight)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self._shielded(super().execute(*args, **kwargs))

    async def exec_driver_sql(self, *args: Any, **kwargs: Any) -> Any:
        return await self._shielded(super().exec_driver_sql(*args, **kwargs))

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._shielded(super().run_sync(fn, *args, **kwargs))

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a store's unit of work reads buffered results only")

    def stream_scalars(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a store's unit of work reads buffered results only")

    async def _open(self) -> None:
        await self.start()
        self._transaction = self.begin()
        await self._transaction.start()

    async def _settle(self, *, interrupt: bool) -> None:
        """Wait for the operations in flight (interrupted first if ``interrupt``); their
        outcome was their caller's."""
        if not self._in_flight:
            return
        if interrupt:
            await self._interrupt()
        await asyncio.wait(set(self._in_flight))

    async def _interrupt(self) -> None:
        """Interrupt the statement running on aiosqlite's thread (``sqlite3``'s
        ``interrupt`` is made to be called from another thread). A statement waiting for
        another process's lock keeps waiting, up to the busy timeout."""
        with contextlib.suppress(Exception):
            sync = self.sync_connection
            driver = None if sync is None or sync.invalidated else sync.connection.driver_connection
            if driver is not None:
                await driver.interrupt()

    async def _end(self, *, commit: bool) -> None:
        """Commit what the unit did, or roll it back (after interrupting the statement in
        flight), and give its connection back. A rollback's failure is not reported: the
        caller's own failure or cancellation is."""
        transaction = self._transaction
        if not commit:
            await self._settle(interrupt=True)
            with contextlib.suppress(Exception):
                if transaction is not None and transaction.is_active:
                    await transaction.rollback()
            with contextlib.suppress(Exception):
                await self._close()
            return
        await self._settle(interrupt=False)
        try:
            if transaction is not None and transaction.is_active:
                await transaction.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                await self._close()
            raise
        await self._close()

    async def _close(self) -> None:
        if self.sync_connection is not None:
            await self.close()


@contextlib.asynccontextmanager
async def shielded_unit(
    engine: AsyncEngine,
    turn: asyncio.Lock,
    *,
    finish: Callable[[Coroutine[Any, Any, None]], Coroutine[Any, Any, None]],
    leave: Callable[[Coroutine[Any, Any, None]], None],
) -> AsyncIterator[AsyncConnection]:
    """One transaction on ``engine`` in ``turn`` (SQLite's one unit at a time), its caller
    free to be cancelled at any point.

    ``finish(work)`` runs the unit's end in a task of its own and waits for it (its
    outcome is the caller's; a cancelled caller stops waiting); ``leave(work)`` runs it
    without waiting, for a caller that was cancelled. Either task gives ``turn`` back.
    """
    connection = ShieldedConnection(engine)
    await turn.acquire()

    async def end(*, commit: bool) -> None:
        try:
            await connection._end(commit=commit)
        finally:
            turn.release()

    try:
        await connection._shielded(connection._open())
        yield connection
    except asyncio.CancelledError:
        leave(end(commit=False))
        raise
    except BaseException:
        await finish(end(commit=False))
        raise
    await finish(end(commit=True))
