"""The v2 simulator's account: addresses, endpoints, notifications, groups and orders.

Request bodies are read with the project's models of the v2 shapes (unknown or malformed
fields are refused with the API's error document). Endpoint writes are orders: accepted
(``202``, ``RECEIVED``), ``PROCESSING`` half-way through ``order_seconds``, then
``COMPLETED`` (the endpoint changes only then) or ``FAILED`` (its address is ``INVALID``).
Orders are carried out lazily, in the order they were accepted, by the injected clock.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.bandwidth.models import Address, Location
from gateway.bandwidth.v2.models import (
    AddAddress,
    AddEndpoints,
    AddNotification,
    AddNotificationGroup,
    AddressAnswer,
    AddressList,
    EndpointAnswer,
    EndpointList,
    EndpointStatus,
    Link,
    NotificationAnswer,
    NotificationGroupAnswer,
    NotificationGroupList,
    NotificationList,
    OrderDetails,
    OrderEndpoint,
    OrderHistory,
    OrderHistoryEntry,
    OrderList,
    OrderStatus,
    OrderSummary,
    OrderType,
    ProvisioningOrder,
    UpdateAction,
    UpdateEndpoint,
    ValidationStatus,
    error_document,
)
from gateway.simulator.addresses import InvalidAddress, validate_location
from gateway.simulator.store import Outcome

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

#: The API's error types and codes, by HTTP status.
ERRORS: Final[dict[int, tuple[str, int]]] = {
    400: ("bad-request", 205617),
    401: ("authentication-credentials", 206401),
    403: ("resource-permissions", 109107),
    404: ("resource-not-found", 50420),
    405: ("http-method-not-supported", 205621),
    409: ("resource-conflict", 205618),
    413: ("bad-request", 205617),
    429: ("rate-limiting", 32002),
    500: ("internal-server-error", 32030),
    503: ("service-unavailable", 32030),
    504: ("request-timeout", 32030),
}
#: Records per list answer when the request names no ``limit``, and the most one may name
#: (a larger ``limit`` is answered with this many). The spec declares neither a default nor
#: a maximum for its string ``limit``; its examples page by 1000 (``?offset=1000&limit=1000``).
PAGE_LIMIT: Final = 1000
_HOUSE: Final = re.compile(r"^\d+[A-Za-z]?(?:-\d+)?$")
#: A street with this word in it is one the carrier cannot deliver to: INVALID (a way to see
#: the carrier's refusal in the sandbox, whatever the gateway's own checks make of it).
UNDELIVERABLE: Final = "UNDELIVERABLE"
_DIRECTIONALS: Final = frozenset({"N", "S", "E", "W", "NE", "NW", "SE", "SW"})


class Refused(Exception):
    def __init__(self, status: int, description: str, field: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.field = field


def v2_error(status: int, description: str, field: str | None = None) -> Outcome:
    kind, code = ERRORS.get(status, ERRORS[400 if status < 500 else 500])
    return Outcome(status, error_document(kind, description, code, field=field).wire())


@dataclass(slots=True)
class _Endpoint:
    id: str
    phone_number: str
    name: str | None
    lang: str | None
    country: str | None
    address_id: str
    created: str
    updated: str


@dataclass(slots=True)
class _Order:
    id: str
    type: OrderType
    endpoint_id: str
    accepted: float
    at: str
    #: What the order does when it completes: the endpoint as it will be (``None``: deleted).
    result: _Endpoint | None
    error: str | None = None
    done: bool = False

    def status(self, now: float, seconds: float) -> OrderStatus:
        elapsed = now - self.accepted
        if elapsed >= seconds:
            return OrderStatus.FAILED if self.error else OrderStatus.COMPLETED
        return OrderStatus.RECEIVED if elapsed < seconds / 2 else OrderStatus.PROCESSING


@dataclass(slots=True)
class V2Store:
    """One account's records; ``run`` carries out one operation (see the module docstring)."""

    clock: Callable[[], float]
    #: How long an endpoint order takes, in seconds of ``clock``.
    order_seconds: float = 1.0
    account_id: str = ""
    addresses: dict[str, AddressAnswer] = field(default_factory=dict)
    endpoints: dict[str, _Endpoint] = field(default_factory=dict)
    notifications: dict[str, NotificationAnswer] = field(default_factory=dict)
    groups: dict[str, NotificationGroupAnswer] = field(default_factory=dict)
    orders: dict[str, _Order] = field(default_factory=dict)
    #: The orders not yet carried out, oldest first (all take the same time, so they end in
    #: this order), and by endpoint: neither a request nor a check scans every order.
    _open: deque[_Order] = field(default_factory=deque)
    _open_by_endpoint: dict[str, list[_Order]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self._lock:
            for table in (self.addresses, self.endpoints, self.notifications, self.groups):
                table.clear()
            self.orders.clear()
            self._open.clear()
            self._open_by_endpoint.clear()

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        with self._lock:
            self._advance()
            return {
                "addresses": {k: _json(v) for k, v in self.addresses.items()},
                "endpoints": {
                    k: _json(_endpoint_answer(v, self.account_id))
                    for k, v in self.endpoints.items()
                },
                "notifications": {k: _json(v) for k, v in self.notifications.items()},
                "notificationGroups": {k: _json(v) for k, v in self.groups.items()},
                "orders": {k: _json(self._details(o)) for k, o in self.orders.items()},
            }

    def run(self, operation: str, params: Mapping[str, str], body: bytes) -> Outcome:
        handler = getattr(self, "_" + operation, None)
        if handler is None:
            return v2_error(405, f"{operation} is not supported by this simulator")
        try:
            with self._lock:
                self._advance()
                outcome: Outcome = handler(params, body)
                return outcome
        except Refused as exc:
            return v2_error(exc.status, exc.description, exc.field)

    # -- orders ---------------------------------------------------------------------------

    def _advance(self) -> None:
        """Carry out the orders whose time has come, oldest first."""
        now = self.clock()
        while self._open and not self._open[0].status(now, self.order_seconds).open:
            order = self._open.popleft()
            order.done = True
            same = self._open_by_endpoint[order.endpoint_id]
            same.remove(order)
            if not same:
                del self._open_by_endpoint[order.endpoint_id]
            if order.error:
                continue
            if order.result is None:
                self.endpoints.pop(order.endpoint_id, None)
            else:
                self.endpoints[order.endpoint_id] = order.result

    def _projected(self, endpoint_id: str) -> _Endpoint | None:
        """The endpoint as it will be once every open order has been carried out."""
        found = self.endpoints.get(endpoint_id)
        for order in self._open_by_endpoint.get(endpoint_id, ()):
            if not order.error:
                found = order.result
        return found

    def _order(self, kind: OrderType, endpoint_id: str, result: _Endpoint | None) -> Outcome:
        error = None
        if result is not None:
            address = self.addresses.get(result.address_id)
            if address is None:
                error = f"address {result.address_id} does not exist"
            elif address.validation_status is ValidationStatus.INVALID:
                error = f"address {result.address_id} is INVALID: it cannot route 911 calls"
        order = _Order(str(uuid.uuid4()), kind, endpoint_id, self.clock(), _now(), result, error)
        self.orders[order.id] = order
        self._open.append(order)
        self._open_by_endpoint.setdefault(endpoint_id, []).append(order)
        answer = ProvisioningOrder(
            order_id=order.id,
            updated_by="simulator",
            order_type=kind,
            order_status=OrderStatus.RECEIVED,
            accepted_count=1,
            invalid_count=0,
            updated=order.at,
            total_number=1,
        )
        return Outcome(202, answer.wire(), applied=True, id=endpoint_id)

    def _details(self, order: _Order) -> OrderDetails:
        status = order.status(self.clock(), self.order_seconds)
        if status is OrderStatus.FAILED:
            endpoint_status = EndpointStatus.ERROR
        elif status is OrderStatus.COMPLETED:
            endpoint_status = EndpointStatus.SUCCESS
        else:
            endpoint_status = EndpointStatus.INPROGRESS
        failed = status is OrderStatus.FAILED
        return OrderDetails(
            id=order.id,
            type=order.type,
            status=status,
            accepted_count=0 if failed else 1,
            invalid_count=1 if failed else 0,
            updated=order.at,
            total_number=1,
            endpoints=[
                OrderEndpoint(
                    id=order.endpoint_id,
                    updated_by="simulator",
                    status=endpoint_status,
                    error=order.error if failed else None,
                    error_code="INVALID_ADDRESS" if failed else None,
                )
            ],
        )

    def _find_order(self, params: Mapping[str, str]) -> _Order:
        order = self.orders.get(params["orderId"])
        if order is None:
            raise Refused(404, f"order {params['orderId']} not found")
        return order

    def _listOrders(self, params: Mapping[str, str], body: bytes) -> Outcome:
        page, links = _page(list(self.orders.values()), params, "/orders")
        orders = [
            OrderSummary(**self._details(o).model_dump(exclude={"links", "endpoints"}))
            for o in page
        ]
        return Outcome(200, OrderList(links=links, orders=orders).wire())

    def _getOrderDetails(self, params: Mapping[str, str], body: bytes) -> Outcome:
        return Outcome(200, self._details(self._find_order(params)).wire())

    def _getOrderHistory(self, params: Mapping[str, str], body: bytes) -> Outcome:
        order = self._find_order(params)
        status = order.status(self.clock(), self.order_seconds)
        accepted = datetime.fromisoformat(order.at)
        steps = [OrderStatus.RECEIVED]
        if status is not OrderStatus.RECEIVED:
            steps.append(OrderStatus.PROCESSING)
        if not status.open:
            steps.append(status)
        offsets = (0.0, self.order_seconds / 2, self.order_seconds)
        history = [
            OrderHistoryEntry(
                status=step,
                updated=_stamp(accepted + timedelta(seconds=offset)),
                updated_by="simulator",
                note=order.error if step is OrderStatus.FAILED else None,
            )
            for step, offset in zip(steps, offsets, strict=False)
        ]
        answer = OrderHistory(
            id=order.id, type=order.type, status=status, created=order.at, order_history=history
        )
        return Outcome(200, answer.wire())

    # -- endpoints ------------------------------------------------------------------------

    def _listAllEndpoints(self, params: Mapping[str, str], body: bytes) -> Outcome:
        found = list(self.endpoints.values())
        at = params.get("addressId")
        if at is not None:
            found = [e for e in found if e.address_id == at]
        page, links = _page(found, params, "/endpoints")
        items = [_endpoint_answer(e, self.account_id) for e in page]
        return Outcome(200, EndpointList(links=links, endpoints=items).wire())

    def _addEndpoints(self, params: Mapping[str, str], body: bytes) -> Outcome:
        request = _read(AddEndpoints, body)
        if len(request.endpoints) != 1:
            raise Refused(400, "the simulator takes one endpoint per order", "endpoints")
        new = request.endpoints[0]
        if self._projected(new.id) is not None:
            raise Refused(409, f"endpoint {new.id} already exists", "endpoints.0.id")
        if new.address_id not in self.addresses:
            raise Refused(400, f"address {new.address_id} does not exist", "endpoints.0.addressId")
        at = _now()
        result = _Endpoint(
            new.id, new.phone_number, new.name, new.lang, new.country, new.address_id, at, at
        )
        return self._order(OrderType.ADD_ENDPOINTS, new.id, result)

    def _getEndpoint(self, params: Mapping[str, str], body: bytes) -> Outcome:
        found = self.endpoints.get(params["endpointId"])
        if found is None:
            raise Refused(404, f"endpoint {params['endpointId']} not found")
        return Outcome(200, _endpoint_answer(found, self.account_id).wire(), id=found.id)

    def _updateEndpoint(self, params: Mapping[str, str], body: bytes) -> Outcome:
        request = _read(UpdateEndpoint, body)
        endpoint_id = params["endpointId"]
        current = self._projected(endpoint_id)
        if current is None:
            raise Refused(404, f"endpoint {endpoint_id} not found")
        if request.action is UpdateAction.UNPROVISION:
            raise Refused(400, "UNPROVISION is not supported by this simulator", "action")
        if request.address_id is None:
            raise Refused(400, "addressId is required to PROVISION", "addressId")
        if request.address_id not in self.addresses:
            raise Refused(400, f"address {request.address_id} does not exist", "addressId")
        result = dataclasses.replace(current, address_id=request.address_id, updated=_now())
        return self._order(OrderType.UPDATE_ENDPOINTS, endpoint_id, result)

    def _deleteEndpoint(self, params: Mapping[str, str], body: bytes) -> Outcome:
        endpoint_id = params["endpointId"]
        if self._projected(endpoint_id) is None:
            raise Refused(404, f"endpoint {endpoint_id} not found")
        return self._order(OrderType.DELETE_ENDPOINTS, endpoint_id, None)

    # -- addresses ------------------------------------------------------------------------

    def _listAddresses(self, params: Mapping[str, str], body: bytes) -> Outcome:
        page, links = _page(list(self.addresses.values()), params, "/addresses")
        return Outcome(200, AddressList(links=links, addresses=page).wire())

    def _addAddress(self, params: Mapping[str, str], body: bytes) -> Outcome:
        request = _read(AddAddress, body)
        if request.id in self.addresses:
            raise Refused(409, f"address {request.id} already exists", "id")
        answer = _validated(request)
        self.addresses[request.id] = answer
        return Outcome(201, answer.wire(), applied=True, id=request.id)

    def _getAddress(self, params: Mapping[str, str], body: bytes) -> Outcome:
        found = self.addresses.get(params["addressId"])
        if found is None:
            raise Refused(404, f"address {params['addressId']} not found")
        return Outcome(200, found.wire(), id=found.id)

    def _deleteAddress(self, params: Mapping[str, str], body: bytes) -> Outcome:
        address_id = params["addressId"]
        if address_id not in self.addresses:
            raise Refused(404, f"address {address_id} not found")
        if any(
            (e := self._projected(i)) is not None and e.address_id == address_id
            for i in {*self.endpoints, *self._open_by_endpoint}
        ):
            raise Refused(409, f"address {address_id} has endpoints provisioned at it")
        del self.addresses[address_id]
        return Outcome(204, applied=True, id=address_id)

    # -- notifications --------------------------------------------------------------------

    def _listNotifications(self, params: Mapping[str, str], body: bytes) -> Outcome:
        page, _ = _page(list(self.notifications.values()), params, "/notifications")
        return Outcome(200, NotificationList(notifications=page).wire())

    def _addNotification(self, params: Mapping[str, str], body: bytes) -> Outcome:
        request = _read(AddNotification, body)
        if request.id in self.notifications:
            raise Refused(409, f"notification {request.id} already exists", "id")
        at = _now()
        answer = NotificationAnswer(
            id=request.id,
            account_id=self.account_id,
            description=request.description,
            recipient=request.recipient,
            type=request.type,
            group_count=0,
            created=at,
            updated=at,
        )
        self.notifications[request.id] = answer
        return Outcome(201, answer.wire(), applied=True, id=request.id)

    def _getNotification(self, params: Mapping[str, str], body: bytes) -> Outcome:
        found = self.notifications.get(params["notificationId"])
        if found is None:
            raise Refused(404, f"notification {params['notificationId']} not found")
        return Outcome(200, found.wire(), id=found.id)

    def _deleteNotification(self, params: Mapping[str, str], body: bytes) -> Outcome:
        if self.notifications.pop(params["notificationId"], None) is None:
            raise Refused(404, f"notification {params['notificationId']} not found")
        return Outcome(204, applied=True, id=params["notificationId"])

    def _listNotificationsGroups(self, params: Mapping[str, str], body: bytes) -> Outcome:
        page, _ = _page(list(self.groups.values()), params, "/notificationGroups")
        return Outcome(200, NotificationGroupList(notification_groups=page).wire())

    def _addNotificationGroup(self, params: Mapping[str, str], body: bytes) -> Outcome:
        request = _read(AddNotificationGroup, body)
        if request.id in self.groups:
            raise Refused(409, f"notification group {request.id} already exists", "id")
        for i, endpoint_id in enumerate(request.endpoints):
            if endpoint_id not in self.endpoints:
                raise Refused(400, f"endpoint {endpoint_id} does not exist", f"endpoints.{i}")
        for i, notification_id in enumerate(request.notifications):
            if notification_id not in self.notifications:
                raise Refused(
                    400, f"notification {notification_id} does not exist", f"notifications.{i}"
                )
        at = _now()
        answer = NotificationGroupAnswer(
            id=request.id,
            account_id=self.account_id,
            description=request.description,
            endpoint_count=len(request.endpoints),
            endpoint_ids=list(request.endpoints),
            notification_ids=list(request.notifications),
            created=at,
            updated=at,
        )
        self.groups[request.id] = answer
        return Outcome(201, answer.wire(), applied=True, id=request.id)

    def _getNotificationGroup(self, params: Mapping[str, str], body: bytes) -> Outcome:
        found = self.groups.get(params["groupId"])
        if found is None:
            raise Refused(404, f"notification group {params['groupId']} not found")
        return Outcome(200, found.wire(), id=found.id)


def _page(items: list[T], params: Mapping[str, str], path: str) -> tuple[list[T], list[Link]]:
    """The page of ``items`` that ``limit`` and ``offset`` ask for, and its links as in the
    spec's examples (``self``, ``first``, ``last``, ``prev``, ``next``; an empty ``href``
    where there is no such page). A ``limit`` above ``PAGE_LIMIT`` is answered with that."""
    limit = min(PAGE_LIMIT, _whole(params, "limit", PAGE_LIMIT, least=1))
    offset = _whole(params, "offset", 0, least=0)
    total = len(items)

    def at(start: int | None) -> Link:
        href = "" if start is None else f"{path}?offset={start}&limit={limit}"
        return Link(href=href, method="GET")

    last = max(0, (total - 1) // limit * limit)
    pages = {
        "self": at(offset),
        "first": at(0),
        "last": at(last),
        "prev": at(max(0, offset - limit) if offset > 0 else None),
        "next": at(offset + limit if offset + limit < total else None),
    }
    links = [link.model_copy(update={"rel": rel}) for rel, link in pages.items()]
    return items[offset : offset + limit], links


def _whole(params: Mapping[str, str], name: str, default: int, *, least: int) -> int:
    """A whole-number query parameter; the API's 400 naming it when it is not one."""
    given = params.get(name)
    if given is None:
        return default
    if not (given.isascii() and given.isdigit()) or len(given) > 9 or int(given) < least:
        raise Refused(400, f"{name} must be a whole number of at least {least}", None)
    return int(given)


def _read(kind: type[M], body: bytes) -> M:
    """The request body as ``kind``; the API's 400 naming the first field that is wrong."""
    try:
        return kind.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise Refused(400, f"{where or 'body'}: {message}", where) from None


def _validated(request: AddAddress) -> AddressAnswer:
    """The address as the carrier stores it: parsed, and VALID or INVALID by its check."""
    parts = request.address_line1.upper().split()
    house = parts.pop(0) if parts and _HOUSE.match(parts[0]) else None
    pre = parts.pop(0) if len(parts) > 1 and parts[0] in _DIRECTIONALS else None
    post = parts.pop() if len(parts) > 1 and parts[-1] in _DIRECTIONALS else None
    suffix = parts.pop() if len(parts) > 1 else None
    street = " ".join(parts) or None
    address = Address(
        house_number=house,
        prefix_directional=pre,
        street_name=street,
        street_suffix=suffix,
        post_directional=post,
        address_line2=request.address_line2,
        city=request.city,
        state_code=request.state,
        zip=request.postal_code,
        country=request.country or "US",
    )
    status = ValidationStatus.VALID
    latitude = longitude = None
    try:
        checked = validate_location(Location(location_id=request.id, address=address))
        latitude, longitude = checked.latitude, checked.longitude
    except InvalidAddress:
        status = ValidationStatus.INVALID
    if UNDELIVERABLE in request.address_line1.upper():
        status = ValidationStatus.INVALID
    if request.latitude is not None and request.longitude is not None:
        try:
            latitude, longitude = float(request.latitude), float(request.longitude)
        except ValueError:
            raise Refused(400, "latitude and longitude must be numbers", "latitude") from None
    at = _now()
    return AddressAnswer(
        id=request.id,
        validation_status=status,
        address=request.address_line1,
        house_number=house,
        predirectional=pre,
        postdirectional=post,
        street_name=street,
        street_suffix=suffix,
        address_line2=request.address_line2,
        city=request.city,
        state=request.state,
        postal_code=request.postal_code,
        country=request.country or "US",
        description=request.description,
        latitude=latitude,
        longitude=longitude,
        created=at,
        updated=at,
    )


def _endpoint_answer(endpoint: _Endpoint, account_id: str) -> EndpointAnswer:
    return EndpointAnswer(account_id=account_id, **dataclasses.asdict(endpoint))


def _json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _now() -> str:
    return _stamp(datetime.now(UTC))


def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
