"""Reconciliation leases, history pages, retention, known locations."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gateway.store import HistoryKind, open_store
from gateway.store.base import HistoryRecord, LocationRecord
from gateway.store.sql import SqlStateStore
from tests.store.conftest import Clock, Database
from tests.store.helpers import T0, applied, at, binding, run, seed


async def _open(db: Database, clock: Clock) -> SqlStateStore:
    store = await open_store(db.url, create=True, clock=clock)
    assert isinstance(store, SqlStateStore)
    return store


def test_two_replicas_never_lease_the_same_device(db: Database, clock: Clock) -> None:
    async def main() -> None:
        async with await _open(db, clock) as one, await _open(db, clock) as two:
            aeuis = await seed(one, 60)

            async def drain(store: SqlStateStore, owner: str) -> list[str]:
                taken: list[str] = []
                while batch := await store.lease(owner, limit=7, lease_seconds=30):
                    taken += [b.aeui for b in batch]
                    await asyncio.sleep(0.005)  # checking them at the carrier
                return taken

            a, b = await asyncio.gather(drain(one, "replica-a"), drain(two, "replica-b"))
            assert not set(a) & set(b)
            assert sorted(a + b) == aeuis
            if db.backend == "postgresql":  # SQLite's busy handler may starve one writer
                assert a and b

            # While the leases hold, nobody gets anything.
            clock.advance(29)
            assert await one.lease("replica-c", limit=100, lease_seconds=30) == []
            # Released leases and expired ones are taken again.
            assert await one.release(a[0], "replica-a")
            assert not await one.release(a[1], "replica-b")  # not its lease
            again = await two.lease("replica-b", limit=100, lease_seconds=30)
            assert [x.aeui for x in again] == [a[0]]
            clock.advance(2)
            expired = await two.lease("replica-c", limit=100, lease_seconds=30)
            assert sorted(x.aeui for x in expired) == sorted(set(aeuis) - {a[0]})

    run(main())


def test_lease_filters_and_checked(db: Database, clock: Clock) -> None:
    async def main() -> None:
        async with await _open(db, clock) as store:
            first = await store.claim(binding("d1", observed=1), credential="device")
            await store.claim(binding("d2", observed=1), credential="device")
            await store.claim(binding("d3", observed=1), credential="device")
            assert await store.confirm("d3", 1)

            unconfirmed = await store.lease("r", limit=10, lease_seconds=5, only_unconfirmed=True)
            assert sorted(b.aeui for b in unconfirmed) == ["d1", "d2"]

            # A claim while d1 is being checked: the stale check must not confirm the new one.
            moved = await store.claim(binding("d1", "LOC2", observed=2), credential="device")
            assert await store.checked("d1", "r", True, version=first.current.version)
            d1 = await store.get("d1")
            assert d1 is not None and not d1.confirmed and d1.version == moved.current.version
            assert await store.checked("d2", "r", True, version=1)
            d2 = await store.get("d2")
            assert d2 is not None and d2.confirmed
            assert not await store.checked("d2", "r", True)  # lease already released

            # Least recently checked first (a confirm counts as a check: d3 was confirmed at
            # the same instant d1 and d2 were checked, so the names break the tie).
            clock.advance(10)
            assert [b.aeui for b in await store.lease("r", limit=1, lease_seconds=5)] == ["d1"]
            order = await store.lease("s", limit=10, lease_seconds=5)
            assert [b.aeui for b in order] == ["d2", "d3"]

            # Only those not checked since a moment.
            clock.advance(10)
            for aeui in ("d1", "d2", "d3"):
                await store.release(aeui, "r")
                await store.release(aeui, "s")
            stale = await store.lease(
                "t", limit=10, lease_seconds=5, older_than=T0.replace(year=2024)
            )
            assert stale == []  # all three were checked (or confirmed) after that

    run(main())


def test_history_pages_newest_first(db: Database, clock: Clock) -> None:
    async def main() -> None:
        async with await _open(db, clock) as store:
            for i in range(7):
                clock.advance(1)
                await applied(store, binding("d1", f"LOC{i}", observed=i))
                await applied(store, binding("other", f"LOC{i}", observed=i))
            admin_id = await store.record(
                HistoryRecord(
                    "d1",
                    kind=HistoryKind.ADMIN_EDIT,
                    credential="admin-key-0",
                    source="admin",
                    before={"locationId": "LOC6"},
                    after={"locationId": "LOC9", "note": "ünïcode"},
                    observed_at=None,
                )
            )
            entries = await store.history("d1", limit=3)
            assert entries[0].id == admin_id and entries[0].kind == "admin_edit"
            assert entries[0].after == {"locationId": "LOC9", "note": "ünïcode"}
            assert (entries[0].from_location_id, entries[0].to_location_id) == ("LOC6", "LOC9")
            assert entries[0].observed_at is None and entries[0].credential == "admin-key-0"
            pages = [entries]
            while pages[-1]:
                pages.append(await store.history("d1", limit=3, before_id=pages[-1][-1].id))
            everything = [e for page in pages for e in page]
            assert [len(p) for p in pages] == [3, 3, 2, 0]
            ids = [e.id for e in everything]
            assert ids == sorted(ids, reverse=True)
            assert {e.aeui for e in everything} == {"d1"}
            assert [e.to_location_id for e in everything[1:]] == [
                f"LOC{i}" for i in range(6, -1, -1)
            ]
            assert everything[-1].at == at(0).replace(year=2025, month=1, day=1, hour=0, second=1)

    run(main())


def test_purge_history(db: Database, clock: Clock) -> None:
    async def main() -> None:
        async with await _open(db, clock) as store:
            for i in range(5):
                await applied(store, binding("d1", f"LOC{i}", observed=i))
                clock.advance(3600)
            cutoff = clock.now
            await applied(store, binding("d1", "LOC9", observed=9))
            assert await store.purge_history(cutoff.replace(year=2000)) == 0
            # Five bindings the carrier took, and the device taking its number first.
            assert await store.purge_history(cutoff) == 6
            left = await store.history("d1")
            assert [e.to_location_id for e in left] == ["LOC9"]
            # IDs are never reused after a purge (pagination relies on them).
            await store.purge_history(cutoff.replace(year=2100))
            newest = await store.record(
                HistoryRecord(
                    "d1",
                    kind=HistoryKind.REPAIRED,
                    credential="reconciler",
                    source="repair",
                    before=None,
                    after=None,
                    observed_at=None,
                )
            )
            assert newest > left[0].id

    run(main())


def test_known_locations(db: Database, clock: Clock) -> None:
    async def main() -> None:
        async with await _open(db, clock) as store:
            assert not await store.locations_known("LOC1")
            address = {"houseNumber": "1", "streetName": "MAIN"}
            await asyncio.gather(
                *(
                    store.remember_location(LocationRecord("LOC1", address, "VALID", 35.0, -78.0))
                    for _ in range(5)
                )
            )
            await store.remember_location(LocationRecord("LOC1", {"other": "x"}, None, None, None))
            assert await store.locations_known("LOC1")
            assert not await store.locations_known("LOC2")

    run(main())


def test_lease_of_orphans_by_claim_time(db: Database, clock: Clock) -> None:
    """Unconfirmed bindings claimed before a moment, whenever they were last checked: what
    a replica killed mid-write leaves behind."""

    async def main() -> None:
        async with await _open(db, clock) as store:
            await store.claim(binding("old", observed=1), credential="device")
            done = await store.claim(binding("done", observed=1), credential="device")
            assert await store.confirm("done", done.current.version)
            cutoff = clock()
            clock.advance(5)
            await store.claim(binding("new", observed=2), credential="device")
            orphans = await store.lease(
                "r", limit=10, lease_seconds=5, only_unconfirmed=True, applied_before=cutoff
            )
            assert orphans == []  # claimed at the cutoff, not before it
            clock.advance(1)
            orphans = await store.lease(
                "r",
                limit=10,
                lease_seconds=5,
                only_unconfirmed=True,
                applied_before=clock() - timedelta(seconds=3),
            )
            assert [b.aeui for b in orphans] == ["old"]

    run(main())


def test_periodic_lease_leaves_bindings_being_written_to_their_writer(
    db: Database, clock: Clock
) -> None:
    """A binding claimed a moment ago and not confirmed yet is its report's write in
    progress: the periodic check skips it (and takes it once it is old enough to be an
    orphan, or confirmed)."""

    async def main() -> None:
        async with await _open(db, clock) as store:
            done = await store.claim(binding("done", observed=1), credential="device")
            assert await store.confirm("done", done.current.version)
            await store.claim(binding("stale", observed=1), credential="device")
            clock.advance(100)
            writing = await store.claim(binding("writing", observed=2), credential="device")
            clock.advance(1)
            since = clock() - timedelta(seconds=30)
            later = clock() + timedelta(seconds=1)  # every one of them due for a check
            taken = await store.lease(
                "r", limit=10, lease_seconds=5, older_than=later, skip_unconfirmed_since=since
            )
            assert sorted(b.aeui for b in taken) == ["done", "stale"]
            assert await store.confirm("writing", writing.current.version)
            clock.advance(1)
            taken = await store.lease(
                "r2",
                limit=10,
                lease_seconds=5,
                older_than=clock() + timedelta(seconds=1),
                skip_unconfirmed_since=since,
            )
            assert [b.aeui for b in taken] == ["writing"]  # confirmed: its turn has come

    run(main())


def test_stored_json_is_the_standard_librarys_text() -> None:
    # Written by orjson for speed; the text must stay what ``json`` wrote (sorted keys,
    # compact, UTF-8 kept), and what orjson refuses must still be stored.
    import json

    from gateway.store.mapping import dumps as _dumps

    def standard(value: dict[str, object]) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    cases: list[dict[str, object]] = [
        {"z": 1, "a": {"y": [1.5, -77.0365, 38.8977], "b": None}, "m": True, "é": "Zürich"},
        {"big": 2**70},  # beyond 64 bits: orjson refuses it
        {"name": "\ud800"},  # a lone surrogate: orjson refuses it
    ]
    for value in cases:
        assert _dumps(value) == standard(value)
    assert _dumps(None) is None
