from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from gateway.bandwidth import (
    BandwidthClient,
    RetryPolicy,
    UpstreamAuthError,
    UpstreamConflict,
    UpstreamError,
    UpstreamNotFound,
    UpstreamParseError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    codec,
)
from gateway.bandwidth.models import (
    Address,
    Endpoint,
    EndpointListResponse,
    Location,
    NotificationRecipient,
)
from gateway.metrics import Metrics
from gateway.settings import Settings

T = TypeVar("T")

BASE = "https://bw.test/api"
ACCOUNT = "9900000"
USER = "api-user"
PASSWORD = "pw-Sup3r-s3cret"
ROOT = f"/api/accounts/{ACCOUNT}/e911s"

ENDPOINT = Endpoint(endpoint_id="ep1", alternate_end_user_id="dev-1", location_id="L1")
LOCATION = Location(location_id="L1", address=Address(house_number="1", zip="27606"))

ONE_ATTEMPT = RetryPolicy(max_attempts=1)
TWO_ATTEMPTS = RetryPolicy(max_attempts=2)

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def xml(record: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=codec.encode(record), headers=headers)


def rejected(status: int, code: str = "1", description: str = "no") -> httpx.Response:
    return httpx.Response(status, content=codec.encode_response_status(code, description))


@dataclass
class Upstream:
    """A scripted carrier: answers in order (the last one repeats), on a fake clock."""

    answers: list[Answer]
    latency: float = 0.0
    now: float = 1000.0
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    #: More keyword arguments for ``BandwidthClient`` (the breaker's and budget's).
    options: dict[str, Any] = field(default_factory=dict)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.now += self.latency
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    def client(
        self,
        policy: RetryPolicy | None = None,
        metrics: Metrics | None = None,
        random: Callable[[], float] = lambda: 0.5,
    ) -> BandwidthClient:
        return BandwidthClient(
            BASE,
            ACCOUNT,
            USER,
            PASSWORD,
            transport=httpx.MockTransport(self.handler),
            policy=policy or RetryPolicy(),
            metrics=metrics,
            sleep=self.sleep,
            clock=self.clock,
            random=random,
            **self.options,
        )

    def run(
        self,
        call: Callable[[BandwidthClient], Awaitable[T]],
        policy: RetryPolicy | None = None,
        metrics: Metrics | None = None,
        random: Callable[[], float] = lambda: 0.5,
    ) -> T:
        async def main() -> T:
            async with self.client(policy, metrics, random) as client:
                return await call(client)

        return asyncio.run(main())

    def fails(
        self,
        error: type[UpstreamError],
        call: Callable[[BandwidthClient], Awaitable[object]],
        policy: RetryPolicy | None = None,
        random: Callable[[], float] = lambda: 0.5,
    ) -> Any:
        with pytest.raises(error) as caught:
            self.run(call, policy, random=random)
        return caught.value


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


# -- retries ------------------------------------------------------------------------


def test_503_then_200_is_retried() -> None:
    up = Upstream([httpx.Response(503), xml(ENDPOINT)])
    metrics = Metrics()
    assert up.run(lambda c: c.get_endpoint("ep1"), metrics=metrics) == ENDPOINT
    assert len(up.requests) == 2
    assert up.sleeps == [0.5 * 0.1]  # full jitter: random() * min(max, base * 2**0)
    labels = {"operation": "getEndpoint"}
    assert sample(metrics, "dlr_upstream_retries_total", reason="5xx", **labels) == 1
    count = "dlr_upstream_request_duration_seconds_count"
    assert sample(metrics, count, status="503", **labels) == 1
    assert sample(metrics, count, status="200", **labels) == 1


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    # Six failed attempts in a row would open the circuit at five.
    up = Upstream([httpx.Response(500)], options={"breaker_failures": 10})
    policy = RetryPolicy(max_attempts=6, backoff_base=0.5, backoff_max=3.0, deadline=100)
    with pytest.raises(UpstreamUnavailable):
        up.run(lambda c: c.list_endpoints(), policy=policy, random=lambda: 1.0)
    assert up.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_429_waits_for_retry_after() -> None:
    up = Upstream([httpx.Response(429, headers={"Retry-After": "2"}), xml(ENDPOINT)])
    metrics = Metrics()
    assert up.run(lambda c: c.get_endpoint("ep1"), metrics=metrics) == ENDPOINT
    assert up.sleeps == [2.0]
    assert sample(metrics, "dlr_upstream_retries_total", operation="getEndpoint", reason="429")


def test_429_retry_after_as_an_http_date() -> None:
    headers = {
        "Retry-After": "Wed, 21 Oct 2015 07:28:03 GMT",
        "Date": "Wed, 21 Oct 2015 07:28:00 GMT",
    }
    up = Upstream([httpx.Response(429, headers=headers), xml(ENDPOINT)])
    assert up.run(lambda c: c.get_endpoint("ep1")) == ENDPOINT
    assert up.sleeps == [3.0]


def test_429_beyond_the_deadline_gives_up_at_once() -> None:
    up = Upstream([httpx.Response(429, headers={"Retry-After": "30"}), xml(ENDPOINT)])
    error = up.fails(UpstreamRateLimited, lambda c: c.get_endpoint("ep1"))
    assert error.retry_after == 30.0
    assert error.status == 429
    assert error.operation == "getEndpoint"
    assert len(up.requests) == 1
    assert up.sleeps == []


def test_503_retry_after_is_honoured() -> None:
    up = Upstream([httpx.Response(503, headers={"Retry-After": "1"}), xml(ENDPOINT)])
    assert up.run(lambda c: c.get_endpoint("ep1")) == ENDPOINT
    assert up.sleeps == [1.0]


def test_a_timeout_then_200_is_retried() -> None:
    up = Upstream([httpx.ReadTimeout("slow"), xml(ENDPOINT)])
    metrics = Metrics()
    assert up.run(lambda c: c.get_endpoint("ep1"), metrics=metrics) == ENDPOINT
    labels = {"operation": "getEndpoint"}
    assert sample(metrics, "dlr_upstream_retries_total", reason="timeout", **labels) == 1
    assert sample(
        metrics, "dlr_upstream_request_duration_seconds_count", status="timeout", **labels
    )


@pytest.mark.parametrize(
    "drop",
    [
        httpx.RemoteProtocolError("peer closed"),
        httpx.ReadError("reset"),
        httpx.ConnectError("refused"),
    ],
)
def test_a_dropped_connection_then_200_is_retried(drop: Exception) -> None:
    up = Upstream([drop, xml(LOCATION)])
    metrics = Metrics()
    assert up.run(lambda c: c.get_location("L1"), metrics=metrics) == LOCATION
    labels = {"operation": "getLocation"}
    assert sample(metrics, "dlr_upstream_retries_total", reason="connection", **labels) == 1
    assert sample(metrics, "dlr_upstream_request_duration_seconds_count", status="error", **labels)


def test_the_deadline_bounds_the_attempts() -> None:
    # Waits 1, 2, 4 fit in the 8 s deadline; the next wait (4 more) would not.
    up = Upstream([httpx.Response(503)])
    policy = RetryPolicy(max_attempts=10, deadline=8.0, backoff_base=1.0, backoff_max=4.0)
    error = up.fails(UpstreamUnavailable, lambda c: c.list_locations(), policy, lambda: 1.0)
    assert error.status == 503
    assert len(up.requests) == 4
    assert up.sleeps == [1.0, 2.0, 4.0]
    assert up.now - 1000.0 <= 8.0


def test_the_deadline_shrinks_the_last_attempts_timeout_and_ends_in_a_timeout() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        up.now += request.extensions["timeout"]["read"]  # the attempt uses up its whole budget
        raise httpx.ReadTimeout("slow", request=request)

    up = Upstream([slow])
    policy = RetryPolicy(timeout=5.0, deadline=8.0, backoff_base=0.1)
    error = up.fails(UpstreamTimeout, lambda c: c.get_endpoint("ep1"), policy)
    budgets = [r.extensions["timeout"]["read"] for r in up.requests]
    assert budgets == [5.0, pytest.approx(8.0 - 5.0 - 0.05)]
    assert up.now - 1000.0 == pytest.approx(8.0)
    assert isinstance(error, TimeoutError)
    assert isinstance(error, UpstreamTimeout)
    assert not error.ambiguous  # a GET has no effect to be unsure about


def test_max_attempts_is_respected() -> None:
    up = Upstream([httpx.Response(502)])
    up.fails(UpstreamUnavailable, lambda c: c.get_endpoint("ep1"), RetryPolicy(max_attempts=3))
    assert len(up.requests) == 3
    assert len(up.sleeps) == 2
    up = Upstream([httpx.Response(502)])
    up.fails(UpstreamUnavailable, lambda c: c.get_endpoint("ep1"), ONE_ATTEMPT)
    assert len(up.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 418, 422])
def test_4xx_is_never_retried(status: int) -> None:
    up = Upstream([rejected(status), xml(ENDPOINT)])
    up.fails(UpstreamRejected, lambda c: c.update_endpoint("ep1", ENDPOINT))
    assert len(up.requests) == 1


def test_408_is_the_carrier_timing_out_not_a_refusal() -> None:
    """A 408 (the carrier, or its balancer, gave up waiting for our request) refuses
    nothing: the request was not acted on, so it is retried, and in the end it is the
    carrier's unavailability (503 to a device), never a refusal of the record (422)."""
    up = Upstream([rejected(408), xml(ENDPOINT)])
    assert up.run(lambda c: c.update_endpoint("ep1", ENDPOINT)) == ENDPOINT
    assert len(up.requests) == 2
    up = Upstream([rejected(408)])
    error = up.fails(UpstreamUnavailable, lambda c: c.update_endpoint("ep1", ENDPOINT))
    assert not isinstance(error, UpstreamRejected) and not error.ambiguous


# -- creates -------------------------------------------------------------------------


def test_a_create_without_an_id_is_not_retried() -> None:
    up = Upstream([httpx.Response(503), xml(LOCATION, 201)])
    error = up.fails(UpstreamUnavailable, lambda c: c.create_location(Location(description="x")))
    assert len(up.requests) == 1
    assert error.ambiguous
    assert error.operation == "createLocation"
    assert error.status == 503


def test_a_create_with_an_id_is_retried_and_409_on_the_retry_is_success() -> None:
    up = Upstream([httpx.Response(503), rejected(409, "2", "already exists")])
    assert up.run(lambda c: c.create_location(LOCATION)) == LOCATION
    assert len(up.requests) == 2
    assert up.requests[0].content == up.requests[1].content == codec.encode(LOCATION)


def test_a_create_with_an_id_after_a_timeout_then_409_is_success() -> None:
    up = Upstream([httpx.ReadTimeout("slow"), httpx.Response(409)])
    assert up.run(lambda c: c.create_endpoint(ENDPOINT)) == ENDPOINT


def test_409_on_the_first_attempt_is_a_conflict() -> None:
    up = Upstream([rejected(409, "2", "already exists")])
    error = up.fails(UpstreamConflict, lambda c: c.create_location(LOCATION))
    assert (error.code, error.description, error.status) == ("2", "already exists", 409)
    assert not error.ambiguous


def test_409_after_a_retry_whose_first_attempt_had_no_effect_is_a_conflict() -> None:
    # A 429 or a refused connection applied nothing, so the record existed before this call.
    up = Upstream([httpx.Response(429), httpx.ConnectError("refused"), httpx.Response(409)])
    up.fails(UpstreamConflict, lambda c: c.create_location(LOCATION))
    assert len(up.requests) == 3


def test_a_create_answer_is_read_or_the_sent_record_returned() -> None:
    created = Location(location_id="L1", status="GEOCODED", latitude=35.5, longitude=-78.5)
    assert Upstream([xml(created, 201)]).run(lambda c: c.create_location(LOCATION)) == created
    sent = NotificationRecipient(email_address="a@example.com")
    assert (
        Upstream([httpx.Response(201)]).run(lambda c: c.create_notification_recipient(sent)) == sent
    )


# -- the status table ------------------------------------------------------------------


def test_404_is_not_found() -> None:
    error = Upstream([rejected(404, "5", "unknown")]).fails(
        UpstreamNotFound, lambda c: c.get_location("L9")
    )
    assert (error.status, error.operation) == (404, "getLocation")


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_an_auth_error(status: int) -> None:
    Upstream([httpx.Response(status)]).fails(UpstreamAuthError, lambda c: c.list_endpoints())


def test_refused_credentials_are_logged_as_an_error_once_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The operator's trouble, said loudly but once: not once per call (or per device), and
    once more when the credentials are refused again after the carrier took them."""
    answers: list[Answer] = [httpx.Response(401)] * 3 + [xml(ENDPOINT), httpx.Response(403)]
    up = Upstream(answers, latency=0.1)

    async def calls(client: BandwidthClient) -> None:
        for _ in answers:
            with contextlib.suppress(UpstreamAuthError):
                await client.get_endpoint("ep1")

    with caplog.at_level(logging.ERROR, logger="gateway.bandwidth.client"):
        up.run(calls, ONE_ATTEMPT)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and all("refuses the gateway's credentials" in e for e in errors)
    assert "HTTP 401" in errors[0] and "HTTP 403" in errors[1]


def test_400_carries_the_carriers_code_and_description() -> None:
    up = Upstream([rejected(400, "12345", "Address could not be validated")])
    error = up.fails(UpstreamRejected, lambda c: c.create_location(LOCATION))
    assert type(error) is UpstreamRejected
    assert error.code == "12345"
    assert error.description == "Address could not be validated"
    assert error.status == 400
    assert "Address could not be validated" in str(error)


def test_an_error_body_on_a_200_is_a_rejection() -> None:
    body = (
        b"<LocationResponse><ResponseStatus><ErrorCode>7</ErrorCode>"
        b"<Description>bad</Description></ResponseStatus></LocationResponse>"
    )
    up = Upstream([httpx.Response(200, content=body)])
    error = up.fails(UpstreamRejected, lambda c: c.update_location("L1", LOCATION))
    assert (error.status, error.code, error.description) == (200, "7", "bad")
    assert len(up.requests) == 1


@pytest.mark.parametrize(
    "status",
    [
        b"<ResponseStatus/>",
        b"<ResponseStatus><ErrorCode> </ErrorCode><Description/></ResponseStatus>",
    ],
    ids=["empty", "blank-code"],
)
def test_a_200_whose_response_status_has_no_error_code_refuses_nothing(status: bytes) -> None:
    """Bandwidth names an error by its code: a 2xx whose ``ResponseStatus`` has none is the
    write taken, read as any answer (the record it holds, or the one sent when it holds none)."""
    held = b"<Endpoint><endpointId>ep1</endpointId><locationId>L2</locationId>"
    up = Upstream([httpx.Response(200, content=held + status + b"</Endpoint>")])
    answered = up.run(lambda c: c.update_endpoint("ep1", ENDPOINT))
    assert (answered.endpoint_id, answered.location_id) == ("ep1", "L2")
    up = Upstream([httpx.Response(201, content=status)])
    assert up.run(lambda c: c.create_endpoint(ENDPOINT)) == ENDPOINT


def test_a_200_whose_response_status_has_words_but_no_code_is_an_uncertain_write() -> None:
    """Words with no code say nothing certain: never a refusal (that would undo the device's
    report while the carrier may hold it), but an unreadable answer, a write's uncertain."""
    body = b"<ResponseStatus><Description>Location updated</Description></ResponseStatus>"
    up = Upstream([httpx.Response(200, content=body)])
    error = up.fails(UpstreamParseError, lambda c: c.update_endpoint("ep1", ENDPOINT))
    assert error.ambiguous and error.status == 200 and "Location updated" in error.message
    assert len(up.requests) == 1
    read = Upstream([httpx.Response(200, content=body)])
    assert not read.fails(UpstreamParseError, lambda c: c.get_endpoint("ep1")).ambiguous


@pytest.mark.parametrize(
    "body", [b"<html><body>Welcome", b"", b"<!DOCTYPE x [<!ENTITY e 'x'>]><x>&e;</x>"]
)
def test_an_unreadable_200_is_a_parse_error(body: bytes) -> None:
    up = Upstream([httpx.Response(200, content=body)])
    up.fails(UpstreamParseError, lambda c: c.get_endpoint("ep1"))
    assert len(up.requests) == 1


def test_an_oversized_200_is_a_parse_error() -> None:
    body = b"<Endpoint><callerName>" + b"x" * codec.MAX_XML_BYTES + b"</callerName></Endpoint>"
    Upstream([httpx.Response(200, content=body)]).fails(
        UpstreamParseError, lambda c: c.get_endpoint("ep1")
    )


def test_a_bad_field_in_a_200_is_a_parse_error() -> None:
    body = b"<Location><latitude>north</latitude></Location>"
    Upstream([httpx.Response(200, content=body)]).fails(
        UpstreamParseError, lambda c: c.get_location("L1")
    )


def test_an_unreadable_error_body_still_maps_by_status() -> None:
    Upstream([httpx.Response(404, content=b"<html>")]).fails(
        UpstreamNotFound, lambda c: c.get_endpoint("ep1")
    )


# -- ambiguity ----------------------------------------------------------------------------


def test_a_timeout_on_a_put_is_ambiguous() -> None:
    up = Upstream([httpx.ReadTimeout("slow")])
    error = up.fails(UpstreamTimeout, lambda c: c.update_endpoint("ep1", ENDPOINT), ONE_ATTEMPT)
    assert error.ambiguous
    assert error.operation == "updateEndpoint"


def test_a_refused_connection_is_not_ambiguous() -> None:
    up = Upstream([httpx.ConnectError("refused")])
    error = up.fails(
        UpstreamUnavailable,
        lambda c: c.update_endpoint("ep1", ENDPOINT),
        ONE_ATTEMPT,
    )
    assert not error.ambiguous
    up = Upstream([httpx.ConnectTimeout("slow")])
    error = up.fails(UpstreamTimeout, lambda c: c.delete_location("L1"), ONE_ATTEMPT)
    assert not error.ambiguous


def test_a_dropped_connection_after_sending_is_ambiguous() -> None:
    up = Upstream([httpx.RemoteProtocolError("peer closed")])
    error = up.fails(UpstreamUnavailable, lambda c: c.create_endpoint(Endpoint(caller_name="x")))
    assert error.ambiguous
    assert len(up.requests) == 1


def test_ambiguity_is_kept_across_attempts() -> None:
    up = Upstream([httpx.ReadTimeout("slow"), httpx.ConnectError("refused")])
    error = up.fails(
        UpstreamUnavailable,
        lambda c: c.update_location("L1", LOCATION),
        TWO_ATTEMPTS,
    )
    assert error.ambiguous


def test_reads_are_never_ambiguous() -> None:
    up = Upstream([httpx.Response(503)])
    assert not up.fails(UpstreamUnavailable, lambda c: c.get_endpoint("ep1")).ambiguous


def test_a_bare_attempt_timeout_counts_as_a_timeout() -> None:
    # What asyncio.timeout raises when a transport without timeouts (ASGI) hangs.
    up = Upstream([TimeoutError()])
    error = up.fails(UpstreamTimeout, lambda c: c.update_location("L1", LOCATION), ONE_ATTEMPT)
    assert error.ambiguous


def test_404_on_a_delete_retry_after_an_ambiguous_attempt_is_success() -> None:
    up = Upstream([httpx.ReadTimeout("slow"), httpx.Response(404)])
    assert up.run(lambda c: c.delete_endpoint("ep1")) is None
    assert len(up.requests) == 2
    up = Upstream([httpx.Response(404)])
    up.fails(UpstreamNotFound, lambda c: c.delete_endpoint("ep1"))


# -- requests ----------------------------------------------------------------------------------


def test_basic_auth_and_xml_headers() -> None:
    up = Upstream([httpx.Response(200)])
    up.run(lambda c: c.update_endpoint("ep1", ENDPOINT))
    (request,) = up.requests
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {token}"
    assert request.headers["Content-Type"] == "application/xml"
    assert request.headers["Accept"] == "application/xml"
    assert request.method == "PUT"
    assert request.url == f"https://bw.test{ROOT}/ep1"


def test_the_urls_of_all_operations() -> None:
    up = Upstream([httpx.Response(200, content=b"<x/>")])

    async def everything(c: BandwidthClient) -> None:
        await c.list_endpoints()
        await c.create_endpoint(ENDPOINT)
        await c.get_endpoint("ep1")
        await c.update_endpoint("ep1", ENDPOINT)
        await c.delete_endpoint("ep1")
        await c.list_locations()
        await c.create_location(LOCATION)
        await c.get_location("L1")
        await c.update_location("L1", LOCATION)
        await c.delete_location("L1")
        await c.list_notification_recipients()
        await c.create_notification_recipient(NotificationRecipient(id="n1"))

    up.run(everything)
    assert [(r.method, r.url.path) for r in up.requests] == [
        ("GET", ROOT),
        ("POST", ROOT),
        ("GET", f"{ROOT}/ep1"),
        ("PUT", f"{ROOT}/ep1"),
        ("DELETE", f"{ROOT}/ep1"),
        ("GET", f"{ROOT}/locations"),
        ("POST", f"{ROOT}/locations"),
        ("GET", f"{ROOT}/locations/L1"),
        ("PUT", f"{ROOT}/locations/L1"),
        ("DELETE", f"{ROOT}/locations/L1"),
        ("GET", f"{ROOT}/notificationRecipients"),
        ("POST", f"{ROOT}/notificationRecipients"),
    ]


def test_ids_are_percent_encoded() -> None:
    up = Upstream([xml(Endpoint(endpoint_id="a:b@c+d=e", location_id="L1"))])
    up.run(lambda c: c.get_endpoint("a:b@c+d=e"))
    assert up.requests[0].url.raw_path == f"{ROOT}/a%3Ab%40c%2Bd%3De".encode()


@pytest.mark.parametrize(
    "bad",
    ["locations", "Locations", "notificationRecipients", "NOTIFICATIONRECIPIENTS", "../x",
     "a/b", "", ".", "..", "x" * 65, "a b", "a%2Fb", "a?b", "a#b", "é", "a\\b"],
)  # fmt: skip
def test_unsafe_endpoint_ids_are_refused_before_any_request(bad: str) -> None:
    up = Upstream([xml(ENDPOINT)])
    for call in (
        lambda c: c.get_endpoint(bad),
        lambda c: c.update_endpoint(bad, Endpoint()),
        lambda c: c.delete_endpoint(bad),
        lambda c: c.create_endpoint(Endpoint(endpoint_id=bad)),
    ):
        with pytest.raises(ValueError, match="refusing"):
            up.run(call)
    assert up.requests == []


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x" * 65, ".."])
def test_unsafe_location_ids_are_refused_before_any_request(bad: str) -> None:
    up = Upstream([xml(LOCATION)])
    for call in (
        lambda c: c.get_location(bad),
        lambda c: c.update_location(bad, Location()),
        lambda c: c.delete_location(bad),
        lambda c: c.create_location(Location(location_id=bad)),
        lambda c: c.create_notification_recipient(NotificationRecipient(id=bad)),
    ):
        with pytest.raises(ValueError, match="refusing"):
            up.run(call)
    assert up.requests == []


def test_a_location_may_be_called_locations() -> None:
    up = Upstream([xml(Location(location_id="locations", address=LOCATION.address))])
    up.run(lambda c: c.get_location("locations"))
    assert up.requests[0].url.path == f"{ROOT}/locations/locations"


def test_an_unsafe_account_id_is_refused() -> None:
    with pytest.raises(ValueError, match="account"):
        BandwidthClient(BASE, "1/../2", USER, PASSWORD)


# -- answers to writes --------------------------------------------------------------------------


def test_an_update_without_a_body_returns_the_record_sent_with_its_id() -> None:
    up = Upstream([httpx.Response(200)])
    sent = Endpoint(alternate_end_user_id="dev-1", location_id="L2")
    assert up.run(lambda c: c.update_endpoint("ep1", sent)) == Endpoint(
        endpoint_id="ep1", alternate_end_user_id="dev-1", location_id="L2"
    )
    assert b"<endpointId>ep1</endpointId>" in up.requests[0].content


def test_an_update_with_a_body_returns_the_carriers_copy() -> None:
    stored = Location(location_id="L1", status="GEOCODED", latitude=1.0, longitude=2.0)
    assert Upstream([xml(stored)]).run(lambda c: c.update_location("L1", LOCATION)) == stored


def test_an_update_whose_body_names_another_id_is_refused() -> None:
    up = Upstream([httpx.Response(200)])
    with pytest.raises(ValueError, match="differs"):
        up.run(lambda c: c.update_endpoint("ep2", ENDPOINT))
    assert up.requests == []


def test_a_read_answered_with_another_record_is_unreadable() -> None:
    """A carrier (or a cache before it) answering ``GET /endpoints/ep1`` with endpoint ep2's
    record: taken as ep1's, a repair could confirm a binding the carrier does not hold."""
    other = Endpoint(endpoint_id="ep2", alternate_end_user_id="dev-2", location_id="L1")
    up = Upstream([xml(other)])
    assert isinstance(up.fails(UpstreamError, lambda c: c.get_endpoint("ep1")), UpstreamParseError)
    moved = Location(location_id="L2", address=Address(house_number="9", zip="27606"))
    up = Upstream([xml(moved)])
    error = up.fails(UpstreamError, lambda c: c.get_location("L1"))
    assert isinstance(error, UpstreamParseError)
    assert "L2" in error.message
    # An answer that names no ID is read as before.
    bare = Endpoint(alternate_end_user_id="dev-1", location_id="L1")
    assert Upstream([xml(bare)]).run(lambda c: c.get_endpoint("ep1")) == bare


def test_lists_are_read() -> None:
    listing = EndpointListResponse(total_count=1, endpoints=(ENDPOINT,))
    assert Upstream([xml(listing)]).run(lambda c: c.list_endpoints()) == listing


# -- bookkeeping -----------------------------------------------------------------------------------


def test_last_answer_at_tracks_any_http_answer() -> None:
    up = Upstream([httpx.ConnectError("refused"), httpx.Response(500), xml(ENDPOINT)])
    up.latency = 0.25

    async def main() -> list[float | None]:
        seen: list[float | None] = []
        async with up.client(ONE_ATTEMPT) as client:
            seen.append(client.last_answer_at)
            with pytest.raises(UpstreamUnavailable):
                await client.get_endpoint("ep1")
            seen.append(client.last_answer_at)
            with pytest.raises(UpstreamUnavailable):
                await client.get_endpoint("ep1")
            seen.append(client.last_answer_at)
        return seen

    assert run(main()) == [None, None, 1000.5]


def test_the_password_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    up = Upstream([httpx.ReadTimeout("slow"), httpx.Response(503), rejected(400)])
    with pytest.raises(UpstreamRejected) as caught:
        up.run(lambda c: c.get_endpoint("ep1"))
    client = up.client()
    shown = [repr(client), str(client), caplog.text, repr(caught.value), str(caught.value)]
    assert all(PASSWORD not in text for text in shown)
    assert "Retrying" in caplog.text or "retrying" in caplog.text
    run(client.aclose())


def test_from_settings() -> None:
    settings = Settings(
        bandwidth_base_url="https://bw.example/api",
        bandwidth_account_id=ACCOUNT,
        bandwidth_username=USER,
        bandwidth_password=Secret(PASSWORD),
        upstream_timeout=2.0,
        upstream_deadline=3.0,
        upstream_max_attempts=2,
        upstream_backoff_base=0.2,
        upstream_backoff_max=1.0,
    )
    client = BandwidthClient.from_settings(settings)
    assert client.policy == RetryPolicy(2, 2.0, 3.0, 0.2, 1.0)
    assert client.base_url == "https://bw.example/api"
    run(client.aclose())

    plain = Settings(bandwidth_base_url="http://bw.example/api", bandwidth_account_id=ACCOUNT)
    with pytest.raises(ValueError, match="ALLOW_INSECURE"):
        BandwidthClient.from_settings(plain)
    for url, insecure in (
        ("http://127.0.0.1:8080/sandbox/bandwidth/api", False),
        ("http://localhost/api", False),
        ("http://[::1]/api", False),
        ("http://bw.example/api", True),
    ):
        ok = Settings(
            bandwidth_base_url=url, bandwidth_account_id=ACCOUNT, upstream_allow_insecure=insecure
        )
        run(BandwidthClient.from_settings(ok).aclose())


def test_retry_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="deadline"):
        RetryPolicy(deadline=0)


# -- in-process over ASGI -----------------------------------------------------------


def test_works_in_process_under_a_base_path_over_asgi() -> None:
    seen: list[str] = []

    async def endpoint(request: Request) -> Response:
        seen.append(request.url.path)
        assert request.headers["authorization"].startswith("Basic ")
        return Response(codec.encode(ENDPOINT), media_type="application/xml")

    async def update(request: Request) -> Response:
        seen.append(request.url.path)
        assert codec.decode(Endpoint, await request.body()) == ENDPOINT
        return Response(status_code=200)

    app = Starlette(
        routes=[
            Mount(
                "/api/accounts/{account}/e911s",
                routes=[
                    Route("/{endpoint_id}", endpoint, methods=["GET"]),
                    Route("/{endpoint_id}", update, methods=["PUT"]),
                ],
            )
        ]
    )

    async def main() -> tuple[Endpoint, Endpoint]:
        async with BandwidthClient(
            "http://sim/api", ACCOUNT, USER, PASSWORD, transport=httpx.ASGITransport(app=app)
        ) as client:
            return await client.get_endpoint("ep1"), await client.update_endpoint("ep1", ENDPOINT)

    assert run(main()) == (ENDPOINT, ENDPOINT)
    assert seen == [f"{ROOT}/ep1", f"{ROOT}/ep1"]


# -- cookies ----------------------------------------------------------------------------


def test_a_cookie_the_carrier_sets_is_sent_back_as_httpx_would() -> None:
    """The client reads an answer's cookies only when it sets one (a shortcut): what it
    keeps and sends is still what httpx keeps and sends."""
    set_cookie = xml(ENDPOINT, **{"Set-Cookie": "lb=node-2; Path=/"})
    up = Upstream([xml(ENDPOINT), set_cookie, xml(ENDPOINT), xml(ENDPOINT)])

    async def calls(client: BandwidthClient) -> None:
        for _ in range(4):
            await client.get_endpoint("ep1")

    up.run(calls)
    assert [r.headers.get("cookie") for r in up.requests] == [None, None, "lb=node-2", "lb=node-2"]
