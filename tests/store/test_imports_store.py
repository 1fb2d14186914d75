"""``gateway.store.imports`` on both backends: an import's record, its lines, the bulk reads."""

from __future__ import annotations

from gateway.store import open_store
from gateway.store.base import LocationRecord
from gateway.store.imports import ImportStore, LineDone
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
