"""The pieces an import needs outside a running gateway: the carrier client, the geocoder,
the state store and a pipeline over them, built from the gateway's own settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from gateway.bulk.formats import Limits
from gateway.bulk.run import Importer
from gateway.dlr.pipeline import Pipeline
from gateway.metrics import Metrics
from gateway.settings import NO_DATABASE, Settings
from gateway.store import default_url, is_embedded, open_store
from gateway.store.imports import ImportStore
from gateway.wiring import Wiring


class NoDatabase(RuntimeError):
    """Imports keep their progress in the state store; there is none."""


class NoCarrier(RuntimeError):
    """The carrier's settings are missing: an import cannot write to it."""


@dataclass(frozen=True, slots=True)
class Runtime:
    pipeline: Pipeline
    imports: ImportStore
    importer: Importer
    limits: Limits


def limits_of(settings: Settings) -> Limits:
    return Limits(max_bytes=settings.import_max_bytes, max_rows=settings.import_max_rows)


def importer_of(
    settings: Settings, pipeline: Pipeline, imports: ImportStore, metrics: Metrics | None = None
) -> Runtime:
    counted = None if metrics is None else metrics.import_rows

    def on_line(kind: str, outcome: str) -> None:
        if counted is not None:
            counted.labels(kind=kind, outcome=outcome).inc()

    importer = Importer(pipeline, imports, concurrency=settings.import_concurrency, on_line=on_line)
    return Runtime(pipeline, imports, importer, limits_of(settings))


@contextlib.asynccontextmanager
async def runtime(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[Runtime]:
    """A pipeline on the gateway's database and carrier, as ``serve`` builds it."""
    if settings.database_url == NO_DATABASE:
        raise NoDatabase(f"GATEWAY_DATABASE_URL={NO_DATABASE}: imports need the state store")
    missing = [p for p in settings.problems() if p.startswith("BANDWIDTH_")]
    if missing:
        raise NoCarrier("; ".join(missing) + " (or use --url with a running gateway)")
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as stack:
        wiring = Wiring(settings, stack, metrics, transport=transport)
        url = settings.database_url or default_url(settings.data_dir)
        store = await open_store(url, create=is_embedded(url))
        stack.push_async_callback(store.close)
        pipeline = wiring.pipeline(store)
        yield importer_of(settings, pipeline, ImportStore.of(store))
