"""``/v1/events``: recent events and their delivery state; retry a failed delivery (admin)."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.answers import model_response
from gateway.api.problems import Problem, refuse_unknown_query
from gateway.api.routing import resource
from gateway.api.webhook_models import (
    CURSOR_PATTERN,
    EVENT_ID_PATTERN,
    Event,
    EventPage,
    EventRetry,
)
from gateway.api.webhooks import admin_events
from gateway.dlr.errors import FieldError
from gateway.events.model import EVENT_TYPES
from gateway.store.deliveries import StoredEvent

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_CURSOR = re.compile(CURSOR_PATTERN)
_EVENT_ID = re.compile(EVENT_ID_PATTERN)


def _cursor(event: StoredEvent) -> str:
    return f"{round(event.created_at * 1_000_000)}~{event.id}"


def _query_problem(detail: str, field: str, message: str) -> Problem:
    return Problem(422, detail, errors=[FieldError(field, message)])


def _parse_cursor(value: str) -> tuple[float, str]:
    if not _CURSOR.fullmatch(value):
        raise _query_problem("The cursor is not valid.", "cursor", "use `next`")
    at, _, event_id = value.partition("~")
    return int(at) / 1_000_000, event_id


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not re.fullmatch("[0-9]{1,4}", value) or not 1 <= int(value) <= MAX_LIMIT:
        raise _query_problem("The limit is not valid.", "limit", f"must be 1 to {MAX_LIMIT}")
    return int(value)


async def list_events(request: Request) -> Response:
    events = admin_events(request)
    refuse_unknown_query(request, "limit", "cursor", "type")
    params = request.query_params
    limit = _limit(params.get("limit"))
    cursor = params.get("cursor")
    kind = params.get("type")
    if kind is not None and kind not in EVENT_TYPES:
        raise _query_problem(
            "The event type is not valid.", "type", f"must be one of: {', '.join(EVENT_TYPES)}"
        )
    page = await events.outbox.page(
        limit=limit, before=None if cursor is None else _parse_cursor(cursor), type=kind
    )
    return model_response(
        EventPage(
            events=[Event.of(e, d) for e, d in page],
            next=_cursor(page[-1][0]) if len(page) == limit else None,
        )
    )


async def retry(request: Request) -> Response:
    events = admin_events(request)
    event_id = str(request.path_params["event_id"])
    if not _EVENT_ID.fullmatch(event_id) or await events.outbox.event(event_id) is None:
        raise Problem(404, "There is no event with that ID.")
    count = await events.outbox.retry(event_id)
    if count:
        events.wake()
    return model_response(EventRetry(id=event_id, retried=count), status_code=202)


routes = [
    resource("/v1/events", get=list_events),
    resource("/v1/events/{event_id}/retry", post=retry),
]
