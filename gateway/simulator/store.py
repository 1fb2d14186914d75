"""The simulator's account state and the twelve carrier operations on it, free of HTTP.

Each operation takes the path parameters and the raw request body and returns an ``Outcome``:
the status, the XML body, and whether it changed state. Operations are synchronous and hold the
store's lock for their whole check-then-write, so a test thread reading the state while a server
thread writes it sees whole records.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.bandwidth import codec
from gateway.bandwidth.errors import CodecError
from gateway.bandwidth.models import (
    Endpoint,
    EndpointListResponse,
    Location,
    LocationListResponse,
    NotificationRecipient,
    NotificationRecipientListResponse,
)
from gateway.records import record_to_json
from gateway.simulator.addresses import MAX_TEXT, InvalidAddress, validate_location
from gateway.xmlsafe import ILLEGAL

R = TypeVar("R", Endpoint, Location, NotificationRecipient)

MAX_AEUI = 30
MAX_CALLER_NAME = 50
MAX_EMAIL = 254
MAX_ID = 128  # also in _ID

#: Path segments beside ``/e911s/{endpointId}``: never an endpoint ID.
RESERVED_ENDPOINT_IDS = frozenset({"locations", "notificationrecipients"})

_LOCATION_ID = re.compile(r"[A-Za-z0-9]{1,32}")
# Characters a path segment carries unescaped (RFC 3986 unreserved, and ``@ : + =``).
_ID = re.compile(r"[A-Za-z0-9._~@:+=-]{1,128}")
_PHONE = re.compile(r"\+?[0-9]{10,15}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class Code:
    """``ErrorCode`` values in the simulator's ``ResponseStatus`` bodies."""

    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_ADDRESS = "INVALID_ADDRESS"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    LOCATION_IN_USE = "LOCATION_IN_USE"
    UNAUTHORIZED = "UNAUTHORIZED"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The simulator's answer to one carrier request: its status and XML body."""

    status: int
    body: bytes = b""
    #: Did this request change the state?
    applied: bool = False
    #: The record the request concerned, when there is one.
    id: str | None = None


class Refused(Exception):
    """An answer other than success, raised inside an operation."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


def error_body(code: str, description: str) -> bytes:
    """A ``ResponseStatus`` body; text XML cannot carry (from a path, say) is dropped."""
    return codec.encode_response_status(code, ILLEGAL.sub("", description)[:500])


def error(status: int, code: str, description: str, id: str | None = None) -> Outcome:
    return Outcome(status, error_body(code, description), id=id)


class Store:
    """One account's endpoints, locations and notification recipients."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.endpoints: dict[str, Endpoint] = {}
        #: Stripped ``alternateEndUserId`` -> the ID of the endpoint that has it (AEUIs are
        #: unique), so a write checks uniqueness without scanning every endpoint. Kept by
        #: ``_put_endpoint`` and ``_drop_endpoint``; change ``endpoints`` only through them.
        self._endpoint_by_aeui: dict[str, str] = {}
        self.locations: dict[str, Location] = {}
        self.recipients: dict[str, NotificationRecipient] = {}
        self._operations: dict[str, Callable[[Mapping[str, str], bytes], Outcome]] = {
            "listEndpoints": self._list_endpoints,
            "createEndpoint": self._create_endpoint,
            "getEndpoint": self._get_endpoint,
            "updateEndpoint": self._update_endpoint,
            "deleteEndpoint": self._delete_endpoint,
            "listLocations": self._list_locations,
            "createLocation": self._create_location,
            "getLocation": self._get_location,
            "updateLocation": self._update_location,
            "deleteLocation": self._delete_location,
            "listNotificationRecipients": self._list_notification_recipients,
            "createNotificationRecipient": self._create_notification_recipient,
        }

    def clear(self) -> None:
        with self._lock:
            self.endpoints.clear()
            self._endpoint_by_aeui.clear()
            self.locations.clear()
            self.recipients.clear()

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        with self._lock:
            return {
                "endpoints": {k: record_to_json(v) for k, v in self.endpoints.items()},
                "locations": {k: record_to_json(v) for k, v in self.locations.items()},
                "notificationRecipients": {
                    k: record_to_json(v) for k, v in self.recipients.items()
                },
            }

    def run(self, operation: str, params: Mapping[str, str], body: bytes) -> Outcome:
        """Perform one carrier operation, named by its ``operationId``."""
        handler = self._operations[operation]
        try:
            with self._lock:
                outcome: Outcome = handler(params, body)
                return outcome
        except Refused as exc:
            return error(exc.status, exc.code, exc.description)

    # -- endpoints -------------------------------------------------------------

    def _list_endpoints(self, params: Mapping[str, str], body: bytes) -> Outcome:
        items = tuple(self.endpoints.values())
        return Outcome(200, codec.encode(EndpointListResponse(len(items), items)))

    def _create_endpoint(self, params: Mapping[str, str], body: bytes) -> Outcome:
        endpoint = _read(Endpoint, body)
        endpoint_id = _new_id(endpoint.endpoint_id, self.endpoints, "endpoint", _check_endpoint_id)
        stored = self._checked_endpoint(endpoint, endpoint_id)
        self._put_endpoint(endpoint_id, stored)
        return Outcome(201, codec.encode(stored), applied=True, id=endpoint_id)

    def _get_endpoint(self, params: Mapping[str, str], body: bytes) -> Outcome:
        return _found(params["endpointId"], self._endpoint)

    def _update_endpoint(self, params: Mapping[str, str], body: bytes) -> Outcome:
        endpoint_id = params["endpointId"]
        self._endpoint(endpoint_id)
        endpoint = _read(Endpoint, body)
        _check_path_id("endpointId", endpoint.endpoint_id, endpoint_id)
        stored = self._checked_endpoint(endpoint, endpoint_id)
        self._put_endpoint(endpoint_id, stored)
        return Outcome(200, codec.encode(stored), applied=True, id=endpoint_id)

    def _delete_endpoint(self, params: Mapping[str, str], body: bytes) -> Outcome:
        endpoint_id = params["endpointId"]
        self._endpoint(endpoint_id)
        self._drop_endpoint(endpoint_id)
        return Outcome(200, applied=True, id=endpoint_id)

    def _put_endpoint(self, endpoint_id: str, stored: Endpoint) -> None:
        """Store (in place, keeping the listing's order) and re-index the endpoint."""
        self._unindex(endpoint_id)
        self.endpoints[endpoint_id] = stored
        self._endpoint_by_aeui[_aeui_key(stored)] = endpoint_id

    def _drop_endpoint(self, endpoint_id: str) -> None:
        self._unindex(endpoint_id)
        self.endpoints.pop(endpoint_id, None)

    def _unindex(self, endpoint_id: str) -> None:
        old = self.endpoints.get(endpoint_id)
        if old is not None and self._endpoint_by_aeui.get(_aeui_key(old)) == endpoint_id:
            del self._endpoint_by_aeui[_aeui_key(old)]

    def _endpoint(self, endpoint_id: str) -> Endpoint:
        found = self.endpoints.get(endpoint_id)
        if found is None:
            raise Refused(404, Code.NOT_FOUND, f"endpoint {endpoint_id!r} not found")
        return found

    def _checked_endpoint(self, endpoint: Endpoint, endpoint_id: str) -> Endpoint:
        aeui = _required("alternateEndUserId", endpoint.alternate_end_user_id, MAX_AEUI)
        _required("callerName", endpoint.caller_name, MAX_CALLER_NAME)
        phone = _required("telephoneNumber", endpoint.telephone_number, 20)
        if not _PHONE.fullmatch(phone):
            raise Refused(
                400, Code.INVALID_REQUEST, "telephoneNumber: must be 10 to 15 digits, optional +"
            )
        location_id = _required("locationId", endpoint.location_id, MAX_ID)
        if location_id not in self.locations:
            raise Refused(
                400, Code.INVALID_REQUEST, f"locationId: location {location_id!r} does not exist"
            )
        other_id = self._endpoint_by_aeui.get(aeui)
        if other_id is not None and other_id != endpoint_id:
            raise Refused(
                409,
                Code.ALREADY_EXISTS,
                f"alternateEndUserId {aeui!r} already belongs to endpoint {other_id}",
            )
        activated = True if endpoint.activated is None else endpoint.activated
        return dataclasses.replace(endpoint, endpoint_id=endpoint_id, activated=activated)

    # -- locations -------------------------------------------------------------

    def _list_locations(self, params: Mapping[str, str], body: bytes) -> Outcome:
        items = tuple(self.locations.values())
        return Outcome(200, codec.encode(LocationListResponse(len(items), items)))

    def _create_location(self, params: Mapping[str, str], body: bytes) -> Outcome:
        location = _read(Location, body)
        location_id = _new_id(location.location_id, self.locations, "location", _check_location_id)
        stored = _checked_location(location, location_id)
        self.locations[location_id] = stored
        return Outcome(201, codec.encode(stored), applied=True, id=location_id)

    def _get_location(self, params: Mapping[str, str], body: bytes) -> Outcome:
        return _found(params["locationId"], self._location)

    def _update_location(self, params: Mapping[str, str], body: bytes) -> Outcome:
        location_id = params["locationId"]
        self._location(location_id)
        location = _read(Location, body)
        _check_path_id("locationId", location.location_id, location_id)
        stored = _checked_location(location, location_id)
        self.locations[location_id] = stored
        return Outcome(200, codec.encode(stored), applied=True, id=location_id)

    def _delete_location(self, params: Mapping[str, str], body: bytes) -> Outcome:
        location_id = params["locationId"]
        self._location(location_id)
        users = [k for k, v in self.endpoints.items() if v.location_id == location_id]
        if users:
            raise Refused(
                409,
                Code.LOCATION_IN_USE,
                f"location {location_id} is in use by {len(users)} endpoint(s), e.g. {users[0]}",
            )
        del self.locations[location_id]
        return Outcome(200, applied=True, id=location_id)

    def _location(self, location_id: str) -> Location:
        found = self.locations.get(location_id)
        if found is None:
            raise Refused(404, Code.NOT_FOUND, f"location {location_id!r} not found")
        return found

    # -- notification recipients ----------------------------------------------

    def _list_notification_recipients(self, params: Mapping[str, str], body: bytes) -> Outcome:
        items = tuple(self.recipients.values())
        return Outcome(200, codec.encode(NotificationRecipientListResponse(items)))

    def _create_notification_recipient(self, params: Mapping[str, str], body: bytes) -> Outcome:
        recipient = _read(NotificationRecipient, body)
        recipient_id = recipient.id
        if recipient_id is None or not recipient_id.strip():
            recipient_id = uuid.uuid4().hex
        if not _ID.fullmatch(recipient_id) or set(recipient_id) == {"."}:
            raise Refused(400, Code.INVALID_REQUEST, "id: " + _ID_RULE)
        if recipient_id in self.recipients:
            raise Refused(409, Code.ALREADY_EXISTS, f"notification recipient {recipient_id} exists")
        email, phone = recipient.email_address, recipient.phone_number
        if not (email or "").strip() and not (phone or "").strip():
            raise Refused(
                400, Code.INVALID_REQUEST, "emailAddress: emailAddress or phoneNumber is required"
            )
        if email and (len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email)):
            raise Refused(400, Code.INVALID_REQUEST, "emailAddress: is not an email address")
        if phone and not _PHONE.fullmatch(phone):
            raise Refused(
                400, Code.INVALID_REQUEST, "phoneNumber: must be 10 to 15 digits, optional +"
            )
        if recipient.description is not None and len(recipient.description) > MAX_TEXT:
            raise Refused(
                400, Code.INVALID_REQUEST, f"description: is longer than {MAX_TEXT} characters"
            )
        stored = dataclasses.replace(recipient, id=recipient_id)
        self.recipients[recipient_id] = stored
        return Outcome(201, codec.encode(stored), applied=True, id=recipient_id)


_ID_RULE = f"must be 1 to {MAX_ID} of A-Z a-z 0-9 . _ ~ @ : + = -"


def _read(cls: type[R], body: bytes) -> R:
    """The request's record; the root's name is ignored and a one-record wrapper is unwrapped."""
    if not body.strip():
        raise Refused(400, Code.INVALID_REQUEST, "a request body is required")
    try:
        root = codec.parse(body)
        return codec.from_element(cls, codec.record_element(root, cls))
    except CodecError as exc:
        raise Refused(400, Code.INVALID_REQUEST, str(exc)) from None


def _aeui_key(endpoint: Endpoint) -> str:
    return (endpoint.alternate_end_user_id or "").strip()


def _required(field: str, value: str | None, limit: int) -> str:
    text = (value or "").strip()
    if not text:
        raise Refused(400, Code.INVALID_REQUEST, f"{field}: is required")
    if len(text) > limit:
        raise Refused(400, Code.INVALID_REQUEST, f"{field}: is longer than {limit} characters")
    return text


def _new_id(
    given: str | None, taken: Mapping[str, object], what: str, check: Callable[[str], None]
) -> str:
    """The ID a create asked for (checked, and not taken), or a fresh one."""
    chosen = given if given is not None and given.strip() else uuid.uuid4().hex
    check(chosen)
    if chosen in taken:
        raise Refused(409, Code.ALREADY_EXISTS, f"{what} {chosen} already exists")
    return chosen


def _check_endpoint_id(endpoint_id: str) -> None:
    if endpoint_id.lower() in RESERVED_ENDPOINT_IDS:
        raise Refused(
            400, Code.INVALID_REQUEST, f"endpointId: {endpoint_id!r} is reserved by the API's paths"
        )
    if not _ID.fullmatch(endpoint_id) or set(endpoint_id) == {"."}:
        raise Refused(400, Code.INVALID_REQUEST, "endpointId: " + _ID_RULE)


def _check_location_id(location_id: str) -> None:
    if not _LOCATION_ID.fullmatch(location_id):
        raise Refused(
            400, Code.INVALID_REQUEST, "locationId: must be 1 to 32 letters and digits (A-Za-z0-9)"
        )


def _check_path_id(field: str, body_id: str | None, path_id: str) -> None:
    if body_id is not None and body_id.strip() and body_id != path_id:
        raise Refused(
            400, Code.INVALID_REQUEST, f"{field}: {body_id!r} does not match the path's {path_id!r}"
        )


def _checked_location(location: Location, location_id: str) -> Location:
    try:
        valid = validate_location(location)
    except InvalidAddress as exc:
        raise Refused(400, Code.INVALID_ADDRESS, str(exc)) from None
    return dataclasses.replace(valid, location_id=location_id)


def _found(record_id: str, lookup: Callable[[str], Endpoint | Location]) -> Outcome:
    """A ``GET`` of one record: 200 with it, or ``lookup``'s 404."""
    return Outcome(200, codec.encode(lookup(record_id)), id=record_id)
