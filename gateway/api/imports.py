"""The bulk import as an admin API, the code ``dlr-gateway import`` runs (``gateway.bulk``).

``POST /v1/imports?kind=devices|locations`` with the CSV file as the body (``text/csv``):
the whole file is checked at once; bad rows answer 422 ``invalid-rows`` listing each
(``skipInvalid=true`` applies the valid ones); ``dryRun=true`` answers the plan; otherwise
202 with the import's ID, applied in the background. ``GET /v1/imports/{id}``: its progress
and report. ``resume=ID`` continues an import with the same file. ``GET /v1/exports/{kind}``
is ``dlr-gateway export``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.answers import model_response
from gateway.api.auth import require_admin
from gateway.api.context import Services, services
from gateway.api.import_models import (
    ImportChecked,
    ImportPlan,
    ImportQuery,
    ImportStatus,
    RowProblem,
)
from gateway.api.models import field_errors
from gateway.api.problems import Problem
from gateway.api.schemas import read_body
from gateway.bulk.export import export
from gateway.bulk.formats import KINDS, BadFile
from gateway.bulk.run import (
    FAILED,
    ID_LENGTH,
    ImportRunning,
    Prepared,
    ResumeRefused,
    prepare,
    state_of,
)
from gateway.bulk.runtime import Runtime, importer_of
from gateway.dlr.errors import FieldError
from gateway.store.imports import ImportStore

#: Bad rows listed in one answer; the rest are counted in ``rowsOmitted``.
MAX_ROWS_LISTED = 1000


class ImportJobs:
    """The imports this process is applying; cancelled (their progress kept) at shutdown."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[Any]] = {}

    def run(self, import_id: str, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work, name=f"import-{import_id}")
        self.tasks[import_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(import_id, None))

    async def aclose(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def jobs(app: Starlette) -> ImportJobs:
    found: ImportJobs | None = getattr(app.state, "imports", None)
    if found is None:
        found = app.state.imports = ImportJobs()
    return found


def _runtime(request: Request) -> Runtime:
    s: Services = services(request)
    request.state.principal = require_admin(request, s.admin_keys, s.device_tokens)
    try:
        store = ImportStore.of(s.store)
    except TypeError:
        raise Problem(
            409,
            "Imports keep their progress in the state store, and this gateway has none "
            "(GATEWAY_DATABASE_URL=none).",
            "no-state-store",
        ) from None
    return importer_of(s.settings, s.pipeline, store, s.metrics)


def _query(request: Request) -> ImportQuery:
    params = request.query_params
    repeated = sorted({name for name in params if len(params.getlist(name)) > 1})
    if repeated:
        # Read as its last value, ``dryRun=true&dryRun=false`` would apply the file.
        errors = [FieldError(name[:40], "given more than once") for name in repeated[:5]]
        raise Problem(422, "The query is not valid.", errors=errors)
    try:
        return ImportQuery.model_validate(dict(params))
    except ValidationError as exc:
        raise Problem(422, "The query is not valid.", errors=field_errors(exc)) from None


def _checked(prepared: Prepared) -> ImportChecked:
    problems = prepared.problems
    return ImportChecked(
        total=prepared.checked.total,
        valid=len(prepared.checked.rows),
        rows=[RowProblem.model_validate(p.as_json()) for p in problems[:MAX_ROWS_LISTED]],
        rowsOmitted=max(0, len(problems) - MAX_ROWS_LISTED) or None,
        plan=ImportPlan.model_validate(prepared.plan.as_json()),
    )


async def create_import(request: Request) -> Response:
    rt = _runtime(request)
    query = _query(request)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("text/csv", "application/octet-stream"):
        raise Problem(415, "Send the file as text/csv.")
    data = await read_body(request, rt.limits.max_bytes)
    try:
        prepared = await prepare(query.kind, data, rt.pipeline, rt.imports, rt.limits)
    except BadFile as exc:
        raise Problem(
            422,
            "The file cannot be imported.",
            "bad-import-file",
            errors=[FieldError("body", str(exc))],
        ) from None
    checked = _checked(prepared)
    if prepared.problems and not (query.skipInvalid or query.dryRun):
        raise Problem(
            422,
            "Some rows are not valid: nothing was written (skipInvalid=true applies the rest).",
            "invalid-rows",
            extra=checked.model_dump(mode="json", exclude_none=True),
        )
    if query.dryRun:
        return _checked_response(checked, 200)
    running = jobs(request.app)
    if query.resume is not None and query.resume in running.tasks:
        raise Problem(409, f"Import {query.resume} is running.", "import-running")
    try:
        import_id = await rt.importer.start(prepared, query.resume)
    except ImportRunning as exc:
        # Another replica's run (or a killed one's, until its heartbeat is STALE_AFTER old).
        raise Problem(409, str(exc), "import-running", retry_after=exc.wait or None) from None
    except ResumeRefused as exc:
        raise Problem(409, str(exc), "import-resume-refused") from None
    running.run(import_id, rt.importer.apply(import_id, prepared))
    answer = checked.model_copy(update={"importId": import_id, "state": "running"})
    response = _checked_response(answer, 202)
    response.headers["Location"] = f"/v1/imports/{import_id}"
    return response


def _checked_response(checked: ImportChecked, status_code: int) -> Response:
    """The check's answer; the fields a dry run has no value for are left out."""
    body = checked.model_dump_json(exclude_none=True)
    return Response(body, status_code=status_code, media_type="application/json")


async def get_import(request: Request) -> Response:
    rt = _runtime(request)
    import_id = str(request.path_params["import_id"])
    found = None
    if len(import_id) == ID_LENGTH and import_id.isalnum():
        found = await rt.imports.get(import_id)
    if found is None:
        raise Problem(404, "There is no import with that ID.")
    outcomes, failed = await rt.imports.progress(import_id, MAX_ROWS_LISTED)
    done = sum(outcomes.values())
    report = found.report or {}
    state, error = state_of(found)
    if import_id in jobs(request.app).tasks:
        state, error = found.state, report.get("error")  # this process runs it
    status = ImportStatus.model_validate(
        {
            "importId": import_id,
            "kind": found.kind,
            "state": state,
            "total": found.total,
            "done": done,
            "failed": outcomes.get(FAILED, 0),
            "outcomes": dict(sorted(outcomes.items())),
            "left": report.get("left", found.total - done),
            "failures": [{"line": d.line, "reason": d.detail or ""} for d in failed],
            "error": error,
        }
    )
    return model_response(status)


async def get_export(request: Request) -> Response:
    rt = _runtime(request)
    kind = str(request.path_params["kind"])
    if kind not in KINDS:
        raise Problem(404, "Export devices or locations.")
    text = await export(kind, rt.imports)
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{kind}.csv"'},
    )


routes = [
    Route("/v1/imports", create_import, methods=["POST"]),
    Route("/v1/imports/{import_id}", get_import, methods=["GET", "HEAD"]),
    Route("/v1/exports/{kind}", get_export, methods=["GET", "HEAD"]),
]
