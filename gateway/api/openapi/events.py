"""The webhook and event paths of the API document: their summaries and answers."""

from __future__ import annotations

from typing import Any, get_args

from gateway.api.openapi.blocks import (
    ADMIN_AUTH_FAILURES,
    body_errors,
    json_body,
    operation,
    page_limit,
    param,
    path_param,
    problem,
)
from gateway.api.openapi.components import ref
from gateway.api.webhook_models import CURSOR_PATTERN, EventType
from gateway.store.deliveries import MAX_SECRETS
from gateway.store.outbox import MAX_WEBHOOKS

#: The events routes take an admin key; a valid device token is known but refused (403).
EVENTS_AUTH = {
    **ADMIN_AUTH_FAILURES,
    "503": problem("No state store (GATEWAY_DATABASE_URL=none): no events."),
}
_HOST = {
    "403": problem(
        "A device token, or a host refused by the webhook rule (loopback, link-local, "
        "multicast, reserved, or outside GATEWAY_WEBHOOK_ALLOWED_HOSTS when it is set)."
    )
}
_TAG = "Events"


def event_paths() -> dict[str, Any]:
    hook_id = path_param("webhookId", "The subscription's id.")
    one = {**EVENTS_AUTH, "404": problem("There is no subscription with that id.")}

    def one_hook(
        op_id: str, summary: str, answer: dict[str, Any], body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """An operation on one subscription (404 when there is none), and a body's errors."""
        responses = {**answer, **one}
        if body is not None:
            responses |= {**_HOST, **body_errors()}
        return operation(op_id, summary, _TAG, responses, params=[hook_id], body=body)

    return {
        "/v1/webhooks": {
            "get": operation(
                "listWebhooks",
                "Every event subscription (without secrets)",
                _TAG,
                {"200": json_body(ref("WebhookList"), "The subscriptions."), **EVENTS_AUTH},
            ),
            "post": operation(
                "createWebhook",
                "Subscribe a URL to event types; answers its signing secret, once",
                _TAG,
                {
                    "201": json_body(ref("WebhookWithSecret"), "The subscription and secret."),
                    **EVENTS_AUTH,
                    **_HOST,
                    "409": problem(f"There are {MAX_WEBHOOKS} subscriptions already."),
                    **body_errors(),
                },
                body=ref("WebhookWrite"),
            ),
        },
        "/v1/webhooks/{webhookId}": {
            "get": one_hook(
                "getWebhook",
                "One subscription (without its secret)",
                {"200": json_body(ref("Webhook"), "The subscription.")},
            ),
            "patch": one_hook(
                "updateWebhook",
                "Change a subscription's URL, event types, description or enabled flag",
                {"200": json_body(ref("Webhook"), "The subscription.")},
                body=ref("WebhookUpdate"),
            ),
            "delete": one_hook(
                "deleteWebhook",
                "Remove a subscription; its pending deliveries fail",
                {"204": {"description": "Removed."}},
            ),
        },
        "/v1/webhooks/{webhookId}/secret": {
            "post": one_hook(
                "rotateWebhookSecret",
                "A new signing secret (answered once); the old one also signs for a day",
                {
                    "200": json_body(ref("WebhookWithSecret"), "The new secret."),
                    "409": problem(
                        f"{MAX_SECRETS} secrets sign already (rotated within their day)."
                    ),
                },
            )
        },
        "/v1/webhooks/{webhookId}/secrets/previous": {
            "delete": one_hook(
                "endPreviousWebhookSecrets",
                "Only the current secret signs from now on: the rotated-out ones stop at once "
                "(one has leaked)",
                {"204": {"description": "Only the current secret signs."}},
            )
        },
        "/v1/events": {
            "get": operation(
                "listEvents",
                "Recent events, newest first, with their delivery state",
                _TAG,
                {
                    "200": json_body(ref("EventPage"), "A page of events."),
                    **EVENTS_AUTH,
                    "422": problem("The query is not valid."),
                },
                params=[
                    page_limit("Events"),
                    param(
                        "query",
                        "cursor",
                        "The `next` of the previous page.",
                        {"type": "string", "pattern": CURSOR_PATTERN},
                    ),
                    param(
                        "query",
                        "type",
                        "Only events of this type.",
                        {"type": "string", "enum": list(get_args(EventType))},
                    ),
                ],
            )
        },
        "/v1/events/{eventId}/retry": {
            "post": operation(
                "retryEvent",
                "Retry an event's failed deliveries (for another delivery period)",
                _TAG,
                {
                    "202": json_body(ref("EventRetry"), "How many deliveries are pending again."),
                    **EVENTS_AUTH,
                    "404": problem("There is no event with that id."),
                },
                params=[path_param("eventId", "The event's id.")],
            )
        },
    }
