"""The circuit breaker and the retry budget: alone on a fake clock, and inside the client."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import pytest
from starlette.datastructures import Secret

from gateway.bandwidth import (
    AttemptTimeouts,
    BandwidthClient,
    CircuitBreaker,
    CircuitOpenError,
    RetryBudget,
    RetryPolicy,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.metrics import Metrics
from gateway.settings import Settings

from .test_client import (
    ACCOUNT,
    ENDPOINT,
    ONE_ATTEMPT,
    PASSWORD,
    USER,
    Answer,
    Upstream,
    rejected,
    xml,
)

#: No retries, and the budget out of the way: each call is exactly one attempt.
NO_BUDGET = {"retry_budget_ratio": 100.0}


def state(client: BandwidthClient) -> str:
    """The breaker's state, read afresh (so that a type checker does not narrow it)."""
    return client.breaker.state


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the breaker alone ------------------------------------------------------------------


def test_the_breaker_opens_after_the_threshold_then_lets_one_trial_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 10.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert (breaker.state, breaker.failures, breaker.open_until) == ("closed", 2, None)
    assert breaker.allow()
    breaker.failure()
    assert (breaker.state, breaker.open_until) == ("open", 1010.0)
    assert not breaker.allow()
    clock.now = 1004.0
    assert breaker.retry_after() == 6.0
    clock.now = 1010.0
    assert breaker.state == "half_open"
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # only one at a time
    assert breaker.retry_after() == 0.0
    breaker.success()
    assert (breaker.state, breaker.failures, breaker.open_until) == ("closed", 0, None)


def test_a_failed_trial_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    breaker.failure()
    clock.now += 10
    assert breaker.allow()
    breaker.failure()
    assert (breaker.state, breaker.open_until) == ("open", 1020.0)


def test_a_trial_without_a_verdict_frees_the_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    breaker.failure()
    clock.now += 10
    assert breaker.allow()
    breaker.release()
    assert breaker.state == "half_open"
    assert breaker.allow()


def test_failures_from_before_the_opening_do_not_extend_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    breaker.failure()
    clock.now += 5
    breaker.failure()
    assert breaker.open_until == 1010.0


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(3, clock=Clock())
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed"


def test_a_carrier_that_answers_most_attempts_is_not_cut_off_by_a_run_of_failures() -> None:
    # 30 % of attempts fail: at this rate a run of five comes by chance (here: every 20th
    # attempt starts one), and retries would find the 70 % the carrier answers.
    clock = Clock()
    breaker = CircuitBreaker(5, 10.0, clock=clock)
    for n in range(1, 301):
        clock.now += 0.01
        assert breaker.allow()
        if n % 20 in (0, 1, 2, 3, 4, 7):
            breaker.failure()
        else:
            breaker.success()
    assert breaker.state == "closed"
    assert breaker.failure_share() == pytest.approx(0.3)


def test_a_run_of_failures_opens_once_they_are_half_of_the_recent_attempts() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5, 10.0, clock=clock)
    for _ in range(6):
        breaker.success()
    for _ in range(5):
        breaker.failure()
    assert breaker.state == "closed"  # 5 of 11
    breaker.failure()
    assert breaker.state == "open"  # 6 of 12


def test_answers_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5, 10.0, window=10.0, clock=clock)
    for _ in range(100):
        breaker.success()
    clock.now += 11
    for _ in range(5):
        breaker.failure()
    assert breaker.state == "open"


def test_the_breaker_is_validated() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(0)
    with pytest.raises(ValueError, match="cooldown"):
        CircuitBreaker(1, -1)
    with pytest.raises(ValueError, match="window"):
        CircuitBreaker(1, window=0)


# -- the breaker in the client ------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(503),
        httpx.Response(500),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("peer closed"),
    ],
)
def test_five_failed_attempts_open_the_circuit_and_calls_fail_without_a_request(
    failure: Any,
) -> None:
    up = Upstream([failure], options=NO_BUDGET)

    async def main() -> CircuitOpenError:
        async with up.client(ONE_ATTEMPT) as client:
            for _ in range(5):
                with pytest.raises((UpstreamUnavailable, UpstreamTimeout)):
                    await client.get_endpoint("ep1")
            assert client.breaker.state == "open"
            assert client.breaker.open_until == up.now + 10.0
            up.now += 4
            with pytest.raises(CircuitOpenError) as caught:
                await client.update_endpoint("ep1", ENDPOINT)
            return caught.value

    error = asyncio.run(main())
    assert len(up.requests) == 5  # the sixth call sent nothing
    assert isinstance(error, UpstreamUnavailable)
    assert error.retry_after == 6.0
    assert "circuit" in str(error)
    assert error.operation == "updateEndpoint"
    assert not error.ambiguous


def test_after_the_cooldown_one_trial_closes_the_circuit_on_success() -> None:
    answers: list[Answer] = [httpx.Response(503)] * 5
    up = Upstream([*answers, xml(ENDPOINT)], options=NO_BUDGET)

    async def main() -> None:
        async with up.client(ONE_ATTEMPT) as client:
            for _ in range(5):
                with pytest.raises(UpstreamUnavailable):
                    await client.get_endpoint("ep1")
            up.now += 10
            assert state(client) == "half_open"
            assert await client.get_endpoint("ep1") == ENDPOINT
            assert state(client) == "closed"
            assert client.breaker.open_until is None

    asyncio.run(main())
    assert len(up.requests) == 6


def test_a_failed_trial_reopens_the_circuit() -> None:
    up = Upstream([httpx.Response(503)], options=NO_BUDGET)

    async def main() -> None:
        async with up.client(ONE_ATTEMPT) as client:
            for _ in range(5):
                with pytest.raises(UpstreamUnavailable):
                    await client.list_locations()
            up.now += 10
            with pytest.raises(UpstreamUnavailable) as trial:
                await client.list_locations()
            assert not isinstance(trial.value, CircuitOpenError)  # it went out
            assert client.breaker.state == "open"
            assert client.breaker.open_until == up.now + 10
            with pytest.raises(CircuitOpenError):
                await client.list_locations()

    asyncio.run(main())
    assert len(up.requests) == 6


@pytest.mark.parametrize(
    "answer",
    [
        rejected(400),
        rejected(404),
        rejected(409),
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(200, content=b"<html>"),  # unreadable, but an answer
    ],
)
def test_answers_other_than_5xx_do_not_trip_the_circuit(answer: httpx.Response) -> None:
    # Four failures, then the carrier says no, then four more: never five in a row.
    failures: list[Answer] = [httpx.Response(503)] * 4
    up = Upstream([*failures, answer, *failures], options=NO_BUDGET)

    async def main() -> None:
        async with up.client(ONE_ATTEMPT) as client:
            for _ in range(9):
                with pytest.raises(Exception):  # noqa: B017, PT011 - any error of the nine
                    await client.get_endpoint("ep1")
            assert client.breaker.state == "closed"
            assert client.breaker.failures == 4

    asyncio.run(main())
    assert len(up.requests) == 9


def test_a_429_alone_never_opens_the_circuit() -> None:
    up = Upstream([httpx.Response(429)], options=NO_BUDGET)

    async def main() -> None:
        async with up.client(ONE_ATTEMPT) as client:
            for _ in range(20):
                with pytest.raises(UpstreamRateLimited):
                    await client.get_endpoint("ep1")
            assert client.breaker.state == "closed"

    asyncio.run(main())


def test_the_circuit_opening_mid_call_stops_its_retries_with_the_last_error() -> None:
    up = Upstream([httpx.ReadTimeout("slow")], options=NO_BUDGET)
    policy = RetryPolicy(max_attempts=10, deadline=100)
    error = up.fails(UpstreamTimeout, lambda c: c.update_endpoint("ep1", ENDPOINT), policy)
    assert len(up.requests) == 5
    assert error.ambiguous  # the real error, with what it says about the write
    assert not isinstance(error, CircuitOpenError)


def test_the_circuit_state_gauge_reads_the_clock() -> None:
    metrics = Metrics()
    up = Upstream([httpx.Response(503)], options={"breaker_failures": 1})

    def state() -> float | None:
        return metrics.registry.get_sample_value("dlr_upstream_circuit_state")

    async def main() -> None:
        async with up.client(ONE_ATTEMPT, metrics) as client:
            assert state() == 0
            with pytest.raises(UpstreamUnavailable):
                await client.get_endpoint("ep1")
            assert state() == 2
            up.now += 10
            assert state() == 1  # no call needed: half-open is a matter of time

    asyncio.run(main())


def test_breaker_budget_and_settle_timeout_come_from_the_settings() -> None:
    configured = {
        "upstream_settle_timeout": 30.0,
        "breaker_failures": 3,
        "breaker_cooldown": 20.0,
        "retry_budget_ratio": 0.5,
    }
    base = Settings(
        bandwidth_base_url="https://bw.example/api",
        bandwidth_account_id=ACCOUNT,
        bandwidth_username=USER,
        bandwidth_password=Secret(PASSWORD),
    )
    client = BandwidthClient.from_settings(base)  # the declared defaults
    assert (client.breaker.failure_threshold, client.breaker.cooldown) == (5, 10.0)
    assert client.budget.ratio == 0.2
    assert client.policy.settle_timeout == 60.0
    asyncio.run(client.aclose())

    client = BandwidthClient.from_settings(dataclasses.replace(base, **configured))
    assert (client.breaker.failure_threshold, client.breaker.cooldown) == (3, 20.0)
    assert client.budget.ratio == 0.5
    assert client.policy.settle_timeout == 30.0
    asyncio.run(client.aclose())


# -- the budget alone ---------------------------------------------------------------------------


def test_the_budget_starts_with_a_burst_and_counts_what_it_denies() -> None:
    budget = RetryBudget(0.2, 2.0, clock=Clock())
    assert all(budget.withdraw() for _ in range(10))
    assert not budget.withdraw()
    assert budget.denied == 1
    for _ in range(5):
        budget.deposit()  # five calls earn one retry
    assert budget.withdraw()
    assert not budget.withdraw()
    assert budget.denied == 2


def test_the_budget_accrues_with_time_up_to_its_cap() -> None:
    clock = Clock()
    budget = RetryBudget(0.2, 2.0, clock=clock)
    while budget.withdraw():
        pass
    clock.now += 1.0
    assert budget.tokens == pytest.approx(2.0)
    clock.now += 3600
    assert budget.tokens == budget.cap == 30.0
    for _ in range(100):
        budget.deposit()
    assert budget.tokens == 30.0


def test_the_budget_is_validated() -> None:
    with pytest.raises(ValueError, match="negative"):
        RetryBudget(-0.1)


# -- the budget in the client ------------------------------------------------------------------


def test_a_dead_carrier_sees_at_most_a_fifth_more_traffic_from_retries() -> None:
    up = Upstream([httpx.Response(503)], options={"breaker_failures": 10**6})
    policy = RetryPolicy(max_attempts=4, deadline=100)

    async def main() -> RetryBudget:
        async with up.client(policy, random=lambda: 0.0) as client:
            for _ in range(100):
                with pytest.raises(UpstreamUnavailable) as caught:
                    await client.update_endpoint("ep1", ENDPOINT)
                assert caught.value.status == 503
                assert caught.value.ambiguous
            return client.budget

    budget = asyncio.run(main())
    assert up.now == 1000.0  # no time passed: no tokens accrued
    # Without a budget: 400 requests. With it: 100 calls, 10 tokens to start, 0.2 a call.
    assert 100 + 25 <= len(up.requests) <= 100 + 10 + 0.2 * 100
    assert budget.denied >= 70


def test_retries_resume_as_tokens_accrue() -> None:
    up = Upstream([httpx.Response(503)], options={"breaker_failures": 10**6})
    policy = RetryPolicy(max_attempts=4, deadline=100)

    async def main() -> None:
        async with up.client(policy, random=lambda: 0.0) as client:
            while client.budget.withdraw():
                pass
            with pytest.raises(UpstreamUnavailable):
                await client.get_endpoint("ep1")
            assert len(up.requests) == 1  # no token: no retry
            up.now += 1.0  # two tokens
            with pytest.raises(UpstreamUnavailable):
                await client.get_endpoint("ep1")
            assert len(up.requests) == 1 + 3  # the attempt and two retries

    asyncio.run(main())


def test_a_call_whose_retry_the_budget_denies_keeps_its_ambiguity() -> None:
    up = Upstream([httpx.ReadTimeout("slow"), httpx.Response(404)])

    async def main() -> None:
        async with up.client() as client:
            while client.budget.withdraw():
                pass
            with pytest.raises(UpstreamTimeout) as caught:
                await client.delete_endpoint("ep1")
            assert caught.value.ambiguous
            assert client.budget.denied == 2  # the one above, and the call's retry

    asyncio.run(main())
    assert len(up.requests) == 1


# -- attempt timeouts -------------------------------------------------------------------------


def test_attempt_timeouts_follow_the_carriers_latency_between_floor_and_ceiling() -> None:
    timeouts = AttemptTimeouts(5.0, 1.0)
    for _ in range(31):
        timeouts.answered(0.2)
    assert timeouts.timeout() == 5.0  # not enough answers seen yet
    timeouts.answered(0.2)
    assert timeouts.timeout() == 1.0  # 4 x 0.2 s, raised to the floor
    for _ in range(256):
        timeouts.answered(0.6)
    assert timeouts.timeout() == pytest.approx(2.4)
    for _ in range(256):
        timeouts.answered(2.0)
    assert timeouts.timeout() == 5.0  # never past the configured timeout


def test_a_held_third_of_the_calls_keeps_the_timeout_short() -> None:
    timeouts = AttemptTimeouts(5.0, 1.0)
    for n in range(600):
        if n % 3 == 0:
            timeouts.timed_out()
        else:
            timeouts.answered(0.2)
    assert timeouts.timeout() == 1.0


def test_when_most_attempts_time_out_they_get_the_whole_timeout_again() -> None:
    # The carrier slowed down past the adaptive timeout: only waiting shows how slow it is.
    timeouts = AttemptTimeouts(5.0, 1.0)
    for _ in range(100):
        timeouts.answered(0.1)
    assert timeouts.timeout() == 1.0
    for _ in range(101):
        timeouts.timed_out()
    assert timeouts.timeout() == 5.0
    for _ in range(140):
        timeouts.answered(3.0)  # the slow answers, now waited for
    assert timeouts.timeout() == 5.0
    assert AttemptTimeouts(5.0, 9.0).floor == 5.0
    with pytest.raises(ValueError, match="greater than 0"):
        AttemptTimeouts(0)
