"""The client against the project's copy of the seed: the XML it writes and the URLs it calls.

The rules are derived from the seed's schemas (OpenAPI's default XML mapping, DESIGN.md),
not copied from the records, so a renamed, dropped or retyped field fails here.
"""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import gateway
from gateway.bandwidth import codec
from gateway.bandwidth.client import BandwidthClient
from gateway.bandwidth.models import (
    Address,
    Endpoint,
    EndpointListResponse,
    Location,
    LocationListResponse,
    NotificationRecipient,
    NotificationRecipientListResponse,
    Record,
)

CONTRACT_DIR = Path(gateway.__file__).parent / "contract"
BASE = "https://bw.test/api"
ACCOUNT = "9900000"


def load_spec() -> dict[str, Any]:
    (path,) = CONTRACT_DIR.glob("*.yml")
    spec: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return spec


SPEC = load_spec()
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/"), ref
    return resolve(SCHEMAS[ref.rsplit("/", 1)[-1]])


# -- a validator driven by the seed's schemas --------------------------------------

_SCALARS: dict[str, re.Pattern[str]] = {
    "string": re.compile(r"(?s).*"),
    "boolean": re.compile(r"true|false"),
    "integer": re.compile(r"-?[0-9]+"),
    "number": re.compile(r"-?[0-9]+(\.[0-9]+)?"),  # plain decimal: no exponent, no NaN
}


def problems(element: ET.Element, schema: dict[str, Any], where: str) -> Iterator[str]:
    """Every way ``element`` departs from ``schema`` under the default XML mapping."""
    schema = resolve(schema)
    kind = schema.get("type")
    if kind == "object":
        if (element.text or "").strip():
            yield f"{where}: an object element carries text"
        properties: dict[str, Any] = schema.get("properties", {})
        seen = Counter(child.tag for child in element)
        for child in element:
            prop = properties.get(str(child.tag))
            if prop is None:
                yield f"{where}/{child.tag}: not a property of the schema"
                continue
            prop = resolve(prop)
            if prop.get("type") == "array":  # unwrapped: one element per item
                yield from problems(child, prop["items"], f"{where}/{child.tag}[]")
            else:
                if seen[child.tag] > 1:
                    yield f"{where}/{child.tag}: repeated, but not an array"
                yield from problems(child, prop, f"{where}/{child.tag}")
        return
    if len(element):
        yield f"{where}: a {kind} element has children"
    text = element.text or ""
    pattern = _SCALARS.get(str(kind))
    if pattern is None:
        yield f"{where}: the schema type {kind!r} has no XML rule"
    elif not pattern.fullmatch(text):
        yield f"{where}: {text!r} is not a {kind}"
    if "enum" in schema and text not in schema["enum"]:
        yield f"{where}: {text!r} is not one of {schema['enum']}"
    if schema.get("format") == "email" and "@" not in text:
        yield f"{where}: {text!r} is not an email address"


def leaf_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Every element path a fully populated document of ``schema`` has."""
    schema = resolve(schema)
    if schema.get("type") == "array":
        return leaf_paths(schema["items"], prefix)
    if schema.get("type") != "object":
        return {prefix}
    out: set[str] = set()
    for name, prop in schema.get("properties", {}).items():
        out |= leaf_paths(prop, f"{prefix}/{name}" if prefix else name)
    return out


def element_paths(element: ET.Element, prefix: str = "") -> set[str]:
    if not len(element):
        return {prefix}
    out: set[str] = set()
    for child in element:
        out |= element_paths(child, f"{prefix}/{child.tag}" if prefix else str(child.tag))
    return out


def validate(body: bytes, schema_name: str) -> list[str]:
    root = codec.parse(body)
    found = [] if root.tag == schema_name else [f"root is <{root.tag}>, not <{schema_name}>"]
    return found + list(problems(root, SCHEMAS[schema_name], schema_name))


# -- the validator itself ------------------------------------------------------------


def test_the_contract_is_the_projects_own_copy() -> None:
    assert SPEC["openapi"].startswith("3.")
    assert set(SCHEMAS) >= {
        "Endpoint",
        "EndpointListResponse",
        "Location",
        "LocationListResponse",
        "NotificationRecipient",
        "NotificationRecipientListResponse",
    }
    assert (CONTRACT_DIR / "README.md").is_file()


@pytest.mark.parametrize(
    ("schema", "body", "complaint"),
    [
        ("Endpoint", b"<Endpoint><endpointID>x</endpointID></Endpoint>", "not a property"),
        ("Endpoint", b"<Endpoint><activated>True</activated></Endpoint>", "not a boolean"),
        ("Location", b"<Location><latitude>1e-07</latitude></Location>", "not a number"),
        ("Location", b"<Location><status>OK</status></Location>", "not one of"),
        ("EndpointListResponse", b"<x><totalCount>1.0</totalCount></x>", "not a integer"),
        (
            "Location",
            b"<Location><address><zip>1</zip><zip>2</zip></address></Location>",
            "repeated",
        ),
        ("Endpoint", b"<Endpoint><callerName><b/></callerName></Endpoint>", "has children"),
        ("Location", b"<Location><address><no>1</no></address></Location>", "not a property"),
        ("NotificationRecipient", b"<x><emailAddress>nobody</emailAddress></x>", "not an email"),
        ("Endpoint", b"<Endpoints/>", "root is"),
    ],
)
def test_the_validator_catches(schema: str, body: bytes, complaint: str) -> None:
    found = validate(body, schema)
    assert any(complaint in p for p in found), found


# -- what the client writes -------------------------------------------------------------

FULL_LOCATION = Location(
    location_id="A1B2C3",
    description="HQ & annex",
    address=Address(
        house_number="900",
        house_suffix="A",
        prefix_directional="N",
        street_name="MAIN CAMPUS",
        street_suffix="DR",
        post_directional="W",
        address_line2="FL 3",
        city="RALEIGH",
        state_code="NC",
        zip="27606",
        plus_four="5214",
        country="US",
    ),
    status="GEOCODED",
    latitude=1e-7,
    longitude=-78.6382,
)
FULL_ENDPOINT = Endpoint(
    endpoint_id="ep1",
    alternate_end_user_id="device-42",
    caller_name="Ada",
    location_id="A1B2C3",
    telephone_number="+19195551234",
    activated=False,
)
FULL_RECIPIENT = NotificationRecipient(
    id="nr1", email_address="a@example.com", phone_number="+19195550000", description="Desk"
)

Call = Callable[[BandwidthClient], Awaitable[object]]

#: Every operation the client offers, as a call with full records (writes) and IDs.
CALLS: dict[str, Call] = {
    "listEndpoints": lambda c: c.list_endpoints(),
    "createEndpoint": lambda c: c.create_endpoint(FULL_ENDPOINT),
    "getEndpoint": lambda c: c.get_endpoint("ep1"),
    "updateEndpoint": lambda c: c.update_endpoint("ep1", FULL_ENDPOINT),
    "deleteEndpoint": lambda c: c.delete_endpoint("ep1"),
    "listLocations": lambda c: c.list_locations(),
    "createLocation": lambda c: c.create_location(FULL_LOCATION),
    "getLocation": lambda c: c.get_location("A1B2C3"),
    "updateLocation": lambda c: c.update_location("A1B2C3", FULL_LOCATION),
    "deleteLocation": lambda c: c.delete_location("A1B2C3"),
    "listNotificationRecipients": lambda c: c.list_notification_recipients(),
    "createNotificationRecipient": lambda c: c.create_notification_recipient(FULL_RECIPIENT),
}
SPARSE_WRITES: dict[str, Call] = {
    "createEndpoint": lambda c: c.create_endpoint(Endpoint(alternate_end_user_id="d")),
    "updateEndpoint": lambda c: c.update_endpoint("ep1", Endpoint(location_id="L")),
    "createLocation": lambda c: c.create_location(Location(address=Address(zip="27606"))),
    "updateLocation": lambda c: c.update_location("L", Location(latitude=-0.000001)),
    "createNotificationRecipient": lambda c: c.create_notification_recipient(
        NotificationRecipient(email_address="x@example.com")
    ),
}

#: A body for each answer the client reads, so the GETs succeed.
ANSWERS: dict[str, Record] = {
    "listEndpoints": EndpointListResponse(total_count=0),
    "getEndpoint": FULL_ENDPOINT,
    "listLocations": LocationListResponse(total_count=0),
    "getLocation": FULL_LOCATION,
    "listNotificationRecipients": NotificationRecipientListResponse(),
}


def seed_operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The seed operation a request calls; a literal segment beats a template."""
    assert path.startswith("/api/"), path
    path = path.removeprefix("/api")
    matches = []
    for template, item in SPEC["paths"].items():
        pattern = re.sub(r"\{[^/}]+\}", "[^/]+", template)
        operation = item.get(method.lower())
        if operation is not None and re.fullmatch(pattern, path):
            literal = sum(1 for part in template.split("/") if not part.startswith("{"))
            matches.append((literal, operation["operationId"], operation))
    assert matches, f"{method} {path} is not a seed operation"
    _, operation_id, operation = max(matches, key=lambda m: m[0])
    return operation_id, operation


def capture(call: Call) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        operation_id, _ = seed_operation(request.method, request.url.path)
        answer = ANSWERS.get(operation_id)
        return httpx.Response(200, content=codec.encode(answer) if answer else b"")

    async def main() -> None:
        async with BandwidthClient(
            BASE, ACCOUNT, "user", "pw", transport=httpx.MockTransport(handler)
        ) as client:
            await call(client)

    asyncio.run(main())
    return seen


def request_schema(operation: dict[str, Any]) -> str:
    ref: str = operation["requestBody"]["content"]["application/xml"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def test_every_seed_operation_has_a_client_method() -> None:
    seed_ids = {
        op["operationId"]
        for item in SPEC["paths"].values()
        for method, op in item.items()
        if method in ("get", "put", "post", "delete", "patch")
    }
    assert seed_ids == set(CALLS)


@pytest.mark.parametrize("operation_id", sorted(CALLS))
def test_each_method_calls_its_seed_operation(operation_id: str) -> None:
    (request,) = capture(CALLS[operation_id])
    called, operation = seed_operation(request.method, request.url.path)
    assert called == operation_id
    assert request.url.path.startswith(f"/api/accounts/{ACCOUNT}/e911s")
    if "requestBody" in operation:
        assert request.headers["Content-Type"] == "application/xml"
    else:
        assert request.content == b""


@pytest.mark.parametrize("operation_id", sorted(SPARSE_WRITES))
def test_written_bodies_follow_the_seed_schemas(operation_id: str) -> None:
    for call, full in ((CALLS[operation_id], True), (SPARSE_WRITES[operation_id], False)):
        (request,) = capture(call)
        called, operation = seed_operation(request.method, request.url.path)
        assert called == operation_id
        schema_name = request_schema(operation)
        assert validate(request.content, schema_name) == []
        if full:  # a fully populated record writes every property the seed has
            assert element_paths(codec.parse(request.content)) == leaf_paths(SCHEMAS[schema_name])


def test_every_request_body_in_the_seed_is_exercised() -> None:
    with_bodies = {
        op["operationId"]
        for item in SPEC["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "requestBody" in op
    }
    assert with_bodies == set(SPARSE_WRITES)


LISTS: list[Record] = [
    EndpointListResponse(total_count=2, endpoints=(FULL_ENDPOINT, Endpoint(endpoint_id="b"))),
    LocationListResponse(total_count=1, locations=(FULL_LOCATION,)),
    NotificationRecipientListResponse(notification_recipients=(FULL_RECIPIENT, FULL_RECIPIENT)),
]


@pytest.mark.parametrize("record", LISTS, ids=lambda r: type(r).__name__)
def test_list_answers_the_codec_writes_follow_the_seed_schemas(record: Record) -> None:
    name = type(record).__name__
    body = codec.encode(record)
    assert validate(body, name) == []
    assert element_paths(codec.parse(body)) == leaf_paths(SCHEMAS[name])
