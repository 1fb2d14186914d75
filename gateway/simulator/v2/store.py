"""The v2 simulator's account: addresses, endpoints, notifications, groups and orders
(notifications and groups are ``notifications.Notifications``'; lists page, ``answers``).

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
from datetime import datetime, timedelta
from typing import Any, Final

from gateway.bandwidth.v2 import mapping
from gateway.bandwidth.v2.models import (
    AddAddress,
    AddEndpoints,
    AddressAnswer,
    AddressList,
    EndpointAnswer,
    EndpointList,
    EndpointStatus,
    NotificationAnswer,
    NotificationGroupAnswer,
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
)
from gateway.simulator.addresses import InvalidAddress, validate_location
from gateway.simulator.store import Outcome
from gateway.simulator.v2.answers import (
    PAGE_LIMIT,
    Refused,
    added,
    answered,
    as_json,
    found,
    now,
    page,
    read,
    stamp,
    v2_error,
)
from gateway.simulator.v2.notifications import Notifications

__all__ = ["PAGE_LIMIT", "UNDELIVERABLE", "Refused", "V2Store", "v2_error"]


_HOUSE: Final = re.compile(r"^\d+[A-Za-z]?(?:-\d+)?$")
#: A street with this word in it is one the carrier cannot deliver to: INVALID (a way to see
#: the carrier's refusal in the sandbox, whatever the gateway's own checks make of it).
UNDELIVERABLE: Final = "UNDELIVERABLE"
_DIRECTIONALS: Final = frozenset({"N", "S", "E", "W", "NE", "NW", "SE", "SW"})


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
class V2Store(Notifications):
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
                "addresses": {k: as_json(v) for k, v in self.addresses.items()},
                "endpoints": {
                    k: as_json(_endpoint_answer(v, self.account_id))
                    for k, v in self.endpoints.items()
                },
                "notifications": {k: as_json(v) for k, v in self.notifications.items()},
                "notificationGroups": {k: as_json(v) for k, v in self.groups.items()},
                "orders": {k: as_json(self._details(o)) for k, o in self.orders.items()},
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
        order = _Order(str(uuid.uuid4()), kind, endpoint_id, self.clock(), now(), result, error)
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
        return found(self.orders, params["orderId"], "order")

    def _listOrders(self, params: Mapping[str, str], body: bytes) -> Outcome:
        listed, links = page(list(self.orders.values()), params, "/orders")
        orders = [
            OrderSummary(**self._details(o).model_dump(exclude={"links", "endpoints"}))
            for o in listed
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
                updated=stamp(accepted + timedelta(seconds=offset)),
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
        held = list(self.endpoints.values())
        at = params.get("addressId")
        if at is not None:
            held = [e for e in held if e.address_id == at]
        listed, links = page(held, params, "/endpoints")
        items = [_endpoint_answer(e, self.account_id) for e in listed]
        return Outcome(200, EndpointList(links=links, endpoints=items).wire())

    def _addEndpoints(self, params: Mapping[str, str], body: bytes) -> Outcome:
        request = read(AddEndpoints, body)
        if len(request.endpoints) != 1:
            raise Refused(400, "the simulator takes one endpoint per order", "endpoints")
        new = request.endpoints[0]
        if self._projected(new.id) is not None:
            raise Refused(409, f"endpoint {new.id} already exists", "endpoints.0.id")
        if new.address_id not in self.addresses:
            raise Refused(400, f"address {new.address_id} does not exist", "endpoints.0.addressId")
        at = now()
        result = _Endpoint(
            new.id, new.phone_number, new.name, new.lang, new.country, new.address_id, at, at
        )
        return self._order(OrderType.ADD_ENDPOINTS, new.id, result)

    def _getEndpoint(self, params: Mapping[str, str], body: bytes) -> Outcome:
        held = found(self.endpoints, params["endpointId"], "endpoint")
        return Outcome(200, _endpoint_answer(held, self.account_id).wire(), id=held.id)

    def _updateEndpoint(self, params: Mapping[str, str], body: bytes) -> Outcome:
        request = read(UpdateEndpoint, body)
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
        result = dataclasses.replace(current, address_id=request.address_id, updated=now())
        return self._order(OrderType.UPDATE_ENDPOINTS, endpoint_id, result)

    def _deleteEndpoint(self, params: Mapping[str, str], body: bytes) -> Outcome:
        endpoint_id = params["endpointId"]
        if self._projected(endpoint_id) is None:
            raise Refused(404, f"endpoint {endpoint_id} not found")
        return self._order(OrderType.DELETE_ENDPOINTS, endpoint_id, None)

    # -- addresses ------------------------------------------------------------------------

    def _listAddresses(self, params: Mapping[str, str], body: bytes) -> Outcome:
        listed, links = page(list(self.addresses.values()), params, "/addresses")
        return Outcome(200, AddressList(links=links, addresses=listed).wire())

    def _addAddress(self, params: Mapping[str, str], body: bytes) -> Outcome:
        request = read(AddAddress, body)
        if request.id in self.addresses:  # before the address is checked
            raise Refused(409, f"address {request.id} already exists", "id")
        return added(self.addresses, _validated(request), "address")

    def _getAddress(self, params: Mapping[str, str], body: bytes) -> Outcome:
        return answered(self.addresses, params["addressId"], "address")

    def _deleteAddress(self, params: Mapping[str, str], body: bytes) -> Outcome:
        address_id = found(self.addresses, params["addressId"], "address").id
        if any(
            (e := self._projected(i)) is not None and e.address_id == address_id
            for i in {*self.endpoints, *self._open_by_endpoint}
        ):
            raise Refused(409, f"address {address_id} has endpoints provisioned at it")
        del self.addresses[address_id]
        return Outcome(204, applied=True, id=address_id)


def _validated(request: AddAddress) -> AddressAnswer:
    """The address as the carrier stores it: parsed, and VALID or INVALID by its check."""
    parts = request.address_line1.upper().split()
    house = parts.pop(0) if parts and _HOUSE.match(parts[0]) else None
    pre = parts.pop(0) if len(parts) > 1 and parts[0] in _DIRECTIONALS else None
    post = parts.pop() if len(parts) > 1 and parts[-1] in _DIRECTIONALS else None
    suffix = parts.pop() if len(parts) > 1 else None
    at = now()
    parsed = AddressAnswer(
        id=request.id,
        address=request.address_line1,
        house_number=house,
        predirectional=pre,
        postdirectional=post,
        street_name=" ".join(parts) or None,
        street_suffix=suffix,
        address_line2=request.address_line2,
        city=request.city,
        state=request.state,
        postal_code=request.postal_code,
        country=request.country or "US",
        description=request.description,
        created=at,
        updated=at,
    )
    status = ValidationStatus.VALID
    latitude = longitude = None
    try:
        checked = validate_location(mapping.location_of(parsed))
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
    return parsed.model_copy(
        update={"validation_status": status, "latitude": latitude, "longitude": longitude}
    )


def _endpoint_answer(endpoint: _Endpoint, account_id: str) -> EndpointAnswer:
    return EndpointAnswer(account_id=account_id, **dataclasses.asdict(endpoint))
