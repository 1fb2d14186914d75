"""The bulk import's paths; its shapes are the models of ``gateway.api.import_models``."""

from __future__ import annotations

from typing import Any

from gateway.api.import_models import ImportQuery
from gateway.api.openapi.blocks import (
    ADMIN_AUTH_FAILURES,
    json_body,
    operation,
    path_param,
    problem,
)
from gateway.api.openapi.components import ref

CSV = {"text/csv": {"schema": {"type": "string"}}}


def _query_params() -> list[dict[str, Any]]:
    """``ImportQuery``'s fields as query parameters."""
    schema = ImportQuery.model_json_schema()
    required = set(schema.get("required", ()))
    params = []
    for name, field in schema["properties"].items():
        field = {k: v for k, v in field.items() if k != "title"}
        description = field.pop("description", None)
        if "anyOf" in field:  # optional: the parameter is left out, never null
            field = next(s for s in field.pop("anyOf") if s.get("type") != "null") | field
            field.pop("default", None)
        param = {"name": name, "in": "query", "required": name in required, "schema": field}
        if description:
            param["description"] = description
        params.append(param)
    return params


def import_paths() -> dict[str, Any]:
    """``POST /v1/imports``, ``GET /v1/imports/{importId}``, ``GET /v1/exports/{kind}``."""
    create = operation(
        "createImport",
        "Import devices or locations from a CSV file (checked whole, then applied)",
        "Imports",
        {
            "200": json_body(ref("ImportChecked"), "dryRun=true: the rows' check and the plan."),
            "202": json_body(ref("ImportChecked"), "Applying in the background: poll its status."),
            "400": problem("The Content-Length header is not a number."),
            **ADMIN_AUTH_FAILURES,
            "409": problem(
                "resume names no import, another kind or file, or one running (in this "
                "gateway or another; Retry-After: when it may be resumed); or no state store."
            ),
            "413": problem("The file is larger than GATEWAY_IMPORT_MAX_BYTES."),
            "415": problem("The body is not text/csv."),
            "422": problem(
                "invalid-rows: some rows are bad (each listed in rows); bad-import-file: the "
                "file cannot be read (not UTF-8, unknown columns, too many rows); or a bad query."
            ),
        },
        params=_query_params(),
    )
    create["requestBody"] = {"required": True, "content": CSV}
    return {
        "/v1/imports": {"post": create},
        "/v1/imports/{importId}": {
            "get": operation(
                "getImport",
                "An import's progress and report",
                "Imports",
                {
                    "200": json_body(ref("ImportStatus"), "Its progress."),
                    **ADMIN_AUTH_FAILURES,
                    "404": problem("No import has that ID."),
                },
                params=[path_param("importId", "The import's ID.")],
            )
        },
        "/v1/exports/{kind}": {
            "get": operation(
                "exportCsv",
                "Every device or location the gateway holds, as CSV in the import format",
                "Imports",
                {
                    "200": {"description": "The CSV file.", "content": CSV},
                    **ADMIN_AUTH_FAILURES,
                    "404": problem("Not devices or locations."),
                },
                params=[path_param("kind", "devices or locations")],
            )
        },
    }
