"""The application: ``create_app(settings, ...)`` builds it; its lifespan owns the clients.

Tests pass fakes in at the seams: ``upstream_transport`` (an httpx transport to the
carrier or the simulator) and ``metrics`` (a fresh registry).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Protocol

import httpx
from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import __version__
from gateway.api import (
    admin,
    devices,
    emergency,
    events,
    health,
    held,
    imports,
    network,
    webhooks,
)
from gateway.api.auth import AdminKeys, DeviceTokens
from gateway.api.context import Services
from gateway.api.emergency import EmergencyQuery
from gateway.api.health import Readiness
from gateway.api.limits import DeviceRateLimiter
from gateway.api.memo import ReportMemo
from gateway.api.problems import EXCEPTION_HANDLERS
from gateway.api.revocations import Revocations
from gateway.api.schemas import BodyDeadline
from gateway.api.unchanged import UnchangedAnswers
from gateway.concurrency import cancel
from gateway.dlr.address import warm_up as warm_address_data
from gateway.dlr.callers import CallerIndex
from gateway.dlr.pipeline import Geocoder
from gateway.events.service import Events
from gateway.geocoding.offline import zip_index
from gateway.memory import trim as release_free_memory
from gateway.memory import trim_forever
from gateway.metrics import Metrics
from gateway.network.egress import TrustedEgress
from gateway.network.wiremap import parse_networks
from gateway.observability import RequestObservability
from gateway.settings import NO_DATABASE, Settings
from gateway.store import (
    SqlStateStore,
    StateStore,
    default_url,
    is_embedded,
    is_memory,
    open_store,
)
from gateway.store.migrate import upgrade_apart
from gateway.store.revocations import SqlRevocationStore
from gateway.wiring import Wiring

log = logging.getLogger("gateway")

#: Where sandbox mode mounts the simulator inside the gateway's own server.
SANDBOX_PREFIX = "/sandbox/bandwidth"


#: The collector's first threshold while a gateway serves (Python's default is 700). It
#: counts container objects allocated less those freed since the last collection; with 50
#: requests in flight, their short-lived objects reached 700 every 15 or so
#: requests, and nearly every collection found nothing to free (each request's objects are
#: freed by their reference counts, tests/api/test_report_garbage.py). The older
#: generations' thresholds are counts of the younger one's runs, so they follow.
SERVING_GC_THRESHOLD = 5000


class _CollectorTuning:
    """The collector as a serving gateway wants it: start-up's objects frozen out of its
    sight (``gc.freeze``) and collections rarer (``SERVING_GC_THRESHOLD``); as it was once
    the last gateway of the process (tests run several, nested or side by side) stops."""

    def __init__(self) -> None:
        self._serving = 0
        self._saved: tuple[int, int, int] | None = None

    def start(self) -> None:
        if self._serving == 0:
            self._saved = gc.get_threshold()
            gc.set_threshold(SERVING_GC_THRESHOLD, *self._saved[1:])
        self._serving += 1
        # What start-up built (ZIP tables, normalizer data, clients) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it (tens
        # of milliseconds each time, a pause every request in flight waits out).
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        self._serving -= 1
        if self._serving == 0 and self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None
            gc.unfreeze()  # what the stopped gateways held may be collected again


_collector = _CollectorTuning()


def warm_up() -> None:
    """Load the offline ZIP data both the normalizer and the offline geocoder index."""
    warm_address_data()
    zip_index()


class _AsgiEndpoint:
    """Serves an ASGI app at one exact path (a ``Mount`` would redirect ``/metrics``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class _GatewayApp(Starlette):
    """Starlette with ``RequestObservability`` outermost, and ``BodyDeadline`` inside it.

    Middleware given to Starlette runs inside its ``ServerErrorMiddleware``, so it would
    miss the 500 answers that layer sends for unhandled exceptions; wrapped around the
    whole stack, the request log, the latency histogram and ``X-Request-ID`` cover them too.
    """

    def __init__(self, *, metrics: Metrics, body_timeout: float, **kwargs: Any) -> None:
        self._metrics = metrics
        self._body_timeout = body_timeout
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        stack = BodyDeadline(super().build_middleware_stack(), self._body_timeout)
        return RequestObservability(stack, routes=self.routes, metrics=self._metrics)


class _Shared(Protocol):
    async def refresh(self) -> None: ...

    async def refresh_forever(self) -> None: ...


async def _shared(what: _Shared, ledger: SqlStateStore, stack: contextlib.AsyncExitStack) -> None:
    """What every replica must refuse (revoked device tokens, console sign-outs): loaded
    before the first request and, over a store other processes can open, reloaded every few
    seconds to learn other replicas'."""
    await what.refresh()
    if not is_memory(ledger.url):
        task = asyncio.get_running_loop().create_task(
            what.refresh_forever(), name=type(what).__name__
        )
        stack.push_async_callback(cancel, task)


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
    console = None
    if settings.console:
        from gateway.console import build_console

        console = build_console(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            wiring = Wiring(
                settings, stack, metrics, transport=upstream_transport, geocoder=geocoder
            )
            # Last in, first out: abandoned writes get a moment to settle before the close.
            stack.push_async_callback(wiring.upstream.wait_abandoned, 5.0)
            ledger: StateStore | None = None
            if settings.database_url != NO_DATABASE:
                url = settings.database_url or default_url(settings.data_dir)
                # Embedded SQLite migrates itself; PostgreSQL must be migrated beforehand
                # (`dlr-gateway db upgrade`): SchemaNotCurrent stops the start and says so.
                if is_embedded(url):
                    # In a child process, so that the migrations' modules (Alembic) never
                    # load into the server; in process below if that could not be done.
                    await upgrade_apart(url)
                ledger = await open_store(
                    url,
                    create=is_embedded(url),
                    max_batch=settings.store_max_batch,
                    linger=settings.store_linger,
                )
                stack.push_async_callback(ledger.close)
            # Events (webhooks, Kari's Law email) need the outbox in the state store.
            owner = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
            outbox: Events | None = None
            if isinstance(ledger, SqlStateStore):
                outbox = Events.build(settings, ledger, metrics, owner, carrier=wiring.upstream)
                stack.push_async_callback(outbox.aclose)
            app.state.events = outbox
            if isinstance(ledger, SqlStateStore):
                device_tokens.revocations = Revocations(SqlRevocationStore(ledger))
                await _shared(device_tokens.revocations, ledger, stack)
            else:
                device_tokens.revocations = Revocations()  # no database: this process's only
            if console is not None:
                from gateway.console.auth import SignOuts
                from gateway.store.signouts import SqlSignOutStore

                store = SqlSignOutStore(ledger) if isinstance(ledger, SqlStateStore) else None
                console.sessions.signouts = SignOuts(store)
                if isinstance(ledger, SqlStateStore):
                    await _shared(console.sessions.signouts, ledger, stack)
            wiremap = await network.open_wiremap(settings, ledger, wiring.normalize, metrics, stack)
            app.state.wiremap = wiremap
            # Callback number -> freshest binding: the emergency query's fallback.
            callers = CallerIndex(settings.binding_cache_size)
            pipeline = wiring.pipeline(
                ledger,
                callers=callers,
                events=None if outbox is None else outbox.emitter,
                network=TrustedEgress(wiremap.resolve, settings.network_trusted_egress),
            )
            # Build the ZIP indexes now, off the event loop, not in the first request.
            await asyncio.to_thread(warm_up)
            _collector.start()
            stack.callback(_collector.stop)
            # What start-up built and dropped (the ZIP data's transfer, the migrations) leaves
            # free pages in the C heap that would otherwise stay in the resident set.
            release_free_memory()
            trimmer = asyncio.get_running_loop().create_task(trim_forever(), name="malloc-trim")
            stack.push_async_callback(cancel, trimmer)
            # Background jobs start once start-up's own work is done: a replica still warming
            # up neither competes with its warm-up for the CPU nor acts on the carrier or
            # sends events before it is ready.
            if outbox is not None:
                outbox.start()
            # Also with no periodic checks (``reconcile_interval`` 0, passed as None): its passes
            # repair the writes a restart left uncertain, and purge the history past its
            # retention.
            if ledger is not None:
                reconciler = asyncio.get_running_loop().create_task(
                    pipeline.reconcile_forever(
                        ledger,
                        owner,
                        batch=settings.reconcile_batch,
                        interval=settings.reconcile_interval or None,
                        tick=settings.reconcile_tick,
                        retention=timedelta(days=settings.history_retention_days),
                        # Past the report's deadline and the watch after it, a write still
                        # unconfirmed has no one left waiting for it.
                        orphaned_after=settings.report_deadline + settings.upstream_settle_timeout,
                    ),
                    name="reconcile",
                )
                stack.push_async_callback(cancel, reconciler)
            readiness = Readiness(
                wiring.upstream,
                store=ledger,
                fallback=callers,
                metrics=metrics,
                window=settings.ready_window,
                config_problems=[] if settings.sandbox else settings.problems(),
            )
            stack.push_async_callback(readiness.aclose)
            limiter = DeviceRateLimiter(
                settings.report_rate_per_minute / 60.0, settings.report_burst
            )
            # Reads get a bucket of their own at the same rate: reading never costs a report.
            read_limiter = DeviceRateLimiter(
                settings.report_rate_per_minute / 60.0, settings.report_burst
            )
            emergency_query = EmergencyQuery(
                settings,
                metrics,
                callers,
                ledger,
                events=None if outbox is None else outbox.emitter,
            )
            emergency_query.start()
            stack.push_async_callback(emergency_query.aclose)
            app.state.emergency = emergency_query
            # Imports running in the background stop first, their progress kept.
            stack.push_async_callback(imports.jobs(app).aclose)
            app.state.services = Services(
                settings=settings,
                metrics=metrics,
                admin_keys=AdminKeys([str(k) for k in settings.admin_keys]),
                device_tokens=device_tokens,
                upstream=wiring.upstream,
                geocoding=wiring.geocoding,
                normalize=wiring.normalize,
                pipeline=pipeline,
                store=ledger,
                readiness=readiness,
                report_limiter=limiter,
                read_limiter=read_limiter,
                report_memo=ReportMemo(settings.report_memo_size),
                unchanged_answers=UnchangedAnswers(settings.report_memo_size),
            )
            yield

    # Matched in order: the location reports (most requests) first, then the carrier's
    # call-time query (the one with a deadline), so that each is matched at once.
    report, *device_reads = devices.routes
    routes: list[BaseRoute] = [report, *emergency.routes(settings), *device_reads]
    routes += [*health.routes, *held.routes, *admin.routes]
    routes += [*webhooks.routes, *events.routes]
    routes += network.routes
    routes += imports.routes
    if sandbox_app is not None:
        routes.append(Mount(SANDBOX_PREFIX, app=sandbox_app))
    if console is not None:
        routes += console.routes()
    routes.append(
        Route("/metrics", _AsgiEndpoint(make_asgi_app(metrics.registry)), methods=["GET"])
    )
    app = _GatewayApp(
        metrics=metrics,
        body_timeout=settings.body_timeout,
        routes=routes,
        lifespan=lifespan,
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    # A path with a slash too many or too few is a 404, not a redirect: Starlette's is to an
    # absolute URL built from the Host header (a poisoned cache's or a phisher's link).
    app.router.redirect_slashes = False
    app.state.metrics = metrics
    app.state.console = console
    app.state.trusted_proxies = parse_networks(settings.trusted_proxies)
    return app
