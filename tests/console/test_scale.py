"""The console's queries with 100 000 devices in the store, on SQLite and PostgreSQL: each
page is one page, found through an index, whatever the table holds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.console.queries import ConsoleQueries, Thresholds
from gateway.store import open_store
from gateway.store.mapping import to_us
from gateway.store.sql import SqlStateStore
from gateway.store.tables import devices, history
from tests.pg import PostgresServer

DEVICES = 100_000
FAILED = 8
NOW = datetime.now(UTC)


def number(i: int) -> str:
    return f"+1202{200 + i // 10_000:03d}{i % 10_000:04d}"


def rows() -> list[dict[str, Any]]:
    applied = to_us(NOW - timedelta(minutes=5))
    return [
        {
            "aeui": f"dev-{i:07d}",
            "endpoint_id": f"e{i}",
            "location_id": f"loc-{i % 500}",
            "address": None,
            "caller_name": f"ROOM {i}",
            "telephone_number": number(i),
            "observed_at": applied,
            "source": "report",
            # A few writes the carrier never confirmed, an hour old: failed.
            "applied_at": applied - (3_600_000_000 if i % (DEVICES // FAILED) == 3 else 0),
            "confirmed": i % (DEVICES // FAILED) != 3,
            "latitude": None,
            "longitude": None,
            "version": 1,
        }
        for i in range(DEVICES)
    ]


class Recorded(ConsoleQueries):
    """The console's queries, each statement kept for its plan."""

    statements: list[sa.Executable]

    async def _rows(self, query: sa.Executable) -> Sequence[Any]:
        self.statements.append(query)
        return await super()._rows(query)


async def plan(store: SqlStateStore, statement: sa.Executable) -> str:
    sql = str(statement.compile(store.engine, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
    async with store.transaction(read_only=True) as connection:
        found = (await connection.exec_driver_sql(explain + sql)).all()
    return "\n".join(" ".join(str(v) for v in row) for row in found)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    found = server.create_database()
    yield found
    server.drop_database(found)


def test_pages_of_100k_devices_are_paged_in_the_database(url: str) -> None:
    async def scenario() -> None:
        store = await open_store(url, create=True)
        assert isinstance(store, SqlStateStore)
        try:
            async with store.transaction() as connection:
                await connection.execute(devices.insert(), rows())
                # Device 42's history among that of 20 000 others.
                await connection.execute(
                    history.insert(),
                    [
                        {
                            "aeui": "dev-0000042" if i < 120 else f"dev-{i:07d}",
                            "at": to_us(NOW),
                            "credential": "c",
                            "source": "report",
                            "kind": "applied",
                        }
                        for i in range(20_000)
                    ],
                )
                if store.dialect == "postgresql":
                    await connection.exec_driver_sql("ANALYZE")
            queries = Recorded(store, Thresholds(failed_after=68, stale_after=86_400))
            queries.statements = []

            first = await queries.devices()
            assert [d.aeui for d in first.items] == [f"dev-{i:07d}" for i in range(50)]
            second = await queries.devices(after=first.next_key)
            assert second.items[0].aeui == "dev-0000050" and len(second.items) == 50
            last = await queries.devices(after="dev-0099990")
            assert len(last.items) == 9 and last.next_key is None
            page_plan = await plan(store, queries.statements[0])

            queries.statements = []
            found = await queries.devices(
                search=f"(202) {number(77_777)[5:8]}-{number(77_777)[8:]}"
            )
            assert [d.aeui for d in found.items] == ["dev-0077777"]
            number_plan = await plan(store, queries.statements[0])
            by_prefix = await queries.devices(search="dev-000012")
            assert [d.aeui for d in by_prefix.items] == [f"dev-{i:07d}" for i in range(120, 130)]
            by_name = await queries.devices(search="room 99999")
            assert [d.aeui for d in by_name.items] == ["dev-0099999"]

            failures = await queries.devices(states=("failed", "pending"))
            assert len(failures.items) == FAILED
            assert {d.state for d in failures.items} == {"failed"}
            counts = await queries.state_counts()
            assert counts == {
                "current": DEVICES - FAILED,
                "pending": 0,
                "failed": FAILED,
                "stale": 0,
            }

            queries.statements = []
            newest = await queries.history(key="dev-0000042")
            older = await queries.history(key="dev-0000042", before=int(newest.next_key or 0))
            assert len(newest.items) == 50 and len(older.items) == 50
            assert newest.items[-1].id > older.items[0].id
            history_plan = await plan(store, queries.statements[0])

            # The 911 calls page: a kind's newest rows through the (kind, id) index, not a
            # scan of the whole history (millions of reports' rows for a few calls).
            queries.statements = []
            calls = await queries.history(kind="emergency_query")
            assert calls.items == [] and calls.next_key is None
            calls_plan = await plan(store, queries.statements[0])

            # A number is found through its index (and an AEUI through the primary key's).
            assert "ix_devices_telephone_number" in number_plan, number_plan
            if store.dialect == "sqlite":
                # Read in key order, never sorted whole.
                assert "TEMP B-TREE" not in page_plan, page_plan
                assert "ix_history_aeui_id" in history_plan, history_plan
                assert "ix_history_kind_id" in calls_plan, calls_plan
                assert "TEMP B-TREE" not in calls_plan, calls_plan
            else:
                assert "pk_devices" in page_plan and "Sort" not in page_plan, page_plan
                assert "ix_history_aeui_id" in history_plan, history_plan
                assert "ix_history_kind_id" in calls_plan and "Sort" not in calls_plan, calls_plan
        finally:
            await store.close()

    asyncio.run(scenario())
