"""Files and an in-process gateway for the bulk import tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from gateway.bulk.runtime import Runtime, importer_of
from gateway.store.imports import ImportStore
from tests.harness import Gateway, gateway, gateway_settings, phone_of

#: Real addresses the offline normalizer routes (one line each).
ADDRESSES = (
    "1600 Pennsylvania Ave NW, Washington, DC 20500",
    "350 5th Ave, New York, NY 10118",
    "400 Broad St, Seattle, WA 98109",
    "233 S Wacker Dr, Chicago, IL 60606",
)

DEVICE_HEADER = "AEUI,CallerName,CallbackNumber,Address\n"


def devices_csv(count: int, *, prefix: str = "dev", addresses: int = 4) -> bytes:
    lines = [DEVICE_HEADER]
    for i in range(count):
        aeui = f"{prefix}-{i}"
        address = ADDRESSES[i % addresses]
        lines.append(f'{aeui},USER {i},{phone_of(aeui)},"{address}"\n')
    return "".join(lines).encode()


def runtime_of(gw: Gateway, **settings: Any) -> Runtime:
    pipeline = gw.app.state.services.pipeline
    return importer_of(gateway_settings(**settings), pipeline, ImportStore.of(pipeline.ledger))


@contextlib.asynccontextmanager
async def bulk_gateway(**sim_config: Any) -> AsyncIterator[tuple[Gateway, Runtime]]:
    async with gateway(**sim_config) as gw:
        yield gw, runtime_of(gw)


def writes(gw: Gateway, since: int = 0) -> list[dict[str, Any]]:
    return [c for c in gw.calls(since) if c["method"] in ("POST", "PUT", "DELETE")]
