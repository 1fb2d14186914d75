"""The admin API's shapes and the history pages, declared once: their validation, their JSON
output and their schema in the API document."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any, TypeVar

from annotated_types import GroupedMetadata
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
)
from pydantic.config import JsonDict

from gateway.api.models import (
    CALLER_NAME_SCHEMA,
    Aeui,
    CallerName,
    address_object,
    in_order,
    omitted,
    refuse,
    unreadable_keys,
    validated,
)
from gateway.api.models import CallbackNumber as Telephone
from gateway.api.problems import Problem
from gateway.api.schemas import ID_PATTERN as ID_RE
from gateway.api.schemas import LOCATION_ID_PATTERN as LOCATION_ID_RE
from gateway.api.schemas import check_string
from gateway.bandwidth.models import Address, Record, wire_name
from gateway.dlr.binding import known_iso
from gateway.dlr.errors import FieldError
from gateway.dlr.patterns import CONTROL_CHARACTERS, END, TEXT_PATTERN, WHITESPACE
from gateway.store import HistoryEntry as StoredEntry
from gateway.store.base import NumberState

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=Record)
_WRITE = ConfigDict(extra="forbid", strict=True)

#: IDs the gateway accepts in a body.
ID_PATTERN = f"^{ID_RE.pattern}{END}"
LOCATION_ID_PATTERN = f"^{LOCATION_ID_RE.pattern}{END}"
ID_RULE = "1 to 64 of letters, digits and ._~-, starting with a letter or digit"
_EMAIL_PART = f"[^@{CONTROL_CHARACTERS}{WHITESPACE}]+"
#: A notification recipient's email address: one ``@``, a dot in the domain, no spaces (the
#: carrier checks deliverability).
EMAIL_PATTERN = f"^{_EMAIL_PART}@{_EMAIL_PART}\\.{_EMAIL_PART}{END}"

_KINDS = (
    "A device: applied (the carrier took a report), repaired, admin_edit, deleted (an admin "
    "deleted its endpoint; credential gateway: the gateway deleted it again, after a "
    "report's write that raced the deletion created it again), coordinates_conflict (a fix "
    "contradicted the address), tokens_revoked (an admin revoked its tokens: "
    "``after.revokedBefore``), emergency_query, provisioning_failed (the carrier refused, "
    "after the gateway had answered, a write it answered pending or a repair's: "
    "``after.carrierError``). "
    "A number: number_owned, number_assigned, number_shared, "
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
            observedAt=known_iso(entry.observed_at),
            fromLocationId=entry.from_location_id,
            toLocationId=entry.to_location_id,
            before=dict(entry.before) if entry.before is not None else None,
            after=dict(entry.after) if entry.after is not None else None,
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


class TokenRevocation(BaseModel):
    """A device's tokens issued before ``revokedBefore`` (``iat`` earlier, or none) are
    refused."""

    alternateEndUserId: str
    revokedBefore: str = Field(
        json_schema_extra=_DATE_TIME,
        description="Whole seconds: a token issued in this second or later is accepted.",
    )

    @classmethod
    def of(cls, aeui: str, before: datetime) -> TokenRevocation:
        return cls(alternateEndUserId=aeui, revokedBefore=before.isoformat())


class CallbackNumberWrite(BaseModel):
    """Assign the number to a device (`owner`), or mark it `shared` (any device may use it;
    the call-time query answers the one heard from last), not both. DELETE releases it."""

    model_config = _WRITE

    owner: Annotated[Aeui | None, Field(description="An AEUI.")] = None
    shared: bool = False

    @classmethod
    def read(cls, body: Mapping[str, Any]) -> CallbackNumberWrite:
        """The body, or a 422 naming every field that is wrong."""
        # ``null`` is a field left out: ``{"shared": null}`` alone releases nothing.
        owner, shared = body.get("owner"), body.get("shared")
        errors = []
        if owner is None and shared in (None, False):
            errors.append(
                FieldError("owner", "required unless shared is true (DELETE releases a number)")
            )
        elif owner is not None and shared is True:
            errors.append(
                FieldError(
                    "shared", "an owned number is not shared: give owner or shared, not both"
                )
            )
        return read_model(cls, body, "The request is not valid.", errors)


def as_record(cls: type[R], model: BaseModel, **changes: Any) -> R:
    """The carrier's record (``cls``) of ``model``'s fields, named as the wire names them."""
    names = {wire_name(f.name): f.name for f in dataclasses.fields(cls)}
    return cls(**{**{names[k]: v for k, v in model if k in names}, **changes})


def read_model(cls: type[M], body: Mapping[str, Any], detail: str, errors: list[FieldError]) -> M:
    """``body`` read as ``cls`` (``null`` is a field left out), or a 422 naming ``errors`` and
    every field that is wrong."""
    readable, unreadable = unreadable_keys(body)
    errors = [*unreadable, *errors]
    given = {k: v for k, v in readable.items() if v is not None}
    found = validated(cls, given, errors, bounded=cls)
    if errors or found is None:
        names = tuple(f.alias or n for n, f in cls.model_fields.items())
        # A nested object's unreadable keys may be found twice (``address_object``).
        raise Problem(422, detail, errors=in_order(dict.fromkeys(errors), names))
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class _Text(GroupedMetadata):
    """A string of at most ``max_length`` characters matching ``pattern``, as the schema
    states it (with ``description``) and as it is checked: no control characters, and
    ``pattern`` matches (else ``rule``)."""

    max_length: int
    pattern: str
    rule: str
    _: dataclasses.KW_ONLY
    description: str | None = None

    def __iter__(self) -> Iterator[object]:
        extra: JsonDict = {"pattern": self.pattern}
        yield Field(
            max_length=self.max_length, description=self.description, json_schema_extra=extra
        )
        matches, rule = re.compile(self.pattern).search, self.rule

        def check(value: str | None) -> str | None:
            if value is None:
                return None
            _, reason = check_string(value, "", len(value))
            if reason is None and not matches(value):
                reason = rule
            if reason is not None:
                raise refuse(reason)
            return value

        yield AfterValidator(check)


_CONTROL = "contains control characters"
#: Optional strings of a body without control characters.
Text32 = Annotated[str | None, _Text(32, TEXT_PATTERN, _CONTROL)]
Text255 = Annotated[str | None, _Text(255, TEXT_PATTERN, _CONTROL)]


def _no_control(value: Any) -> Any:
    if isinstance(value, str):
        _, reason = check_string(value, "", len(value))
        if reason is not None:
            raise refuse(reason)
    return value


class NotificationRecipient(BaseModel):
    """Someone told when a 911 call is placed (Kari's Law)."""

    model_config = ConfigDict(extra="forbid")

    id: str = omitted(64)
    emailAddress: str = omitted(255)
    phoneNumber: str = omitted(32)
    description: str = omitted(255)


class NotificationRecipientWrite(BaseModel):
    """A recipient to create: an email address, a phone number, or both."""

    model_config = ConfigDict(
        **_WRITE,
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

    id: Annotated[str | None, _Text(64, ID_PATTERN, ID_RULE)] = None
    emailAddress: Annotated[
        str | None, _Text(255, EMAIL_PATTERN, "expected an email", description="user@example.com")
    ] = None
    phoneNumber: Text32 = None
    description: Text255 = None

    @classmethod
    def read(cls, body: Mapping[str, Any]) -> NotificationRecipientWrite:
        missing = not body.get("emailAddress") and not body.get("phoneNumber")
        why = FieldError("emailAddress", "required unless phoneNumber is given")
        return read_model(cls, body, "The recipient is not valid.", [why] * missing)


#: A body the admin API reads refuses control characters in every field, at the name's
#: edges too (a report strips them).
AdminCallerName = Annotated[
    CallerName,
    BeforeValidator(_no_control),
    WithJsonSchema({**CALLER_NAME_SCHEMA, "allOf": [{"pattern": TEXT_PATTERN}]}),
]


class Endpoint(BaseModel):
    """A device's 911 record at the carrier."""

    model_config = ConfigDict(extra="forbid")

    endpointId: str = omitted(64, "Derived from the AEUI when left out on create.")
    alternateEndUserId: str = omitted(30)
    callerName: str = omitted(50)
    locationId: str = omitted(32)
    telephoneNumber: str = omitted(32)
    activated: bool = omitted()


class EndpointWrite(BaseModel):
    """A device's 911 record to write. Its AEUI, caller name and callback number follow a
    location report's rules, and its number's ownership too (409 `/problems/number-owned`
    when another device owns it)."""

    model_config = _WRITE

    endpointId: Annotated[
        str | None,
        _Text(
            64, ID_PATTERN, ID_RULE, description="Derived from the AEUI when left out on create."
        ),
    ] = None
    alternateEndUserId: Aeui
    callerName: AdminCallerName
    locationId: Annotated[str, Field(min_length=1), _Text(32, TEXT_PATTERN, _CONTROL)]
    telephoneNumber: Telephone
    activated: bool | None = None

    @classmethod
    def read(cls, body: Mapping[str, Any]) -> EndpointWrite:
        return read_model(cls, body, "The endpoint is not valid.", [])


def _without_id(model: type[BaseModel], name: str, key: str) -> type[BaseModel]:
    """``model`` for a ``PUT``: the ID is the path's. (The gateway still takes an equal one
    in the body, as a ``GET`` answered it.)"""
    fields: Any = {n: (f.annotation, f) for n, f in model.model_fields.items() if n != key}
    doc = f"The {name[:-7].lower()}'s fields; its ID is the path's."
    replace: type[BaseModel] = create_model(
        name, __config__=model.model_config, __doc__=doc, **fields
    )
    return replace


EndpointReplace = _without_id(EndpointWrite, "EndpointReplace", "endpointId")

_ADDRESS = WithJsonSchema({"x-component": "Address"})


class Location(BaseModel):
    """A validated civic location at the carrier."""

    model_config = ConfigDict(extra="forbid")

    locationId: str = omitted(32, "Derived from the address when left out on create.")
    description: str = omitted(255)
    address: Annotated[Any, _ADDRESS] = None
    status: str = omitted(description="Set by the carrier: VALID, INVALID, GEOCODED.")
    latitude: Annotated[float, Field(json_schema_extra={"format": "double"})] = omitted()
    longitude: Annotated[float, Field(json_schema_extra={"format": "double"})] = omitted()


class LocationWrite(BaseModel):
    """A location to create: an address, and coordinates (both or neither)."""

    model_config = ConfigDict(
        **_WRITE,
        json_schema_extra={
            # Latitude and longitude go together, or not at all (``null`` counts as left out).
            "anyOf": [
                {
                    "required": ["latitude", "longitude"],
                    "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
                },
                {"properties": {"latitude": {"type": "null"}, "longitude": {"type": "null"}}},
            ]
        },
    )

    locationId: Annotated[
        str | None,
        _Text(
            32,
            LOCATION_ID_PATTERN,
            "1 to 32 letters and digits",
            description="Derived from the address when left out on create.",
        ),
    ] = None
    description: Text255 = None
    #: Read apart (``read_address``), so that its errors name ``address.<field>``.
    address: Annotated[Any, _ADDRESS]
    latitude: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False)
    longitude: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False)

    @classmethod
    def read(cls, body: Mapping[str, Any]) -> tuple[LocationWrite, Address]:
        """The body and its address, or a 422 naming every field that is wrong."""
        errors: list[FieldError] = []
        if "status" in body:
            errors.append(FieldError("status", "read-only; leave it out"))
        lat, lon = body.get("latitude"), body.get("longitude")
        if (lat is None) != (lon is None):
            missing = "latitude" if lat is None else "longitude"
            errors.append(FieldError(missing, "required with the other coordinate"))
        address = None
        if body.get("address") is not None:
            address = address_object(body["address"], errors)
        rest = {k: v for k, v in body.items() if k != "status"}
        found = read_model(cls, rest, "The location is not valid.", errors)
        assert address is not None
        return found, address


LocationReplace = _without_id(LocationWrite, "LocationReplace", "locationId")
