"""The webhook and event API's shapes, declared once: validation, JSON output and schema."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic.json_schema import SkipJsonSchema

from gateway.api.models import checked
from gateway.api.schemas import check_string
from gateway.dlr.patterns import TEXT_PATTERN
from gateway.events.model import EVENT_TYPES, iso
from gateway.store import deliveries as stored

MAX_URL = 2048
MAX_DESCRIPTION = 500
MAX_TYPES = 20
#: An event's ID (anything else, a NUL included, names no event).
EVENT_ID_PATTERN = "[A-Za-z0-9_]{1,64}"
#: A page's ``next``: the last event's creation (microseconds since the epoch, 16 digits at
#: most: past the year 2286, and within the store's 64-bit integers) and id.
CURSOR_PATTERN = f"^[0-9]{{1,16}}~{EVENT_ID_PATTERN}$"
#: The URLs a subscription may have: http(s), a host name or IPv4 address (dot-separated
#: labels of 1 to 63 letters, digits, ``-`` or ``_``, not beginning or ending with ``-``; at
#: most ``MAX_HOST`` characters), an optional port (1-65535), an optional path of printable
#: ASCII (no credentials, no spaces).
_PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_LABEL = "[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
URL_PATTERN = f"^https?://({_LABEL}\\.)*{_LABEL}\\.?(:{_PORT})?(/[!-~]*)?$"
MAX_HOST = 253
_URL = re.compile(URL_PATTERN)
_URL_RULE = f"must be an http(s) URL without credentials, at most {MAX_URL} characters"
_TYPES_RULE = f"must be a non-empty list of: {', '.join(EVENT_TYPES)}"

EventType = Literal[
    "emergency_call", "test_call", "provisioning_failed", "device_stale", "location_conflict"
]
assert get_args(EventType) == EVENT_TYPES  # one list of types


def _url_problem(value: Any) -> str | None:
    ok = (
        isinstance(value, str)
        and len(value) <= MAX_URL
        and _URL.fullmatch(value) is not None
        and len(urlsplit(value).hostname or "") <= MAX_HOST
    )
    return None if ok else _URL_RULE


def _types_problem(value: Any) -> str | None:
    ok = (
        isinstance(value, list)
        and 0 < len(value) <= MAX_TYPES
        and all(isinstance(v, str) and v in EVENT_TYPES for v in value)
    )
    return None if ok else _TYPES_RULE


Url = Annotated[
    str,
    checked(_url_problem),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": MAX_URL,
            "pattern": URL_PATTERN,
            "description": "Where deliveries are POSTed (http or https; no credentials). "
            "Loopback, link-local (cloud metadata), unspecified and multicast addresses, and "
            "IPv4 addresses not written as a.b.c.d, are refused unless listed in "
            "GATEWAY_WEBHOOK_ALLOWED_HOSTS.",
        }
    ),
]
EventTypes = Annotated[
    list[EventType],
    checked(_types_problem),
    Field(min_length=1, max_length=MAX_TYPES, description="The event types delivered to it."),
]
Description = Annotated[
    str,
    checked(lambda v: check_string(v, "", MAX_DESCRIPTION)[1]),
    WithJsonSchema({"type": "string", "maxLength": MAX_DESCRIPTION, "pattern": TEXT_PATTERN}),
]
_ENABLED = "false: nothing is sent to it."
_WRITE = ConfigDict(extra="forbid", strict=True, frozen=True)


class WebhookWrite(BaseModel):
    """A new subscription."""

    model_config = _WRITE

    url: Url
    eventTypes: EventTypes
    description: Description | None = None
    enabled: bool | None = Field(None, description=_ENABLED)


class WebhookUpdate(BaseModel):
    """A subscription's changes: the fields given are changed."""

    model_config = _WRITE

    url: Url | SkipJsonSchema[None] = None
    eventTypes: EventTypes | SkipJsonSchema[None] = None
    description: Description | None = Field(None, description="`null` removes it.")
    enabled: bool | SkipJsonSchema[None] = Field(None, description=_ENABLED)

    @field_validator("url", "eventTypes", "enabled", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null (leave it out to keep it)")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields given, as ``OutboxStore.update_webhook`` takes them (a ``null``
        description removes it)."""
        given = self.model_dump(exclude_unset=True)
        if "eventTypes" in given:
            given["event_types"] = given.pop("eventTypes")
        return given


def at(seconds: float) -> str:
    return iso(datetime.fromtimestamp(seconds, UTC))


class Webhook(BaseModel):
    """An event subscription. Its secret is shown only when made or rotated."""

    model_config = ConfigDict(extra="forbid")

    id: str
    url: str
    eventTypes: list[EventType]
    description: str | None = Field(None, json_schema_extra={"maxLength": MAX_DESCRIPTION})
    enabled: bool
    createdAt: str = Field(json_schema_extra={"format": "date-time"})
    updatedAt: str = Field(json_schema_extra={"format": "date-time"})

    @classmethod
    def of(cls, hook: stored.Webhook) -> Webhook:
        return cls(
            id=hook.id,
            url=hook.url,
            eventTypes=list(hook.event_types),  # type: ignore[arg-type]
            description=hook.description,
            enabled=hook.enabled,
            createdAt=at(hook.created_at),
            updatedAt=at(hook.updated_at),
        )


class WebhookWithSecret(Webhook):
    """The subscription and its signing secret (`whsec_…`): keep it, it is not shown again."""

    secret: str = Field(pattern="^whsec_")
    previousSecretValidUntil: str | None = Field(
        None,
        description=(
            "After a rotation: until when the secret it replaced also signs (earlier ones "
            "still signing go on until their own day ends)."
        ),
        json_schema_extra={"format": "date-time"},
    )


class WebhookList(BaseModel):
    webhooks: list[Webhook]


def _when(seconds: float | None) -> str | None:
    return None if seconds is None else at(seconds)


DateTimeOrNull = Annotated[
    str | None, WithJsonSchema({"type": ["string", "null"], "format": "date-time"})
]


class EventDelivery(BaseModel):
    """One target's delivery of an event."""

    target: str = Field(
        description="A subscription's id, `email` (the configured addresses) or "
        "`email:carrier` (the carrier's notification recipients)."
    )
    channel: Literal["webhook", "email"]
    state: Literal["pending", "delivered", "failed"]
    attempts: int = Field(ge=0)
    nextAttemptAt: DateTimeOrNull
    expiresAt: DateTimeOrNull
    lastStatus: int | None
    lastError: str | None
    deliveredAt: DateTimeOrNull

    @classmethod
    def of(cls, d: stored.Delivery) -> EventDelivery:
        return cls(
            target=d.target,
            channel="email" if d.target in stored.EMAIL_TARGETS else "webhook",
            state=d.state,  # type: ignore[arg-type]
            attempts=d.attempts,
            nextAttemptAt=_when(d.next_at) if d.state == "pending" else None,
            expiresAt=_when(d.expires_at),
            lastStatus=d.last_status,
            lastError=d.last_error,
            deliveredAt=_when(d.delivered_at),
        )


class Event(BaseModel):
    """An event as delivered (`id`, `type`, `timestamp`, `data`; see the README for each
    type's `data`), with its deliveries."""

    id: str
    type: EventType
    timestamp: str = Field(json_schema_extra={"format": "date-time"})
    data: dict[str, Any]
    deliveries: list[EventDelivery]

    @classmethod
    def of(cls, event: stored.StoredEvent, deliveries: list[stored.Delivery]) -> Event:
        envelope = orjson.loads(event.body)
        return cls(**envelope, deliveries=[EventDelivery.of(d) for d in deliveries])


class EventPage(BaseModel):
    events: list[Event]
    next: str | None = Field(description="The `cursor` of the next page.")


class EventRetry(BaseModel):
    id: str
    retried: int = Field(
        ge=0,
        description=(
            "How many failed deliveries are pending again (a deleted or disabled "
            "subscription's stay failed)."
        ),
    )
