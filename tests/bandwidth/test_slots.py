"""Connection slots: the gateway's own queueing is never the carrier's failure.

Calls wait for one of ``max_connections`` slots before their attempt starts. The carrier
here answers every call correctly in 2 s, well within the 5 s attempt timeout, while
far more calls than slots are made at once: the waiting must not count against attempts,
reach the circuit breaker, or abandon (and later send) a request that never left. And a
carrier that holds some writes without answering must not keep the slots from the calls
it does answer. Virtual time (``test_abandoned.run``): nothing waits for real.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.bandwidth import BandwidthClient, CircuitOpenError, RetryPolicy, UpstreamTimeout
from gateway.bandwidth.models import Endpoint
from gateway.bandwidth.upstreams import in_background, is_background
from gateway.metrics import Metrics

from .test_abandoned import Carrier, Hook, Reply, client_for, later, run
from .test_client import ENDPOINT, sample, xml

DURATION = "dlr_upstream_request_duration_seconds_count"
POLICY = RetryPolicy(max_attempts=1, timeout=5.0, deadline=8.0, settle_timeout=60.0)


def endpoint(n: int) -> Endpoint:
    return Endpoint(endpoint_id=f"ep{n}", alternate_end_user_id=f"dev-{n}", location_id="L1")


async def quick_answers(client: BandwidthClient) -> None:
    """40 writes answered: more than the 32 answers the adaptive timeout waits for, which
    then sits at its floor (1 s) while the carrier answers fast."""
    for n in range(40):
        await client.update_endpoint(f"ep{n}", endpoint(n))


class Slow:
    """Answers every request correctly after ``latency`` seconds."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.requests: list[httpx.Request] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        return xml(ENDPOINT)

    def client(self, **options: object) -> BandwidthClient:
        return client_for(self.handler, POLICY, **options)


def test_waiting_for_a_slot_is_never_a_carrier_timeout() -> None:
    carrier = Slow(2.0)
    hook = Hook()
    metrics = Metrics()
    outcomes: list[object] = []

    async def main() -> None:
        async with carrier.client(max_connections=2, metrics=metrics, on_abandoned=hook) as client:

            async def move(n: int) -> object:
                try:
                    return await client.update_endpoint(f"ep{n}", endpoint(n))
                except UpstreamTimeout as exc:
                    return exc

            # 10 writes at once, 2 slots, 2 s each: the last ones wait 8 s for a slot.
            outcomes.extend(await asyncio.gather(*(move(n) for n in range(10))))
            assert client.breaker.state == "closed"
            assert client.breaker.failures == 0
            assert client.abandoned == 0

    run(main)
    answered = [o for o in outcomes if isinstance(o, Endpoint)]
    late = [o for o in outcomes if isinstance(o, UpstreamTimeout) and o.ambiguous]
    refused = [o for o in outcomes if isinstance(o, UpstreamTimeout) and not o.ambiguous]
    # Slots free at 0, 2, 4 and 6 s: six calls had their whole attempt and were answered;
    # the two that got a slot at 6 s had 2 s of their deadline left, were sent, and ran
    # out of it (their own deadline, not the carrier: it answered them, late); the last
    # two found no slot before their deadline and sent nothing.
    assert (len(answered), len(late), len(refused)) == (6, 2, 2)
    assert len(carrier.requests) == 8
    assert carrier.most_in_flight == 2
    assert all("before a request was sent" in str(e) for e in refused)
    # Only requests that were sent are abandoned (watched to their answer).
    assert sorted(str(sent) for _, sent, _ in hook.calls) == [str(endpoint(n)) for n in (6, 7)]
    # No timeout reached the breaker: only cut-short attempts timed out.
    timeouts = sample(metrics, DURATION, operation="updateEndpoint", status="timeout")
    assert timeouts == 2
    assert sample(metrics, "dlr_upstream_slot_wait_seconds_count") == 8


def test_a_write_cancelled_while_it_waits_for_a_slot_is_not_abandoned() -> None:
    carrier = Slow(2.0)
    hook = Hook()

    async def main() -> None:
        async with carrier.client(max_connections=1, on_abandoned=hook) as client:
            first = asyncio.ensure_future(client.update_endpoint("ep1", ENDPOINT))
            await asyncio.sleep(0)
            queued = asyncio.ensure_future(client.update_endpoint("ep2", endpoint(2)))
            await asyncio.sleep(1.0)
            queued.cancel()  # its report's deadline, say
            with pytest.raises(asyncio.CancelledError):
                await queued
            assert await first == ENDPOINT
            await asyncio.sleep(120)  # well past any settle timeout
            assert client.abandoned == 0

    run(main)
    assert hook.calls == []
    assert [r.url.path.rsplit("/", 1)[-1] for r in carrier.requests] == ["ep1"]


def test_a_held_write_gives_its_slot_to_the_next_call() -> None:
    held = asyncio.Event()
    carrier = Carrier([Reply(httpx.Response(200), gate=held), Reply(xml(ENDPOINT))])
    hook = Hook()
    policy = RetryPolicy(max_attempts=1, timeout=1.0, settle_timeout=30.0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with carrier.client(policy, max_connections=1, on_abandoned=hook) as client:
            with pytest.raises(UpstreamTimeout):
                await client.update_endpoint("ep1", ENDPOINT)
            started = loop.time()
            # The only slot is free again although the first write is still out, watched.
            assert await client.update_endpoint("ep2", endpoint(2)) == ENDPOINT
            assert loop.time() == started
            assert client.abandoned == 1
            held.set()
            await client.wait_abandoned()

    run(main)
    assert carrier.cancelled == []
    assert len(hook.calls) == 1


def test_past_max_watched_an_abandoned_write_is_closed_and_settles_by_the_clock() -> None:
    carrier = Carrier([Reply(httpx.Response(200), gate=asyncio.Event())])
    hook = Hook()
    policy = RetryPolicy(max_attempts=1, timeout=1.0, settle_timeout=30.0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with carrier.client(
            policy, max_connections=4, max_watched=2, on_abandoned=hook
        ) as client:
            started = loop.time()
            calls = [client.update_endpoint(f"ep{n}", endpoint(n)) for n in range(3)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(r, UpstreamTimeout) and r.ambiguous for r in results)
            assert len(hook.calls) == 3
            assert client.abandoned == 2  # two watched; the third's connection was closed
            await asyncio.sleep(0)
            assert len(carrier.cancelled) == 1
            cut = next(
                settled
                for _, sent, settled in hook.calls
                if isinstance(sent, Endpoint)
                and carrier.cancelled[0].url.path.endswith(str(sent.endpoint_id))
            )
            waiting = later(cut)
            await asyncio.sleep(28.0)
            assert not waiting.done()  # the carrier may still apply it until settle_timeout
            await waiting
            assert loop.time() - started == pytest.approx(30.0)

    run(main)


def test_held_calls_are_given_up_on_after_the_adaptive_timeout_not_counted_as_failures() -> None:
    # The carrier answers in 200 ms and holds every third call: once its latency is known,
    # an attempt waits 1 s (the floor), not 5; those timeouts are not the breaker's to count.
    held = asyncio.Event()
    replies = [Reply(xml(ENDPOINT), gate=held if n % 3 == 2 else None) for n in range(90)]
    carrier = Carrier(replies)
    policy = RetryPolicy(max_attempts=3, timeout=5.0, deadline=8.0, settle_timeout=30.0)

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        took = []
        async with carrier.client(policy, retry_budget_ratio=100.0) as client:
            for n in range(60):
                started = loop.time()
                assert await client.update_endpoint(f"ep{n}", endpoint(n)) == ENDPOINT
                took.append(loop.time() - started)
            assert client.breaker.state == "closed"
            assert client.breaker.failures == 0
            held.set()
            await client.wait_abandoned()
        return took

    took = run(main)
    slowest = max(took[40:])  # once 32 answers are in
    assert slowest == pytest.approx(1.0 + 0.05)  # the adaptive timeout, then the backoff
    assert max(took[:20]) == pytest.approx(5.0 + 0.05)  # before: the whole timeout


def test_a_carrier_that_stops_answering_still_opens_the_breaker() -> None:
    gate = asyncio.Event()
    replies = [Reply(xml(ENDPOINT)) for _ in range(40)] + [Reply(xml(ENDPOINT), gate=gate)]
    carrier = Carrier(replies)
    policy = RetryPolicy(max_attempts=1, timeout=5.0, settle_timeout=30.0)

    async def main() -> None:
        async with carrier.client(policy) as client:
            await quick_answers(client)
            assert client.timeouts.timeout() == 1.0
            refused = 0
            for n in range(100):
                try:
                    await client.update_endpoint(f"ep{n}", endpoint(n))
                except CircuitOpenError:
                    refused += 1
                except UpstreamTimeout:
                    pass
            # Adaptive timeouts first; once most attempts time out, attempts wait the whole
            # 5 s again, and five such silences in a row open the circuit.
            assert client.breaker.state == "open"
            assert refused > 0
            gate.set()
            await client.wait_abandoned()

    run(main)


def test_a_list_of_the_accounts_records_always_gets_the_whole_timeout() -> None:
    # A large account's endpoint list takes seconds however fast single records come back.
    async def slow_list(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/e911s"):
            await asyncio.sleep(3.0)
            return httpx.Response(200, content=b"<EndpointListResponse/>")
        return xml(ENDPOINT)

    async def main() -> None:
        async with client_for(slow_list, POLICY) as client:
            await quick_answers(client)
            assert client.timeouts.timeout() == 1.0
            assert (await client.list_endpoints()).endpoints == ()
            assert client.timeouts.timeout() == 1.0  # and its 3 s taught it nothing

    run(main)


class Slowing:
    """Answers every request correctly after ``latency`` seconds, which a test may change."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.requests = 0

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        await asyncio.sleep(self.latency)
        return xml(ENDPOINT)


def test_a_write_that_will_not_be_retried_waits_the_whole_timeout() -> None:
    # A fast period puts the adaptive timeout at its floor (1 s); then the carrier slows to
    # 1.5 s, well within the 5 s timeout. An attempt that no retry can follow (here a
    # policy of one attempt) cut at 1 s would turn each write into an uncertain one,
    # repaired later, for as long as the adaptive timeout lags: it gets the whole timeout,
    # and the writes succeed, one attempt each.
    carrier = Slowing(0.2)

    async def main() -> None:
        async with client_for(carrier.handler, POLICY) as client:
            await quick_answers(client)
            assert client.timeouts.timeout() == 1.0
            carrier.latency = 1.5
            before = carrier.requests
            for n in range(5):
                assert await client.update_endpoint(f"ep{n}", endpoint(n)) == ENDPOINT
            assert carrier.requests == before + 5
            await client.wait_abandoned()

    run(main)


def test_a_read_whose_retry_the_budget_would_deny_waits_the_whole_timeout() -> None:
    # The same slowed carrier; a read may be retried, but with the retry budget spent its
    # first attempt is its last: cut at the adaptive timeout, it would fail for nothing.
    carrier = Slowing(0.2)
    policy = RetryPolicy(max_attempts=3, timeout=5.0, deadline=8.0, settle_timeout=30.0)

    async def main() -> None:
        async with client_for(carrier.handler, policy) as client:
            await quick_answers(client)
            assert client.timeouts.timeout() == 1.0
            while client.budget.withdraw():
                pass  # the budget spent, as a struggling carrier's retries would spend it
            carrier.latency = 1.5
            assert await client.get_endpoint("ep1") == ENDPOINT
            await client.wait_abandoned()

    run(main)


def test_the_last_attempt_of_a_retried_read_waits_the_whole_timeout() -> None:
    carrier = Slowing(0.2)
    policy = RetryPolicy(max_attempts=2, timeout=5.0, deadline=12.0, settle_timeout=30.0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with client_for(carrier.handler, policy, retry_budget_ratio=100.0) as client:
            await quick_answers(client)
            carrier.latency = 1.5
            before, started = carrier.requests, loop.time()
            assert await client.get_endpoint("ep1") == ENDPOINT
            # The first attempt given up on after the adaptive 1 s, the second waited for.
            assert carrier.requests == before + 2
            assert loop.time() - started == pytest.approx(1.0 + 0.05 + 1.5, abs=0.2)
            await client.wait_abandoned()

    run(main)


def test_background_calls_leave_half_of_the_slots_to_reports() -> None:
    # A burst of repairs on a slow carrier (each abandoned write, settled, is re-read) must
    # not hold every slot: a device's report behind them would wait out its deadline.
    carrier = Slow(2.0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with carrier.client(max_connections=4) as client:

            async def repair(n: int) -> object:
                in_background()
                return await client.get_endpoint("ep1")  # the one the slow carrier holds

            repairs = [asyncio.ensure_future(repair(n)) for n in range(20)]
            await asyncio.sleep(0.5)
            assert carrier.in_flight == 2  # half of the 4 slots
            started = loop.time()
            assert await client.update_endpoint("ep99", endpoint(99)) == ENDPOINT
            assert loop.time() - started == pytest.approx(2.0)  # sent at once
            assert carrier.most_in_flight <= 3
            done = await asyncio.gather(*repairs, return_exceptions=True)
            # 2 at a time, 2 s each, within their 8 s deadline: the rest found no slot.
            assert sum(isinstance(d, Endpoint) for d in done) == 6
            assert all(isinstance(d, Endpoint | UpstreamTimeout) for d in done)
            assert not is_background()  # only the tasks that said so

    run(main)
