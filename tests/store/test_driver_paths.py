"""The driver-level SQL (``gateway.store.driver``) agrees with the portable SQLAlchemy path.

The same operations run on two databases of one backend, one store on each path; every
answer and every row of the tables must come out the same.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.store import open_store
from gateway.store.base import DeviceDeleted, HistoryKind, HistoryRecord, NumberOwned
from gateway.store.outbox import OutboxStore
from gateway.store.sql import SqlStateStore
from gateway.store.tables import deleted_devices, devices, history, numbers
from tests.store.conftest import Clock, Database
from tests.store.helpers import at, binding, run


def _second_url(db: Database, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if db.server is None:
        return f"sqlite+aiosqlite:///{tmp_path / 'portable.db'}"
    url = db.server.create_database()
    request.addfinalizer(lambda: db.server.drop_database(url) if db.server else None)
    return url


async def _scenario(store: SqlStateStore, clock: Clock) -> list[Any]:
    """Claims, confirmations and advances, with the cases where each must refuse."""
    answers: list[Any] = []

    async def step(work: Any) -> None:
        clock.advance(1)
        try:
            answers.append(await work)
        except NumberOwned as exc:
            answers.append(("NumberOwned", exc.telephone_number, exc.owner))
        except DeviceDeleted as exc:
            answers.append(("DeviceDeleted", exc.deleted_at))

    shared = "+19195550100"
    first = binding("dev-a", "LOC1", observed=10, phone=shared)
    await step(store.claim(first, credential="device"))
    await step(store.claim(binding("dev-a", "LOC2", observed=5), credential="device"))  # older
    await step(store.claim(binding("dev-a", "LOC2", observed=20, phone=shared), credential="d"))
    record = HistoryRecord("dev-a", HistoryKind.APPLIED, "d", "report", None, {"a": 1}, at(20))
    await step(store.confirm("dev-a", 1, record=record))  # stale version: refused
    await step(store.confirm("dev-a", 2, record=record))
    await step(store.confirm("dev-a", 2))  # again: still that version
    await step(store.advance("dev-a", at(30)))
    await step(store.advance("dev-a", at(25)))  # older
    await step(store.advance("dev-a", at(40), version=1))  # not the stored version
    await step(store.advance("dev-a", at(40), version=2))
    await step(store.advance("missing", at(40)))
    # Another device takes the number: refused, unless its token attested it.
    await step(store.claim(binding("dev-b", "LOC3", observed=1, phone=shared), credential="d"))
    attested = dataclasses.replace(
        binding("dev-b", "LOC3", observed=2, phone=shared), attested=True
    )
    await step(store.claim(attested, credential="d"))
    await step(store.confirm("dev-b", 1))
    await step(store.advance("dev-b", at(50)))  # attested: it may
    # An admin gives the number to dev-b alone: dev-a may no longer advance on it.
    await step(store.set_number(shared, owner="dev-b", shared=False, credential="admin"))
    await step(store.advance("dev-a", at(60)))
    await step(store.advance("dev-b", at(60)))
    await step(store.confirm("dev-c", 1))  # no such device
    # A write the carrier took while a newer claim overtook it keeps its entry...
    await step(store.claim(binding("dev-d", "LOC1", observed=1), credential="d"))
    await step(store.claim(binding("dev-d", "LOC2", observed=2), credential="d"))
    first = HistoryRecord("dev-d", HistoryKind.APPLIED, "d", "report", None, {"a": 1}, at(1))
    await step(store.confirm("dev-d", 1, record=first))
    # ...unless it has no observation time, or a newer write is recorded already.
    await step(store.confirm("dev-d", 1, record=dataclasses.replace(first, observed_at=None)))
    second = dataclasses.replace(first, after={"a": 2}, observed_at=at(2))
    await step(store.confirm("dev-d", 2, record=second))
    await step(store.claim(binding("dev-d", "LOC3", observed=3), credential="d"))
    await step(store.confirm("dev-d", 1, record=first))
    await step(store.confirm("dev-c", 1, record=first))  # no such device
    # A refused move's restored binding: ordered by the refused report, its own time kept.
    await step(store.claim(binding("dev-g", "LOC1", observed=10), credential="d"))
    await step(store.claim(binding("dev-g", "LOC2", observed=30), credential="d"))
    restored = dataclasses.replace(binding("dev-g", "LOC1", observed=10), ordered_at=at(30))
    await step(store.claim(restored, credential="d"))
    await step(store.claim(binding("dev-g", "LOC3", observed=20), credential="d"))  # older
    await step(store.advance("dev-g", at(20)))  # older
    await step(store.advance("dev-g", at(30)))
    # A deleted device: not created again by an older claim; a newer one does.
    await step(store.delete("dev-h", deleted_at=at(40)))
    await step(store.claim(binding("dev-h", "LOC1", observed=39), credential="d"))
    await step(store.claim(binding("dev-h", "LOC1", observed=40), credential="d"))
    # Together in one batch: a confirmation, an overtaken write and one without a record.
    await step(store.claim(binding("dev-e", "LOC1", observed=1), credential="d"))
    await step(store.claim(binding("dev-e", "LOC2", observed=2), credential="d"))
    await step(store.claim(binding("dev-f", "LOC1", observed=1), credential="d"))
    third = dataclasses.replace(first, aeui="dev-e", after={"a": 3})
    fourth = dataclasses.replace(first, aeui="dev-f", after={"a": 4})
    batch = asyncio.gather(
        store.confirm("dev-e", 1, record=third),
        store.confirm("dev-d", 3),
        store.confirm("dev-f", 1, record=fourth),
    )
    await step(batch)
    # dev-a's write again with the same taking (a repair's): recorded once; a repair's own
    # write is kept. (dev-a lost its number but not its row: version 2 is still stored.)
    await step(store.confirm("dev-a", 2, record=dataclasses.replace(record, credential="g")))
    repaired = dataclasses.replace(record, kind=HistoryKind.REPAIRED, before={"a": 0})
    await step(store.confirm("dev-a", 2, record=repaired))
    # The call-time query's records, appended as they are (one without an observation),
    # with their events (none here): the outbox's transaction.
    queried = dataclasses.replace(record, kind=HistoryKind.EMERGENCY_QUERY, before=None)
    records = [queried, dataclasses.replace(queried, observed_at=None)]
    await step(OutboxStore(store).write_events(lambda lookup: [], records=records))
    await step(OutboxStore(store).write_events(lambda lookup: []))
    return answers


async def _tables(store: SqlStateStore) -> dict[str, list[tuple[Any, ...]]]:
    async with store.transaction(read_only=True) as connection:
        return {
            table.name: [
                tuple(row) for row in await connection.execute(sa.select(table).order_by(*key))
            ]
            for table, key in (
                (devices, [devices.c.aeui]),
                (numbers, [numbers.c.telephone_number]),
                (history, [history.c.id]),
                (deleted_devices, [deleted_devices.c.aeui]),
            )
        }


def test_the_driver_sql_agrees_with_the_portable_path(
    db: Database, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async def outcome(url: str, driver_sql: bool) -> tuple[list[Any], dict[str, Any]]:
        clock = Clock()
        async with await open_store(url, create=True, clock=clock, driver_sql=driver_sql) as store:
            answers = await _scenario(store, clock)
            return answers, await _tables(store)

    fast = run(outcome(db.url, True))
    portable = run(outcome(_second_url(db, request, tmp_path), False))
    assert fast[0] == portable[0]
    assert fast[1] == portable[1]
    # The scenario reached the cases it means to: refusals and acceptances of each kind.
    answers = fast[0]
    assert answers[3] is False and answers[4] is True and answers[6] is True
    assert answers[7] is False and answers[8] is False and answers[9] is True
    assert answers[11][0] == "NumberOwned" and answers[16] is False and answers[17] is True
    assert len(fast[1]["history"]) >= 3
    # The overtaken writes the carrier took: kept once each, in order, before the newer.
    kept = [(row[1], row[5], row[-1]) for row in fast[1]["history"] if row[1] != "dev-a"]
    kept = [row for row in kept if not row[0].startswith("~")]
    assert answers[21] is False and answers[22] is False and answers[23] is True
    assert answers[25] is False and answers[26] is False
    refused, restored, older, behind, ahead = answers[28:33]
    assert refused.won and restored.won and not older.won and (behind, ahead) == (False, True)
    assert restored.current.observed_at == at(10) and restored.current.ordered_at == at(30)
    assert answers[34] == ("DeviceDeleted", at(40)) and answers[35].won
    assert [row[0] for row in fast[1]["deleted_devices"]] == ["dev-h"]
    assert answers[-5] == [False, True, True]
    assert answers[-4] is True and answers[-3] is True
    queried = [row for row in fast[1]["history"] if row[5] == "emergency_query"]
    assert [row[6] is None for row in queried] == [False, True]
    taken_a = [(row[5], row[-1]) for row in fast[1]["history"] if row[1] == "dev-a"]
    assert [kind for kind, _ in taken_a if kind in ("applied", "repaired")] == [
        "applied",
        "repaired",
    ]
    assert kept == [
        ("dev-d", "applied", '{"a":1}'),
        ("dev-d", "applied", '{"a":2}'),
        ("dev-f", "applied", '{"a":4}'),
        ("dev-e", "applied", '{"a":3}'),
    ]
