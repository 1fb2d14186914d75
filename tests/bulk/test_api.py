"""``POST /v1/imports``, ``GET /v1/imports/{id}``, ``GET /v1/exports/{kind}``."""

from __future__ import annotations

import asyncio

from tests.bulk.helpers import DEVICE_HEADER, devices_csv, writes
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
