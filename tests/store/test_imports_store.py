"""``gateway.store.imports`` on both backends: an import's record, its lines, the bulk reads."""

from __future__ import annotations

import asyncio

from gateway.store import open_store
from gateway.store.base import LocationRecord
from gateway.store.imports import ImportStore, LineDone, now_us
from gateway.store.tables import imports as imports_table
from tests.store.conftest import Database
from tests.store.helpers import binding, run


def test_an_imports_record_lines_and_bulk_reads(db: Database) -> None:
    async def main() -> None:
        async with await open_store(db.url, create=True) as store:
            imports = ImportStore.of(store)
            await imports.create("0123456789abcdef", "devices", "d" * 64, 3)
            await imports.record(
                "0123456789abcdef", [LineDone(2, "created"), LineDone(3, "failed", "no")]
            )
            # A line recorded again (a flush after a crash) keeps its first outcome.
            await imports.record(
                "0123456789abcdef", [LineDone(2, "unchanged"), LineDone(4, "created")]
            )
            done = await imports.done("0123456789abcdef")
            assert {k: v.outcome for k, v in done.items()} == {
                2: "created",
                3: "failed",
                4: "created",
            }
            outcomes, failed = await imports.progress("0123456789abcdef", 10)
            assert outcomes == {"created": 2, "failed": 1}
            assert failed == [LineDone(3, "failed", "no")]
            await imports.finish("0123456789abcdef", "done", {"left": 0})
            found = await imports.get("0123456789abcdef")
            assert found is not None and found.state == "done" and found.report == {"left": 0}
            assert await imports.get("ffffffffffffffff") is None

            claim = await store.claim(
                binding("dev-1", "LOC1", phone="+12025550101"), credential="device"
            )
            await store.confirm("dev-1", claim.current.version)
            await store.remember_location(
                LocationRecord("LOC1", {"zip": "20500"}, None, None, None)
            )
            held = await imports.bindings(["dev-1", "dev-2"])
            assert set(held) == {"dev-1"} and held["dev-1"][0] == "LOC1" and held["dev-1"][3]
            owners = await imports.numbers(["+12025550101", "+12025550199"])
            assert set(owners) == {"+12025550101"}
            assert owners["+12025550101"].owner == "dev-1"
            assert await imports.known_locations(["LOC1", "LOC2"]) == {"LOC1"}
            assert [d["aeui"] for d in await imports.devices()] == ["dev-1"]

    run(main())


def test_a_resume_claims_an_import_only_when_no_run_of_it_lives(db: Database) -> None:
    """A resume of an import another replica still runs (its heartbeat fresh) was taken: two
    runs applied the same lines at once. The claim is one conditional statement: refused
    while the last sign of life is younger than ``stale_after_us`` (which it answers), and of
    two replicas claiming a stopped import at once, exactly one wins."""
    stale = 60_000_000
    import_id = "0123456789abcdef"

    async def aged(store: ImportStore, seconds: float) -> None:
        async with store._begin() as connection:
            await connection.execute(
                imports_table.update().values(updated_at=now_us() - int(seconds * 1_000_000))
            )

    async def main() -> None:
        async with (
            await open_store(db.url, create=True) as one,
            await open_store(db.url, create=True) as two,
        ):
            first, second = ImportStore.of(one), ImportStore.of(two)
            await first.create(import_id, "devices", "d" * 64, 3)
            await aged(first, 10)
            before = await first.get(import_id)
            assert before is not None
            assert await second.resume(import_id, stale) == before.updated_at
            assert await first.get(import_id) == before  # nothing changed
            # Its run stopped (Ctrl-C, the carrier's refusal): resumed at once.
            await first.finish(import_id, "incomplete", {"left": 3})
            assert await second.resume(import_id, stale) is None
            claimed = await first.get(import_id)
            assert claimed is not None and claimed.state == "running" and claimed.report is None
            assert await first.resume(import_id, stale) is not None  # now that run lives
            # Its process killed: claimable once the heartbeat is stale_after_us old, by one.
            for _ in range(5):
                await aged(first, 61)
                won = await asyncio.gather(
                    *(s.resume(import_id, stale) for s in (first, second, first, second))
                )
                assert sum(w is None for w in won) == 1, won
            # The run that held it before learns so at its next heartbeat, and ends nothing.
            held = await first.get(import_id)
            assert held is not None
            lease = await second.touch(import_id, held.updated_at)
            assert lease is not None and lease > held.updated_at
            assert await first.touch(import_id, held.updated_at) is None
            assert await first.record(import_id, [LineDone(2, "created")], held.updated_at) is None
            assert not await first.finish(import_id, "done", {}, held.updated_at)
            assert await second.finish(import_id, "done", {}, lease)
            found = await first.get(import_id)
            assert found is not None and found.state == "done"
            assert set(await first.done(import_id)) == {2}  # a line done is done, either way

    run(main())
