"""The pieces an import needs outside a running gateway: the carrier client, the geocoder,
the state store and a pipeline over them, built from the gateway's own settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from gateway.bandwidth.upstreams import carrier_client
from gateway.bulk.formats import Limits
from gateway.bulk.run import Importer
from gateway.dlr.address import NormalizeCache
from gateway.dlr.pipeline import Pipeline
from gateway.geocoding import build_geocoding
from gateway.metrics import Metrics
from gateway.settings import NO_DATABASE, Settings
from gateway.store import default_url, is_embedded, open_store
from gateway.store.imports import ImportStore


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
        upstream = carrier_client(
            settings,
            transport=transport,
            metrics=metrics,
            on_abandoned=lambda *abandoned: pipeline.abandoned(*abandoned),
        )
        stack.push_async_callback(upstream.aclose)
        http = httpx.AsyncClient(timeout=settings.geocode_timeout)
        stack.push_async_callback(http.aclose)
        geocoding = build_geocoding(settings, metrics, http)
        url = settings.database_url or default_url(settings.data_dir)
        store = await open_store(url, create=is_embedded(url))
        stack.push_async_callback(store.close)
        normalizer = NormalizeCache(settings.normalize_cache_size)
        pipeline = Pipeline(
            upstream,
            geocoding,
            normalizer.normalize,
            location_cache_size=settings.location_cache_size,
            binding_cache_size=settings.binding_cache_size,
            ledger=store,
            lease_seconds_per_device=settings.upstream_deadline,
        )
        stack.push_async_callback(pipeline.aclose)
        yield importer_of(settings, pipeline, ImportStore.of(store))
