"""The Unified Emergency Services Provisioning API (v2) shapes, as the project's typed models.

Field names, types and enums are the public API's; only the fields the gateway reads or
sends are declared. Requests forbid unknown fields (the simulator refuses them with the
API's error document, and the client's contract tests hold every request it sends to
them); answers ignore unknown fields, so that a field the carrier adds breaks nothing.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

#: The API's ``phoneNumber`` pattern (US numbers, with or without punctuation).
PHONE_PATTERN: Final = r"^(\+\d{1,2}\s?)?1?\-?\.?\s?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}$"
#: IDs the client chooses: no white space (the API's ``^\S*$``), bounded, URL-safe.
ID_PATTERN: Final = r"^[A-Za-z0-9._~@:+=-]{1,64}$"
_NO_SPACE: Final = r"^\S*$"
_TEXT: Final = 200

Id = Annotated[str, Field(pattern=ID_PATTERN)]
Text = Annotated[str, Field(max_length=_TEXT)]


class ValidationStatus(enum.StrEnum):
    VALID = "VALID"
    INVALID = "INVALID"
    UNVALIDATED = "UNVALIDATED"


class EndpointStatus(enum.StrEnum):
    INPROGRESS = "INPROGRESS"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"


class OrderStatus(enum.StrEnum):
    RECEIVED = "RECEIVED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"

    @property
    def open(self) -> bool:
        return self in (OrderStatus.RECEIVED, OrderStatus.PROCESSING)


class OrderType(enum.StrEnum):
    ADD_ENDPOINTS = "ADD_ENDPOINTS"
    UPDATE_ENDPOINTS = "UPDATE_ENDPOINTS"
    DELETE_ENDPOINTS = "DELETE_ENDPOINTS"


class UpdateAction(enum.StrEnum):
    PROVISION = "PROVISION"
    UNPROVISION = "UNPROVISION"


class NotificationType(enum.StrEnum):
    HTTP = "HTTP"
    SMS = "SMS"
    EMAIL = "EMAIL"
    VOICE = "VOICE"


class _Body(BaseModel):
    """A body: immutable, camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    def wire(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


class Request(_Body):
    """A request body: unknown fields refused."""

    model_config = ConfigDict(extra="forbid")


class Answer(_Body):
    """An answer body: unknown fields ignored."""

    model_config = ConfigDict(extra="ignore")


# -- requests ------------------------------------------------------------------


class NewEndpoint(Request):
    id: Id
    phone_number: Annotated[str, Field(pattern=PHONE_PATTERN)]
    name: Text | None = None
    lang: Annotated[str, Field(max_length=8)] | None = None
    country: Annotated[str, Field(max_length=3)] | None = None
    address_id: Id


class AddEndpoints(Request):
    """``POST /endpoints``."""

    endpoints: Annotated[list[NewEndpoint], Field(min_length=1, max_length=1000)]


class UpdateEndpoint(Request):
    """``PATCH /endpoints/{endpointId}``: (re)provision it at an address."""

    action: UpdateAction
    address_id: Annotated[str, Field(pattern=_NO_SPACE, max_length=64)] | None = None


class AddAddress(Request):
    """``POST /addresses`` (the US fields the gateway sends)."""

    id: Id
    description: Text | None = None
    address_line1: Text
    address_line2: Text | None = None
    city: Text
    state: Annotated[str, Field(max_length=3)]
    postal_code: Annotated[str, Field(max_length=10)]
    country: Annotated[str, Field(max_length=3)] | None = None
    latitude: Annotated[str, Field(max_length=32)] | None = None
    longitude: Annotated[str, Field(max_length=32)] | None = None


class AddNotification(Request):
    """``POST /notifications``."""

    id: Id
    type: NotificationType
    recipient: Text
    description: Text | None = None


class AddNotificationGroup(Request):
    """``POST /notificationGroups``."""

    id: Id
    description: Text | None = None
    endpoints: Annotated[list[Id], Field(max_length=1000)] = []
    notifications: Annotated[list[Id], Field(max_length=1000)] = []


class UpdateNotificationGroup(Request):
    """``PATCH /notificationGroups/{groupId}``: notifications in and out (its endpoints are
    the ones it was added with: the API changes them no other way)."""

    description: Text | None = None
    notification_ids_to_add: Annotated[list[Id], Field(max_length=1000)] = []
    notification_ids_to_delete: Annotated[list[Id], Field(max_length=1000)] = []


# -- answers -------------------------------------------------------------------


class Held(Answer):
    """What the API answers of every record it keeps: its ID, account and time stamps."""

    id: str
    account_id: str | None = None
    created: str | None = None
    updated: str | None = None


class EndpointAnswer(Held):
    """``GET /endpoints/{endpointId}``, and each of ``GET /endpoints``."""

    phone_number: str | None = None
    name: str | None = None
    lang: str | None = None
    country: str | None = None
    address_id: str | None = None


class Link(Answer):
    href: str | None = None
    rel: str | None = None
    method: str | None = None


class EndpointList(Answer):
    links: list[Link] | None = None
    endpoints: list[EndpointAnswer] = []


class Street(Answer):
    """An address's ``addressLine1`` as the carrier parsed it."""

    house_number: str | None = None
    predirectional: str | None = None
    street_name: str | None = None
    street_suffix: str | None = None
    postdirectional: str | None = None


class Place(Answer):
    """The rest of an address: the unit, and where the street is."""

    address_line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


class AddressAnswer(Held, Street, Place):
    """``POST``/``GET /addresses/{addressId}``, and each of ``GET /addresses``."""

    validation_status: ValidationStatus | None = None
    address: str | None = None
    description: str | None = None
    latitude: float | None = None
    longitude: float | None = None


class AddressList(Answer):
    links: list[Link] | None = None
    addresses: list[AddressAnswer] = []


class Counted(Answer):
    """An order's counts of the endpoints it carries, and when it last changed."""

    accepted_count: int | None = None
    invalid_count: int | None = None
    updated: str | None = None
    total_number: int | None = None


class ProvisioningOrder(Counted):
    """The ``202`` answer to an endpoint write: the order that carries it out."""

    order_id: Id  # it goes into the path of the status reads
    updated_by: str | None = None
    order_type: OrderType | None = None
    order_status: OrderStatus


class OrderEndpoint(Answer):
    id: str
    updated_by: str | None = None
    status: EndpointStatus
    error: str | None = None
    error_code: str | None = None


class OrderSummary(Counted):
    """Each of ``GET /orders``."""

    id: str
    type: OrderType | None = None
    status: OrderStatus


class OrderDetails(OrderSummary):
    """``GET /orders/{orderId}/details``."""

    links: list[Link] | None = None
    endpoints: list[OrderEndpoint] = []


class OrderHistoryEntry(Answer):
    status: OrderStatus
    updated: str | None = None
    updated_by: str | None = None
    note: str | None = None


class OrderHistory(Answer):
    """``GET /orders/{orderId}/history``."""

    links: list[Link] | None = None
    id: str
    type: OrderType | None = None
    status: OrderStatus
    created: str | None = None
    order_history: list[OrderHistoryEntry] = []


class OrderList(Answer):
    links: list[Link] | None = None
    orders: list[OrderSummary] = []


class NotificationAnswer(Held):
    description: str | None = None
    recipient: str | None = None
    type: NotificationType | None = None
    group_count: int | None = None


class NotificationList(Answer):
    notifications: list[NotificationAnswer] = []


class NotificationGroupAnswer(Held):
    description: str | None = None
    endpoint_count: int | None = None
    endpoint_ids: list[str] = []
    notification_ids: list[str] = []


class NotificationGroupList(Answer):
    notification_groups: list[NotificationGroupAnswer] = []


class ErrorSource(Answer):
    parameter: str | None = None
    field: str | None = None
    header: str | None = None
    reference: str | None = None


class Error(Answer):
    id: str | None = None
    type: str | None = None
    description: str
    code: int | None = None
    source: ErrorSource | None = None


class GenericError(Answer):
    """Every error answer: ``{"errors": [...]}``."""

    errors: list[Error] | None


def error_document(
    kind: str, description: str, code: int, *, field: str | None = None
) -> GenericError:
    """One error, as the API words them (``field``: the request field it is about)."""
    source = ErrorSource(field=field) if field is not None else None
    return GenericError(
        errors=[Error(type=kind, description=description, code=code, source=source)]
    )


_SPACES = re.compile(r"\s+")


def one_line(*parts: str | None) -> str:
    """Non-empty parts joined by single spaces (an ``addressLine1`` from its pieces)."""
    return _SPACES.sub(" ", " ".join(p for p in parts if p)).strip()
