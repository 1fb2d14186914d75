"""``/v1/webhooks``: event subscriptions (admin only).

A subscription's secret (``whsec_…``) is returned once, when it is created or rotated, and
never again, nor logged. Rotation keeps the old secret signing deliveries beside the new one
for a day, so receivers can switch without missing an event; rotated again within the day,
every secret whose day has not ended still signs (``MAX_SECRETS`` at most). Should one leak,
``DELETE .../secrets/previous`` ends their day now: only the current one signs.
"""

from __future__ import annotations

import re
import secrets
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.answers import model_response
from gateway.api.auth import require_admin
from gateway.api.context import services
from gateway.api.models import field_errors
from gateway.api.problems import Problem
from gateway.api.routing import resource
from gateway.api.schemas import read_json
from gateway.api.webhook_models import (
    Webhook,
    WebhookList,
    WebhookUpdate,
    WebhookWithSecret,
    WebhookWrite,
    at,
)
from gateway.events.service import SECRET_OVERLAP, Events
from gateway.events.signing import new_secret
from gateway.events.targets import host_problem
from gateway.store.deliveries import MAX_SECRETS, TooManySecrets
from gateway.store.deliveries import Webhook as Subscription
from gateway.store.outbox import MAX_WEBHOOKS, TooManyWebhooks

M = TypeVar("M", bound=BaseModel)
_ID_LENGTH = 43  # "wh_" + 40 hex digits at most (the column holds 40)
#: What an ID may be: anything else (a NUL, which PostgreSQL refuses to compare) is no ID.
_ID = re.compile(f"[A-Za-z0-9_]{{1,{_ID_LENGTH}}}")
_NO_STORE = {"Cache-Control": "no-store"}


def admin_events(request: Request) -> Events:
    """The events service, for an admin key only (a device token: 403)."""
    found = services(request)
    require_admin(request, found.admin_keys, found.device_tokens)
    events: Events | None = getattr(request.app.state, "events", None)
    if events is None:
        raise Problem(503, "Events need the state store (GATEWAY_DATABASE_URL is none).")
    return events


async def _body(request: Request, model: type[M]) -> M:
    settings = services(request).settings
    data = await read_json(request, settings.max_body_bytes)
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        raise Problem(422, "The subscription is not valid.", errors=field_errors(exc)) from None
    url = getattr(body, "url", None)
    if url is not None:
        refused = host_problem(
            (urlsplit(url).hostname or "").lower(), settings.webhook_allowed_hosts
        )
        if refused is not None:
            raise Problem(
                403, f"Webhooks may not be sent there: {refused}.", kind="webhook-host-not-allowed"
            )
    return body


async def _hook(events: Events, request: Request) -> Subscription:
    hook_id = str(request.path_params["webhook_id"])
    hook = await events.outbox.webhook(hook_id) if _ID.fullmatch(hook_id) else None
    if hook is None:
        raise Problem(404, "There is no subscription with that ID.")
    return hook


def _with_secret(hook: Subscription, secret: str) -> WebhookWithSecret:
    until = hook.previous_until if hook.previous_secret else None
    return WebhookWithSecret(
        **Webhook.of(hook).model_dump(),
        secret=secret,
        previousSecretValidUntil=None if until is None else at(until),
    )


async def create(request: Request) -> Response:
    events = admin_events(request)
    body = await _body(request, WebhookWrite)
    secret = new_secret()
    try:
        hook = await events.outbox.add_webhook(
            f"wh_{secrets.token_hex(16)}", body.url, body.eventTypes, secret, body.description
        )
    except TooManyWebhooks:
        raise Problem(
            409,
            f"There are {MAX_WEBHOOKS} subscriptions already, the most there may be: "
            "delete one, or subscribe an existing URL to more event types.",
            kind="webhook-limit",
        ) from None
    if body.enabled is False:
        hook = await events.outbox.update_webhook(hook.id, enabled=False) or hook
    response = model_response(_with_secret(hook, secret), status_code=201)
    response.headers.update({"Location": f"/v1/webhooks/{hook.id}", **_NO_STORE})
    return response


async def list_all(request: Request) -> Response:
    events = admin_events(request)
    hooks = await events.outbox.list_webhooks()
    return model_response(WebhookList(webhooks=[Webhook.of(h) for h in hooks]))


async def show(request: Request) -> Response:
    events = admin_events(request)
    return model_response(Webhook.of(await _hook(events, request)))


async def update(request: Request) -> Response:
    events = admin_events(request)
    hook = await _hook(events, request)
    body = await _body(request, WebhookUpdate)
    updated = await events.outbox.update_webhook(hook.id, **body.changes())
    if updated is None:
        raise Problem(404, "There is no subscription with that ID.")
    return model_response(Webhook.of(updated))


async def delete(request: Request) -> Response:
    events = admin_events(request)
    hook = await _hook(events, request)
    await events.outbox.delete_webhook(hook.id)
    return Response(status_code=204)


async def rotate(request: Request) -> Response:
    events = admin_events(request)
    hook = await _hook(events, request)
    secret = new_secret()
    try:
        rotated = await events.outbox.rotate_secret(hook.id, secret, SECRET_OVERLAP)
    except TooManySecrets as refused:
        raise Problem(
            409,
            f"The subscription has {MAX_SECRETS} secrets signing its deliveries already "
            "(rotated within their day of overlap: a receiver may still hold any of them). "
            f"Rotate again from {at(refused.until)}, when the oldest stops signing.",
            kind="webhook-secret-limit",
        ) from None
    if rotated is None:
        raise Problem(404, "There is no subscription with that ID.")
    response = model_response(_with_secret(rotated, secret))
    response.headers.update(_NO_STORE)
    return response


async def end_previous_secrets(request: Request) -> Response:
    """Only the current secret signs from now on: one rotated out (and still signing for
    its day) has leaked."""
    events = admin_events(request)
    hook = await _hook(events, request)
    if await events.outbox.end_rotated_out(hook.id) is None:
        raise Problem(404, "There is no subscription with that ID.")
    return Response(status_code=204)


routes = [
    resource("/v1/webhooks", get=list_all, post=create),
    resource("/v1/webhooks/{webhook_id}", get=show, patch=update, delete=delete),
    resource("/v1/webhooks/{webhook_id}/secret", post=rotate),
    resource("/v1/webhooks/{webhook_id}/secrets/previous", delete=end_previous_secrets),
]
