"""The carrier client, the geocoder and the report pipeline on them, built from the settings
in one place: the gateway's lifespan (``gateway.app``) and an import outside a running
gateway (``gateway.bulk.runtime``) both use ``Wiring``."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable

import httpx

from gateway.bandwidth.client import BandwidthClient
from gateway.bandwidth.upstreams import carrier_client
from gateway.dlr.address import NormalizeCache
from gateway.dlr.callers import CallerIndex
from gateway.dlr.ledger import Ledger
from gateway.dlr.pipeline import Geocoder, Normalizer, Pipeline
from gateway.dlr.reads import CarrierReads
from gateway.events.model import EventSink
from gateway.geocoding import build_geocoding
from gateway.metrics import Metrics
from gateway.network.wiremap import Match, Observation
from gateway.settings import Settings
from gateway.transport import transport as aiohttp_transport


class Wiring:
    """The carrier client, the geocoder and the normalizer, then ``pipeline()`` on them.

    Each client is closed by ``stack`` (last in, first out). The pipeline comes last, once
    what it needs besides (the ledger, the events, the wiremap) is open; no carrier write
    can start before it exists, so none is abandoned before it can watch it.
    """

    def __init__(
        self,
        settings: Settings,
        stack: contextlib.AsyncExitStack,
        metrics: Metrics,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        geocoder: Geocoder | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._stack = stack
        self._pipeline: Pipeline | None = None
        self.upstream: BandwidthClient = carrier_client(
            settings, transport=transport, metrics=metrics, on_abandoned=self._abandoned
        )
        stack.push_async_callback(self.upstream.aclose)
        if geocoder is None:
            most = settings.geocode_max_connections
            limits = httpx.Limits(max_connections=most, max_keepalive_connections=most)
            http = httpx.AsyncClient(
                timeout=settings.geocode_timeout, limits=limits, transport=aiohttp_transport(limits)
            )
            stack.push_async_callback(http.aclose)
            geocoder = build_geocoding(settings, metrics, http)
        #: ``geocoder`` when one is given, else the configured one (``GEOCODER``).
        self.geocoding: Geocoder = geocoder
        self.normalize: Normalizer = NormalizeCache(settings.normalize_cache_size).normalize

    def pipeline(
        self,
        ledger: Ledger | None,
        *,
        callers: CallerIndex | None = None,
        events: EventSink | None = None,
        network: Callable[[Observation], Match | None] | None = None,
    ) -> Pipeline:
        """The pipeline on this carrier and geocoder, configured from the settings."""
        settings, metrics = self.settings, self.metrics
        repairs = metrics.reconcile_repairs
        pipeline = Pipeline(
            self.upstream,
            self.geocoding,
            self.normalize,
            location_cache_size=settings.location_cache_size,
            binding_cache_size=settings.binding_cache_size,
            on_repair=lambda reason: repairs.labels(reason=reason).inc(),
            ledger=ledger,
            lease_seconds_per_device=settings.upstream_deadline,
            callers=callers,
            conflict_margin_meters=settings.geo_conflict_margin,
            on_conflict=metrics.report_coordinate_conflicts.inc,
            reads=CarrierReads(
                interval=settings.carrier_read_interval,
                # An eighth of the carrier's connections at most: reports keep the rest.
                max_in_flight=max(1, settings.upstream_max_connections // 8),
                rate=settings.carrier_read_rate,
                burst=max(1, math.ceil(2 * settings.carrier_read_rate)),
                maxsize=settings.binding_cache_size,
            ),
            events=events,
            network=network,
            # Another process may write a store other than SQLite (replicas on PostgreSQL).
            shared_ledger=getattr(ledger, "dialect", "sqlite") != "sqlite",
        )
        self._stack.push_async_callback(pipeline.aclose)
        self._pipeline = pipeline
        return pipeline

    def _abandoned(self, operation: str, record: object, settled: Awaitable[None]) -> None:
        """The carrier client's ``on_abandoned``: the pipeline watches the write to its end."""
        assert self._pipeline is not None, "a carrier write before the pipeline was built"
        self._pipeline.abandoned(operation, record, settled)
