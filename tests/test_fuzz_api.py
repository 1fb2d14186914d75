"""Schemathesis over the gateway's own ``openapi.json``: the document says what is enforced.

Every documented operation is called with generated requests (schema-valid and not), once
with the admin key and once with a device token, against a real server (uvicorn on loopback,
so the app's lifespan runs and the HTTP framing is real) in front of a healthy in-process
simulator. Every answer must be documented for its operation: status code, content type,
headers and body; and none may be a 5xx (the documented 502/503/504 come only from a failing
carrier, and this one is healthy, or from the bound on carrier reads for devices the gateway
does not know, ``GATEWAY_CARRIER_READ_RATE``, which has tests of its own and is set out of
reach here: the fuzzer reads hundreds of such devices a second). Invalid requests must be
refused with a 4xx, answers without credentials must be 401, and a 405 must name every method
of the resource in ``Allow``.

And the other way round (``schema_valid_requests_are_accepted``): a request the document
allows is never refused as malformed, so that a client generated from the document never
sends what the gateway refuses. The refusals it may get are those no schema can foresee
(``WORLD_REFUSALS``): a place that cannot be routed, a device clock ahead of the gateway's,
the carrier's own verdict; and the states a request meets (401, 403, 404, 409, 429).

Bounded for CI: ``EXAMPLES`` generated cases per operation and credential, derandomized.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from gateway.api.auth import DeviceTokens
from gateway.app import SANDBOX_PREFIX, create_app
from gateway.metrics import Metrics
from tests.harness import ADMIN_KEY, JWT_SECRET, gateway_settings, new_simulator

DOCUMENT = Path(__file__).resolve().parent.parent / "gateway" / "openapi.json"
DEVICE = "fuzz-device"
EXAMPLES = 40

schema = schemathesis.openapi.from_path(DOCUMENT)

#: 422s about the world rather than the request's shape, which no schema can foresee: an
#: address that is not a routable place, a device clock ahead of the gateway's, the
#: carrier's own refusal of a record, a location ID the carrier does not hold.
WORLD_REFUSALS = frozenset(
    {
        "/problems/unroutable-address",
        "/problems/clock-skew",
        "/problems/upstream-rejected",
        "/problems/unknown-location",
    }
)


def schema_valid_requests_are_accepted(
    ctx: Any, response: Any, case: schemathesis.Case[Any]
) -> bool | None:
    """Schemathesis's ``positive_data_acceptance``, but for ``WORLD_REFUSALS``: a request the
    document allows is never refused as malformed (400, or 422 ``/problems/validation``).

    XML bodies (PIDF-LO, HELD) are left out: their grammar is the RFCs' XML Schemas, which the
    document names but a JSON Schema cannot state (it says ``string``), so any text is
    "schema-valid" there; their own readers have property tests (``tests/pidf``). CSV files
    (bulk imports) likewise: their columns are checked by ``tests/bulk``.
    """
    if (case.media_type or "").endswith("+xml") or case.media_type == "text/csv":
        return None
    if response.status_code == 422:
        try:
            kind = response.json().get("type")
        except ValueError:
            kind = None
        if kind in WORLD_REFUSALS:
            return None
    return positive_data_acceptance(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    schema_valid_requests_are_accepted,
    ignored_auth,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The gateway in sandbox mode (the simulator mounted in-process), served by uvicorn."""
    port = free_port()
    config = gateway_settings(
        bandwidth_base_url=f"http://127.0.0.1:{port}{SANDBOX_PREFIX}/api",
        carrier_read_rate=1e6,
        # Subscriptions the fuzzer makes never send anything off this machine.
        webhook_allowed_hosts=("127.0.0.1",),
    )
    app = create_app(config, sandbox_app=new_simulator(config), metrics=Metrics())
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            http="h11",
            ws="none",
            loop="asyncio",
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name="fuzz-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the gateway did not start"
        assert time.monotonic() < deadline, "the gateway did not start in time"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the gateway did not stop"


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


@pytest.fixture(params=["admin", "device"], scope="module")
def credential(request: pytest.FixtureRequest) -> str:
    if request.param == "admin":
        return ADMIN_KEY
    return DeviceTokens(secret=JWT_SECRET).mint(DEVICE, 3600)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)
def test_every_operation_keeps_to_the_document(
    case: schemathesis.Case[Any], base_url: str, session: requests.Session, credential: str
) -> None:
    case.call_and_validate(
        base_url=base_url,
        session=session,
        headers={"Authorization": f"Bearer {credential}"},
        checks=CHECKS,
        timeout=10,
    )
