"""A caller cancelled mid-statement (a report's deadline) must not cost the store anything.

An in-memory SQLite database lives exactly as long as its one connection; SQLAlchemy
invalidates a connection whose statement was cancelled, which used to empty the sandbox's
database. Every unit of work now runs to its end on its own; only the caller stops waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.store import MEMORY_URL, StateStore, open_store
from gateway.store.outbox import OutboxStore
from gateway.store.sql import SqlStateStore
from gateway.store.tables import locations
from tests.store.conftest import Database
from tests.store.helpers import at, binding, run


async def _cancel_many(store: StateStore, rounds: int) -> None:
    for i in range(rounds):
        for coro in (
            store.claim(binding(f"c{i}", observed=i), credential="t"),
            store.get(f"c{i}"),
            store.history(f"c{i}"),
        ):
            task = asyncio.ensure_future(coro)
            # Let it start its statement, then cancel it part-way.
            for _ in range(i % 4):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "file"])
def test_cancelled_callers_leave_sqlite_whole(url: str, tmp_path: object) -> None:
    target = url if url != "file" else f"sqlite+aiosqlite:///{tmp_path}/c.db"

    async def scenario() -> None:
        async with await open_store(target, create=True) as store:
            await _cancel_many(store, 40)
            assert await store.schema_is_current()
            claim = await store.claim(binding("after", observed=1000), credential="t")
            assert claim.won
            got = await store.get("after")
            assert got is not None and got.observed_at == at(1000)
            # What the cancelled callers started was finished, not half-done.
            for i in range(40):
                row = await store.get(f"c{i}")
                assert row is None or row.observed_at == at(i)

    run(scenario())


def test_cancelled_callers_leave_either_backend_working(db: Database) -> None:
    async def scenario() -> None:
        async with await open_store(db.url, create=True) as store:
            await _cancel_many(store, 20)
            assert await store.schema_is_current()
            assert (await store.claim(binding("after"), credential="t")).won
            await store.ping()

    run(scenario())


def _sqlite_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


def test_close_leaves_no_sqlite_thread_behind(tmp_path: Path) -> None:
    """A claim whose caller left while the file was locked ends on the kept connection
    after ``close`` began: ``close`` waits for it and closes that connection through its
    own thread, so no aiosqlite thread outlives the store (one that did could finish an
    operation after the event loop closed)."""
    path = tmp_path / "c.db"
    before = _sqlite_threads()
    locker = sqlite3.connect(path, isolation_level=None)

    async def scenario() -> set[threading.Thread]:
        store = await open_store(f"sqlite+aiosqlite:///{path}", create=True)
        assert (await store.claim(binding("warm"), credential="t")).won  # the kept one
        locker.execute("BEGIN IMMEDIATE")  # another writer, for a moment
        asyncio.get_running_loop().call_later(0.2, locker.execute, "ROLLBACK")
        claim = asyncio.ensure_future(store.claim(binding("late", observed=1), credential="t"))
        await asyncio.sleep(0.05)
        claim.cancel()
        await store.close()
        left = _sqlite_threads() - before
        for thread in left:  # each ends once its connection is closed
            await asyncio.to_thread(thread.join, 2.0)
        return {t for t in left if t.is_alive()}

    try:
        assert run(scenario()) == set()
    finally:
        locker.close()


# -- ``transaction()``: the outbox's, wiremap's, imports' and console's units of work -----

#: A statement that runs for many seconds on SQLite (~50 million rows counted), calling
#: ``dlr_started()`` (``_on_start``) as it begins: a statement surely in flight when cancelled.
_SLOW = sa.text(
    "WITH RECURSIVE c(x) AS (SELECT dlr_started() UNION ALL SELECT x + 1 FROM c "
    "WHERE x < 50000000) SELECT count(*) FROM c"
)
#: The caller's cancellation returns at once (not after the statement in flight).
_PROMPT = 1.0


async def _on_start(store: SqlStateStore) -> threading.Event:
    """``dlr_started()`` on the in-memory database's one connection: sets the event."""
    started = threading.Event()

    def mark() -> int:
        started.set()
        return 1

    async with store.transaction(read_only=True) as connection:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.create_function("dlr_started", 0, mark)  # type: ignore[union-attr]
    return started


def _location(connection_id: str) -> sa.Insert:
    return sa.insert(locations).values(
        location_id=connection_id, address="{}", status="VALID", created_at=0
    )


async def _cancel(task: asyncio.Future[Any], *, times: int = 1) -> float:
    """Cancel ``task`` (``times`` times, a moment apart); seconds until it ended."""
    start = time.monotonic()
    for i in range(times):
        if i:
            await asyncio.sleep(0.05)
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return time.monotonic() - start


def test_a_cancelled_transaction_leaves_the_in_memory_database_whole() -> None:
    """A client that disconnects mid-request cancels the outbox's (or wiremap's…) unit of
    work mid-statement: its own writes roll back, and nothing else is lost. SQLAlchemy used
    to invalidate the one connection of the in-memory database, emptying it."""

    async def scenario() -> None:
        async with await open_store(MEMORY_URL, create=True) as store:
            outbox = OutboxStore(store)
            await outbox.add_webhook("w1", "https://example.test/h", ["test"], "s" * 32, None)
            assert (await store.claim(binding("kept"), credential="t")).won
            started = await _on_start(store)

            async def unit() -> None:
                async with store.transaction() as connection:
                    await connection.execute(_location("cancelled"))
                    await connection.execute(_SLOW)

            task = asyncio.ensure_future(unit())
            assert await asyncio.to_thread(started.wait, 30.0)
            took = await _cancel(task)

            assert await store.schema_is_current()
            assert await store.get("kept") is not None
            assert [w.id for w in await outbox.list_webhooks()] == ["w1"]
            assert not await store.locations_known("cancelled")  # its unit rolled back
            async with store.transaction() as connection:
                await connection.execute(_location("after"))
            assert await store.locations_known("after")
            assert (await store.claim(binding("new"), credential="t")).won
            assert took < _PROMPT, f"the cancelled caller waited {took:.1f} s"

    run(scenario())


def test_a_transaction_cancelled_waiting_for_the_file_lock_rolls_back(tmp_path: Path) -> None:
    """Cancelled while its ``BEGIN IMMEDIATE`` waits for another process's lock: the caller
    returns at once, the store keeps working once the lock is free."""
    path = tmp_path / "c.db"
    locker = sqlite3.connect(path, isolation_level=None)

    async def scenario() -> None:
        async with await open_store(f"sqlite+aiosqlite:///{path}", create=True) as store:
            assert (await store.claim(binding("kept"), credential="t")).won
            locker.execute("BEGIN IMMEDIATE")
            asyncio.get_running_loop().call_later(0.5, locker.execute, "ROLLBACK")

            async def unit() -> None:
                async with store.transaction() as connection:
                    await connection.execute(_location("cancelled"))

            task = asyncio.ensure_future(unit())
            await asyncio.sleep(0.2)
            took = await _cancel(task)
            assert took < _PROMPT, f"the cancelled caller waited {took:.1f} s"
            assert await store.schema_is_current()
            assert await store.get("kept") is not None
            assert not await store.locations_known("cancelled")
            async with store.transaction() as connection:
                await connection.execute(_location("after"))
            assert await store.locations_known("after")

    try:
        run(scenario())
    finally:
        locker.close()


def _run_bounded(scenario: Callable[[], Coroutine[Any, Any, None]], seconds: float) -> None:
    """``asyncio.run(scenario())`` in a thread of its own, which must end (the event loop's
    shutdown included) within ``seconds``; a daemon, so one that hangs cannot hang pytest."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(scenario())
        except BaseException as exc:  # handed to the test's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="bounded-loop", daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the event loop did not end within {seconds:g} s"
    if failure:
        raise failure[0]


@pytest.mark.parametrize("where", ["memory", "file"])
def test_a_transaction_cancelled_twice_neither_hangs_close_nor_leaves_a_thread(
    where: str, tmp_path: Path
) -> None:
    """Cancelled twice mid-statement, a unit used to make SQLAlchemy terminate its
    connection: aiosqlite's graceful close left waiting for a thread its forced stop had
    ended, and the event loop's shutdown waited for it for ever."""
    path = tmp_path / "c.db"
    url = MEMORY_URL if where == "memory" else f"sqlite+aiosqlite:///{path}"
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    before = _sqlite_threads()
    left: set[threading.Thread] = set()

    async def scenario() -> None:
        store = await open_store(url, create=True)
        assert (await store.claim(binding("kept"), credential="t")).won
        if where == "memory":
            started = await _on_start(store)
            statement: sa.Executable = _SLOW
        else:
            locker.execute("BEGIN IMMEDIATE")
            asyncio.get_running_loop().call_later(1.5, locker.execute, "ROLLBACK")
            statement = _location("cancelled")

        async def unit() -> None:
            async with store.transaction() as connection:
                await connection.execute(statement)

        task = asyncio.ensure_future(unit())
        if where == "memory":
            assert await asyncio.to_thread(started.wait, 30.0)
        else:
            await asyncio.sleep(0.2)
        took = await _cancel(task, times=2)
        assert took < _PROMPT, f"the cancelled caller waited {took:.1f} s"
        assert await store.schema_is_current()
        assert await store.get("kept") is not None
        await asyncio.wait_for(store.close(), 20.0)
        for thread in _sqlite_threads() - before:  # each ends once its connection is closed
            await asyncio.to_thread(thread.join, 2.0)
        left.update(t for t in _sqlite_threads() - before if t.is_alive())

    try:
        _run_bounded(scenario, 45.0)
    finally:
        locker.close()
    assert left == set()
