"""Liveness, readiness and the gateway's own API description."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
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


class Readiness:
    """Ready = configuration valid, the upstream answered recently (or a probe does), not draining.

    At most one probe runs at a time and a failed probe is not repeated for ``probe_interval``
    seconds, so a crowd of readiness checks cannot hammer a struggling carrier.
    """

    def __init__(
        self,
        upstream: BandwidthClient,
        *,
        store: StateStore | None = None,
        window: float,
        config_problems: list[str],
        clock: Callable[[], float] = time.monotonic,
        probe_interval: float = 5.0,
        probe_timeout: float = 2.0,
    ) -> None:
        self.upstream = upstream
        self.store = store
        self.window = window
        self.config_problems = config_problems
        self.clock = clock
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.draining = False
        self._last_probe: float | None = None
        self._probe_lock = asyncio.Lock()

    def _recent(self) -> bool:
        seen = self.upstream.last_healthy_at
        refused = self.upstream.last_refusal_at
        if refused is not None and (seen is None or refused >= seen):
            return False
        return seen is not None and self.clock() - seen <= self.window

    def _upstream_state(self) -> str:
        refused = self.upstream.last_refusal_at
        seen = self.upstream.last_healthy_at
        if refused is not None and (seen is None or refused >= seen):
            return "credentials refused"
        return "unreachable"

    async def check(self) -> dict[str, object]:
        circuit = self.upstream.breaker.state
        checks: dict[str, object] = {
            "config": "ok" if not self.config_problems else "; ".join(self.config_problems),
            "draining": self.draining,
            "circuit": circuit,
        }
        # An open circuit wins over recent answers: a carrier answering 503 to everything
        # keeps answering, and is still not one to send reports to.
        upstream_ok = circuit != "open" and self._recent()
        if not upstream_ok and not self.draining and circuit != "open":
            upstream_ok = await self._probe()
        if upstream_ok:
            checks["upstream"] = "ok"
        elif circuit == "open":
            checks["upstream"] = "circuit open"
        else:
            checks["upstream"] = self._upstream_state()
        store_ok = True
        if self.store is not None:
            try:
                await self.store.ping()
            except StoreUnavailable:
                store_ok = False
            checks["database"] = "ok" if store_ok else "unavailable"
        checks["ready"] = (
            upstream_ok and store_ok and not self.config_problems and not self.draining
        )
        return checks

    async def _probe(self) -> bool:
        async with self._probe_lock:
            if self._recent():
                return True
            now = self.clock()
            if self._last_probe is not None and now - self._last_probe < self.probe_interval:
                return False
            self._last_probe = now
            try:
                async with asyncio.timeout(self.probe_timeout):
                    await self.upstream.list_notification_recipients()
            except (UpstreamError, TimeoutError):
                return self._recent()
            return True


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
