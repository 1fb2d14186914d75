"""The admin API's shapes and the history pages, declared once: their validation, their JSON
output and their schema in the API document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.config import JsonDict

from gateway.api.models import Aeui, field_errors, in_order, unreadable_keys
from gateway.api.problems import Problem
from gateway.dlr.errors import FieldError
from gateway.store import HistoryEntry as StoredEntry
from gateway.store.base import NumberState

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
        readable, errors = unreadable_keys(body)
        found = None
        try:
            found = cls.model_validate(readable)
        except ValidationError as exc:
            errors.extend(field_errors(exc))
        if body.get("owner") is None and body.get("shared", False) is False:
            why = "required unless shared is true (DELETE releases a number)"
            errors.append(FieldError("owner", why))
        if errors or found is None:
            raise Problem(422, "The request is not valid.", errors=in_order(errors, _NUMBER))
        return found


_NUMBER = tuple(CallbackNumberWrite.model_fields)
