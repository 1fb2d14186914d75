"""The building blocks of the API document's paths: operations, parameters, answers, and the
failures many routes share."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi.components import ref

Security = list[dict[str, list[str]]]


def problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }


def retry_problem(description: str) -> dict[str, Any]:
    answer = problem(description)
    answer["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    return answer


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ADMIN: Security = [{"adminKey": []}]
DEVICE_OR_ADMIN: Security = [{"deviceToken": []}, {"adminKey": []}]

UPSTREAM_FAILURES = {
    "502": problem("The carrier refused the gateway's credentials or sent an unreadable answer."),
    "503": retry_problem("The carrier is unavailable or rate-limiting."),
    "504": retry_problem("The carrier did not answer in time."),
}

AUTH_FAILURES = {"401": problem("Missing or invalid credentials.")}

#: What only the v2 carrier API answers a facade write.
V2_PENDING = {
    "202": json_body(
        {
            "type": "object",
            "properties": {
                "pending": {"const": True},
                "orderId": {"type": "string"},
                "upstreamOperation": {"type": "string"},
                "detail": {"type": "string"},
            },
            "required": ["pending", "orderId", "detail"],
        },
        "With `BANDWIDTH_API=v2`: the carrier accepted the change and is still carrying out "
        "its order.",
    )
}
V2_UNSUPPORTED = {
    "501": problem(
        "With `BANDWIDTH_API=v2`: the v2 API cannot do this (`/problems/not-supported-upstream`;"
        " `instead` says what to use)."
    )
}

#: The admin API takes admin keys only: a valid device token is known but refused (403).
ADMIN_AUTH_FAILURES = {
    "401": problem("Missing or invalid credentials."),
    "403": problem("A device token: the admin API takes admin keys only."),
}


#: A body's header and size, whatever its format.
BODY_LIMITS = {
    "400": problem("The Content-Length header is not a number."),
    "408": problem("The body did not arrive within GATEWAY_BODY_TIMEOUT."),
    "413": problem("The body is too large."),
}


def body_errors() -> dict[str, Any]:
    return {
        **BODY_LIMITS,
        "415": problem("The body is not JSON."),
        "422": problem("The body is malformed, has wrong types or unknown fields."),
    }


def param(where: str, name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter: one in the path is required, one in the query is not."""
    found = {"name": name, "in": where, "required": where == "path"}
    return {**found, "description": description, "schema": schema}


def page_limit(what: str) -> dict[str, Any]:
    """The ``limit`` of a paged list: 1 to 200 ``what`` per page, 50 when left out."""
    return param(
        "query",
        "limit",
        f"{what} per page (1 to 200; 50 when left out).",
        {"type": "integer", "minimum": 1, "maximum": 200},
    )


def path_param(name: str, description: str, max_length: int = 64) -> dict[str, Any]:
    return param("path", name, description, {"type": "string", "maxLength": max_length})


DEVICE_PARAM = path_param(
    "alternateEndUserId",
    "The device's AEUI, percent-encoded: a `/` in it as `%2F`, `.` as `%2E`.",
    30,
)


def operation(
    op_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Any],
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag]}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    op["responses"] = responses
    op["security"] = security if security is not None else ADMIN
    return op


def list_of(key: str, item: str, *, counted: bool = True) -> dict[str, Any]:
    props: dict[str, Any] = {key: {"type": "array", "items": ref(item)}}
    if counted:
        props = {"totalCount": {"type": "integer"}, **props}
    return {"type": "object", "required": [key], "properties": props}


def deleted(key: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key, "deleted"],
        "properties": {key: {"type": "string"}, "deleted": {"const": True}},
    }
