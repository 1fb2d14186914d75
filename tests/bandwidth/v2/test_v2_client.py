"""The v2 client against the in-process v2 simulator: success, each error document,
429/5xx/timeouts with retries, asynchronous completion, and the follow deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway.bandwidth.errors import (
    UpstreamAuthError,
    UpstreamConflict,
    UpstreamError,
    UpstreamNotFound,
    UpstreamPending,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
    UpstreamUnsupported,
)
from gateway.bandwidth.exchanges import RetryPolicy
from gateway.bandwidth.v2.client import BandwidthV2Client
from gateway.simulator import SimulatorConfig

from .helpers import CAPITOL, NOWHERE, V2, StatusReads, endpoint, location, v2


def _over(answer: Callable[[httpx.Request], httpx.Response], **options: Any) -> BandwidthV2Client:
    """A v2 client whose carrier is ``answer`` (an httpx mock transport), not the simulator."""
    return BandwidthV2Client(
        "https://carrier.test/api", "1", "u", "p", transport=httpx.MockTransport(answer), **options
    )


async def provisioned(h: V2) -> None:
    await h.client.create_location(location())
    await h.client.create_endpoint(endpoint())


def test_a_new_device_is_an_address_then_an_endpoint_followed_to_completion() -> None:
    h = v2(order_seconds=1.0)

    async def go() -> None:
        held = await h.client.create_location(location())
        assert held.status == "VALID" and held.location_id == "loc1"
        written = await h.client.create_endpoint(endpoint())
        assert written.location_id == "loc1"
        # Returned only once the carrier holds it.
        assert h.simulator.v2.endpoints["ep1"].address_id == "loc1"
        read = await h.client.get_endpoint("ep1")
        assert (read.caller_name, read.telephone_number) == ("Ada Lovelace", "+12025550143")

    asyncio.run(go())
    ops = h.operations()
    assert ops[:2] == ["addAddress", "addEndpoints"]
    assert set(ops[2:-1]) == {"getOrderDetails"}  # bounded status reads, then the read
    assert 1 <= len(ops[2:-1]) <= 6
    assert (
        h.metrics.registry.get_sample_value("dlr_upstream_orders_total", {"outcome": "completed"})
        == 1.0
    )


def test_a_move_is_one_patch_and_its_order() -> None:
    h = v2(order_seconds=0.5)

    async def go() -> None:
        await provisioned(h)
        await h.client.create_location(location("loc2", CAPITOL))
        before = len(h.simulator.calls)
        await h.client.update_endpoint("ep1", endpoint(location_id="loc2"))
        ops = [c["operation"] for c in h.simulator.calls[before:]]
        assert ops[0] == "updateEndpoint"
        assert set(ops[1:]) == {"getOrderDetails"}
        sent = [b for m, p, b in h.transport.sent if m == "PATCH"]
        assert sent == [b'{"action":"PROVISION","addressId":"loc2"}']
        assert h.simulator.v2.endpoints["ep1"].address_id == "loc2"

    asyncio.run(go())


def test_a_new_name_or_number_is_a_delete_then_an_add() -> None:
    h = v2(order_seconds=0.2)

    async def go() -> None:
        await provisioned(h)
        await h.client.update_endpoint("ep1", endpoint(name="Ada King"))
        held = h.simulator.v2.endpoints["ep1"]
        assert held.name == "Ada King"

    asyncio.run(go())
    writes = [op for op in h.operations() if op != "getOrderDetails"]
    assert writes[-2:] == ["deleteEndpoint", "addEndpoints"]


def test_a_retried_create_finds_its_own_endpoint() -> None:
    h = v2(order_seconds=0.2)

    async def go() -> None:
        await provisioned(h)
        again = await h.client.create_endpoint(endpoint())
        assert again.location_id == "loc1"

    asyncio.run(go())
    assert h.operations().count("addEndpoints") == 2
    assert "updateEndpoint" in h.operations()


def test_an_invalid_address_is_refused_with_the_carriers_words() -> None:
    h = v2()

    async def go() -> None:
        with pytest.raises(UpstreamRejected) as caught:
            await h.client.create_location(location("bad", NOWHERE))
        assert "INVALID" in (caught.value.description or "")
        assert caught.value.status == 422

    asyncio.run(go())


def test_an_order_that_fails_is_rejected_with_the_carriers_words() -> None:
    h = v2(order_seconds=0.2)

    async def go() -> None:
        await h.client.create_location(location())
        # An INVALID address the carrier holds (created by someone else).
        with pytest.raises(UpstreamRejected):
            await h.client.create_location(location("bad", NOWHERE))
        with pytest.raises(UpstreamRejected) as caught:
            await h.client.create_endpoint(endpoint(location_id="bad"))
        assert caught.value.code == "INVALID_ADDRESS"
        assert "INVALID" in (caught.value.description or "")
        assert "ep1" not in h.simulator.v2.endpoints

    asyncio.run(go())
    assert (
        h.metrics.registry.get_sample_value("dlr_upstream_orders_total", {"outcome": "failed"})
        == 1.0
    )


def test_the_follow_deadline_answers_pending_then_the_order_completes() -> None:
    h = v2(order_seconds=10.0, follow_timeout=2.0)

    async def go() -> None:
        await h.client.create_location(location())
        with pytest.raises(UpstreamPending) as caught:
            await h.client.create_endpoint(endpoint())
        assert caught.value.ambiguous
        assert "ep1" in h.client.open_orders
        assert h.metrics.registry.get_sample_value(
            "dlr_upstream_order_oldest_open_seconds"
        ) == pytest.approx(h.time.now - h.client.open_orders["ep1"][1])
        with pytest.raises(UpstreamPending):
            await h.client.get_endpoint("ep1")  # still open: no answer yet
        await h.time.sleep(10.0)
        held = await h.client.get_endpoint("ep1")
        assert held.location_id == "loc1"
        assert not h.client.open_orders

    asyncio.run(go())
    samples = h.metrics.registry.get_sample_value
    assert samples("dlr_upstream_orders_total", {"outcome": "pending"}) == 1.0
    assert samples("dlr_upstream_orders_total", {"outcome": "completed"}) == 1.0
    # The status reads backed off: far fewer than one per 50 ms over the 2 s.
    assert h.operations().count("getOrderDetails") <= 8


def test_errors_are_the_error_tree() -> None:
    h = v2(order_seconds=0.2)

    async def go() -> None:
        with pytest.raises(UpstreamNotFound) as missing:
            await h.client.get_endpoint("nobody")
        assert missing.value.description == "endpoint nobody not found"
        await h.client.create_location(location())
        with pytest.raises(UpstreamConflict):
            await h.client.create_location(location())
        with pytest.raises(UpstreamNotFound):
            await h.client.update_endpoint("nobody", endpoint("nobody"))
        with pytest.raises(UpstreamUnsupported):
            await h.client.update_location("loc1", location())
        with pytest.raises(UpstreamRejected) as bad:
            await h.client.create_endpoint(endpoint(number="not a number"))
        assert bad.value.code == "request-invalid"

    asyncio.run(go())


def test_wrong_credentials_are_an_auth_error() -> None:
    h = v2(password="wrong")

    async def go() -> None:
        with pytest.raises(UpstreamAuthError) as caught:
            await h.client.list_endpoints()
        assert caught.value.description == "invalid credentials"

    asyncio.run(go())


@pytest.mark.parametrize("fault", ["429", "500", "503", "timeout", "reset"])
def test_a_fault_is_retried(fault: str) -> None:
    config = SimulatorConfig(fault_kinds=(fault,), timeout_hold=0.5, seed=1)
    # A held answer takes real time (the attempt's timeout is real); waits are fake.
    h = v2(
        config=config,
        simulator_sleep=asyncio.sleep,
        policy=RetryPolicy(timeout=0.1, min_timeout=0.1, backoff_base=0.01, backoff_max=0.05),
    )
    faults = iter([fault])
    h.simulator._pick_fault = lambda cfg: next(faults, None)  # type: ignore[method-assign]

    async def go() -> None:
        found = await h.client.list_locations()
        assert found.locations == ()
        await h.simulator.wait_idle()

    asyncio.run(go())
    assert h.operations() == ["listAddresses", "listAddresses"]
    reasons = {
        "429": "429",
        "500": "5xx",
        "503": "5xx",
        "timeout": "timeout",
        "reset": "connection",
    }
    assert (
        h.metrics.registry.get_sample_value(
            "dlr_upstream_retries_total", {"operation": "listAddresses", "reason": reasons[fault]}
        )
        == 1.0
    )


def test_a_429_waits_for_retry_after() -> None:
    h = v2(config=SimulatorConfig(rate_limit=1.0))

    async def go() -> None:
        await h.client.list_endpoints()
        started = h.time.now
        await h.client.list_endpoints()  # the bucket is empty: 429, Retry-After 1
        assert h.time.now - started >= 1.0

    asyncio.run(go())
    statuses = [c["status"] for c in h.simulator.calls]
    assert statuses == [200, 429, 200]


def test_a_carrier_that_keeps_refusing_429_is_rate_limited() -> None:
    config = SimulatorConfig(fault_rate=1.0, fault_kinds=("429",), retry_after=1)
    h = v2(config=config, policy=RetryPolicy(max_attempts=2, backoff_base=0.01))

    async def go() -> None:
        with pytest.raises(UpstreamRateLimited) as caught:
            await h.client.list_endpoints()
        assert caught.value.retry_after == 1.0
        assert "rate limit exceeded" in caught.value.message

    asyncio.run(go())


def test_a_retried_add_whose_first_attempt_landed_waits_until_the_carrier_holds_it() -> None:
    # The first attempt is applied, then answered 500: the retry is told 409 (it exists),
    # which names no order to follow. The endpoint is read until it shows the write.
    config = SimulatorConfig(ambiguous_rate=1.0, seed=3)
    h = v2(config=config, order_seconds=1.0)
    faults = iter([None, "500"])
    h.simulator._pick_fault = lambda cfg: next(faults, None)  # type: ignore[method-assign]

    async def go() -> None:
        await h.client.create_location(location())
        await h.client.create_endpoint(endpoint())
        # Returned only once the carrier holds it, not at the 409.
        assert h.simulator.v2.endpoints["ep1"].address_id == "loc1"

    asyncio.run(go())
    ops = h.operations()
    assert ops[:3] == ["addAddress", "addEndpoints", "addEndpoints"]
    assert [c["status"] for c in h.simulator.calls[1:3]] == [500, 409]
    assert set(ops[3:]) == {"getEndpoint"}


class _UnknownStatus(httpx.AsyncBaseTransport):
    """The carrier answers an order's status with a status the gateway has never heard of."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self.inner.handle_async_request(request)
        if not request.url.path.endswith("/details"):
            return answer
        body = json.loads(await answer.aread())
        return httpx.Response(200, json=body | {"status": "ON_HOLD"})


@pytest.mark.parametrize("case", ["status-503", "status-unknown", "confirm-503"])
def test_a_write_the_carrier_took_is_uncertain_when_following_it_fails(case: str) -> None:
    """Once the carrier has taken a write (202, or 409 to a retry), a status or endpoint read
    that fails (a 503, a status never heard of) says nothing of the write: its outcome is
    unknown (ambiguous), not a refusal the pipeline would undo its claim for."""
    config = SimulatorConfig(ambiguous_rate=1.0, seed=3)
    h = v2(config=config, order_seconds=1.0)
    first = [None, "500", None] if case == "confirm-503" else [None, None]
    later = "503" if case != "status-unknown" else None
    faults = itertools.chain(first, itertools.repeat(later))
    h.simulator._pick_fault = lambda cfg: next(faults)  # type: ignore[method-assign]
    if case == "status-unknown":
        h.transport.inner = _UnknownStatus(h.transport.inner)

    async def go() -> None:
        await h.client.create_location(location())
        with pytest.raises(UpstreamError) as caught:
            await h.client.create_endpoint(endpoint())
        assert caught.value.ambiguous, caught.value
        assert not isinstance(caught.value, UpstreamPending)

    asyncio.run(go())
    assert "addEndpoints" in h.operations()


def test_a_follow_cut_short_leaves_the_order_to_be_waited_for() -> None:
    h = v2(order_seconds=5.0, follow_timeout=4.0)

    async def go() -> None:
        await h.client.create_location(location())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):  # the report's deadline, in real time
                await h.client.create_endpoint(endpoint())
        assert "ep1" in h.client.open_orders
        with pytest.raises(UpstreamPending):
            await h.client.get_endpoint("ep1")

    # Waits take real time here, so that the deadline can cut one short.
    h.client._sleep = asyncio.sleep
    asyncio.run(go())


def test_a_replace_that_finds_the_endpoint_added_again_is_a_conflict_not_a_loop() -> None:
    h = v2(order_seconds=0.2)
    inner = h.transport.inner

    class ReAdd(httpx.AsyncBaseTransport):
        """Someone re-adds the endpoint between the gateway's delete and its add."""

        def __init__(self, held: Any) -> None:
            self.held = held

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            store = h.simulator.v2
            adding = request.method == "POST" and request.url.path.endswith("/endpoints")
            if adding and "ep1" not in store.endpoints:
                store.endpoints["ep1"] = dataclasses.replace(self.held, name="Someone Else")
            return await inner.handle_async_request(request)

    async def go() -> None:
        await provisioned(h)
        h.transport.inner = ReAdd(h.simulator.v2.endpoints["ep1"])
        with pytest.raises(UpstreamConflict):
            await h.client.update_endpoint("ep1", endpoint(name="Ada King"))

    asyncio.run(go())
    writes = [op for op in h.operations() if op not in ("getOrderDetails", "getEndpoint")]
    assert writes[-2:] == ["deleteEndpoint", "addEndpoints"]


@pytest.mark.parametrize(
    "body", [b"{not json", b'{"endpoints": "many"}', b"[" * 100_000, b'{"id": 1}']
)
def test_an_unreadable_answer_is_a_parse_error(body: bytes) -> None:
    from gateway.bandwidth.errors import UpstreamParseError

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    async def go() -> None:
        client = _over(answer)
        async with client:
            read = client.get_endpoint("ep1") if body.startswith(b'{"id"') else None
            with pytest.raises(UpstreamParseError):
                await (read or client.list_endpoints())

    asyncio.run(go())


def test_a_hostile_order_id_or_a_long_error_never_reaches_a_path_or_an_answer_whole() -> None:
    from gateway.bandwidth.errors import UpstreamParseError

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            order = {"orderId": "../../accounts/other", "orderStatus": "RECEIVED"}
            return httpx.Response(202, json=order)
        if request.url.path.endswith("/addresses"):
            errors = [{"type": "bad-request", "description": "x" * 100_000, "code": 1}]
            return httpx.Response(400, json={"errors": errors})
        return httpx.Response(200, json={"id": "ep1", "name": "A", "phoneNumber": "+12025550143"})

    async def go() -> None:
        client = _over(answer)
        async with client:
            with pytest.raises(UpstreamParseError) as unreadable:
                await client.update_endpoint("ep1", endpoint(name="A"))
            assert unreadable.value.ambiguous  # accepted (202): it may yet be carried out
            with pytest.raises(UpstreamRejected) as refused:
                await client.create_location(location())
            assert len(refused.value.description or "") <= 500

    asyncio.run(go())


def test_an_answer_about_another_record_or_order_is_unreadable() -> None:
    """An order's status read answered with another order (COMPLETED), or an endpoint or
    address read answered with another record: taken at its word, a write whose own order
    may yet fail was answered done, and a repair could confirm what the carrier does not
    hold. Such an answer is unreadable, and a write's outcome stays unknown."""
    from gateway.bandwidth.errors import UpstreamParseError

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path.endswith("/endpoints"):
            return httpx.Response(202, json={"orderId": "o1", "orderStatus": "RECEIVED"})
        if path.endswith("/orders/o1/details"):
            return httpx.Response(200, json={"id": "o2", "status": "COMPLETED"})
        if "/addresses/" in path:
            return httpx.Response(200, json={"id": "loc2", "city": "ELSEWHERE"})
        return httpx.Response(200, json={"id": "ep2", "addressId": "loc1", "name": "Ada"})

    async def go() -> None:
        client = _over(answer, follow_first=0.0)
        async with client:
            with pytest.raises(UpstreamParseError) as unreadable:
                await client.create_endpoint(endpoint())
            assert unreadable.value.ambiguous  # accepted (202): it may yet be carried out
            assert "o2" in unreadable.value.message
            with pytest.raises(UpstreamParseError, match="ep2"):
                await client.get_endpoint("ep9")
            with pytest.raises(UpstreamParseError, match="loc2"):
                await client.get_location("loc1")

    asyncio.run(go())


@pytest.mark.parametrize(
    ("details", "named"),
    [
        # The order asked for, COMPLETED, but about another device's endpoint.
        ({"endpoints": [{"id": "ep2", "status": "SUCCESS"}]}, "ep2"),
        (
            {"endpoints": [{"id": "ep1", "status": "SUCCESS"}, {"id": "ep2", "status": "SUCCESS"}]},
            "ep2",
        ),
        # The order asked for, about the endpoint, but a deletion of it, not the add.
        (
            {"type": "DELETE_ENDPOINTS", "endpoints": [{"id": "ep1", "status": "SUCCESS"}]},
            "DELETE_ENDPOINTS",
        ),
    ],
)
def test_an_order_whose_details_name_another_endpoint_does_not_confirm_the_write(
    details: dict[str, Any], named: str
) -> None:
    """The status read of a write's own order (its ID checked) whose details name another
    endpoint, or another kind of order: taken at its word, the write was answered done while
    the carrier may hold nothing of it. Unreadable, and the write's outcome stays unknown;
    details naming the endpoint written (or none) confirm it, as before."""
    from gateway.bandwidth.errors import UpstreamParseError

    answers = {"bad": {"id": "o1", "status": "COMPLETED", **details}}

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path.endswith("/endpoints"):
            return httpx.Response(202, json={"orderId": "o1", "orderStatus": "RECEIVED"})
        if path.endswith("/orders/o1/details"):
            return httpx.Response(200, json=answers["bad"])
        return httpx.Response(404, json={"errors": []})

    async def go() -> None:
        client = _over(answer, follow_first=0.0)
        async with client:
            with pytest.raises(UpstreamParseError) as unreadable:
                await client.create_endpoint(endpoint())
            assert unreadable.value.ambiguous  # accepted (202): it may yet be carried out
            assert named in unreadable.value.message
            assert "ep1" in client.open_orders  # a read of the endpoint waits for its end
            if named == "ep2":  # and that wait reads the same details: not its end either
                with pytest.raises(UpstreamParseError, match="ep2"):
                    await client.get_endpoint("ep1")
                assert "ep1" in client.open_orders
            answers["bad"] = {
                "id": "o1",
                "type": "ADD_ENDPOINTS",
                "status": "COMPLETED",
                "endpoints": [{"id": "ep1", "status": "SUCCESS"}],
            }
            await client.create_endpoint(endpoint())  # its own details: confirmed

    asyncio.run(go())


def test_a_write_behind_an_order_still_open_is_not_sent_and_says_so() -> None:
    """A device moved again while its last write's order was still open (answered 202): the
    move sent nothing (the old order was read, still open) and raised ``UpstreamPending``
    with the old order's ID, so the device was answered 202 "the carrier accepted the
    change" for a change never sent. It is a plain unavailability now, not ambiguous (the
    report is undone and answered 503), and the write goes out once that order has ended."""
    h = v2(order_seconds=10.0, follow_timeout=2.0)

    async def go() -> None:
        await h.client.create_location(location())
        await h.client.create_location(location("loc2", CAPITOL))
        with pytest.raises(UpstreamPending):
            await h.client.create_endpoint(endpoint())
        h.client.expect("ep1", None)  # the store: not confirmed
        with pytest.raises(UpstreamError) as caught:
            await h.client.update_endpoint("ep1", endpoint(location_id="loc2"))
        assert not isinstance(caught.value, UpstreamPending), caught.value
        assert not caught.value.ambiguous
        assert "PATCH" not in [method for method, _, _ in h.transport.sent]
        await h.time.sleep(10.0)
        with pytest.raises(UpstreamPending):  # sent now: its own order is open
            await h.client.update_endpoint("ep1", endpoint(location_id="loc2"))
        assert "PATCH" in [method for method, _, _ in h.transport.sent]
        await h.time.sleep(10.0)
        assert (await h.client.get_endpoint("ep1")).location_id == "loc2"

    asyncio.run(go())


def test_an_add_still_open_from_another_process_is_unavailable_not_not_found() -> None:
    """Another process (a replica, or this gateway before a restart) added the endpoint and
    its order is still open: the carrier answers this add 409 (it holds the endpoint) and
    its read 404 (not yet carried out). The write was answered ``UpstreamNotFound``, so a
    report was answered 404 and a repair recorded a refusal for a slow order; it is a plain
    unavailability now (nothing was sent that the carrier took)."""
    h = v2(order_seconds=10.0, follow_timeout=2.0)

    async def go() -> None:
        await h.client.create_location(location())
        with pytest.raises(UpstreamPending):
            await h.client.create_endpoint(endpoint())
        restarted = h.another_process(follow_timeout=2.0)
        with pytest.raises(UpstreamError) as caught:
            await restarted.create_endpoint(endpoint())
        assert isinstance(caught.value, UpstreamUnavailable), caught.value
        assert not caught.value.ambiguous
        assert "PATCH" not in [method for method, _, _ in h.transport.sent]
        await h.time.sleep(10.0)
        assert (await restarted.get_endpoint("ep1")).location_id == "loc1"

    asyncio.run(go())


def test_orders_left_open_that_no_read_settles_are_checked_by_the_sweep() -> None:
    """An order left open (answered pending) was checked only when its endpoint was read
    again: a deleted device's endpoint never is, so its order stayed "open" here for the
    life of the process, ``dlr_upstream_order_oldest_open_seconds`` grew without end and
    ``DlrUpstreamOrderStuck`` paged for an order the carrier had long carried out. The
    sweep checks the orders older than ``sweep_after``; one still open stays."""
    h = v2(order_seconds=10.0, follow_timeout=2.0)

    async def go() -> None:
        await h.client.create_location(location())
        await h.client.create_location(location("loc2", CAPITOL))
        with pytest.raises(UpstreamPending):
            await h.client.create_endpoint(endpoint())
        await h.time.sleep(10.0)
        await h.client.get_endpoint("ep1")
        with pytest.raises(UpstreamPending):
            await h.client.delete_endpoint("ep1")
        with pytest.raises(UpstreamPending):
            await h.client.create_endpoint(endpoint("ep2"))
        assert set(h.client.open_orders) == {"ep1", "ep2"}
        await h.client.settle_orders(10)  # neither is older than ``sweep_after`` yet
        assert set(h.client.open_orders) == {"ep1", "ep2"}
        await h.time.sleep(h.client.sweep_after)  # both carried out at the carrier
        await h.client.settle_orders(1)  # one at a time: the oldest first
        assert set(h.client.open_orders) == {"ep2"}
        await h.client.settle_orders(10)
        assert h.client.open_orders == {} and h.client.oldest_open_order() == 0.0

    asyncio.run(go())


def test_the_sweep_keeps_an_order_still_open_and_goes_on_to_the_next() -> None:
    h = v2(order_seconds=1000.0, follow_timeout=2.0)

    async def go() -> None:
        await h.client.create_location(location())
        with pytest.raises(UpstreamPending):
            await h.client.create_endpoint(endpoint())
        await h.time.sleep(h.client.sweep_after)
        with pytest.raises(UpstreamPending):
            await h.client.create_endpoint(endpoint("ep2"))
        await h.time.sleep(h.client.sweep_after)
        await h.client.settle_orders(1)  # ep1's, still open: kept, behind ep2's now
        assert list(h.client.open_orders) == ["ep2", "ep1"]
        assert h.client.oldest_open_order() >= 2 * h.client.sweep_after

    asyncio.run(go())


def test_an_order_the_carrier_does_not_know_is_pending_then_forgotten() -> None:
    """An order whose status read answers 404: the write it follows was answered "not
    found" (a report 404 for a change the carrier took), and once left open every read and
    write of its endpoint was "not found" for the life of the process (the entry never
    left). The write is pending; a later read forgets the order and reads the endpoint."""
    h = v2(order_seconds=10.0, follow_timeout=2.0)
    # An order past its retention, or not yet to be read after its 202.
    forgotten = StatusReads(h.transport.inner, 404, "order not found")
    h.transport.inner = forgotten

    async def go() -> None:
        await h.client.create_location(location())
        await h.client.create_location(location("loc2", CAPITOL))
        forgotten.refused = True
        with pytest.raises(UpstreamPending):
            await h.client.create_endpoint(endpoint())
        await h.time.sleep(10.0)
        assert (await h.client.get_endpoint("ep1")).location_id == "loc1"
        assert h.client.open_orders == {}
        forgotten.refused = False
        h.client.expect("ep1", None)
        with pytest.raises(UpstreamPending):
            await h.client.update_endpoint("ep1", endpoint(location_id="loc2"))
        forgotten.refused = True
        await h.time.sleep(h.client.sweep_after)
        await h.client.settle_orders(10)
        assert h.client.open_orders == {}
        assert (await h.client.get_endpoint("ep1")).location_id == "loc2"

    asyncio.run(go())


def test_an_order_whose_status_cannot_be_read_does_not_stop_the_sweep_for_the_rest() -> None:
    h = v2(order_seconds=10.0, follow_timeout=2.0)
    inner = h.transport.inner
    unreadable: set[str] = set()

    class OnHold(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if any(request.url.path.endswith(f"/orders/{o}/details") for o in unreadable):
                return httpx.Response(200, json={"id": "x", "status": "ON_HOLD"})
            return await inner.handle_async_request(request)

    async def go() -> None:
        await h.client.create_location(location())
        with pytest.raises(UpstreamPending):
            await h.client.create_endpoint(endpoint())
        with pytest.raises(UpstreamPending):
            await h.client.create_endpoint(endpoint("ep2"))
        unreadable.add(h.client.open_orders["ep1"][0])
        h.transport.inner = OnHold()
        await h.time.sleep(h.client.sweep_after)
        for _ in range(2):  # ep1's first, unreadable: behind ep2's now, which settles
            await h.client.settle_orders(1)
        assert list(h.client.open_orders) == ["ep1"]

    asyncio.run(go())
