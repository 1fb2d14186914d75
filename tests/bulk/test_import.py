"""Bulk import: the whole-file check, the dry run, apply, idempotence, export round trip,
the carrier's rate limit."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from gateway.bandwidth.upstreams import is_background
from gateway.bulk.export import export
from gateway.bulk.formats import DEVICES, LOCATIONS, BadFile, Limits, read
from gateway.bulk.run import ResumeRefused, prepare
from gateway.bulk.validate import problems_csv
from gateway.rows import guard
from tests.bulk.helpers import ADDRESSES, DEVICE_HEADER, bulk_gateway, devices_csv, writes
from tests.harness import SPACE_NEEDLE, phone_of, report


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_every_kind_of_bad_row_is_reported_with_line_field_and_reason() -> None:
    async def main() -> None:
        async with bulk_gateway() as (gw, rt):
            # A device that owns its number already.
            owner = await gw.report(
                {
                    "alternateEndUserId": "owner-1",
                    "callerName": "OWNER",
                    "telephoneNumber": "+12025550100",
                    "observedAt": "2026-11-01T12:00:00+00:00",
                    "address": ADDRESSES[0],
                }
            )
            assert owner.status_code in (200, 201), owner.text
            long_name = "X" * 300
            text = (
                "AEUI,CallerName,CallbackNumber,LocationId,Address\n"
                f'good-1,ALICE,{phone_of("good-1")},,"{ADDRESSES[0]}"\n'  # line 2
                f',BOB,{phone_of("b")},,"{ADDRESSES[1]}"\n'  # 3: no AEUI
                f'good-1,CAROL,{phone_of("c")},,"{ADDRESSES[1]}"\n'  # 4: AEUI twice
                f'dev-4,,{phone_of("dev-4")},,"{ADDRESSES[1]}"\n'  # 5: no caller name
                f'dev-5,EVE,12345,,"{ADDRESSES[1]}"\n'  # 6: not a number
                f'dev-6,FRANK,{phone_of("dev-6")},,"not an address at all"\n'  # 7
                f"dev-7,GRACE,{phone_of('dev-7')},,\n"  # 8: no place
                f'dev-8,HEIDI,{phone_of("good-1")},,"{ADDRESSES[2]}"\n'  # 9: number in file
                f'dev-9,IVAN,+12025550100,,"{ADDRESSES[2]}"\n'  # 10: owned elsewhere
                f"dev-10,JUDY,{phone_of('dev-10')},ZZZ999,\n"  # 11: unknown location
                f'dev-11,{long_name},{phone_of("dev-11")},,"{ADDRESSES[3]}"\n'  # 12: too long
                f'dev-12,MALLORY,{phone_of("dev-12")},ABC123,"{ADDRESSES[3]}"\n'  # 13: wrong ID
            ).encode()
            prepared = await prepare(DEVICES, text, rt.pipeline, rt.imports, rt.limits)
            found = {(p.line, p.field) for p in prepared.problems}
            assert found == {
                (3, "AEUI"),
                (4, "AEUI"),
                (5, "CallerName"),
                (6, "CallbackNumber"),
                (7, "Address"),
                (8, "Address"),
                (9, "CallbackNumber"),
                (10, "CallbackNumber"),
                (11, "LocationId"),
                (12, "CallerName"),
                (13, "LocationId"),
            }, prepared.problems
            reasons = {(p.line, p.field): p.reason for p in prepared.problems}
            assert "line 2" in reasons[(4, "AEUI")]
            assert "owner-1" in reasons[(10, "CallbackNumber")]
            assert [r.line for r in prepared.checked.rows] == [2]
            report = problems_csv(prepared.problems)
            assert report.splitlines()[0] == "line,field,reason"
            assert len(report.splitlines()) == 1 + len(prepared.problems)

    run(main())


def test_callback_numbers_as_a_spreadsheet_writes_them() -> None:
    """The README's example file: numbers without ``+1`` (``(202) 555-0101``, ``1-202-...``)
    are read and stored as E.164, as the columns' table says; a foreign one is not."""

    async def main() -> None:
        async with bulk_gateway() as (_, rt):
            text = (
                f"{DEVICE_HEADER}"
                f'alice-laptop,ALICE SMITH,(202) 555-0101,"{ADDRESSES[0]}"\n'
                f'bob-phone,BOB JONES,202-555-0102,"{ADDRESSES[1]}"\n'
                f'carol-phone,CAROL,1.202.555.0103,"{ADDRESSES[2]}"\n'
                f'dave-phone,DAVE,+1 202 555 0104,"{ADDRESSES[3]}"\n'
                f'erin-phone,ERIN,+44 20 7946 0958,"{ADDRESSES[3]}"\n'
            ).encode()
            prepared = await prepare(DEVICES, text, rt.pipeline, rt.imports, rt.limits)
            numbers = {r.aeui: r.telephone_number for r in prepared.checked.rows}  # type: ignore[union-attr]
            assert numbers == {
                "alice-laptop": "+12025550101",
                "bob-phone": "+12025550102",
                "carol-phone": "+12025550103",
                "dave-phone": "+12025550104",
            }
            (refused,) = prepared.problems
            assert (refused.line, refused.field) == (6, "CallbackNumber")
            assert "(202) 555-0143" in refused.reason

    run(main())


def test_dry_run_plans_without_writing_then_apply_does_what_it_said() -> None:
    async def main() -> None:
        async with bulk_gateway() as (gw, rt):
            data = devices_csv(12)
            prepared = await prepare(DEVICES, data, rt.pipeline, rt.imports, rt.limits)
            assert not prepared.problems
            counts = {"created": 12, "moved": 0, "updated": 0, "unchanged": 0}
            assert prepared.plan.counts() == counts
            assert prepared.plan.new_locations == 4
            # A new location one call, a device the gateway has never seen one: its create.
            assert prepared.plan.carrier_calls == 4 + 12
            assert writes(gw) == []  # planning wrote nothing
            seq = gw.last_seq()
            import_id = await rt.importer.start(prepared)
            summary = await rt.importer.apply(import_id, prepared)
            assert summary.state == "done"
            assert summary.outcomes == Counter({"created": 12})
            calls = gw.calls(seq)
            assert len(calls) == prepared.plan.carrier_calls
            ops = Counter(c["operation"] for c in calls)
            assert ops["createLocation"] == 4
            assert ops["createEndpoint"] == 12 and ops["updateEndpoint"] == 0
            # The devices are bound as reports bind them.
            for i in range(12):
                held = await rt.pipeline.ledger.get(f"dev-{i}")
                assert held is not None and held.confirmed
                assert held.caller_name == f"USER {i}"

    run(main())


def test_the_same_file_twice_costs_no_carrier_call_the_second_time() -> None:
    async def main() -> None:
        async with bulk_gateway() as (gw, rt):
            data = devices_csv(8)
            first = await prepare(DEVICES, data, rt.pipeline, rt.imports, rt.limits)
            await rt.importer.apply(await rt.importer.start(first), first)
            seq = gw.last_seq()
            again = await prepare(DEVICES, data, rt.pipeline, rt.imports, rt.limits)
            assert again.plan.counts()["unchanged"] == 8
            assert again.plan.carrier_calls == 0
            summary = await rt.importer.apply(await rt.importer.start(again), again)
            assert summary.outcomes == Counter({"unchanged": 8})
            assert gw.calls(seq) == []

    run(main())


def test_export_then_import_changes_nothing() -> None:
    async def main() -> None:
        async with bulk_gateway() as (gw, rt):
            data = devices_csv(6)
            first = await prepare(DEVICES, data, rt.pipeline, rt.imports, rt.limits)
            await rt.importer.apply(await rt.importer.start(first), first)
            for kind in (DEVICES, LOCATIONS):
                exported = (await export(kind, rt.imports)).encode()
                seq = gw.last_seq()
                again = await prepare(kind, exported, rt.pipeline, rt.imports, rt.limits)
                assert not again.problems, again.problems
                assert len(again.checked.rows) == (6 if kind == DEVICES else 4)
                assert again.plan.carrier_calls == 0
                summary = await rt.importer.apply(await rt.importer.start(again), again)
                assert set(summary.outcomes) == {"unchanged"}
                assert gw.calls(seq) == []
            # Numbers start with "+": written behind a quote, never a formula.
            text = await export(DEVICES, rt.imports)
            assert f"'{phone_of('dev-0')}" in text

    run(main())


def test_locations_import_creates_each_once() -> None:
    async def main() -> None:
        async with bulk_gateway() as (gw, rt):
            text = "LocationId,Description,Address\n" + "".join(
                f',Site {i},"{a}"\n' for i, a in enumerate(ADDRESSES)
            )
            prepared = await prepare(LOCATIONS, text.encode(), rt.pipeline, rt.imports, rt.limits)
            assert prepared.plan.counts()["created"] == 4
            summary = await rt.importer.apply(await rt.importer.start(prepared), prepared)
            assert summary.outcomes == Counter({"created": 4})
            ops = Counter(c["operation"] for c in gw.calls())
            assert ops["createLocation"] == 4
            # A device file may then name a location by its ID alone.
            location_id = prepared.checked.rows[0].location_id
            devices = "AEUI,CallerName,CallbackNumber,LocationId\n"
            devices += f"d-1,ANN,{phone_of('d-1')},{location_id}\n"
            placed = await prepare(DEVICES, devices.encode(), rt.pipeline, rt.imports, rt.limits)
            assert not placed.problems, placed.problems
            assert placed.plan.carrier_calls == 1  # the location exists: the endpoint only

    run(main())


def test_the_carriers_rate_limit_is_respected() -> None:
    async def main() -> None:
        async with bulk_gateway(rate_limit=20.0) as (gw, rt):
            data = devices_csv(30)
            prepared = await prepare(DEVICES, data, rt.pipeline, rt.imports, rt.limits)
            summary = await rt.importer.apply(await rt.importer.start(prepared), prepared)
            assert summary.state == "done", summary.as_json()
            assert summary.outcomes == Counter({"created": 30})
            calls = gw.calls()
            limited = [c for c in calls if c["status"] == 429]
            assert limited, "the test must hit the limit to show it is respected"
            # Every device bound, each endpoint created exactly once.
            creates = Counter(
                c["id"]
                for c in calls
                if c["operation"] == "createEndpoint" and c["status"] in (200, 201)
            )
            assert len(creates) == 30 and set(creates.values()) == {1}

    run(main())


def test_a_credentials_outage_stops_the_run_and_fails_no_line() -> None:
    """The carrier refusing the gateway's credentials is the operator's to fix, not a fault
    of each line: the run stops at once (a refused call per worker at most), says why, marks
    no line failed, and a resume once the credentials are fixed applies every line."""

    async def main() -> None:
        async with bulk_gateway() as (gw, rt):
            data = devices_csv(30)
            prepared = await prepare(DEVICES, data, rt.pipeline, rt.imports, rt.limits)
            import_id = await rt.importer.start(prepared)
            password = gw.simulator.config.password
            gw.simulator.config.password = "rotated-by-someone"
            stopped = await rt.importer.apply(import_id, prepared)
            assert stopped.state == "incomplete" and stopped.left == 30, stopped.as_json()
            assert "failed" not in stopped.outcomes and not stopped.failures
            assert stopped.error is not None and "credentials" in stopped.error
            assert stopped.as_json()["error"] == stopped.error
            assert 1 <= len(gw.calls()) <= rt.importer.concurrency
            assert await rt.imports.done(import_id) == {}
            status = (await gw.http.get(f"/v1/imports/{import_id}")).json()
            assert (status["state"], status["left"], status["failed"]) == ("incomplete", 30, 0)
            assert status["error"] == stopped.error
            gw.simulator.config.password = password
            resumed = await rt.importer.apply(
                await rt.importer.start(prepared, import_id), prepared
            )
            assert resumed.state == "done" and resumed.error is None, resumed.as_json()
            assert resumed.outcomes == Counter({"created": 30})

    run(main())


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"AEUI,Nope\n", "unknown column"),
        (b"\xff\xfe\x00A", "UTF-8"),
        (DEVICE_HEADER.encode() + b"a,b,c,d,e,f\n", "cells"),
        (b"AEUI,CallerName\n", "missing column"),
    ],
)
def test_a_file_that_cannot_be_used_is_refused_whole(data: bytes, words: str) -> None:
    with pytest.raises(BadFile, match=words):
        read(DEVICES, data)


def test_rows_and_size_are_bounded_and_a_bom_is_allowed() -> None:
    with pytest.raises(BadFile, match="more than 4 rows"):
        read(DEVICES, devices_csv(5), Limits(max_rows=4))
    with pytest.raises(BadFile, match="larger than 100 bytes"):
        read(DEVICES, devices_csv(5), Limits(max_bytes=100))
    parsed = read(DEVICES, b"\xef\xbb\xbf" + devices_csv(1))
    assert parsed.rows[0].cells["AEUI"] == "dev-0"
    # A spreadsheet's unnamed trailing column is ignored; names match loosely.
    parsed = read(DEVICES, b"aeui,Caller Name,telephone_number,address,\na,B,+12025550143,x,junk\n")
    assert dict(parsed.rows[0].cells) == {
        "AEUI": "a",
        "CallerName": "B",
        "CallbackNumber": "+12025550143",
        "Address": "x",
    }
    # A formula guarded by export is read back as written; a bare one stays text.
    parsed = read(DEVICES, DEVICE_HEADER.encode() + b"'=cmd,'+A,'-1,x\n")
    assert dict(parsed.rows[0].cells) == {
        "AEUI": "=cmd",
        "CallerName": "+A",
        "CallbackNumber": "-1",
        "Address": "x",
    }
    assert guard("=HYPERLINK()") == "'=HYPERLINK()" and guard("@x") == "'@x"


ROWS = 300


def test_a_cancelled_run_keeps_what_finished_and_resumes_by_id() -> None:
    async def main() -> None:
        async with bulk_gateway(latency_ms=20) as (gw, rt):
            data = devices_csv(ROWS)
            prepared = await prepare(DEVICES, data, rt.pipeline, rt.imports, rt.limits)
            import_id = await rt.importer.start(prepared)
            task = asyncio.create_task(rt.importer.apply(import_id, prepared))
            for _ in range(1000):
                if len(await rt.imports.done(import_id)) >= 5:
                    break
                await asyncio.sleep(0.02)
            task.cancel()  # Ctrl-C
            with pytest.raises(asyncio.CancelledError):
                await task
            stopped = await rt.imports.get(import_id)
            assert stopped is not None and stopped.state == "incomplete"
            kept = len(await rt.imports.done(import_id))
            assert 5 <= kept < ROWS
            resumed = await prepare(DEVICES, data, rt.pipeline, rt.imports, rt.limits)
            assert await rt.importer.start(resumed, import_id) == import_id
            summary = await rt.importer.apply(import_id, resumed)
            assert summary.state == "done"
            assert sum(summary.outcomes.values()) == ROWS
            assert len(await rt.imports.done(import_id)) == ROWS
            creates = Counter(c["id"] for c in gw.calls() if c["operation"] == "createEndpoint")
            assert len(creates) == ROWS and set(creates.values()) == {1}
            with pytest.raises(ResumeRefused):
                await rt.importer.start(
                    await prepare(DEVICES, devices_csv(3), rt.pipeline, rt.imports, rt.limits),
                    import_id,
                )

    run(main())


def test_a_devices_own_report_after_the_import_began_is_not_overwritten() -> None:
    """A line says where its device was when the import began, not when (or on which resume)
    the line happens to run: a report the device made since then is newer, and stays."""

    async def main() -> None:
        async with bulk_gateway() as (gw, rt):
            prepared = await prepare(DEVICES, devices_csv(2), rt.pipeline, rt.imports, rt.limits)
            import_id = await rt.importer.start(prepared)
            # dev-1 (Empire State Building in the file) reports from Seattle before its line
            # runs: during the run, or while a stopped run waits for its resume.
            now = datetime.now(UTC).isoformat()
            own = report("dev-1", SPACE_NEEDLE, caller="USER 1", observedAt=now)
            assert (await gw.report(own)).status_code == 200
            seq = gw.last_seq()
            summary = await rt.importer.apply(import_id, prepared)
            assert summary.outcomes == Counter({"created": 1, "superseded": 1}), summary
            assert "dev-1" not in str(gw.calls(seq))
            held = await gw.http.get("/v1/devices/dev-1/location")
            assert held.json()["address"]["city"] == "SEATTLE"

    run(main())


def test_a_new_device_the_carrier_holds_already_is_updated_not_duplicated() -> None:
    """A device new to the gateway is created without an update first; when the carrier
    holds it after all (created behind the gateway's back), the create's conflict falls back
    to the update: one endpoint, at the imported location."""

    async def main() -> None:
        async with bulk_gateway() as (gw, rt):
            first = await prepare(DEVICES, devices_csv(2), rt.pipeline, rt.imports, rt.limits)
            await rt.importer.apply(await rt.importer.start(first), first)
            # The gateway forgets dev-1 (a store restored from an old backup), the carrier not.
            await rt.pipeline.ledger.delete("dev-1")
            rt.pipeline.known.distrust("dev-1")
            moved = devices_csv(2).replace(ADDRESSES[1].encode(), ADDRESSES[2].encode())
            again = await prepare(DEVICES, moved, rt.pipeline, rt.imports, rt.limits)
            assert again.plan.actions[3] == "created"
            seq = gw.last_seq()
            summary = await rt.importer.apply(await rt.importer.start(again), again)
            assert summary.outcomes["created"] == 1, summary
            ops = [c["operation"] for c in gw.calls(seq) if "Endpoint" in c["operation"]]
            assert ops == ["createEndpoint", "updateEndpoint"]
            held = [
                e
                for e in (await rt.pipeline.known.carrier.list_endpoints()).endpoints
                if e.alternate_end_user_id == "dev-1"
            ]
            assert len(held) == 1
            stored = await rt.pipeline.ledger.get("dev-1")
            assert stored is not None and held[0].location_id == stored.location_id

    run(main())


class Noting(httpx.AsyncBaseTransport):
    """Notes of each request to the carrier whether it was background work."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[bool] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(is_background())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_an_imports_carrier_calls_are_background_work() -> None:
    # They take at most half of the connection slots: an import of thousands of devices on
    # a slow carrier leaves the rest to the devices' own reports.
    noted: list[Noting] = []

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        noted.append(Noting(inner))
        return noted[0]

    async def main() -> None:
        async with bulk_gateway(wrap=wrap) as (gw, rt):
            prepared = await prepare(DEVICES, devices_csv(6), rt.pipeline, rt.imports, rt.limits)
            summary = await rt.importer.apply(await rt.importer.start(prepared), prepared)
            assert summary.outcomes == Counter({"created": 6})
            assert len(noted[0].seen) == prepared.plan.carrier_calls
            assert all(noted[0].seen)
            noted[0].seen.clear()
            answer = await gw.report(report("solo", SPACE_NEEDLE))
            assert answer.status_code == 200
            assert noted[0].seen and not any(noted[0].seen)  # a report's own calls: not

    run(main())


def test_a_state_store_hiccup_on_a_line_is_waited_out_not_the_end_of_the_run() -> None:
    """The state store failing once for one line (SQLite busy past its timeout, PostgreSQL
    failing over) ended the whole run: the worker's error cancelled the others, and
    ``dlr-gateway import`` ended in a traceback (an exception group) with the import left
    ``running``. The line is tried again after a pause, as for the carrier's unavailability."""
    from gateway.store import StoreUnavailable

    async def main() -> None:
        async with bulk_gateway() as (_, rt):
            data = devices_csv(12)
            prepared = await prepare(DEVICES, data, rt.pipeline, rt.imports, rt.limits)
            import_id = await rt.importer.start(prepared)
            ledger = rt.pipeline.ledger
            real = ledger.get
            failed: list[str] = []

            async def flaky(aeui: str) -> object:
                if aeui == "dev-5" and not failed:
                    failed.append(aeui)
                    raise StoreUnavailable("database is locked")
                return await real(aeui)

            ledger.get = flaky  # type: ignore[method-assign]
            summary = await rt.importer.apply(import_id, prepared)
            assert failed == ["dev-5"]
            assert summary.state == "done", summary.as_json()
            assert summary.outcomes == Counter({"created": 12})

    run(main())
