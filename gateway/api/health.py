"""Liveness, readiness and the gateway's own API description."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.context import services
from gateway.bandwidth.errors import UpstreamError
from gateway.jsondump import JSONResponse
from gateway.store import StateStore, StoreUnavailable

if TYPE_CHECKING:
    from gateway.bandwidth.client import BandwidthClient
    from gateway.dlr.callers import CallerIndex
    from gateway.metrics import Metrics

#: How long a readiness check waits for the state store's ping (a kubelet's probe gives up
#: after 1 s by default).
STORE_PING_TIMEOUT = 0.8


@dataclass(eq=False)
class Readiness:
    """Whether this pod can serve: its configuration is valid, it is not draining, and its
    state store answers, or the call-time query has its memory fallback to answer from. Not
    the carrier, which every pod shares; a probe of it runs in the background, and the body
    shows its outcome (docs/reliability.md, "Circuit breaker, retry budget, readiness")."""

    upstream: BandwidthClient
    _: KW_ONLY
    store: StateStore | None = None
    fallback: CallerIndex | None = None
    metrics: Metrics | None = None
    window: float
    config_problems: list[str]
    clock: Callable[[], float] = time.monotonic
    probe_interval: float = 5.0
    probe_timeout: float | None = None
    store_timeout: float = STORE_PING_TIMEOUT
    draining: bool = field(default=False, init=False)
    _last_probe: float | None = field(default=None, init=False)
    _probe: asyncio.Task[None] | None = field(default=None, init=False)

    def _upstream_state(self) -> str:
        """What the carrier's last answers say: for the body, never for the status."""
        if self.upstream.breaker.state == "open":
            return "circuit open"
        seen = self.upstream.last_healthy_at
        refused = self.upstream.last_refusal_at
        if refused is not None and (seen is None or refused >= seen):
            return "credentials refused"
        if seen is not None and self.clock() - seen <= self.window:
            return "ok"
        answered = self.upstream.last_answer_at
        if self._probe is not None and (
            answered is None or (seen is not None and answered <= seen)
        ):
            # The probe is out, and nothing since the last healthy answer (if any) said the
            # carrier fails: a quiet spell is not an outage.
            return "unknown"
        return "unreachable"

    async def check(self) -> dict[str, object]:
        if self._upstream_state() not in ("ok", "circuit open") and not self.draining:
            self._start_probe()
        upstream = self._upstream_state()
        checks: dict[str, object] = {
            "config": "ok" if not self.config_problems else "; ".join(self.config_problems),
            "draining": self.draining,
            "circuit": self.upstream.breaker.state,
            "upstream": upstream,
        }
        store_ok = True
        if self.store is not None:
            try:
                async with asyncio.timeout(self.store_timeout):
                    await self.store.ping()
            except (StoreUnavailable, TimeoutError):
                store_ok = False
            checks["database"] = "ok" if store_ok else "unavailable"
            if self.metrics is not None:
                backend = str(getattr(self.store, "dialect", "other"))
                self.metrics.state_store_available.labels(backend).set(1.0 if store_ok else 0.0)
        serving = store_ok or self.fallback is not None
        if not store_ok and serving:
            checks["fallback"] = "memory"  # the call-time query answers from the caller index
        checks["ready"] = serving and not self.config_problems and not self.draining
        return checks

    def _start_probe(self) -> None:
        if self._probe is not None:
            return
        now = self.clock()
        if self._last_probe is not None and now - self._last_probe < self.probe_interval:
            return
        self._last_probe = now
        self._probe = asyncio.get_running_loop().create_task(
            self._run_probe(), name="readiness probe"
        )

    async def _run_probe(self) -> None:
        """One cheap call: its answer (or silence) updates what the client has heard."""
        try:
            limit = self.probe_timeout
            async with asyncio.timeout(self.upstream.policy.timeout if limit is None else limit):
                await self.upstream.list_notification_recipients()
        except (UpstreamError, TimeoutError):
            pass  # the client has recorded what the carrier said, or that it said nothing
        finally:
            self._probe = None

    async def aclose(self) -> None:
        probe = self._probe
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    checks = await services(request).readiness.check()
    return JSONResponse(checks, status_code=200 if checks["ready"] else 503)


@cache
def openapi_document() -> bytes:
    text = resources.files("gateway").joinpath("openapi.json").read_text("utf-8")
    return json.dumps(json.loads(text), separators=(",", ":")).encode()


async def openapi(request: Request) -> Response:
    return Response(openapi_document(), media_type="application/json")


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
