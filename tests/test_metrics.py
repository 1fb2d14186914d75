"""The metrics of DESIGN.md move with traffic, and their labels stay bounded."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Scope

from gateway import __version__
from gateway.dlr.ids import endpoint_id_for
from gateway.metrics import LATENCY_BUCKETS, Metrics
from gateway.observability import UNMATCHED, RequestObservability, route_template
from tests.harness import WHITE_HOUSE, gateway, gateway_settings, report

AEUI = "metrics-device-7f3a"
OTHER_AEUI = "metrics-device-9c1e"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def label_values(metrics: Metrics) -> set[str]:
    return {
        str(v)
        for family in metrics.registry.collect()
        for sample in family.samples
        for v in sample.labels.values()
    }


def test_traffic_moves_every_series_with_bounded_labels() -> None:
    settings = gateway_settings(upstream_max_attempts=2, upstream_backoff_base=0.0)
    random_path = f"/no/such/{uuid.uuid4().hex}"
    missing_endpoint = "nosuchendpoint4242"

    async def scenario() -> None:
        async with gateway(settings) as gw:
            m = gw.metrics
            # Reports: a new device at a new place (a geocoder miss), another device there.
            first = await gw.report(report(AEUI, WHITE_HOUSE, 0))
            assert first.status_code == 200, first.text
            second = await gw.report(report(OTHER_AEUI, WHITE_HOUSE, 0))
            assert second.status_code == 200, second.text
            # Validating the same address geocodes it again: a cache hit.
            checked = await gw.http.post("/v1/addresses/validate", json={"address": WHITE_HOUSE})
            assert checked.status_code == 200, checked.text
            endpoint_id = first.json()["endpointId"]
            assert endpoint_id == endpoint_id_for(AEUI)

            # Admin calls: a list, one record, a 404 through the same template.
            assert (await gw.http.get("/v1/endpoints")).status_code == 200
            assert (await gw.http.get(f"/v1/endpoints/{endpoint_id}")).status_code == 200
            assert (await gw.http.get(f"/v1/endpoints/{missing_endpoint}")).status_code == 404
            # The device's own route, with its AEUI in the path.
            assert (await gw.http.get(f"/v1/devices/{AEUI}/location")).status_code == 200
            # No route at all, and the mounted simulator.
            assert (await gw.http.get(random_path)).status_code == 404
            assert (await gw.http.get("/sandbox/bandwidth/_sim/state")).status_code == 200
            # An upstream failure, retried once (two attempts), then answered 503.
            gw.simulator.config.update({"faultRate": 1.0, "faultKinds": ["503"], "retryAfter": 0})
            failed = await gw.http.get("/v1/endpoints")
            assert failed.status_code == 503, failed.text
            gw.simulator.config.update({"faultRate": 0.0})

            http = "dlr_http_request_duration_seconds_count"
            assert value(m, http, route="/v1/location-reports", method="POST", status="200") == 2
            assert value(m, http, route="/v1/endpoints", method="GET", status="200") == 1
            assert value(m, http, route="/v1/endpoints", method="GET", status="503") == 1
            template = "/v1/endpoints/{endpoint_id}"
            assert value(m, http, route=template, method="GET", status="200") == 1
            assert value(m, http, route=template, method="GET", status="404") == 1
            device = "/v1/devices/{alternate_end_user_id}/location"
            assert value(m, http, route=device, method="GET", status="200") == 1
            assert value(m, http, route=UNMATCHED, method="GET", status="404") == 1
            assert value(m, http, route="/sandbox/bandwidth", method="GET", status="200") == 1

            assert value(m, "dlr_reports_total", result="applied") == 2
            assert value(m, "dlr_report_duration_seconds_count", result="applied") == 2
            assert value(m, "dlr_report_duration_seconds_sum", result="applied") > 0

            upstream = "dlr_upstream_request_duration_seconds_count"
            assert value(m, upstream, operation="createLocation", status="201") >= 1
            assert value(m, upstream, operation="listEndpoints", status="200") >= 1
            assert value(m, upstream, operation="listEndpoints", status="503") == 2
            assert (
                value(m, "dlr_upstream_retries_total", operation="listEndpoints", reason="5xx") == 1
            )

            geocode = "dlr_geocode_duration_seconds_count"
            assert value(m, geocode, provider="offline", cache="miss") == 1
            assert value(m, geocode, provider="offline", cache="hit") >= 1
            assert value(m, "dlr_cache_lookups_total", cache="geocode", result="miss") == 1
            assert value(m, "dlr_cache_lookups_total", cache="geocode", result="hit") >= 1

            assert value(m, "dlr_build_info", version=__version__) == 1

            # Raw path segments never become label values.
            values = label_values(m)
            for raw in (AEUI, OTHER_AEUI, endpoint_id, missing_endpoint, random_path):
                assert not any(raw in v for v in values), raw
            assert not any(v.startswith("/sandbox/bandwidth/") for v in values)

            # /metrics serves this registry in the text format.
            scraped = await gw.http.get("/metrics")
            assert scraped.status_code == 200
            families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
            for name in (
                "dlr_http_request_duration_seconds",
                "dlr_report_duration_seconds",
                "dlr_reports",
                "dlr_upstream_request_duration_seconds",
                "dlr_upstream_retries",
                "dlr_geocode_duration_seconds",
                "dlr_cache_lookups",
                "dlr_build_info",
            ):
                assert name in families, name
            routes = {
                s.labels["route"]
                for s in families["dlr_http_request_duration_seconds"].samples
                if "route" in s.labels
            }
            assert template in routes
            assert UNMATCHED in routes

    run(scenario())


def test_latency_buckets_span_sub_millisecond_to_ten_seconds() -> None:
    assert LATENCY_BUCKETS[0] < 0.001
    assert LATENCY_BUCKETS[-1] == 10.0
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)
    metrics = Metrics()
    metrics.http_request_duration.labels("/x", "GET", "200").observe(0.0002)
    bucket = "dlr_http_request_duration_seconds_bucket"
    labels = {"route": "/x", "method": "GET", "status": "200"}
    assert metrics.registry.get_sample_value(bucket, {**labels, "le": "0.0005"}) == 1


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def _scope(path: str, method: str = "GET") -> Scope:
    return {"type": "http", "path": path, "root_path": "", "method": method, "headers": []}


def test_route_template_names_the_top_level_route_only() -> None:
    inner = Route("/api/accounts/{account_id}", _ok)
    mount = Mount("/sandbox/bandwidth", routes=[inner])
    item = Route("/v1/items/{item_id}", _ok)
    routes = [item, mount]
    assert route_template(routes, _scope("/v1/items/42"), item) == "/v1/items/{item_id}"
    # The mounted app's router left its inner route in the scope.
    arrived = _scope("/sandbox/bandwidth/api/accounts/99")
    assert route_template(routes, arrived, inner) == "/sandbox/bandwidth"
    assert route_template(routes, _scope("/sandbox/bandwidth/nothing"), mount) == (
        "/sandbox/bandwidth"
    )
    assert route_template(routes, _scope("/elsewhere"), None) == UNMATCHED


def test_unknown_methods_and_unhandled_errors_are_bounded_and_counted() -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug")

    metrics = Metrics()
    app = Starlette(routes=[Route("/ok", _ok, methods=["GET", "BREW"]), Route("/boom", boom)])
    observed = RequestObservability(app, routes=app.routes, metrics=metrics)

    async def scenario() -> None:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            sent.append(message)

        await observed(_scope("/ok", "BREW"), receive, send)
        try:
            await observed(_scope("/boom"), receive, send)
        except RuntimeError:
            pass
        else:  # pragma: no cover - the bug must surface
            raise AssertionError("the exception was swallowed")

    run(scenario())
    count = "dlr_http_request_duration_seconds_count"
    assert value(metrics, count, route="/ok", method="other", status="200") == 1
    assert value(metrics, count, route="/boom", method="GET", status="500") == 1
