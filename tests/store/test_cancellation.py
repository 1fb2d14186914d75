"""A caller cancelled mid-statement (a report's deadline) must not cost the store anything.

An in-memory SQLite database lives exactly as long as its one connection; SQLAlchemy
invalidates a connection whose statement was cancelled, which used to empty the sandbox's
database. Every unit of work now runs to its end on its own; only the caller stops waiting.
"""

from __future__ import annotations

import asyncio
import contextlib

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
