"""Structured logs: one JSON line per request, request IDs, and nothing secret in them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.auth import DeviceTokens
from gateway.app import create_app
from gateway.bandwidth.models import Address
from gateway.geocoding.results import GeocodeResult
from gateway.metrics import Metrics
from gateway.observability import (
    JsonFormatter,
    RequestObservability,
    configure_logging,
    current_request_id,
    utc_millis,
)
from gateway.settings import SANDBOX_PASSWORD, SettingsError
from tests.harness import ADMIN_KEY, JWT_SECRET, WHITE_HOUSE, gateway, gateway_settings, report

AEUI = "log-device-1"
#: Loggers ``configure_logging`` changes, restored after each capture.
_TOUCHED = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.asgi",
    "uvicorn.access",
    "httpx",
    "httpcore",
    "geopy",
    "aiosqlite",
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@contextlib.contextmanager
def json_logs(level: str = "INFO") -> Iterator[io.StringIO]:
    """The process's logging as ``dlr-gateway serve`` sets it up, into a buffer."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
        for name in _TOUCHED
        for lg in [logging.getLogger(name)]
    }
    buffer = io.StringIO()
    configure_logging(level, stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = saved_root
        for name, (handlers, lvl, propagate, disabled) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:] = handlers
            lg.setLevel(lvl)
            lg.propagate = propagate
            lg.disabled = disabled


def parse(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = buffer.getvalue().splitlines()
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]


def requests(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == "gateway.access"]


def assert_nothing_secret(text: str, *secrets: str) -> None:
    for secret in (ADMIN_KEY, JWT_SECRET, SANDBOX_PASSWORD, "Bearer", *secrets):
        assert secret not in text, secret
    # The street and the house number of the reported address.
    assert "PENNSYLVANIA" not in text.upper()
    assert not re.search(r"(?<![\w.])1600(?![\w.])", text)


def test_request_lines_carry_ids_routes_status_and_duration() -> None:
    token = DeviceTokens.from_settings(gateway_settings()).mint(AEUI, 600)

    async def scenario() -> tuple[httpx.Response, ...]:
        async with gateway() as gw:
            device = {"Authorization": f"Bearer {token}"}
            reported = await gw.report(
                report(AEUI, WHITE_HOUSE, 0), **device, **{"X-Request-ID": "client.req-42_a"}
            )
            assert reported.status_code == 200, reported.text
            assert reported.headers["X-Request-ID"] == "client.req-42_a"
            read = await gw.http.get(f"/v1/devices/{AEUI}/location", headers=device)
            assert read.status_code == 200
            listed = await gw.http.get("/v1/endpoints")
            assert listed.status_code == 200
            assert re.fullmatch(r"[0-9a-f]{32}", listed.headers["X-Request-ID"])
            # Not a sane ID (a space, a quote): replaced, not echoed.
            odd = await gw.http.get("/v1/locations", headers={"X-Request-ID": 'a b"c'})
            assert odd.status_code == 200
            assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["X-Request-ID"])
            too_long = await gw.http.get("/healthz", headers={"X-Request-ID": "x" * 129})
            assert too_long.headers["X-Request-ID"] != "x" * 129
            # A wrong key is refused and not logged.
            wrong = await gw.http.get(
                "/v1/endpoints", headers={"Authorization": "Bearer not-the-key-0123456789"}
            )
            assert wrong.status_code == 401
            return read, listed, odd, wrong

    with json_logs("INFO") as buffer:
        read, listed, odd, wrong = run(scenario())
    lines = parse(buffer)
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys()
    by_id = {line["request_id"]: line for line in requests(lines)}

    first = by_id["client.req-42_a"]
    assert first["route"] == "/v1/location-reports"
    assert (first["method"], first["status"], first["level"]) == ("POST", 200, "INFO")
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] > 0
    device_read = by_id[read.headers["X-Request-ID"]]
    assert device_read["route"] == "/v1/devices/{alternate_end_user_id}/location"
    assert device_read["aeui"] == AEUI
    admin = by_id[listed.headers["X-Request-ID"]]
    assert (admin["route"], admin["status"]) == ("/v1/endpoints", 200)
    assert "aeui" not in admin
    assert by_id[odd.headers["X-Request-ID"]]["route"] == "/v1/locations"
    assert by_id[wrong.headers["X-Request-ID"]]["status"] == 401
    # Probes that pass are DEBUG, so not at INFO.
    assert not [line for line in requests(lines) if line.get("route") == "/healthz"]

    token = DeviceTokens.from_settings(gateway_settings()).mint(AEUI, 600)
    assert_nothing_secret(buffer.getvalue(), token.split(".")[2], "not-the-key-0123456789")


def test_the_report_line_names_the_device() -> None:
    token = DeviceTokens.from_settings(gateway_settings()).mint(AEUI, 600)

    async def scenario() -> httpx.Response:
        async with gateway() as gw:
            answer = await gw.report(report(AEUI, WHITE_HOUSE, 0), Authorization=f"Bearer {token}")
            assert answer.status_code == 200, answer.text
            return answer

    with json_logs("INFO") as buffer:
        answer = run(scenario())
    (line,) = [
        line
        for line in requests(parse(buffer))
        if line["request_id"] == answer.headers["X-Request-ID"]
    ]
    assert line["route"] == "/v1/location-reports"
    assert line["aeui"] == AEUI
    assert_nothing_secret(buffer.getvalue(), token.split(".")[2])


def test_a_handler_names_the_device_through_request_state() -> None:
    async def handler(request: Request) -> Response:
        # What the report handler does once it has read the body's AEUI.
        request.state.aeui = "from-the-body"
        return JSONResponse({"requestId": request.state.request_id})

    inner = Starlette(routes=[Route("/r", handler, methods=["POST"])])
    app = RequestObservability(inner, routes=inner.routes, metrics=Metrics())

    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.post("/r")

    with json_logs("INFO") as buffer:
        answer = run(scenario())
    (line,) = requests(parse(buffer))
    assert line["aeui"] == "from-the-body"
    assert line["request_id"] == answer.json()["requestId"] == answer.headers["X-Request-ID"]


class _BrokenGeocoder:
    async def geocode(self, address: Address) -> GeocodeResult | None:
        raise RuntimeError("geocoder bug")

    async def reverse(self, latitude: float, longitude: float) -> GeocodeResult | None:
        raise RuntimeError("geocoder bug")


def test_an_unhandled_error_is_a_500_with_its_request_id_in_the_log() -> None:
    settings = gateway_settings()
    app = create_app(settings, geocoder=_BrokenGeocoder(), metrics=Metrics())

    async def scenario() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
                return await http.post(
                    "/v1/addresses/validate",
                    json={"address": WHITE_HOUSE},
                    headers={"Authorization": f"Bearer {ADMIN_KEY}", "X-Request-ID": "bug-1"},
                )

    with json_logs("INFO") as buffer:
        answer = run(scenario())
    assert answer.status_code == 500
    assert answer.headers["X-Request-ID"] == "bug-1"
    lines = [line for line in parse(buffer) if line.get("request_id") == "bug-1"]
    (error,) = [line for line in lines if line["level"] == "ERROR"]
    assert "geocoder bug" in error["exception"]
    (request,) = requests(lines)
    assert (request["status"], request["level"]) == (500, "WARNING")
    info = "\n".join(json.dumps(line) for line in parse(buffer) if line["level"] == "INFO")
    assert_nothing_secret(info)


def test_formatter_writes_extras_redacts_secret_keys_and_adds_the_request_id() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord(
        "gateway.x", logging.WARNING, __file__, 1, "hello %s", ("you",), None
    )
    record.operation = "listEndpoints"
    record.password = "hunter2"
    record.admin_key = "k"
    token = current_request_id.set("rid-1")
    try:
        out = json.loads(formatter.format(record))
    finally:
        current_request_id.reset(token)
    assert out["message"] == "hello you"
    assert (out["level"], out["logger"], out["request_id"]) == ("WARNING", "gateway.x", "rid-1")
    assert out["operation"] == "listEndpoints"
    assert out["password"] == out["admin_key"] == "[redacted]"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", out["time"])

    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("g", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert "ValueError: boom" in json.loads(formatter.format(failed))["exception"]


def test_a_huge_message_exception_or_extra_is_cut_not_written_whole() -> None:
    """A broken geocoder's 900 000-character coordinate ends in a ValueError quoting it, logged
    with its traceback on every report: each line stays a few kilobytes, and still says what
    failed and where."""
    huge = "9" * 10 + "x" * 900_000
    try:
        float(huge)
    except ValueError:
        record = logging.LogRecord(
            "gateway.geocoding.service", logging.ERROR, __file__, 1, "failed: %s", (huge,), None
        )
        record.exc_info = sys.exc_info()
    record.answer = huge
    line = JsonFormatter().format(record)
    assert len(line) < 40_000
    out = json.loads(line)
    assert out["message"].startswith("failed: 9999999999xxx")
    assert "characters left out" in out["message"] and "characters left out" in out["answer"]
    assert "Traceback" in out["exception"] and "float(huge)" in out["exception"]
    assert "ValueError: could not convert string to float: '9999999999xxx" in out["exception"]


def test_configure_logging_routes_uvicorn_here_and_keeps_outgoing_urls_out() -> None:
    with json_logs("DEBUG") as buffer:
        logging.getLogger("uvicorn.error").info("Uvicorn running")
        logging.getLogger("uvicorn.access").info("GET / 200")
        logging.getLogger("httpx").info("HTTP Request: GET https://geocoder/?q=1600+PENNSYLVANIA")
        logging.getLogger("gateway.x").debug("debug shows at DEBUG")
    lines = parse(buffer)
    assert [line["message"] for line in lines] == ["Uvicorn running", "debug shows at DEBUG"]
    assert lines[0]["logger"] == "uvicorn.error"

    with pytest.raises(SettingsError, match="GATEWAY_LOG_LEVEL"), json_logs("LOUD"):
        pass


def test_a_webhooks_secret_is_not_logged_even_at_debug() -> None:
    """aiosqlite logs every statement with its parameters at DEBUG: the INSERT and UPDATE of
    a subscription carried its ``whsec_`` secret into the log."""

    async def scenario() -> list[str]:
        async with gateway() as gw:
            body = {"url": "https://hooks.example.org/x", "eventTypes": ["test_call"]}
            made = await gw.http.post("/v1/webhooks", json=body)
            assert made.status_code == 201, made.text
            rotated = await gw.http.post(f"/v1/webhooks/{made.json()['id']}/secret")
            assert rotated.status_code == 200
            return [made.json()["secret"], rotated.json()["secret"]]

    with json_logs("DEBUG") as buffer:
        secrets = run(scenario())
    text = buffer.getvalue()
    assert "whsec_" not in text
    assert_nothing_secret(text, *secrets)


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=-1e10, max_value=1e10, allow_nan=False),
        st.integers(min_value=0, max_value=10**10).map(lambda s: s + 0.9999996),
        st.integers(min_value=0, max_value=10**10).map(lambda s: s + 0.0005),
    )
)
def test_log_times_are_what_datetime_writes(timestamp: float) -> None:
    """The once-a-second formatted time of every log line, against datetime itself."""
    expected = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
    assert utc_millis(timestamp) == expected
    assert utc_millis(timestamp) == expected  # and from the cached second
