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
from pathlib import Path

import pytest

from gateway.store import StateStore, open_store
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
