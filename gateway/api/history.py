"""One page of a history (a device's, a location's, a number's), newest first."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.admin_models import HistoryEntry
from gateway.api.answers import model_response
from gateway.api.context import Services
from gateway.api.problems import Problem, refuse_unknown_query
from gateway.dlr.errors import FieldError

_HISTORY_MAX = 200


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise Problem(
            422,
            "The query is not valid.",
            errors=[FieldError(name, f"expected a whole number from {low} to {high}")],
        )
    return int(raw)


async def history_page(
    request: Request, s: Services, key: str, page: Callable[..., BaseModel]
) -> Response:
    """One page of the history under ``key`` (a device, a location, a number): ``limit``
    entries before the entry ``before``, newest first, and the ``nextBefore`` to go on."""
    refuse_unknown_query(request, "limit", "before")
    limit = _int_param(request, "limit", 50, 1, _HISTORY_MAX)
    before = _int_param(request, "before", None, 1, 2**62)
    assert limit is not None
    entries = await s.pipeline.history(key, limit=limit, before_id=before)
    next_before = entries[-1].id if len(entries) == limit else None
    entries_json = [HistoryEntry.of(e) for e in entries]
    return model_response(page(entries=entries_json, nextBefore=next_before))
