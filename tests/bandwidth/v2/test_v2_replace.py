"""v2 cannot change an endpoint's number or caller name in place: the client deletes it and
adds it again (two orders). The endpoint ends with the new name or number; a failure
between the delete and the add is never reported as done."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.bandwidth.errors import UpstreamNotFound, UpstreamPending, UpstreamUnavailable
from gateway.bandwidth.exchanges import RetryPolicy
from gateway.bandwidth.v2.models import OrderStatus, OrderType

from .helpers import V2, endpoint, location, v2


async def _provisioned(h: V2) -> None:
    await h.client.create_location(location())
    await h.client.create_endpoint(endpoint())


def _orders(h: V2) -> list[tuple[OrderType, OrderStatus]]:
    store = h.simulator.v2
    return [(o.type, o.status(h.time(), store.order_seconds)) for o in store.orders.values()]


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"number": "+12025550199"}, "phone_number", "+12025550199"),
        ({"name": "Ada King"}, "name", "Ada King"),
    ],
)
def test_a_new_number_or_name_is_two_orders_and_the_endpoint_ends_with_it(
    changes: dict[str, str], field: str, value: str
) -> None:
    h = v2(order_seconds=0.2)

    expected = (changes.get("number", "+12025550143"), changes.get("name", "Ada Lovelace"))

    async def go() -> None:
        await _provisioned(h)
        written = await h.client.update_endpoint("ep1", endpoint(**changes))
        assert (written.telephone_number, written.caller_name) == expected
        read = await h.client.get_endpoint("ep1")
        assert (read.telephone_number, read.caller_name) == expected

    asyncio.run(go())
    assert getattr(h.simulator.v2.endpoints["ep1"], field) == value
    done = OrderStatus.COMPLETED
    assert _orders(h) == [
        (OrderType.ADD_ENDPOINTS, done),
        (OrderType.DELETE_ENDPOINTS, done),
        (OrderType.ADD_ENDPOINTS, done),
    ]


def test_an_add_that_fails_after_the_delete_is_an_error_and_the_next_write_adds_it() -> None:
    h = v2(order_seconds=0.2, policy=RetryPolicy(max_attempts=1))
    inner = h.transport.inner
    down = {"on": False}

    class NoAdds(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if down["on"] and request.method == "POST":
                return httpx.Response(503, json={"errors": [{"description": "down"}]})
            return await inner.handle_async_request(request)

    h.transport.inner = NoAdds()

    async def go() -> None:
        await _provisioned(h)
        down["on"] = True
        with pytest.raises(UpstreamUnavailable):
            await h.client.update_endpoint("ep1", endpoint(name="Ada King"))
        # Deleted and not added again: the carrier holds no endpoint, and nothing says done.
        assert "ep1" not in h.simulator.v2.endpoints
        with pytest.raises(UpstreamNotFound):
            await h.client.get_endpoint("ep1")
        down["on"] = False
        # What the pipeline does next: an update finds none (404), so it creates it.
        with pytest.raises(UpstreamNotFound):
            await h.client.update_endpoint("ep1", endpoint(name="Ada King"))
        await h.client.create_endpoint(endpoint(name="Ada King"))

    asyncio.run(go())
    assert h.simulator.v2.endpoints["ep1"].name == "Ada King"


def test_a_delete_still_open_when_time_is_up_is_pending_and_no_add_is_sent() -> None:
    h = v2(order_seconds=0.2)

    async def go() -> None:
        await _provisioned(h)
        h.simulator.v2.order_seconds = 30.0
        h.client.follow_timeout = 1.0
        with pytest.raises(UpstreamPending):
            await h.client.update_endpoint("ep1", endpoint(number="+12025550199"))

    asyncio.run(go())
    writes = [op for op in h.operations() if op.endswith("Endpoints") or op == "deleteEndpoint"]
    assert writes == ["addEndpoints", "deleteEndpoint"]
    assert h.simulator.v2.endpoints["ep1"].phone_number == "+12025550143"
