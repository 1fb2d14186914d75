"""Writes abandoned at their attempt's timeout are watched to their end, not cancelled.

These tests need real concurrency (a late answer arrives while the call goes on), so they
run on an event loop with virtual time: when every task is waiting, the loop jumps to its
next timer at once instead of sleeping. Timeouts fire in order and deterministically, and
no test waits for real. The carrier is an in-loop transport whose answers wait for
``asyncio.Event``s the test sets.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest

from gateway.bandwidth import (
    BandwidthClient,
    RetryPolicy,
    UpstreamTimeout,
    codec,
)
from gateway.bandwidth.models import Endpoint, Location, Record
from gateway.metrics import Metrics
from gateway.settings import SANDBOX_ACCOUNT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME
from gateway.simulator import SimulatorConfig, SimulatorTransport, create_simulator

from ..simulator.helpers import WHITE_HOUSE
from .test_client import ACCOUNT, BASE, ENDPOINT, LOCATION, PASSWORD, USER, sample, xml

T = TypeVar("T")

DURATION = "dlr_upstream_request_duration_seconds_count"
#: One second per attempt, so that "past the budget" is a virtual second away.
POLICY = RetryPolicy(max_attempts=2, timeout=1.0, deadline=8.0, settle_timeout=30.0)


# -- virtual time ---------------------------------------------------------------------


class _VirtualSelector(selectors.DefaultSelector):
    """Polls without blocking; when nothing is ready, lets the wait's time pass at once."""

    now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # nothing scheduled: only another thread can wake us
            blocked: list[Any] = super().select(None)
            return blocked
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)
        self.problems: list[dict[str, Any]] = []
        self.set_exception_handler(lambda loop, context: self.problems.append(context))

    def time(self) -> float:
        return self._virtual.now


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main`` on a virtual-time loop; fail on anything the loop had to complain about
    (a task destroyed while pending, an exception never retrieved) or a task left behind."""
    loop = VirtualTimeLoop()

    async def checked() -> T:
        result = await main()
        assert asyncio.all_tasks() == {asyncio.current_task()}, "a task was left behind"
        return result

    try:
        return loop.run_until_complete(checked())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        assert loop.problems == []


# -- the carrier ------------------------------------------------------------------------


@dataclass
class Reply:
    """An answer, given when ``gate`` is set (at once when there is none)."""

    response: httpx.Response
    gate: asyncio.Event | None = None


@dataclass
class Carrier:
    """Answers requests in order (the last reply repeats) and records what became of each."""

    replies: list[Reply]
    requests: list[httpx.Request] = field(default_factory=list)
    answered: list[httpx.Request] = field(default_factory=list)
    cancelled: list[httpx.Request] = field(default_factory=list)

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        try:
            if reply.gate is not None:
                await reply.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(request)
            raise
        self.answered.append(request)
        return reply.response

    def client(self, policy: RetryPolicy = POLICY, **options: Any) -> BandwidthClient:
        return client_for(self.handler, policy, **options)


def client_for(handler: Any, policy: RetryPolicy = POLICY, **options: Any) -> BandwidthClient:
    """A client of ``handler`` on the running loop's (virtual) clock."""
    return BandwidthClient(
        BASE,
        ACCOUNT,
        USER,
        PASSWORD,
        transport=httpx.MockTransport(handler),
        policy=policy,
        clock=asyncio.get_running_loop().time,
        random=lambda: 0.5,
        **options,
    )


@dataclass
class Hook:
    """An ``on_abandoned`` that records its calls."""

    calls: list[tuple[str, Record | None, Awaitable[None]]] = field(default_factory=list)

    def __call__(self, operation: str, record: Record | None, settled: Awaitable[None]) -> None:
        self.calls.append((operation, record, settled))


def later(settled: Awaitable[None]) -> asyncio.Future[None]:
    """``settled`` as a future the test can look at without waiting."""
    return asyncio.ensure_future(settled)


# -- a write past its budget ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "operation", "record", "answer"),
    [
        (lambda c: c.update_endpoint("ep1", ENDPOINT), "updateEndpoint", ENDPOINT, xml(ENDPOINT)),
        (lambda c: c.create_location(LOCATION), "createLocation", LOCATION, xml(LOCATION, 201)),
        (lambda c: c.delete_location("L1"), "deleteLocation", None, httpx.Response(200)),
    ],
)
def test_a_write_past_its_budget_is_watched_while_the_retry_succeeds(
    call: Callable[[BandwidthClient], Awaitable[object]],
    operation: str,
    record: Record | None,
    answer: httpx.Response,
) -> None:
    release = asyncio.Event()
    carrier = Carrier([Reply(httpx.Response(200), gate=release), Reply(answer)])
    hook = Hook()
    metrics = Metrics()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with carrier.client(metrics=metrics, on_abandoned=hook) as client:
            started = loop.time()
            await call(client)  # the retry got through
            assert loop.time() - started == pytest.approx(1.0 + 0.05)  # budget, then backoff
            assert len(hook.calls) == 1
            name, sent, settled = hook.calls[0]
            assert (name, sent) == (operation, record)
            assert client.abandoned == 1

            waiting = later(settled)
            await asyncio.sleep(20)  # well past the attempt, well within settle_timeout
            assert not waiting.done()
            assert carrier.cancelled == []  # the first exchange was never cut off

            release.set()
            await waiting  # the late answer arrived
            assert carrier.answered[-1] is carrier.requests[0]
            assert client.abandoned == 0
            assert client.last_answer_at == loop.time()
            await settled  # may be awaited again, and again completes at once

    run(main)
    first, retry = carrier.requests
    assert first.method == retry.method
    assert first.content == retry.content
    if record is not None:
        assert first.content == codec.encode(record)
    labels = {"operation": operation}
    assert sample(metrics, DURATION, status="timeout", **labels) == 1
    assert sample(metrics, DURATION, status=str(answer.status_code), **labels) == 1
    assert sample(metrics, DURATION, status="late", **labels) == 1
    assert sample(
        metrics, "dlr_upstream_request_duration_seconds_sum", status="late", **labels
    ) == (pytest.approx(1.0 + 0.05 + 20))


def test_every_abandoned_attempt_of_a_failed_call_is_reported() -> None:
    gates = [asyncio.Event(), asyncio.Event()]
    carrier = Carrier([Reply(httpx.Response(500), gate=gates[0]), Reply(xml(ENDPOINT), gates[1])])
    hook = Hook()
    metrics = Metrics()

    async def main() -> None:
        async with carrier.client(metrics=metrics, on_abandoned=hook) as client:
            with pytest.raises(UpstreamTimeout) as caught:
                await client.update_endpoint("ep1", ENDPOINT)
            assert caught.value.ambiguous
            assert [(name, sent) for name, sent, _ in hook.calls] == [
                ("updateEndpoint", ENDPOINT),
                ("updateEndpoint", ENDPOINT),
            ]
            first, second = (later(settled) for _, _, settled in hook.calls)
            gates[1].set()
            await second
            assert not first.done()
            gates[0].set()
            await first
            assert client.abandoned == 0

    run(main)
    assert len(carrier.answered) == 2
    labels = {"operation": "updateEndpoint"}
    assert sample(metrics, DURATION, status="timeout", **labels) == 2
    assert sample(metrics, DURATION, status="late", **labels) == 2  # a 500 is an answer too


def test_an_exchange_that_never_ends_settles_at_settle_timeout() -> None:
    carrier = Carrier([Reply(httpx.Response(200), gate=asyncio.Event())])
    hook = Hook()
    metrics = Metrics()
    policy = RetryPolicy(max_attempts=1, timeout=1.0, settle_timeout=30.0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with carrier.client(policy, metrics=metrics, on_abandoned=hook) as client:
            started = loop.time()
            with pytest.raises(UpstreamTimeout):
                await client.delete_endpoint("ep1")
            ((_, _, settled),) = hook.calls
            await settled  # completes, and does not raise
            assert loop.time() - started == pytest.approx(30.0)
            assert client.abandoned == 0

    run(main)
    assert carrier.cancelled == carrier.requests
    assert sample(metrics, DURATION, operation="deleteEndpoint", status="late_error") == 1


def test_without_a_hook_the_exchange_is_still_watched() -> None:
    release = asyncio.Event()
    carrier = Carrier([Reply(httpx.Response(200), gate=release), Reply(xml(ENDPOINT))])
    metrics = Metrics()

    async def main() -> None:
        async with carrier.client(metrics=metrics) as client:
            await client.update_endpoint("ep1", ENDPOINT)
            assert client.abandoned == 1
            release.set()
            assert await client.wait_abandoned(grace=5.0) == 0

    run(main)
    assert carrier.answered == [carrier.requests[1], carrier.requests[0]]
    assert sample(metrics, DURATION, operation="updateEndpoint", status="late") == 1


def test_an_answer_within_the_budget_is_not_abandoned() -> None:
    carrier = Carrier([Reply(xml(ENDPOINT))])
    hook = Hook()

    async def main() -> None:
        async with carrier.client(on_abandoned=hook) as client:
            assert await client.update_endpoint("ep1", ENDPOINT) == ENDPOINT
            assert client.abandoned == 0

    run(main)
    assert hook.calls == []
    # The write's own timeouts: long for the answer, the attempt's budget for a connection.
    timeout = carrier.requests[0].extensions["timeout"]
    assert timeout == {"connect": 1.0, "pool": 1.0, "read": 30.0, "write": 30.0}


def test_a_transport_timeout_within_the_budget_is_an_ordinary_failure() -> None:
    # A bare TimeoutError from the exchange itself is not the attempt running out.
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    hook = Hook()

    async def main() -> None:
        async with BandwidthClient(
            BASE,
            ACCOUNT,
            USER,
            PASSWORD,
            transport=httpx.MockTransport(slow),
            policy=POLICY,
            on_abandoned=hook,
        ) as client:
            with pytest.raises(UpstreamTimeout) as caught:
                await client.update_endpoint("ep1", ENDPOINT)
            assert caught.value.ambiguous
            assert client.abandoned == 0

    run(main)
    assert hook.calls == []


def test_a_failing_hook_does_not_fail_the_call(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()
    carrier = Carrier([Reply(httpx.Response(200), gate=release), Reply(xml(ENDPOINT))])

    def broken(operation: str, record: Record | None, settled: Awaitable[None]) -> None:
        raise RuntimeError("hook bug")

    async def main() -> None:
        async with carrier.client(on_abandoned=broken) as client:
            assert await client.update_endpoint("ep1", ENDPOINT) == ENDPOINT
            release.set()
            await client.wait_abandoned()

    run(main)
    assert "on_abandoned hook failed" in caplog.text


def test_a_write_whose_caller_is_cancelled_is_handed_over_too() -> None:
    release = asyncio.Event()
    carrier = Carrier([Reply(httpx.Response(200), gate=release)])
    hook = Hook()

    async def main() -> None:
        async with carrier.client(on_abandoned=hook) as client:
            call = asyncio.ensure_future(client.update_location("L1", LOCATION))
            await asyncio.sleep(0.5)  # within the attempt's budget
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            ((name, sent, settled),) = hook.calls
            assert (name, sent) == ("updateLocation", LOCATION)
            release.set()
            await settled
            assert carrier.answered == carrier.requests
            # Nothing was learnt about the carrier: the circuit neither opened nor counted.
            assert client.breaker.failures == 0

    run(main)


# -- reads, and closing ----------------------------------------------------------------------


def test_a_read_past_its_budget_is_cancelled_and_not_reported() -> None:
    carrier = Carrier([Reply(xml(ENDPOINT), gate=asyncio.Event())])
    hook = Hook()
    metrics = Metrics()
    policy = RetryPolicy(max_attempts=1, timeout=1.0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with carrier.client(policy, metrics=metrics, on_abandoned=hook) as client:
            started = loop.time()
            with pytest.raises(UpstreamTimeout) as caught:
                await client.get_endpoint("ep1")
            assert loop.time() - started == pytest.approx(1.0)
            assert not caught.value.ambiguous
            assert client.abandoned == 0

    run(main)
    assert hook.calls == []
    assert carrier.cancelled == carrier.requests
    assert carrier.requests[0].extensions["timeout"]["read"] == 1.0
    assert sample(metrics, DURATION, operation="getEndpoint", status="timeout") == 1
    assert sample(metrics, DURATION, operation="getEndpoint", status="late_error") == 0


def test_aclose_cancels_the_abandoned_exchanges_cleanly() -> None:
    carrier = Carrier([Reply(httpx.Response(200), gate=asyncio.Event())])
    hook = Hook()
    metrics = Metrics()
    policy = RetryPolicy(max_attempts=1, timeout=1.0)

    async def main() -> None:
        client = carrier.client(policy, metrics=metrics)
        client.on_abandoned = hook
        with pytest.raises(UpstreamTimeout):
            await client.create_endpoint(Endpoint(endpoint_id="ep9"))
        ((_, _, settled),) = hook.calls
        waiting = later(settled)
        assert client.abandoned == 1
        await client.aclose()
        assert client.abandoned == 0
        await waiting  # settled completes, without raising, when the exchange is cancelled

    run(main)  # and nothing is left pending or unretrieved
    assert carrier.cancelled == carrier.requests
    assert sample(metrics, DURATION, operation="createEndpoint", status="late") == 0
    assert sample(metrics, DURATION, operation="createEndpoint", status="late_error") == 0


# -- against the simulator ------------------------------------------------------------------


def test_the_simulators_late_write_is_seen_to_land() -> None:
    # The simulator holds the request 30 s, then applies it: after the gateway gave up.
    app = create_simulator(
        SimulatorConfig(fault_rate=1.0, fault_kinds=("timeout",), timeout_hold=30.0)
    )
    simulator = app.state.simulator
    hook = Hook()
    metrics = Metrics()
    location = Location(location_id="L1", address=WHITE_HOUSE)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with BandwidthClient(
            "http://sim/api",
            SANDBOX_ACCOUNT_ID,
            SANDBOX_USERNAME,
            SANDBOX_PASSWORD,
            transport=SimulatorTransport(app),
            policy=RetryPolicy(max_attempts=1, timeout=5.0, settle_timeout=60.0),
            metrics=metrics,
            clock=loop.time,
            on_abandoned=hook,
        ) as client:
            started = loop.time()
            with pytest.raises(UpstreamTimeout) as caught:
                await client.create_location(location)
            assert caught.value.ambiguous
            assert "L1" not in simulator.state["locations"]
            ((name, sent, settled),) = hook.calls
            assert (name, sent) == ("createLocation", location)
            await settled
            assert loop.time() - started == pytest.approx(30.0)
            assert "L1" in simulator.state["locations"]

    run(main)
    assert sample(metrics, DURATION, operation="createLocation", status="late") == 1
