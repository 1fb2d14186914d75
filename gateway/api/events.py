"""``/v1/events``: recent events and their delivery state; retry a failed delivery (admin)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.admin import _resource as resource
from gateway.api.problems import FieldProblem, Problem
from gateway.api.webhooks import admin_events
from gateway.events.model import EVENT_TYPES, iso
from gateway.jsondump import JSONResponse
from gateway.store.outbox import EMAIL_TARGET, Delivery, StoredEvent

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: A page's ``next``: the last event's creation (microseconds) and id.
CURSOR_PATTERN = "^[0-9]{1,20}~[A-Za-z0-9_]{1,64}$"
_CURSOR = re.compile(CURSOR_PATTERN)


def _at(seconds: float | None) -> str | None:
    return None if seconds is None else iso(datetime.fromtimestamp(seconds, UTC))


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "target": d.target,
        "channel": "email" if d.target == EMAIL_TARGET else "webhook",
        "state": d.state,
        "attempts": d.attempts,
        "nextAttemptAt": _at(d.next_at) if d.state == "pending" else None,
        "expiresAt": _at(d.expires_at),
        "lastStatus": d.last_status,
        "lastError": d.last_error,
        "deliveredAt": _at(d.delivered_at),
    }


def _event_json(event: StoredEvent, found: list[Delivery]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(event.body)
    body["deliveries"] = [delivery_json(d) for d in found]
    return body


def _cursor(event: StoredEvent) -> str:
    return f"{round(event.created_at * 1_000_000)}~{event.id}"


def _parse_cursor(value: str) -> tuple[float, str]:
    if not _CURSOR.fullmatch(value):
        raise Problem(
            422, "The cursor is not valid.", errors=[FieldProblem("cursor", "use `next`")]
        )
    at, _, event_id = value.partition("~")
    return int(at) / 1_000_000, event_id


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not re.fullmatch("[0-9]{1,4}", value) or not 1 <= int(value) <= MAX_LIMIT:
        raise Problem(
            422,
            "The limit is not valid.",
            errors=[FieldProblem("limit", f"must be 1 to {MAX_LIMIT}")],
        )
    return int(value)


async def list_events(request: Request) -> Response:
    events = admin_events(request)
    params = request.query_params
    limit = _limit(params.get("limit"))
    cursor = params.get("cursor")
    kind = params.get("type")
    if kind is not None and kind not in EVENT_TYPES:
        raise Problem(
            422,
            "The event type is not valid.",
            errors=[FieldProblem("type", f"must be one of: {', '.join(EVENT_TYPES)}")],
        )
    page = await events.outbox.page(
        limit=limit, before=None if cursor is None else _parse_cursor(cursor), type=kind
    )
    body: dict[str, Any] = {"events": [_event_json(e, d) for e, d in page]}
    body["next"] = _cursor(page[-1][0]) if len(page) == limit else None
    return JSONResponse(body)


async def retry(request: Request) -> Response:
    events = admin_events(request)
    event_id = str(request.path_params["event_id"])
    if len(event_id) > 64 or await events.outbox.event(event_id) is None:
        raise Problem(404, "There is no event with that ID.")
    count = await events.outbox.retry(event_id)
    if count:
        events.worker.wake.set()
    return JSONResponse({"id": event_id, "retried": count}, status_code=202)


routes = [
    resource("/v1/events", get=list_events),
    resource("/v1/events/{event_id}/retry", post=retry),
]
