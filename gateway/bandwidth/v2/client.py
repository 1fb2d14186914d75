"""The carrier client for Bandwidth's Unified Emergency Services Provisioning API (v2).

The same carrier operations as ``BandwidthClient``, over the v2 JSON API at
``{base_url}/v2/accounts/{accountId}/emergency``, with the same calls underneath
(retries, deadline, breaker, retry budget, ``Retry-After``, abandoned writes): only the
wire format and the paths differ.

Endpoint writes are asynchronous there: the carrier answers ``202`` with an order, and
the write is done when the order is ``COMPLETED``. A write method follows its order
(bounded backoff, ``follow_timeout`` in all) and returns only then; ``FAILED`` or
``PARTIAL`` is ``UpstreamRejected`` with the carrier's words, and an order still open
when the time is up is ``UpstreamPending`` (ambiguous: the pipeline keeps the claim and
repairs, and ``get_endpoint`` answers ``UpstreamPending`` while that order stays open).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from gateway.bandwidth.calls import check_id
from gateway.bandwidth.errors import (
    UpstreamAuthError,
    UpstreamConflict,
    UpstreamError,
    UpstreamNotFound,
    UpstreamParseError,
    UpstreamPending,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamUnsupported,
)
from gateway.bandwidth.exchanges import Body, Operation
from gateway.bandwidth.models import (
    Endpoint,
    EndpointListResponse,
    Location,
    LocationListResponse,
)
from gateway.bandwidth.upstreams import time_left
from gateway.bandwidth.v2 import mapping
from gateway.bandwidth.v2.models import (
    AddressAnswer,
    AddressList,
    EndpointAnswer,
    EndpointList,
    OrderDetails,
    OrderStatus,
    OrderType,
    ProvisioningOrder,
)
from gateway.bandwidth.v2.notifications import V2Notifications
from gateway.bandwidth.v2.wire import bounded

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = ["BandwidthV2Client"]

log = logging.getLogger("gateway.bandwidth.v2")

M = TypeVar("M", bound=BaseModel)

#: Endpoints whose write is still open at the carrier, and what each was last written
#: with, are remembered for this many endpoints at most (the oldest forgotten first).
_REMEMBERED: Final = 100_000
#: Seconds an order stays open before ``settle_orders`` checks it (a write's own follower
#: and its repair check it before that).
_SWEEP_AFTER: Final = 60.0


class BandwidthV2Client(V2Notifications):
    """The carrier operations over the v2 API; see the module docstring."""

    def __init__(
        self,
        *args: Any,
        follow_timeout: float = 4.0,
        follow_first: float = 0.05,
        follow_max: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._root = f"{self.base_url}/v2/accounts/{quote(self.account_id, safe='')}/emergency"
        self._http.headers["Accept"] = self.content_type
        #: How long a write follows its order before answering ``UpstreamPending``.
        self.follow_timeout = follow_timeout
        self.follow_first = follow_first
        self.follow_max = follow_max
        #: How old an order left open is before ``settle_orders`` checks it.
        self.sweep_after = _SWEEP_AFTER
        #: Endpoint ID -> (order ID, when it was accepted, the endpoint written): orders
        #: left open by a write.
        self.open_orders: OrderedDict[str, tuple[str, float, Endpoint]] = OrderedDict()
        #: Endpoint ID -> (the endpoint written, the carrier's refusal): orders left open that
        #: were then found FAILED, until ``refusal`` takes them.
        self._failed_orders: OrderedDict[str, tuple[Endpoint, UpstreamRejected]] = OrderedDict()
        #: Endpoint ID -> the endpoint the carrier holds, as last written or read here. v2
        #: keeps no AEUI: this is how a read names the device of an endpoint written here.
        self._held: OrderedDict[str, Endpoint] = OrderedDict()
        if self.metrics is not None:
            client = weakref.ref(self)  # read at scrape time; the registry must not keep it

            def oldest() -> float:
                alive = client()
                return alive.oldest_open_order() if alive is not None else 0.0

            self.metrics.upstream_order_oldest_open.set_function(oldest)

    @classmethod
    def _options(cls, settings: Settings) -> dict[str, Any]:
        return {"follow_timeout": settings.bandwidth_v2_follow_timeout}

    def __repr__(self) -> str:
        return f"BandwidthV2Client(base_url={self.base_url!r}, account_id={self.account_id!r})"

    def oldest_open_order(self) -> float:
        """Seconds since the oldest order still open was accepted (0 with none)."""
        if not self.open_orders:
            return 0.0
        return max(0.0, self._clock() - min(at for _, at, _ in self.open_orders.values()))

    def refusal(self, endpoint_id: str) -> tuple[Endpoint, UpstreamRejected] | None:
        """The write an order left open here turned out refused (its order FAILED, found by
        a later read of the endpoint): the endpoint written and the carrier's words, once."""
        return self._failed_orders.pop(endpoint_id, None)

    def expect(self, endpoint_id: str, held: Endpoint | None) -> None:
        """What the state store says the carrier holds at ``endpoint_id`` (``None``: not
        known for certain), written perhaps by another replica: an update that must know
        its name and number (``_move``) goes by this, not by what this process last saw."""
        if held is None:
            self._held.pop(endpoint_id, None)
        else:
            self._remember(held)

    # -- endpoints ----------------------------------------------------------------------

    async def list_endpoints(self) -> EndpointListResponse:
        op = Operation("listAllEndpoints", "GET")
        found = await self._list(op, "/endpoints", EndpointList, lambda page: page.endpoints)
        endpoints = tuple(self._with_aeui(mapping.endpoint_of(e)) for e in found)
        return EndpointListResponse(total_count=len(endpoints), endpoints=endpoints)

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        path = self._path("/endpoints/", endpoint_id, "endpoint ID")
        await self._settle(endpoint_id)
        answer = await self._fetch(
            Operation("getEndpoint", "GET"), path, EndpointAnswer, endpoint_id
        )
        return self._remember(self._with_aeui(mapping.endpoint_of(answer)))

    async def create_endpoint(self, endpoint: Endpoint) -> Endpoint:
        """``POST /endpoints`` with the gateway's endpoint ID, followed to its end.

        A retry that finds the endpoint already there (409) is the earlier attempt's
        success; an endpoint that exists before this call is moved (``update_endpoint``).
        """
        if endpoint.endpoint_id is None:
            raise ValueError("a v2 endpoint needs the gateway's endpoint ID")
        return await self._add(endpoint, may_replace=True)

    async def update_endpoint(self, endpoint_id: str, endpoint: Endpoint) -> Endpoint:
        """Provision the endpoint at ``endpoint.location_id``: ``PATCH`` (one write).

        v2 moves an endpoint but cannot change its number or name: for those it is
        deleted and added again (two orders). A 404 says there is no such endpoint.
        """
        if endpoint.endpoint_id not in (None, endpoint_id):
            raise ValueError("the endpoint's endpointId differs from the one in the path")
        sent = Endpoint(
            endpoint_id=endpoint_id,
            alternate_end_user_id=endpoint.alternate_end_user_id,
            caller_name=endpoint.caller_name,
            location_id=endpoint.location_id,
            telephone_number=endpoint.telephone_number,
        )
        return await self._move(sent)

    async def _add(self, endpoint: Endpoint, *, may_replace: bool) -> Endpoint:
        check_id(endpoint.endpoint_id or "", "endpoint ID")
        op = Operation("addEndpoints", "POST")
        try:
            root = await self._write(op, "/endpoints", endpoint, retryable=True)
        except UpstreamConflict:
            # There already: moved (or replaced). An add that replaces finds it there only
            # if someone else added it in between: a conflict, not a loop.
            if not may_replace:
                raise
            try:
                return await self._move(endpoint)
            except UpstreamNotFound:
                # Held (409) yet not there to read: an add whose order is still open,
                # another process's (a replica, or this gateway before a restart).
                raise UpstreamUnavailable(
                    f"{op.name}: the endpoint's add is still open at the carrier; "
                    "this write was not sent",
                    operation=op.name,
                ) from None
        await self._follow(op, root, endpoint)
        return endpoint

    async def _move(self, sent: Endpoint) -> Endpoint:
        """``PATCH``, or a delete and an add when the number or name differ."""
        endpoint_id = sent.endpoint_id or ""
        path = self._path("/endpoints/", endpoint_id, "endpoint ID")
        held = self._held.get(endpoint_id)
        if held is None:
            try:
                await self._settle(endpoint_id)
            except UpstreamPending as exc:
                opened = self.open_orders.get(endpoint_id)
                if opened is not None and _same_binding(opened[2], sent):
                    # That order carries this very write: pending, as it was answered.
                    exc.endpoint = sent
                    raise
                # Another write's order, still open: this one is not sent (nor accepted).
                raise UpstreamUnavailable(
                    f"updateEndpoint: the endpoint's last order {exc.order_id} is still open; "
                    "this write was not sent",
                    operation="updateEndpoint",
                ) from None
            answer = await self._fetch(
                Operation("getEndpoint", "GET"), path, EndpointAnswer, endpoint_id
            )
            held = mapping.endpoint_of(answer)
        if (held.caller_name, held.telephone_number) != (sent.caller_name, sent.telephone_number):
            await self.delete_endpoint(endpoint_id)
            try:
                return await self._add(sent, may_replace=False)
            except UpstreamError as exc:
                # Deleted, not added: the carrier no longer holds what it held, so this is
                # no refusal that leaves it as it was, after which the pipeline would go on
                # believing the old endpoint there. Unknown: its follower checks the carrier.
                exc.ambiguous = True
                raise
        op = Operation("updateEndpoint", "PATCH")
        await self._follow(op, await self._write(op, path, sent, retryable=True), sent)
        return sent

    async def delete_endpoint(self, endpoint_id: str) -> None:
        path = self._path("/endpoints/", endpoint_id, "endpoint ID")
        op = Operation("deleteEndpoint", "DELETE")
        root = await self._call(op, path, not_found_is_success=True)
        try:
            if root is not None:
                await self._follow(op, root, Endpoint(endpoint_id=endpoint_id))
        finally:
            self._held.pop(endpoint_id, None)

    # -- addresses ----------------------------------------------------------------------

    async def list_locations(self) -> LocationListResponse:
        op = Operation("listAddresses", "GET")
        found = await self._list(op, "/addresses", AddressList, lambda page: page.addresses)
        locations = tuple(map(mapping.location_of, found))
        return LocationListResponse(total_count=len(locations), locations=locations)

    async def create_location(self, location: Location) -> Location:
        """``POST /addresses``; an address the carrier finds ``INVALID`` is refused (422)."""
        if location.location_id is not None:
            check_id(location.location_id, "location ID")
        op = Operation("addAddress", "POST")
        root = await self._write(op, "/addresses", location, retryable=True)
        if root is None:  # 409 answering a retry: the first attempt created it
            assert location.location_id is not None
            return await self.get_location(location.location_id)
        answer = self._model(AddressAnswer, root, op.name)
        if mapping.invalid(answer):
            raise UpstreamRejected(
                f"{op.name}: the carrier found the address INVALID",
                operation=op.name,
                status=422,
                code="INVALID",
                description=(
                    f"the carrier could not validate the address ({answer.address or ''}): "
                    "validationStatus INVALID"
                ),
            )
        return mapping.location_of(answer)

    async def get_location(self, location_id: str) -> Location:
        path = self._path("/addresses/", location_id, "location ID")
        return mapping.location_of(
            await self._fetch(Operation("getAddress", "GET"), path, AddressAnswer, location_id)
        )

    async def update_location(self, location_id: str, location: Location) -> Location:
        raise UpstreamUnsupported(
            "the v2 API cannot change an address's fields",
            operation="updateAddress",
            instead="create a location with the new address and move the endpoints to it",
        )

    async def delete_location(self, location_id: str) -> None:
        path = self._path("/addresses/", location_id, "location ID")
        await self._call(Operation("deleteAddress", "DELETE"), path, not_found_is_success=True)

    # -- orders -------------------------------------------------------------------------

    async def order_details(self, order_id: str) -> OrderDetails:
        path = self._path("/orders/", order_id, "order ID") + "/details"
        return await self._fetch(Operation("getOrderDetails", "GET"), path, OrderDetails, order_id)

    async def _follow(self, op: Operation, root: Body, endpoint: Endpoint) -> None:
        """Wait, with bounded backoff, until the order that ``root`` names has ended."""
        endpoint_id = endpoint.endpoint_id or ""
        if root is None:
            # A retry found the earlier attempt's effect (409): its order is unknown, so the
            # endpoint itself is read until it shows the write.
            await self._confirm(op, endpoint)
            return
        try:
            order = self._model(ProvisioningOrder, root, op.name)
        except UpstreamParseError as exc:
            exc.ambiguous = True  # the carrier took the write: it may yet carry it out
            raise
        accepted = self._clock()
        until = accepted + self.follow_timeout
        left = time_left()
        if left is not None:  # the caller's own deadline comes first
            until = min(until, accepted + left)
        wait = self.follow_first
        status, details = order.order_status, None
        try:
            while status.open:
                if self._clock() + wait > until:
                    raise self._pending(op, order, status, endpoint)
                await self._sleep(wait)
                wait = min(self.follow_max, wait * 2)
                left = time_left()
                try:
                    # A status read may not outlast the caller's deadline either.
                    async with asyncio.timeout(left):
                        details = await self.order_details(order.order_id)
                except TimeoutError:
                    if left is None:
                        raise
                    raise self._pending(op, order, status, endpoint) from None
                except UpstreamNotFound:
                    # Taken (202), its order not (or no longer) to be read: not "no such
                    # record". A read of the endpoint settles it (``_settle``).
                    raise self._pending(op, order, status, endpoint) from None
                _answered_for(op.name, details, endpoint_id, _ORDER_TYPES.get(op.name))
                status = details.status
        except BaseException as exc:
            # Pending, cut short by the report's deadline, or a status read that failed:
            # the order goes on, and a read of the endpoint waits for its end first.
            if isinstance(exc, UpstreamError):
                exc.ambiguous = True  # the carrier took the write: it may yet carry it out
            self.open_orders[endpoint_id] = (order.order_id, accepted, endpoint)
            self.open_orders.move_to_end(endpoint_id)
            while len(self.open_orders) > _REMEMBERED:
                self.open_orders.popitem(last=False)
            self._held.pop(endpoint_id, None)
            raise
        self._ended(op.name, order.order_id, status, details, endpoint)

    def _pending(
        self, op: Operation, order: ProvisioningOrder, status: OrderStatus, endpoint: Endpoint
    ) -> UpstreamPending:
        self._count("pending")
        return UpstreamPending(
            f"{op.name}: order {order.order_id} still {status.value} when the gateway had to "
            "answer",
            operation=op.name,
            order_id=order.order_id,
            endpoint=endpoint,
        )

    async def _confirm(self, op: Operation, endpoint: Endpoint) -> None:
        """Read the endpoint, with bounded backoff, until it holds ``endpoint``'s address."""
        endpoint_id = endpoint.endpoint_id or ""
        if op.method == "DELETE":
            return
        path = self._path("/endpoints/", endpoint_id, "endpoint ID")
        until = self._clock() + self.follow_timeout
        left = time_left()
        if left is not None:
            until = min(until, self._clock() + left)
        wait = self.follow_first
        while True:
            try:
                answer = await self._fetch(
                    Operation("getEndpoint", "GET"), path, EndpointAnswer, endpoint_id
                )
            except UpstreamNotFound:
                answer = None
            except UpstreamError as exc:
                self._held.pop(endpoint_id, None)
                exc.ambiguous = True  # the earlier attempt landed (409): it may hold it yet
                raise
            if answer is not None and answer.address_id == endpoint.location_id:
                self._remember(endpoint)
                return
            if self._clock() + wait > until:
                self._count("pending")
                self._held.pop(endpoint_id, None)
                raise UpstreamPending(
                    f"{op.name}: the carrier took the write, not yet carried out",
                    operation=op.name,
                    order_id="",
                    endpoint=endpoint,
                )
            await self._sleep(wait)
            wait = min(self.follow_max, wait * 2)

    async def settle_orders(self, limit: int) -> None:
        """Check up to ``limit`` of the orders left open longer than ``sweep_after``, the
        oldest first: those no read of their endpoint settles (a deleted device's) would
        stay open here for good. One still open goes to the back; a carrier that does not
        answer ends the sweep until the next; one whose status cannot be read goes to the
        back as well."""
        due = self._clock() - self.sweep_after
        for endpoint_id, (_, accepted, _) in list(self.open_orders.items())[:limit]:
            if accepted > due:
                break
            try:
                await self._settle(endpoint_id)
            except UpstreamError as exc:
                if endpoint_id in self.open_orders:
                    self.open_orders.move_to_end(endpoint_id)
                if isinstance(exc, UpstreamUnavailable | UpstreamTimeout | UpstreamAuthError):
                    log.info("open orders not checked: %s", type(exc).__name__)
                    return

    async def _settle(self, endpoint_id: str) -> None:
        """Before reading an endpoint with an open order: that order's end, or pending."""
        opened = self.open_orders.get(endpoint_id)
        if opened is None:
            return
        order_id, _, written = opened
        try:
            details = await self.order_details(order_id)
        except UpstreamNotFound:
            # The carrier no longer knows the order (or not yet): the endpoint says what
            # it holds. Kept, every read and write of it would be "not found" for good.
            log.warning("endpoint %s: order %s not found at the carrier", endpoint_id, order_id)
            self.open_orders.pop(endpoint_id, None)
            return
        _answered_for("getOrderDetails", details, endpoint_id)
        if details.status.open:
            raise UpstreamPending(
                f"getEndpoint: order {order_id} still {details.status.value}",
                operation="getEndpoint",
                order_id=order_id,
            )
        self.open_orders.pop(endpoint_id, None)
        try:
            self._ended("getEndpoint", order_id, details.status, details, None)
        except UpstreamRejected as exc:
            # The read goes on: the carrier holds whatever it held before that order. The
            # refusal waits for whoever follows the write (``refusal``).
            log.warning("endpoint %s: %s", endpoint_id, exc.message)
            self._failed_orders[endpoint_id] = (written, exc)
            self._failed_orders.move_to_end(endpoint_id)
            while len(self._failed_orders) > _REMEMBERED:
                self._failed_orders.popitem(last=False)

    def _ended(
        self,
        operation: str,
        order_id: str,
        status: OrderStatus,
        details: OrderDetails | None,
        endpoint: Endpoint | None,
    ) -> None:
        if status is OrderStatus.COMPLETED:
            self._count("completed")
            if endpoint is not None and endpoint.endpoint_id:
                self._remember(endpoint)
            return
        self._count("failed")
        failed = [e for e in (details.endpoints if details else []) if e.error or e.error_code]
        words = bounded("; ".join(e.error or "" for e in failed) or f"order {status.value}")
        raise UpstreamRejected(
            f"{operation}: order {order_id} {status.value}: {words}",
            operation=operation,
            status=422,
            code=failed[0].error_code if failed else status.value,
            description=words,
        )

    # -- records -----------------------------------------------------------------------

    def _path(self, collection: str, value: str, what: str) -> str:
        return collection + quote(check_id(value, what), safe="")

    def _remember(self, endpoint: Endpoint) -> Endpoint:
        endpoint_id = endpoint.endpoint_id or ""
        self._held[endpoint_id] = endpoint
        self._held.move_to_end(endpoint_id)
        while len(self._held) > _REMEMBERED:
            self._held.popitem(last=False)
        return endpoint

    def _with_aeui(self, endpoint: Endpoint) -> Endpoint:
        """The endpoint read, with the AEUI of the device it was written for here, if known."""
        known = self._held.get(endpoint.endpoint_id or "")
        if known is None or known.alternate_end_user_id is None:
            return endpoint
        return dataclasses.replace(endpoint, alternate_end_user_id=known.alternate_end_user_id)

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.upstream_orders.labels(outcome).inc()


#: The kind of order each endpoint write opens.
_ORDER_TYPES = {
    "addEndpoints": OrderType.ADD_ENDPOINTS,
    "updateEndpoint": OrderType.UPDATE_ENDPOINTS,
    "deleteEndpoint": OrderType.DELETE_ENDPOINTS,
}


def _answered_for(
    operation: str, details: OrderDetails, endpoint_id: str, kind: OrderType | None = None
) -> None:
    """``UpstreamParseError`` when an order's details name another endpoint than the one
    written, or another kind of order (``answered_for`` checks its ID): taken at its word, a
    write whose own order may yet fail would be answered done. Details naming no endpoint
    (no type) are taken as the write's."""
    others = sorted({e.id for e in details.endpoints} - {endpoint_id})
    if others:
        found = f"endpoint {others[0][:80]!r}"
    elif kind is not None and details.type is not None and details.type is not kind:
        found = f"a {details.type.value} order"
    else:
        return
    raise UpstreamParseError(
        f"{operation}: order {details.id[:80]!r} of endpoint {endpoint_id[:80]!r} is about {found}",
        operation=operation,
    )


def _same_binding(written: Endpoint, sent: Endpoint) -> bool:
    """Whether ``sent`` writes what ``written`` did: the same address, number and name."""
    return (written.location_id, written.telephone_number, written.caller_name) == (
        sent.location_id,
        sent.telephone_number,
        sent.caller_name,
    )
