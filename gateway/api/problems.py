"""RFC 9457 problem details, and the one table that turns errors into HTTP answers.

Problem types are relative URIs ``/problems/<kind>``; each is explained in the README.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.bandwidth.errors import (
    CodecError,
    UpstreamAuthError,
    UpstreamConflict,
    UpstreamError,
    UpstreamNotFound,
    UpstreamParseError,
    UpstreamPending,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamUnsupported,
)
from gateway.dlr.errors import FieldError
from gateway.jsondump import JSONResponse, dumps
from gateway.store.errors import StoreUnavailable

log = logging.getLogger("gateway.api")

PROBLEM_JSON = "application/problem+json"

#: Seconds a client is asked to wait when the upstream gave no figure of its own.
DEFAULT_RETRY_AFTER = 5

#: The most seconds a client is asked to wait for the carrier: a carrier's ``Retry-After`` of
#: a day (or of 10^300 seconds) would otherwise keep devices from reporting for that long.
MAX_RETRY_AFTER = 300

#: Most field errors listed in one answer; the rest are counted in ``errorsOmitted``. A body
#: of thousands of unknown keys would otherwise get an answer several times its own size.
MAX_ERRORS = 100

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_KINDS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    408: "request-timeout",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "rate-limited",
    500: "internal",
}


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str
    title: str
    status: int
    detail: str | SkipJsonSchema[None] = None
    instance: str | SkipJsonSchema[None] = None
    errors: (
        Annotated[
            list[FieldError],
            Field(
                max_length=MAX_ERRORS,
                description=f"What is wrong, field by field: at most {MAX_ERRORS} of them.",
            ),
        ]
        | SkipJsonSchema[None]
    ) = None
    errors_omitted: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        None, alias="errorsOmitted", description="How many more field errors there were."
    )


@dataclass
class Problem(Exception):
    """An answer that is not a success; raise it anywhere below a route."""

    status: int
    detail: str
    kind: str | None = None
    errors: Sequence[FieldError] = ()
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.detail}"


def refuse_unknown_query(request: Request, *known: str) -> None:
    """A 422 naming the query parameters the operation does not take (at most five)."""
    unknown = sorted(set(request.query_params) - set(known))
    if unknown:
        errors = [FieldError(name[:40], "unknown query parameter") for name in unknown[:5]]
        raise Problem(422, "The query is not valid.", errors=errors)


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    kind = problem.kind or _KINDS.get(problem.status, "error")
    shown = list(problem.errors[:MAX_ERRORS])
    details = ProblemDetails(
        type=f"/problems/{kind}",
        title=_TITLES.get(problem.status, "Error"),
        status=problem.status,
        detail=problem.detail,
        instance=instance or None,
        errors=shown or None,
        errorsOmitted=(len(problem.errors) - len(shown)) or None,
    )
    body = details.model_dump(by_alias=True, exclude_none=True)
    body.update(problem.extra)
    headers = dict(problem.headers)
    if problem.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(problem.retry_after)))
    return Response(
        dumps(body),
        status_code=problem.status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


#: The carrier failures worth another try later, most specific first.
_TRY_AGAIN: dict[type[UpstreamError], tuple[int, str, str]] = {
    UpstreamRateLimited: (503, "The carrier is rate-limiting", "upstream-unavailable"),
    UpstreamTimeout: (504, "The carrier did not answer in time", "upstream-timeout"),
    UpstreamUnavailable: (503, "The carrier cannot be reached", "upstream-unavailable"),
}


def upstream_problem(exc: UpstreamError) -> Problem:
    """The one mapping from the upstream's error tree to the gateway's answers."""
    carrier = {"upstreamOperation": exc.operation} if exc.operation else {}
    if isinstance(exc, UpstreamUnsupported):
        return Problem(
            501,
            f"The configured carrier API cannot do this ({exc.message}): {exc.instead}.",
            "not-supported-upstream",
            extra={**carrier, "instead": exc.instead},
        )
    if isinstance(exc, UpstreamAuthError):
        return Problem(502, "The carrier refused the gateway's credentials.", "upstream-auth")
    if isinstance(exc, UpstreamNotFound):
        return Problem(404, "The carrier has no such record.", "not-found")
    if isinstance(exc, UpstreamConflict):
        detail = exc.description or "The record already exists or is in use."
        return Problem(409, f"The carrier refused: {detail}", "conflict", extra=carrier)
    if isinstance(exc, UpstreamRejected):
        detail = exc.description or "the request was refused"
        extra = dict(carrier)
        if exc.code:
            extra["upstreamCode"] = exc.code
        return Problem(422, f"The carrier refused: {detail}", "upstream-rejected", extra=extra)
    for kind, (status, detail, problem_type) in _TRY_AGAIN.items():
        if isinstance(exc, kind):
            wait = min(MAX_RETRY_AFTER, getattr(exc, "retry_after", None) or DEFAULT_RETRY_AFTER)
            return Problem(status, f"{detail}; try again later.", problem_type, retry_after=wait)
    if isinstance(exc, UpstreamParseError):
        return Problem(502, "The carrier sent an answer the gateway cannot read.", "upstream-error")
    return Problem(502, "The carrier call failed.", "upstream-error")


async def handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request.url.path)


async def handle_upstream(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UpstreamError)
    if isinstance(exc, UpstreamPending):
        # Not a failure: the carrier took the write and carries it out asynchronously.
        return JSONResponse(
            {
                "pending": True,
                "orderId": exc.order_id,
                "upstreamOperation": exc.operation,
                "detail": "The carrier accepted the change and is still carrying it out.",
            },
            status_code=202,
        )
    log.warning(
        "upstream error",
        extra={"operation": exc.operation, "error": type(exc).__name__, "status": exc.status},
    )
    return problem_response(upstream_problem(exc), request.url.path)


async def handle_codec(request: Request, exc: Exception) -> Response:
    log.warning("unreadable upstream body: %s", exc)
    problem = Problem(502, "The carrier sent an answer the gateway cannot read.", "upstream-error")
    return problem_response(problem, request.url.path)


async def handle_store(request: Request, exc: Exception) -> Response:
    log.warning("state store unavailable: %s", type(exc).__name__)
    problem = Problem(
        503,
        "The gateway's database is unavailable; nothing was acknowledged. Try again.",
        "database-unavailable",
        retry_after=DEFAULT_RETRY_AFTER,
    )
    return problem_response(problem, request.url.path)


async def handle_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    problem = Problem(exc.status_code, exc.detail, headers=headers)
    return problem_response(problem, request.url.path)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(Problem(500, "An unexpected error occurred."), request.url.path)


EXCEPTION_HANDLERS: Mapping[Any, Any] = {
    Problem: handle_problem,
    UpstreamError: handle_upstream,
    CodecError: handle_codec,
    StoreUnavailable: handle_store,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}
