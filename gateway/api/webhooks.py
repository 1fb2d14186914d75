"""``/v1/webhooks``: event subscriptions (admin only).

A subscription's secret (``whsec_…``) is returned once, when it is created or rotated, and
never again, nor logged. Rotation keeps the old secret signing deliveries beside the new one
for a day, so receivers can switch without missing an event.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.admin import _resource as resource
from gateway.api.auth import require_admin
from gateway.api.context import services
from gateway.api.problems import FieldProblem, Problem
from gateway.api.schemas import check_string, read_json, require_object
from gateway.events.model import EVENT_TYPES, iso
from gateway.events.service import SECRET_OVERLAP, Events
from gateway.events.signing import new_secret
from gateway.jsondump import JSONResponse
from gateway.store.outbox import Webhook

MAX_URL = 2048
MAX_DESCRIPTION = 500
MAX_TYPES = 20
_ID_LENGTH = 43  # "wh_" + 40 hex digits at most (the column holds 40)


def admin_events(request: Request) -> Events:
    """The events service, for an admin key only (a device token: 403)."""
    found = services(request)
    require_admin(request, found.admin_keys, found.device_tokens)
    events: Events | None = getattr(request.app.state, "events", None)
    if events is None:
        raise Problem(503, "Events need the state store (GATEWAY_DATABASE_URL is none).")
    return events


def _at(seconds: float) -> str:
    return iso(datetime.fromtimestamp(seconds, UTC))


def webhook_json(hook: Webhook) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": hook.id,
        "url": hook.url,
        "eventTypes": list(hook.event_types),
        "enabled": hook.enabled,
        "createdAt": _at(hook.created_at),
        "updatedAt": _at(hook.updated_at),
    }
    if hook.description is not None:
        body["description"] = hook.description
    return body


#: The URLs a subscription may have: http(s), a host name or IPv4 address, an optional
#: port (0-65535), an optional path of printable ASCII (no credentials, no spaces).
_PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
URL_PATTERN = f"^https?://[A-Za-z0-9._~-]+(:{_PORT})?(/[!-~]*)?$"
_URL = re.compile(URL_PATTERN)


def _url(value: Any, allowed_hosts: tuple[str, ...], errors: list[FieldProblem]) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_URL or not _URL.fullmatch(value):
        errors.append(
            FieldProblem("url", f"must be an http(s) URL without credentials, at most {MAX_URL}")
        )
        return None
    host = (urlsplit(value).hostname or "").lower()
    if allowed_hosts and host not in allowed_hosts:
        raise Problem(
            403,
            "Webhooks may only be sent to the hosts in GATEWAY_WEBHOOK_ALLOWED_HOSTS.",
            kind="webhook-host-not-allowed",
        )
    return value


def _types(value: Any, errors: list[FieldProblem]) -> list[str] | None:
    if (
        not isinstance(value, list)
        or not value
        or len(value) > MAX_TYPES
        or not all(isinstance(v, str) and v in EVENT_TYPES for v in value)
    ):
        errors.append(
            FieldProblem("eventTypes", f"must be a non-empty list of: {', '.join(EVENT_TYPES)}")
        )
        return None
    return list(value)


_FIELDS = {"url", "eventTypes", "description", "enabled"}


async def _body(request: Request, *, partial: bool) -> dict[str, Any]:
    data = require_object(await read_json(request, services(request).settings.max_body_bytes))
    errors = [FieldProblem(k, "unknown field") for k in data if k not in _FIELDS]
    found: dict[str, Any] = {}
    if "url" in data or not partial:
        allowed = services(request).settings.webhook_allowed_hosts
        found["url"] = _url(data.get("url"), allowed, errors)
    if "eventTypes" in data or not partial:
        found["event_types"] = _types(data.get("eventTypes"), errors)
    if data.get("description") is not None:
        found["description"], problem = check_string(
            data["description"], "description", MAX_DESCRIPTION
        )
        if problem is not None:
            errors.append(FieldProblem("description", problem))
    if data.get("enabled") is not None:
        if isinstance(data["enabled"], bool):
            found["enabled"] = data["enabled"]
        else:
            errors.append(FieldProblem("enabled", "must be true or false"))
    if errors:
        raise Problem(422, "The subscription is not valid.", errors=errors)
    return found


async def _hook(events: Events, request: Request) -> Webhook:
    hook_id = str(request.path_params["webhook_id"])
    hook = await events.outbox.webhook(hook_id) if len(hook_id) <= _ID_LENGTH else None
    if hook is None:
        raise Problem(404, "There is no subscription with that ID.")
    return hook


async def create(request: Request) -> Response:
    events = admin_events(request)
    found = await _body(request, partial=False)
    secret = new_secret()
    hook = await events.outbox.add_webhook(
        f"wh_{secrets.token_hex(16)}",
        found["url"],
        found["event_types"],
        secret,
        found.get("description"),
    )
    if found.get("enabled") is False:
        hook = await events.outbox.update_webhook(hook.id, enabled=False) or hook
    return JSONResponse(
        {**webhook_json(hook), "secret": secret},
        status_code=201,
        headers={"Location": f"/v1/webhooks/{hook.id}", "Cache-Control": "no-store"},
    )


async def list_all(request: Request) -> Response:
    events = admin_events(request)
    return JSONResponse(
        {"webhooks": [webhook_json(h) for h in await events.outbox.list_webhooks()]}
    )


async def show(request: Request) -> Response:
    events = admin_events(request)
    return JSONResponse(webhook_json(await _hook(events, request)))


async def update(request: Request) -> Response:
    events = admin_events(request)
    hook = await _hook(events, request)
    found = await _body(request, partial=True)
    updated = await events.outbox.update_webhook(hook.id, **found)
    if updated is None:
        raise Problem(404, "There is no subscription with that ID.")
    return JSONResponse(webhook_json(updated))


async def delete(request: Request) -> Response:
    events = admin_events(request)
    hook = await _hook(events, request)
    await events.outbox.delete_webhook(hook.id)
    return Response(status_code=204)


async def rotate(request: Request) -> Response:
    events = admin_events(request)
    hook = await _hook(events, request)
    secret = new_secret()
    rotated = await events.outbox.rotate_secret(hook.id, secret, SECRET_OVERLAP)
    if rotated is None:
        raise Problem(404, "There is no subscription with that ID.")
    body = {**webhook_json(rotated), "secret": secret}
    if rotated.previous_until is not None:
        body["previousSecretValidUntil"] = _at(rotated.previous_until)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


routes = [
    resource("/v1/webhooks", get=list_all, post=create),
    resource("/v1/webhooks/{webhook_id}", get=show, patch=update, delete=delete),
    resource("/v1/webhooks/{webhook_id}/secret", post=rotate),
]
