"""The store's side of the emergency-call query, on both backends: devices by callback
number, the coordinates' source and its rollback guard, history written in batches, and the
locator's bounded wait on a database that is down."""

from __future__ import annotations

import dataclasses
import socket
import time

import sqlalchemy as sa

from gateway.dlr.callers import CallerIndex, CallerLocator
from gateway.store import open_store
from gateway.store.base import HistoryKind, HistoryRecord
from gateway.store.outbox import OutboxStore
from gateway.store.sql import SqlStateStore
from gateway.store.tables import devices
from tests.store.conftest import Clock, Database
from tests.store.helpers import at, binding, count_statements, run

PHONE = "+19195550100"


def test_callers_by_number_heard_last_first(db: Database, clock: Clock) -> None:
    async def main() -> None:
        async with await open_store(db.url, create=True, clock=clock) as store:
            assert isinstance(store, SqlStateStore)
            await store.set_number(PHONE, owner=None, shared=True, credential="admin-key-0")
            # Heard in this order, whatever each says it observed.
            for aeui, observed in (("old", 1), ("mid", 3), ("new", 2)):
                clock.advance(1)
                await store.claim(binding(aeui, observed=observed, phone=PHONE), credential="d")
            other = binding("other", observed=9, phone="+13125550100")
            await store.claim(other, credential="device")
            found = await store.callers(PHONE)
            assert [b.aeui for b in found] == ["new", "mid", "old"]
            assert [b.aeui for b in await store.callers(PHONE, limit=1)] == ["new"]
            assert await store.callers("+12025550199") == []
            assert [b.aeui for b in await store.callers("+13125550100")] == ["other"]
            # An unchanged report is hearing from the device too.
            clock.advance(1)
            assert await store.advance("old", at(1))
            assert [b.aeui for b in await store.callers(PHONE)] == ["old", "new", "mid"]
            heard = (await store.callers(PHONE))[0].heard_at
            assert heard == clock.now
            # A device whose token vouched for the number comes first, heard last or not.
            vouched = dataclasses.replace(
                binding("vouched", observed=0, phone=PHONE), attested=True
            )
            await store.claim(vouched, credential="d")
            clock.advance(1)
            assert await store.advance("new", at(5))
            found = await store.callers(PHONE)
            assert [b.aeui for b in found] == ["vouched", "new", "old", "mid"]
            assert found[0].attested and not found[1].attested

            # The lookup is an indexed read.
            async with store.engine.connect() as connection:
                if db.backend == "postgresql":
                    await connection.execute(sa.text("SET enable_seqscan = off"))
                    plan = await connection.execute(
                        sa.text(
                            "EXPLAIN SELECT * FROM devices WHERE telephone_number = '+19195550100'"
                        )
                    )
                else:
                    plan = await connection.execute(
                        sa.text(
                            "EXPLAIN QUERY PLAN SELECT * FROM devices "
                            "WHERE telephone_number = '+19195550100'"
                        )
                    )
                text = " ".join(str(row) for row in plan)
            assert "ix_devices_telephone_number" in text, text

    run(main())


def test_coordinates_source_is_trusted_only_at_its_version(db: Database) -> None:
    async def main() -> None:
        async with await open_store(db.url, create=True) as store:
            assert isinstance(store, SqlStateStore)
            gps = dataclasses.replace(
                binding(observed=1), coordinates_source="gps", accuracy_meters=7.5
            )
            won = await store.claim(gps, credential="device")
            stored = await store.get("device-1")
            assert stored is not None
            assert (stored.coordinates_source, stored.accuracy_meters) == ("gps", 7.5)
            assert won.current.coordinates_source == "gps"
            # The previous release moves the device: it bumps the version and leaves the
            # columns it does not know. They no longer describe these coordinates.
            async with store.engine.begin() as connection:
                await connection.execute(
                    sa.update(devices)
                    .where(devices.c.aeui == "device-1")
                    .values(version=devices.c.version + 1, location_id="ELSEWHERE")
                )
            moved = await store.get("device-1")
            assert moved is not None and moved.location_id == "ELSEWHERE"
            assert (moved.coordinates_source, moved.accuracy_meters) == (None, None)
            (row,) = await store.callers(moved.telephone_number)
            assert row.coordinates_source is None
            # This release's next claim writes them afresh.
            street = dataclasses.replace(binding(observed=2), coordinates_source="street")
            await store.claim(street, credential="device")
            again = await store.get("device-1")
            assert again is not None and again.coordinates_source == "street"

    run(main())


def test_history_records_written_in_one_statement(db: Database) -> None:
    # Through SQLAlchemy (SQLite's own path is one ``executemany`` of ``sqlite3``'s, held
    # equal to this one by tests/store/test_driver_paths.py).
    async def main() -> None:
        async with await open_store(db.url, create=True, driver_sql=False) as store:
            assert isinstance(store, SqlStateStore)
            inserts = count_statements(store, "INSERT INTO history")
            records = [
                HistoryRecord(
                    aeui=f"d{i}",
                    kind=HistoryKind.EMERGENCY_QUERY,
                    credential="emergency-query-token",
                    source="store",
                    before=None,
                    after={"from": "+19195550100", "locationId": f"L{i}"},
                    observed_at=at(i),
                )
                for i in range(50)
            ]
            await OutboxStore(store).write_events(lambda lookup: [], records=records)
            assert len(inserts) <= 1  # executemany: one statement (or one per row batch)
            (entry,) = await store.history("d7")
            assert entry.kind == "emergency_query"
            assert entry.to_location_id == "L7"
            assert entry.observed_at == at(7)

    run(main())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_database_that_is_down_falls_back_to_memory_in_time() -> None:
    url = f"postgresql://postgres:pw@127.0.0.1:{_closed_port()}/gateway"

    async def main() -> None:
        store = await open_store(url, check_schema=False, connect_timeout=1)
        try:
            assert isinstance(store, SqlStateStore)
            index = CallerIndex(10)
            index.learn(binding("cached", observed=5, phone=PHONE))
            locator = CallerLocator(index, store, timeout=0.15)
            started = time.perf_counter()
            located = await locator.locate(PHONE)
            assert time.perf_counter() - started < 0.45
            assert located.source == "cache"
            assert located.fallback in ("unavailable", "timeout")
            assert [b.aeui for b in located.bindings] == ["cached"]
            await locator.aclose()
        finally:
            await store.close()

    run(main())
