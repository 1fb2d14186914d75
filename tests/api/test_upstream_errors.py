"""The one table from the upstream's error tree to the gateway's answers, end to end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from gateway.api.problems import MAX_RETRY_AFTER
from gateway.app import create_app
from gateway.settings import Settings
from tests.api.conftest import ADMIN_KEY
from tests.api.test_admin import assert_problem
from tests.harness import EMPIRE_STATE, WHITE_HOUSE, gateway, gateway_settings, report

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def upstream(settings: Settings) -> Iterator[Callable[[Handler], TestClient]]:
    opened: list[TestClient] = []

    def make(handler: Handler) -> TestClient:
        app = create_app(settings, upstream_transport=httpx.MockTransport(handler))
        client = TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def xml(status: int, body: bytes, **headers: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, content=body, headers={"Content-Type": "application/xml", **headers}
        )

    return handler


ERROR = (
    b"<ResponseStatus><ErrorCode>{code}</ErrorCode>"
    b"<Description>Something went wrong</Description></ResponseStatus>"
)


@pytest.mark.parametrize(
    ("handler", "status", "kind", "retry_after"),
    [
        (xml(503, ERROR, **{"Retry-After": "7"}), 503, "upstream-unavailable", "7"),
        (xml(500, ERROR), 503, "upstream-unavailable", "5"),
        (xml(429, ERROR, **{"Retry-After": "3"}), 503, "upstream-unavailable", "3"),
        (xml(408, ERROR), 503, "upstream-unavailable", "5"),
        (xml(401, ERROR), 502, "upstream-auth", None),
        (xml(200, b"<not xml"), 502, "upstream-error", None),
        (xml(200, b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"), 502, "upstream-error", None),
        (xml(200, ERROR), 422, "upstream-rejected", None),
        (xml(404, ERROR), 404, "not-found", None),
    ],
)
def test_upstream_failures_become_clear_answers(
    upstream: Callable[[Handler], TestClient],
    handler: Handler,
    status: int,
    kind: str,
    retry_after: str | None,
) -> None:
    client = upstream(handler)
    response = client.get("/v1/endpoints")
    body = assert_problem(response, status)
    assert body["type"] == f"/problems/{kind}"
    assert response.headers.get("retry-after") == retry_after


def test_timeout_is_504_with_retry_after(upstream: Callable[[Handler], TestClient]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    response = upstream(handler).get("/v1/locations")
    assert assert_problem(response, 504)["type"] == "/problems/upstream-timeout"
    assert response.headers["retry-after"] == "5"


def test_connection_refused_is_503(upstream: Callable[[Handler], TestClient]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    response = upstream(handler).get("/v1/notification-recipients")
    assert_problem(response, 503)
    assert int(response.headers["retry-after"]) >= 1


def test_rejection_carries_the_carriers_words(upstream: Callable[[Handler], TestClient]) -> None:
    client = upstream(xml(400, ERROR.replace(b"{code}", b"12345")))
    body: dict[str, Any] = assert_problem(
        client.post("/v1/notification-recipients", json={"emailAddress": "a@example.com"}),
        422,
    )
    assert body["upstreamCode"] == "12345"
    assert "Something went wrong" in body["detail"]


def test_readiness_shows_the_carriers_state_but_never_depends_on_it(
    upstream: Callable[[Handler], TestClient],
) -> None:
    refusing = upstream(xml(401, ERROR))
    assert refusing.get("/v1/endpoints").status_code == 502
    ready = refusing.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["upstream"] == "credentials refused"

    failing = upstream(xml(503, ERROR))
    assert failing.get("/v1/endpoints").status_code == 503
    ready = failing.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["upstream"] == "unreachable"

    healthy = upstream(
        xml(200, b"<NotificationRecipientListResponse></NotificationRecipientListResponse>")
    )
    # Nothing heard yet: a probe goes out in the background; a later check shows its answer.
    answer = healthy.get("/readyz")
    assert answer.status_code == 200, answer.text
    for _ in range(200):
        answer = healthy.get("/readyz")
        if answer.json()["upstream"] == "ok":
            break
        time.sleep(0.01)
    assert answer.json() | {"upstream": "ok", "circuit": "closed", "ready": True} == answer.json()


@pytest.mark.parametrize(
    "value",
    ["1e300", "31536000", "Fri, 31 Dec 9999 23:59:59 GMT"],
    ids=["huge", "a-year", "far-date"],
)
def test_a_carriers_huge_retry_after_is_not_passed_on_whole(
    upstream: Callable[[Handler], TestClient], value: str
) -> None:
    """A carrier's Retry-After of a year (or 10^300 seconds) must not tell devices to stop
    reporting for that long: the gateway asks for at most MAX_RETRY_AFTER."""
    response = upstream(xml(429, ERROR, **{"Retry-After": value})).get("/v1/endpoints")
    assert assert_problem(response, 503)["type"] == "/problems/upstream-unavailable"
    assert 1 <= int(response.headers["retry-after"]) <= MAX_RETRY_AFTER


class TimedOutEndpointWrites(httpx.AsyncBaseTransport):
    """Once ``on``: every endpoint write times out with ``error``, after the carrier applied
    it (``landed``) or before it was sent; everything else goes through."""

    def __init__(self, error: type[httpx.TimeoutException], landed: bool) -> None:
        self.inner: httpx.AsyncBaseTransport = httpx.AsyncBaseTransport()
        self.error = error
        self.landed = landed
        self.on = False

    def __call__(self, inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        self.inner = inner
        return self

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        writes = request.method in ("POST", "PUT") and "/locations" not in request.url.path
        if not (self.on and writes):
            return await self.inner.handle_async_request(request)
        if self.landed:
            await (await self.inner.handle_async_request(request)).aread()
        raise self.error("timed out (the test's)", request=request)


@pytest.mark.parametrize(
    ("error", "landed", "status"),
    [
        (httpx.ConnectTimeout, False, 504),
        (httpx.PoolTimeout, False, 504),
        (httpx.ReadTimeout, True, 503),
    ],
    ids=["connect", "pool", "read-after-sending"],
)
def test_a_reports_timed_out_write_is_answered_as_what_became_of_it(
    error: type[httpx.TimeoutException], landed: bool, status: int
) -> None:
    """A write that never reached the carrier is undone: the answer says the report was not
    applied (504), never that the gateway keeps watching a write there is none of. One that
    may have landed is kept and watched (503, as it says), and the carrier holds it."""

    async def main() -> None:
        failing = TimedOutEndpointWrites(error, landed)
        async with gateway(wrap=failing) as gw:
            first = await gw.report(report("ann", WHITE_HOUSE, 0))
            assert first.status_code == 200, first.text
            failing.on = True
            answer = await gw.report(report("ann", EMPIRE_STATE, 5))
            body = assert_problem(answer, status)
            assert ("keeps watching" in body["detail"]) is landed
            assert ("not applied" in body["detail"]) is not landed
            assert int(answer.headers["retry-after"]) >= 1
            failing.on = False
            await gw.app.state.services.pipeline.idle()
            now = (await gw.http.get("/v1/devices/ann/location")).json()
            held = gw.simulator.state["endpoints"][first.json()["endpointId"]]["locationId"]
            assert now["locationId"] == held
            assert (now["locationId"] != first.json()["locationId"]) is landed

    asyncio.run(main())


class HeldReads(httpx.AsyncBaseTransport):
    """Once ``holding``: a read waits at the carrier until ``released`` (``reached`` is set
    then), holding its connection slot; everything else goes through."""

    def __init__(self) -> None:
        self.inner: httpx.AsyncBaseTransport = httpx.AsyncBaseTransport()
        self.holding = False
        self.reached = asyncio.Event()
        self.released = asyncio.Event()

    def __call__(self, inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        self.inner = inner
        return self

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.holding and request.method == "GET":
            self.holding = False
            self.reached.set()
            await self.released.wait()
        return await self.inner.handle_async_request(request)


def test_a_report_whose_write_waited_for_a_connection_past_its_deadline_is_undone() -> None:
    """Every connection slot is taken (a slow carrier): a report's write still waiting for
    one at the report's deadline was never sent. The answer says it was not applied (504),
    not that the gateway keeps watching a write; and no repair then reads and writes the
    device at the carrier, adding to what a slow carrier already cannot keep up with."""

    async def main() -> None:
        held = HeldReads()
        settings = gateway_settings(upstream_max_connections=1, report_deadline=1.0)
        async with gateway(settings, wrap=held) as gw:
            first = await gw.report(report("ann", WHITE_HOUSE, 0))
            assert first.status_code == 200, first.text
            bob = await gw.report(report("bob", EMPIRE_STATE, 0))
            assert bob.status_code == 200, bob.text  # the place ann moves to is known
            held.holding = True
            endpoint = first.json()["endpointId"]
            admin = asyncio.create_task(gw.http.get(f"/v1/endpoints/{endpoint}"))
            await held.reached.wait()  # the one slot is taken
            seq = gw.last_seq()
            moved = await gw.report(report("ann", EMPIRE_STATE, 5))
            body = assert_problem(moved, 504)
            assert "not applied" in body["detail"] and "watching" not in body["detail"]
            held.released.set()
            assert (await admin).status_code == 200
            await gw.app.state.services.pipeline.idle()
            assert [c["operation"] for c in gw.calls(seq)] == ["getEndpoint"]  # the admin's
            now = (await gw.http.get("/v1/devices/ann/location")).json()
            assert now["locationId"] == first.json()["locationId"]

    asyncio.run(main())


class StalledGeocoder:
    """A geocoder that does not answer (the gateway's own work, not the carrier's)."""

    async def geocode(self, address: Any) -> None:
        await asyncio.sleep(30)

    async def reverse(self, latitude: float, longitude: float) -> None:
        return None


def test_a_report_whose_deadline_ran_out_before_it_claimed_anything_says_so() -> None:
    """The deadline spent in the gateway's own work (here a geocoder that does not answer),
    before the report claimed the device: nothing was written and nothing will be. The
    answer says the report was not applied (503, with Retry-After), not that the gateway
    keeps watching a write there is none of."""

    async def main() -> None:
        settings = gateway_settings(report_deadline=0.5)
        async with gateway(settings, geocoder=StalledGeocoder()) as gw:
            seq = gw.last_seq()
            answer = await gw.report(report("ann", WHITE_HOUSE, 0))
            body = assert_problem(answer, 503)
            assert body["type"] == "/problems/report-deadline"
            assert "not applied" in body["detail"] and "watching" not in body["detail"]
            assert int(answer.headers["retry-after"]) >= 1
            await gw.app.state.services.pipeline.idle()
            assert gw.calls(seq) == []
            assert (await gw.http.get("/v1/devices/ann/location")).status_code == 404

    asyncio.run(main())


class HeldLocationCreates(httpx.AsyncBaseTransport):
    """A location create waits at the carrier until ``released``: a carrier that hangs."""

    def __init__(self) -> None:
        self.inner: httpx.AsyncBaseTransport = httpx.AsyncBaseTransport()
        self.released = asyncio.Event()

    def __call__(self, inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        self.inner = inner
        return self

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/locations"):
            await self.released.wait()
        return await self.inner.handle_async_request(request)


def test_a_report_whose_location_create_hung_at_the_carrier_blames_the_carrier() -> None:
    """The deadline ran out while the carrier sat on the report's location create, before
    the device was claimed: the carrier's trouble (504, ``upstream_unavailable``), not the
    gateway's own work (``report-deadline``, whose runbook sends the operator to the
    geocoder and the database); the report was not applied."""

    async def main() -> None:
        held = HeldLocationCreates()
        async with gateway(gateway_settings(report_deadline=1.0), wrap=held) as gw:
            answer = await gw.report(report("ann", WHITE_HOUSE, 0))
            body = assert_problem(answer, 504)
            assert body["type"] == "/problems/upstream-timeout"
            assert "not applied" in body["detail"]
            metrics = (await gw.http.get("/metrics")).text
            assert 'dlr_reports_total{result="upstream_unavailable"} 1.0' in metrics
            assert 'dlr_reports_total{result="deadline"}' not in metrics
            held.released.set()
            await gw.app.state.services.pipeline.idle()
            assert (await gw.http.get("/v1/devices/ann/location")).status_code == 404

    asyncio.run(main())
