"""``POST /v1/imports``, ``GET /v1/imports/{id}``, ``GET /v1/exports/{kind}``."""

from __future__ import annotations

import asyncio
import time

from gateway.bulk.run import Importer, Prepared, prepare
from gateway.bulk.runtime import Runtime
from tests.bulk.helpers import DEVICE_HEADER, devices_csv, runtime_of, writes
from tests.harness import Gateway, gateway, gateway_settings

CSV = {"Content-Type": "text/csv"}


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _finished(gw: Gateway, import_id: str) -> dict[str, object]:
    for _ in range(400):
        status = (await gw.http.get(f"/v1/imports/{import_id}")).json()
        if status["state"] != "running":
            return dict(status)
        await asyncio.sleep(0.05)
    raise AssertionError("the import did not finish")


def test_upload_dry_run_apply_progress_and_export() -> None:
    async def main() -> None:
        async with gateway() as gw:
            data = devices_csv(10)
            dry = await gw.http.post(
                "/v1/imports?kind=devices&dryRun=true", content=data, headers=CSV
            )
            assert dry.status_code == 200, dry.text
            assert dry.json()["plan"]["created"] == 10
            assert writes(gw) == []
            started = await gw.http.post("/v1/imports?kind=devices", content=data, headers=CSV)
            assert started.status_code == 202, started.text
            import_id = started.json()["importId"]
            assert started.headers["location"] == f"/v1/imports/{import_id}"
            status = await _finished(gw, import_id)
            assert status["state"] == "done", status
            assert status["done"] == 10 and status["failed"] == 0
            assert status["outcomes"] == {"created": 10}
            counted = gw.metrics.registry.get_sample_value(
                "dlr_import_rows_total", {"kind": "devices", "outcome": "created"}
            )
            assert counted == 10
            exported = await gw.http.get("/v1/exports/devices")
            assert exported.status_code == 200
            assert exported.headers["content-type"].startswith("text/csv")
            assert exported.text.count("\r\n") == 11
            # Its own export, imported again: nothing to do.
            seq = gw.last_seq()
            again = await gw.http.post(
                "/v1/imports?kind=devices", content=exported.content, headers=CSV
            )
            assert again.json()["plan"]["carrierCalls"] == 0
            status = await _finished(gw, again.json()["importId"])
            assert status["outcomes"] == {"unchanged": 10}
            assert gw.calls(seq) == []

    run(main())


def test_bad_uploads_are_clear_problems_never_500() -> None:
    async def main() -> None:
        async with gateway(gateway_settings(import_max_bytes=2000)) as gw:
            bad_rows = DEVICE_HEADER + "dev-1,,123,nowhere\n"
            answer = await gw.http.post(
                "/v1/imports?kind=devices", content=bad_rows.encode(), headers=CSV
            )
            assert answer.status_code == 422
            assert answer.headers["content-type"] == "application/problem+json"
            body = answer.json()
            assert body["type"] == "/problems/invalid-rows"
            assert {(r["line"], r["field"]) for r in body["rows"]} >= {
                (2, "CallerName"),
                (2, "CallbackNumber"),
            }
            for content, status, kind in (
                (b"\xff\xfe\x00garbage", 422, "bad-import-file"),
                (b"Nope,Columns\n1,2\n", 422, "bad-import-file"),
                (devices_csv(200), 413, "payload-too-large"),
            ):
                answer = await gw.http.post(
                    "/v1/imports?kind=devices", content=content, headers=CSV
                )
                assert answer.status_code == status, answer.text
                assert answer.json()["type"] == f"/problems/{kind}"
            answer = await gw.http.post("/v1/imports?kind=cats", content=b"x", headers=CSV)
            assert answer.status_code == 422
            # A parameter said twice is not read as its last value: the operator who asked
            # for a dry run among them gets no import applied.
            for query in ("kind=devices&dryRun=true&dryRun=false", "kind=locations&kind=devices"):
                answer = await gw.http.post(
                    f"/v1/imports?{query}", content=devices_csv(1), headers=CSV
                )
                assert answer.status_code == 422, answer.text
                assert answer.json()["errors"][0]["message"] == "given more than once"
            answer = await gw.http.post("/v1/imports?kind=devices", json={"a": 1})
            assert answer.status_code == 415
            answer = await gw.http.post(
                "/v1/imports?kind=devices&resume=0123456789abcdef",
                content=devices_csv(1),
                headers=CSV,
            )
            assert answer.status_code == 409
            assert (await gw.http.get("/v1/imports/nope")).status_code == 404
            assert (await gw.http.get("/v1/exports/cats")).status_code == 404
            anonymous = await gw.http.get("/v1/exports/devices", headers={"Authorization": ""})
            assert anonymous.status_code == 401
            assert writes(gw) == []

    run(main())


async def _stopped_earlier(gw: Gateway, rows: int) -> tuple[str, bytes]:
    """An import a previous run left (stopped by the carrier's refusal), and its file."""
    rt = runtime_of(gw)
    data = devices_csv(rows)
    prepared = await prepare("devices", data, rt.pipeline, rt.imports, rt.limits)
    import_id = await rt.importer.start(prepared)
    stopped = {"left": rows, "error": "the carrier refused the gateway's credentials"}
    await rt.imports.finish(import_id, "incomplete", stopped)
    return import_id, data


def test_a_resumed_import_reads_running_until_it_ends() -> None:
    """A resume left the import's state (and the last run's error) as the last run ended:
    ``dlr-gateway import --resume ID --url`` read ``incomplete`` at once and exited 3,
    saying to resume, while the gateway was applying the lines."""

    async def main() -> None:
        async with gateway(latency_ms=150.0) as gw:
            import_id, data = await _stopped_earlier(gw, 6)
            resumed = await gw.http.post(
                f"/v1/imports?kind=devices&resume={import_id}", content=data, headers=CSV
            )
            assert resumed.status_code == 202, resumed.text
            status = (await gw.http.get(f"/v1/imports/{import_id}")).json()
            assert status["state"] == "running", status
            assert status.get("error") is None, status
            status = await _finished(gw, import_id)
            assert status["state"] == "done" and status["done"] == 6, status

    run(main())


def test_an_import_whose_process_ended_reads_incomplete_not_running() -> None:
    """A gateway (or ``dlr-gateway import``) killed mid-import left the import ``running``
    for ever: its status said so, and ``import --url`` polled it for ever. An import whose
    run has given no sign of life for ``STALE_AFTER`` reads ``incomplete``, saying why."""
    from gateway.bulk import run as bulk_run
    from gateway.store.tables import imports

    async def main() -> None:
        async with gateway() as gw:
            import_id, _ = await _stopped_earlier(gw, 3)
            store = runtime_of(gw).imports
            await store.finish(import_id, "running", {})  # as a killed run leaves it
            fresh = (await gw.http.get(f"/v1/imports/{import_id}")).json()
            assert fresh["state"] == "running"  # another process's run, perhaps
            long_ago = time.time_ns() // 1000 - int((bulk_run.STALE_AFTER + 1) * 1_000_000)
            async with store._begin() as connection:
                await connection.execute(imports.update().values(updated_at=long_ago))
            status = (await gw.http.get(f"/v1/imports/{import_id}")).json()
            assert status["state"] == "incomplete", status
            assert status["left"] == 3
            assert "resume" in status["error"], status

    run(main())


def test_a_resume_of_an_import_running_elsewhere_is_refused() -> None:
    """A resume was refused only when this process ran the import: one another replica was
    applying (its heartbeat fresh) was taken, and two runs applied the same lines at once.
    It is now 409 ``import-running`` saying when it may be resumed, nothing run; once its
    run has given no sign of life for ``STALE_AFTER``, the resume is taken."""
    from gateway.bulk import run as bulk_run
    from gateway.store.tables import imports

    async def main() -> None:
        async with gateway() as gw:
            import_id, data = await _stopped_earlier(gw, 3)
            store = runtime_of(gw).imports
            await store.finish(import_id, "running", {})  # another replica's run, alive
            seq = gw.last_seq()
            refused = await gw.http.post(
                f"/v1/imports?kind=devices&resume={import_id}", content=data, headers=CSV
            )
            assert refused.status_code == 409, refused.text
            problem = refused.json()
            assert problem["type"] == "/problems/import-running", problem
            assert "is running" in problem["detail"] and "60 s" in problem["detail"], problem
            assert 55 <= int(refused.headers["retry-after"]) <= 60
            await asyncio.sleep(0.2)
            assert gw.calls(seq) == [] and await store.done(import_id) == {}
            long_ago = time.time_ns() // 1000 - int((bulk_run.STALE_AFTER + 1) * 1_000_000)
            async with store._begin() as connection:
                await connection.execute(imports.update().values(updated_at=long_ago))
            resumed = await gw.http.post(
                f"/v1/imports?kind=devices&resume={import_id}", content=data, headers=CSV
            )
            assert resumed.status_code == 202, resumed.text
            status = await _finished(gw, import_id)
            assert status["state"] == "done" and status["done"] == 3, status

    run(main())


async def _started(gw: Gateway, lines: int) -> tuple[Runtime, Importer, Prepared, str]:
    """An import of ``lines`` devices started (not yet applied) by an importer of one line at
    a time whose heartbeat comes every 0.1 s."""
    rt = runtime_of(gw)
    importer = Importer(
        rt.pipeline, rt.imports, concurrency=1, flush_every=0.05, heartbeat_every=0.1
    )
    prepared = await prepare("devices", devices_csv(lines), rt.pipeline, rt.imports, rt.limits)
    return rt, importer, prepared, await importer.start(prepared)


def test_a_running_import_shows_it_lives_while_no_line_finishes() -> None:
    """While the carrier keeps every line waiting, the run still marks the import alive."""

    async def main() -> None:
        async with gateway(latency_ms=1500.0) as gw:
            rt, importer, prepared, import_id = await _started(gw, 1)
            began = await rt.imports.get(import_id)
            assert began is not None
            task = asyncio.create_task(importer.apply(import_id, prepared))
            await asyncio.sleep(0.6)
            alive = await rt.imports.get(import_id)
            assert alive is not None and alive.updated_at > began.updated_at
            assert (await rt.imports.done(import_id)) == {}  # no line has finished
            await task

    run(main())


def test_a_run_whose_import_another_run_claimed_stops_and_leaves_it_to_that_run() -> None:
    """A run silent past ``STALE_AFTER`` (the store unreachable, its process frozen) whose
    import another replica then resumed went on applying lines beside the new run, and its
    end overwrote the new run's state. Its next heartbeat finds the import claimed: it
    stops, saying so, and leaves the import's state to the run that holds it."""
    from gateway.bulk import run as bulk_run
    from gateway.store.tables import imports

    async def main() -> None:
        async with gateway(latency_ms=100.0) as gw:
            rt, importer, prepared, import_id = await _started(gw, 40)
            task = asyncio.create_task(importer.apply(import_id, prepared))
            for _ in range(200):  # until its first lines are recorded
                if await rt.imports.done(import_id):
                    break
                await asyncio.sleep(0.05)
            # As if this run had been silent for STALE_AFTER: another replica resumes it.
            long_ago = time.time_ns() // 1000 - int((bulk_run.STALE_AFTER + 1) * 1_000_000)
            async with rt.imports._begin() as connection:
                await connection.execute(imports.update().values(updated_at=long_ago))
            stale = int(bulk_run.STALE_AFTER * 1_000_000)
            assert await rt.imports.resume(import_id, stale) is None
            claimed = await rt.imports.get(import_id)
            summary = await asyncio.wait_for(task, 30)
            assert summary.error == bulk_run.TAKEN_OVER and summary.left > 0, summary
            after = await rt.imports.get(import_id)
            assert after is not None and claimed is not None
            assert after.state == "running" and after.report is None  # the claimer's
            assert after.updated_at == claimed.updated_at

    run(main())


def test_without_a_state_store_imports_and_exports_are_refused() -> None:
    async def main() -> None:
        async with gateway(gateway_settings(database_url="none")) as gw:
            for answer in (
                await gw.http.post("/v1/imports?kind=devices", content=devices_csv(1), headers=CSV),
                await gw.http.get("/v1/imports/0123456789abcdef"),
                await gw.http.get("/v1/exports/devices"),
            ):
                assert answer.status_code == 409, answer.text
                assert answer.json()["type"] == "/problems/no-state-store"
            assert writes(gw) == []

    run(main())
