"""The admin API's shapes and the history pages, declared once: their validation, their JSON
output and their schema in the API document."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)
from pydantic.config import JsonDict

from gateway.api.models import Aeui, field_errors, in_order, refuse, unreadable_keys
from gateway.api.problems import Problem
from gateway.api.schemas import ID_PATTERN as ID_RE
from gateway.api.schemas import check_string
from gateway.dlr.errors import FieldError
from gateway.dlr.patterns import CONTROL_CHARACTERS, END, TEXT_PATTERN, WHITESPACE
from gateway.store import HistoryEntry as StoredEntry
from gateway.store.base import NumberState

M = TypeVar("M", bound=BaseModel)

#: IDs the gateway accepts in a body.
ID_PATTERN = f"^{ID_RE.pattern}{END}"
ID_RULE = "1 to 64 of letters, digits and ._~-, starting with a letter or digit"
_EMAIL_PART = f"[^@{CONTROL_CHARACTERS}{WHITESPACE}]+"
#: A notification recipient's email address: one ``@``, a dot in the domain, no spaces (the
#: carrier checks deliverability).
EMAIL_PATTERN = f"^{_EMAIL_PART}@{_EMAIL_PART}\\.{_EMAIL_PART}{END}"

_KINDS = (
    "A device: applied (the carrier took a report), repaired, admin_edit, deleted (an admin "
    "deleted its endpoint), coordinates_conflict (a fix contradicted the address), "
    "emergency_query. A number: number_owned, number_assigned, number_shared, "
    "number_released. A location: location_created, location_updated, location_deleted, "
    "location_lost (the carrier no longer held it)."
)
_DATE_TIME: JsonDict = {"format": "date-time"}


class HistoryEntry(BaseModel):
    id: int
    at: str = Field(json_schema_extra=_DATE_TIME)
    kind: str = Field(description=_KINDS)
    source: str
    credential: str = Field(description="Which credential acted (never a secret).")
    observedAt: str | None = None
    fromLocationId: str | None = None
    toLocationId: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    @classmethod
    def of(cls, entry: StoredEntry) -> HistoryEntry:
        return cls(
            id=entry.id,
            at=entry.at.isoformat(),
            kind=entry.kind,
            source=entry.source,
            credential=entry.credential,
            observedAt=entry.observed_at.isoformat() if entry.observed_at else None,
            fromLocationId=entry.from_location_id,
            toLocationId=entry.to_location_id,
            before=entry.before,
            after=entry.after,
        )


def _history_of(name: str, key: str, what: str) -> type[BaseModel]:
    page: type[BaseModel] = create_model(
        name,
        __doc__=f"A page of a {what}'s history.",
        **{key: (str, ...)},  # type: ignore[call-overload]
        entries=(list[HistoryEntry], ...),
        nextBefore=(int | None, ...),
    )
    return page


DeviceHistory = _history_of("DeviceHistory", "alternateEndUserId", "device")
NumberHistory = _history_of("NumberHistory", "telephoneNumber", "number")
LocationHistory = _history_of("LocationHistory", "locationId", "location")


class NumberHolder(BaseModel):
    alternateEndUserId: str
    mayUse: bool = Field(description="The call-time query may answer this device.")
    attested: bool = Field(description="Its device token's phone_number claim vouches for it.")


class CallbackNumber(BaseModel):
    """Who may use a callback number: its owner (the first device to hold it, or the one an
    admin assigned), or every device when it is shared; and the devices holding it."""

    telephoneNumber: str
    owner: str | None = Field(description="The owner's AEUI; null: none.")
    shared: bool
    updatedAt: str | None = Field(json_schema_extra=_DATE_TIME)
    devices: list[NumberHolder] = Field(
        description="The devices whose binding holds the number (at most 100)."
    )

    @classmethod
    def of(
        cls, number: str, state: NumberState | None, devices: list[NumberHolder]
    ) -> CallbackNumber:
        return cls(
            telephoneNumber=number,
            owner=None if state is None else state.owner,
            shared=False if state is None else state.shared,
            updatedAt=None if state is None else state.updated_at.isoformat(),
            devices=devices,
        )


class CallbackNumberWrite(BaseModel):
    """Assign the number to a device (`owner`), or mark it `shared` (any device may use it;
    the call-time query answers the one heard from last). DELETE releases it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    owner: Annotated[Aeui | None, Field(description="An AEUI.")] = None
    shared: bool = False

    @classmethod
    def read(cls, body: Mapping[str, Any]) -> CallbackNumberWrite:
        """The body, or a 422 naming every field that is wrong."""
        missing = body.get("owner") is None and body.get("shared", False) is False
        why = "required unless shared is true (DELETE releases a number)"
        return read_model(
            cls, body, "The request is not valid.", [FieldError("owner", why)] * missing
        )


def read_model(cls: type[M], body: Mapping[str, Any], detail: str, errors: list[FieldError]) -> M:
    """``body`` read as ``cls`` (``null`` is a field left out), or a 422 naming ``errors`` and
    every field that is wrong."""
    readable, unreadable = unreadable_keys(body)
    found = None
    try:
        found = cls.model_validate({k: v for k, v in readable.items() if v is not None})
    except ValidationError as exc:
        errors = [*unreadable, *field_errors(exc), *errors]
    if errors or found is None:
        names = tuple(f.alias or n for n, f in cls.model_fields.items())
        raise Problem(422, detail, errors=in_order([*unreadable, *errors], names))
    return found


def _text(pattern: str, rule: str) -> AfterValidator:
    """No control characters, and ``pattern`` matches (else ``rule``)."""
    matches = re.compile(pattern).search

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        _, reason = check_string(value, "", len(value))
        if reason is None and not matches(value):
            reason = rule
        if reason is not None:
            raise refuse(reason)
        return value

    return AfterValidator(check)


def _limit(max_length: int, pattern: str, description: str | None = None) -> Any:
    extra: JsonDict = {"pattern": pattern}
    return Field(max_length=max_length, description=description, json_schema_extra=extra)


def _omitted(max_length: int, description: str | None = None) -> Any:
    """A field of an answer that leaves out what the carrier's record lacks (never null)."""
    return Field(None, max_length=max_length, description=description)


_CONTROL = "contains control characters"


class NotificationRecipient(BaseModel):
    """Someone told when a 911 call is placed (Kari's Law)."""

    model_config = ConfigDict(extra="forbid")

    id: str = _omitted(64)
    emailAddress: str = _omitted(255)
    phoneNumber: str = _omitted(32)
    description: str = _omitted(255)


class NotificationRecipientWrite(BaseModel):
    """A recipient to create: an email address, a phone number, or both."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "anyOf": [
                {"required": ["emailAddress"], "properties": {"emailAddress": {"type": "string"}}},
                {
                    "required": ["phoneNumber"],
                    "properties": {"phoneNumber": {"type": "string", "minLength": 1}},
                },
            ]
        },
    )

    id: Annotated[str | None, _limit(64, ID_PATTERN), _text(ID_PATTERN, ID_RULE)] = None
    emailAddress: Annotated[
        str | None,
        _limit(255, EMAIL_PATTERN, "user@example.com"),
        _text(EMAIL_PATTERN, "expected an email"),
    ] = None
    phoneNumber: Annotated[str | None, _limit(32, TEXT_PATTERN), _text(TEXT_PATTERN, _CONTROL)] = (
        None
    )
    description: Annotated[str | None, _limit(255, TEXT_PATTERN), _text(TEXT_PATTERN, _CONTROL)] = (
        None
    )

    @classmethod
    def read(cls, body: Mapping[str, Any]) -> NotificationRecipientWrite:
        missing = not body.get("emailAddress") and not body.get("phoneNumber")
        why = FieldError("emailAddress", "required unless phoneNumber is given")
        return read_model(cls, body, "The recipient is not valid.", [why] * missing)
