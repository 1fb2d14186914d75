"""The application: ``create_app(settings, ...)`` builds it; its lifespan owns the clients.

Tests pass fakes in at the seams: ``upstream_transport`` (an httpx transport to the
carrier or the simulator) and ``metrics`` (a fresh registry).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import __version__
from gateway.api import admin, devices, health
from gateway.api.auth import AdminKeys, DeviceTokens
from gateway.api.context import Services
from gateway.api.health import Readiness
from gateway.api.problems import EXCEPTION_HANDLERS
from gateway.bandwidth.client import BandwidthClient
from gateway.dlr.address import NormalizeCache
from gateway.dlr.pipeline import Geocoder, Pipeline
from gateway.geocoding import build_geocoding
from gateway.metrics import Metrics
from gateway.settings import Settings

log = logging.getLogger("gateway")

#: Where sandbox mode mounts the simulator inside the gateway's own server.
SANDBOX_PREFIX = "/sandbox/bandwidth"


class _AsgiEndpoint:
    """Serves an ASGI app at one exact path (a ``Mount`` would redirect ``/metrics``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
    geocoder: Geocoder | None = None,
    metrics: Metrics | None = None,
    sandbox_app: Starlette | None = None,
) -> Starlette:
    """The gateway as an ASGI app.

    ``sandbox_app`` is the simulator to mount under ``/sandbox/bandwidth``; the upstream
    client then reaches it in-process unless another transport is given. ``geocoder``
    replaces the configured one (``GEOCODER``).
    """
    metrics = metrics or Metrics()
    metrics.build_info.info({"version": __version__})
    if sandbox_app is not None and upstream_transport is None:
        from gateway.simulator import SimulatorTransport

        upstream_transport = SimulatorTransport(app=sandbox_app)
    device_tokens = DeviceTokens.from_settings(settings)
    normalizer = NormalizeCache(settings.normalize_cache_size)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            upstream = BandwidthClient.from_settings(
                settings, transport=upstream_transport, metrics=metrics
            )
            stack.push_async_callback(upstream.aclose)
            geocoding = geocoder
            if geocoding is None:
                http = httpx.AsyncClient(timeout=settings.geocode_timeout)
                stack.push_async_callback(http.aclose)
                geocoding = build_geocoding(settings, metrics, http)
            pipeline = Pipeline(
                upstream,
                geocoding,
                normalizer.normalize,
                location_cache_size=settings.location_cache_size,
                binding_cache_size=settings.binding_cache_size,
            )
            readiness = Readiness(
                upstream,
                window=settings.ready_window,
                config_problems=[] if settings.sandbox else settings.problems(),
            )
            app.state.services = Services(
                settings=settings,
                metrics=metrics,
                admin_keys=AdminKeys([str(k) for k in settings.admin_keys]),
                device_tokens=device_tokens,
                upstream=upstream,
                geocoding=geocoding,
                normalize=normalizer.normalize,
                pipeline=pipeline,
                readiness=readiness,
            )
            yield

    routes: list[BaseRoute] = [*health.routes, *devices.routes, *admin.routes]
    if sandbox_app is not None:
        routes.append(Mount(SANDBOX_PREFIX, app=sandbox_app))
    routes.append(
        Route("/metrics", _AsgiEndpoint(make_asgi_app(metrics.registry)), methods=["GET"])
    )
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=dict(EXCEPTION_HANDLERS))
    app.state.metrics = metrics
    return app
