"""Events built when their batch is written (``DeferredEvent``: the call-time query's), on a
real SQLite outbox."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.events.emitter import Emitter
from gateway.events.model import EMERGENCY_CALL, TEST_CALL, Event, new_event_id
from gateway.metrics import Metrics
from gateway.store import open_store
from gateway.store.base import HistoryRecord
from gateway.store.outbox import AddressLookup, NewEvent, OutboxStore, Written
from gateway.store.sql import SqlStateStore
from gateway.store.tables import history

AT = datetime(2026, 12, 7, 15, 30, 0, 123_000, tzinfo=UTC)


@dataclass
class Later:
    """A deferred event that counts how often it is built."""

    type: str
    built: list[Event] = field(default_factory=list)

    def event(self) -> Event:
        made = Event.new(self.type, {"n": len(self.built)}, at=AT, id=new_event_id(AT))
        self.built.append(made)
        return made

    def record(self) -> None:
        return None


def test_an_event_id_is_time_ordered_by_the_moment_given() -> None:
    made = new_event_id(AT)
    assert made.startswith(f"evt_{int(AT.timestamp() * 1000):012x}") and len(made) == 32
    assert made != new_event_id(AT)  # and unique


def test_a_deferred_event_is_built_once_and_a_retry_writes_the_same_id(tmp_path: Path) -> None:
    async def main() -> None:
        store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", create=True)
        assert isinstance(store, SqlStateStore)
        async with store:
            outbox = OutboxStore(store)
            metrics = Metrics()
            attempts: list[int] = []

            def flaky(batch: list[Event], addresses: AddressLookup) -> None:
                attempts.append(len(batch))
                if len(attempts) == 1:
                    raise RuntimeError("the first write fails")

            emitter = Emitter(outbox, metrics, retry_delays=(0.01,), prepare=flaky)
            emitter.start()
            calls = [Later(EMERGENCY_CALL), Later(EMERGENCY_CALL), Later(TEST_CALL)]
            plain = Event.new(EMERGENCY_CALL, {"plain": True})
            for item in [*calls, plain]:
                emitter.emit(item)
            await emitter.aclose()
            assert attempts == [4, 4]  # one batch, written on its second attempt
            assert [len(c.built) for c in calls] == [1, 1, 1]
            stored = {e.id for e, _ in await outbox.page(limit=10)}
            assert stored == {c.built[0].id for c in calls} | {plain.id}

            def written(kind: str) -> float | None:
                return metrics.registry.get_sample_value(
                    "dlr_events_total", {"type": kind, "result": "written"}
                )

            assert written(EMERGENCY_CALL) == 3 and written(TEST_CALL) == 1

    asyncio.run(main())


def test_a_full_queue_counts_deferred_events_dropped_by_type(tmp_path: Path) -> None:
    async def main() -> None:
        store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", create=True)
        assert isinstance(store, SqlStateStore)
        async with store:
            metrics = Metrics()
            emitter = Emitter(OutboxStore(store), metrics, maxsize=1)  # not started
            for item in (Later(EMERGENCY_CALL), Later(TEST_CALL), Later(TEST_CALL)):
                emitter.emit(item)
            dropped = metrics.registry.get_sample_value(
                "dlr_events_total", {"type": TEST_CALL, "result": "dropped"}
            )
            assert dropped == 2

    asyncio.run(main())


@dataclass
class Recorded(Later):
    """A deferred event with a history record, as a call-time query's."""

    def record(self) -> HistoryRecord:  # type: ignore[override]
        return HistoryRecord(
            aeui="alice",
            kind="emergency_query",
            credential="emergency-query-test",
            source="cache",
            before=None,
            after={"status": 200},
            observed_at=AT,
        )


def test_records_the_store_always_refuses_do_not_take_their_events_down(tmp_path: Path) -> None:
    """A query's record is written with its event, in one transaction; should the records
    fail every attempt, the events (the notifications) are written alone and the records
    counted as dropped."""
    database = tmp_path / "gw.db"

    async def main() -> None:
        store = await open_store(f"sqlite+aiosqlite:///{database}", create=True)
        assert isinstance(store, SqlStateStore)
        async with store:
            with contextlib.closing(sqlite3.connect(database)) as connection:
                connection.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON history"
                    " BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
                connection.commit()
            outbox = OutboxStore(store)
            metrics = Metrics()
            emitter = Emitter(outbox, metrics, retry_delays=(0.01, 0.01))
            emitter.start()
            calls = [Recorded(EMERGENCY_CALL), Recorded(TEST_CALL)]
            for item in calls:
                emitter.emit(item)
            await emitter.aclose()
            stored = {e.id for e, _ in await outbox.page(limit=10)}
            assert stored == {c.built[0].id for c in calls}
            assert [len(c.built) for c in calls] == [1, 1]
            sample = metrics.registry.get_sample_value
            assert sample("dlr_events_total", {"type": EMERGENCY_CALL, "result": "written"}) == 1
            dropped = "dlr_emergency_query_records_dropped_total"
            assert sample(dropped, {"reason": "store_error"}) == 2

    asyncio.run(main())


@pytest.mark.parametrize("between", [False, True], ids=["before-a-write", "between-attempts"])
def test_a_store_down_longer_than_the_first_retries_loses_no_call_notification(
    tmp_path: Path, between: bool
) -> None:
    """A store that refused writes for longer than the first retries (0.1, 0.5, 2 and 5 s: a
    PostgreSQL failover takes longer) dropped the batch: every 911 call's event, its
    Kari's Law email and webhooks, and its history record, lost for good. A batch is now
    retried at the last delay until ``persist`` seconds have passed. ``between``: the store
    comes back after a write with the records failed, before the events-alone attempt that
    follows; the records are written too, not dropped as if the store refused them."""
    database = tmp_path / "gw.db"

    def refuse(on: bool) -> None:
        with contextlib.closing(sqlite3.connect(database)) as connection:
            connection.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON events"
                " BEGIN SELECT RAISE(ABORT, 'down'); END"
                if on
                else "DROP TRIGGER refuse"
            )
            connection.commit()

    class ComesBack(OutboxStore):
        """The store comes back once the emitter, past its first delays, has tried the events
        alone: before its next write with the records, or (``between``) before its second
        events-alone attempt. Never at a time (a timer, under load, often fell between the
        two, which the test did not mean to try)."""

        alone = 0
        down = True

        async def write_events(
            self,
            build: Callable[[AddressLookup], list[NewEvent]],
            *,
            email: Sequence[str] = (),
            records: Sequence[HistoryRecord] = (),
        ) -> Written:
            if not records:
                self.alone += 1
            revive = self.alone == 2 if between else records and self.alone >= 2
            if revive and self.down:
                self.down = False
                refuse(False)
            return await super().write_events(build, email=email, records=records)

    async def main() -> None:
        store = await open_store(f"sqlite+aiosqlite:///{database}", create=True)
        assert isinstance(store, SqlStateStore)
        async with store:
            refuse(True)
            outbox = ComesBack(store)
            metrics = Metrics()
            emitter = Emitter(outbox, metrics, retry_delays=(0.01, 0.05), persist=30.0)
            emitter.start()
            call = Recorded(EMERGENCY_CALL)
            emitter.emit(call)
            async with asyncio.timeout(10):
                await emitter.idle()
            await emitter.aclose()
            assert not outbox.down and outbox.alone == 2  # down past the first retries
            assert {e.id for e, _ in await outbox.page(limit=10)} == {call.built[0].id}
            sample = metrics.registry.get_sample_value
            assert sample("dlr_events_total", {"type": EMERGENCY_CALL, "result": "written"}) == 1
            assert (
                sample("dlr_emergency_query_records_dropped_total", {"reason": "store_error"})
                is None
            )
            async with store.transaction(read_only=True) as connection:
                rows = await connection.execute(
                    sa.select(history.c.aeui).where(history.c.kind == "emergency_query")
                )
                assert [row.aeui for row in rows] == ["alice"]  # the record with its event

    asyncio.run(main())
