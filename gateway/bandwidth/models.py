"""The carrier API's schemas as plain, immutable records.

Field names are the API's property names in snake_case; ``wire_name`` gives the
camelCase spelling used both in the upstream XML and in the gateway's JSON.
These records carry no I/O, so the domain may use them freely.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Final

#: The records (``gateway.bandwidth`` re-exports them).
__all__ = [
    "Address",
    "Endpoint",
    "EndpointListResponse",
    "Location",
    "LocationListResponse",
    "LocationStatus",
    "NotificationRecipient",
    "NotificationRecipientListResponse",
    "Record",
]


class LocationStatus(enum.StrEnum):
    """The carrier's status values; the field itself is read as free text, so a new one is kept."""

    VALID = "VALID"
    INVALID = "INVALID"
    GEOCODED = "GEOCODED"


@dataclass(frozen=True, slots=True)
class Address:
    house_number: str | None = None
    house_suffix: str | None = None
    prefix_directional: str | None = None
    street_name: str | None = None
    street_suffix: str | None = None
    post_directional: str | None = None
    address_line2: str | None = None
    city: str | None = None
    state_code: str | None = None
    zip: str | None = None
    plus_four: str | None = None
    country: str | None = None


#: The ``Address`` fields of a one-line street address, in the USPS order: its first six,
#: the house number, then the street (``house_number`` to ``post_directional``).
STREET_FIELDS: Final = tuple(f.name for f in fields(Address))[:6]


@dataclass(frozen=True, slots=True)
class Location:
    location_id: str | None = None
    description: str | None = None
    address: Address | None = None
    status: str | None = None
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    endpoint_id: str | None = None
    alternate_end_user_id: str | None = None
    caller_name: str | None = None
    location_id: str | None = None
    telephone_number: str | None = None
    activated: bool | None = None


@dataclass(frozen=True, slots=True)
class NotificationRecipient:
    id: str | None = None
    email_address: str | None = None
    phone_number: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointListResponse:
    total_count: int | None = None
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True, slots=True)
class LocationListResponse:
    total_count: int | None = None
    locations: tuple[Location, ...] = ()


@dataclass(frozen=True, slots=True)
class NotificationRecipientListResponse:
    notification_recipients: tuple[NotificationRecipient, ...] = ()


Record = (
    Address
    | Location
    | Endpoint
    | NotificationRecipient
    | EndpointListResponse
    | LocationListResponse
    | NotificationRecipientListResponse
)

#: The carrier API's schema names, as the XML root elements are named.
SCHEMAS: dict[str, type[Record]] = {
    "Endpoint": Endpoint,
    "EndpointListResponse": EndpointListResponse,
    "Location": Location,
    "LocationListResponse": LocationListResponse,
    "NotificationRecipient": NotificationRecipient,
    "NotificationRecipientListResponse": NotificationRecipientListResponse,
}


def wire_name(field_name: str) -> str:
    """The carrier's spelling: ``alternate_end_user_id`` -> ``alternateEndUserId``."""
    head, *rest = field_name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
