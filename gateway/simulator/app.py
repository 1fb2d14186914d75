"""The simulator as a Starlette app: the carrier API over XML, plus ``/_sim/`` views for tests.

Every carrier API request goes through ``Simulator.handle``: call log entry, latency, Basic auth,
account check, rate limit, bounded body read, fault injection, then the operation on the store.
Sleeping and the clock are injected, so tests hold requests and tick time without waiting.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.bandwidth.codec import MAX_XML_BYTES
from gateway.simulator.addresses import zip_index
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.faults import (
    DroppedConnection,
    TokenBucket,
    quiet_resets,
    retry_after_seconds,
)
from gateway.simulator.store import (
    RESERVED_ENDPOINT_IDS,
    Code,
    Outcome,
    Store,
    error,
)

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

#: The largest carrier API request body accepted (413 above it).
MAX_BODY_BYTES = MAX_XML_BYTES
#: The call log keeps this many entries, dropping the oldest (``seq`` keeps counting).
MAX_CALLS = 1_000_000
#: The largest ``/_sim/reset`` body accepted.
MAX_CONTROL_BYTES = 64 * 1024

_XML = "application/xml"
_ACCOUNT = "/api/accounts/{accountId}/e911s"


class Records(Protocol):
    """The account's records and the operations on them (``Store`` for the seed API)."""

    def clear(self) -> None: ...
    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]: ...
    def run(self, operation: str, params: Mapping[str, str], body: bytes) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class Operation:
    """One carrier operation: its ``operationId``, method and route."""

    name: str
    method: str
    path: str
    write: bool


#: In route order: the fixed ``locations``/``notificationRecipients`` paths before ``{endpointId}``.
OPERATIONS: tuple[Operation, ...] = (
    Operation("listLocations", "GET", _ACCOUNT + "/locations", False),
    Operation("createLocation", "POST", _ACCOUNT + "/locations", True),
    Operation("getLocation", "GET", _ACCOUNT + "/locations/{locationId}", False),
    Operation("updateLocation", "PUT", _ACCOUNT + "/locations/{locationId}", True),
    Operation("deleteLocation", "DELETE", _ACCOUNT + "/locations/{locationId}", True),
    Operation("listNotificationRecipients", "GET", _ACCOUNT + "/notificationRecipients", False),
    Operation("createNotificationRecipient", "POST", _ACCOUNT + "/notificationRecipients", True),
    Operation("listEndpoints", "GET", _ACCOUNT, False),
    Operation("createEndpoint", "POST", _ACCOUNT, True),
    Operation("getEndpoint", "GET", _ACCOUNT + "/{endpointId}", False),
    Operation("updateEndpoint", "PUT", _ACCOUNT + "/{endpointId}", True),
    Operation("deleteEndpoint", "DELETE", _ACCOUNT + "/{endpointId}", True),
)


class Simulator:
    """The carrier's state, call log and fault machinery; ``create_simulator`` serves it.

    ``config`` is read on every request, so tests may change it on a running simulator.
    """

    #: The API's operations, in route order, and the store that carries them out.
    operations: tuple[Operation, ...] = OPERATIONS
    #: The media type of its answers' bodies.
    media_type: str = _XML

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.store: Records = Store()
        self._sleep = sleep
        self._clock = clock
        self._calls: deque[dict[str, Any]] = deque(maxlen=MAX_CALLS)
        self._seq = 0
        self._calls_lock = threading.Lock()
        self._rng = random.Random(self.config.seed)  # noqa: S311 - fault injection, not crypto
        self._bucket = TokenBucket(clock)
        self._held: set[asyncio.Task[Outcome]] = set()
        self._generation = 0

    @staticmethod
    def _error(status: int, code: str, description: str) -> Outcome:
        """An error answer in the API's own error document."""
        return error(status, code, description)

    def _answer(self, outcome: Outcome, headers: Mapping[str, str] | None = None) -> Response:
        return Response(
            outcome.body,
            status_code=outcome.status,
            media_type=self.media_type if outcome.body else None,
            headers=dict(headers) if headers else None,
        )

    def app(self) -> Starlette:
        """This simulator served: its routes, failures in its API's error documents, and
        ``/e911s/`` answered as the API does (404), not redirected to ``/e911s``."""
        zip_index()  # built once per process, now rather than inside the first request

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            code = {404: Code.NOT_FOUND, 405: Code.METHOD_NOT_ALLOWED}.get(
                exc.status_code, Code.INVALID_REQUEST
            )
            return self._answer(self._error(exc.status_code, code, str(exc.detail)), exc.headers)

        async def internal_error(request: Request, exc: Exception) -> Response:
            return self._answer(self._error(500, Code.INTERNAL_ERROR, "internal error"))

        app = Starlette(
            routes=self.routes(),
            exception_handlers={HTTPException: http_error, Exception: internal_error},
        )
        app.router.redirect_slashes = False
        app.state.simulator = self
        quiet_resets()
        return app

    @staticmethod
    def _params(request: Request) -> dict[str, str]:
        """What an operation is given of the request: its path parameters."""
        return dict(request.path_params)

    # -- the Python face -------------------------------------------------------

    @property
    def state(self) -> dict[str, dict[str, dict[str, Any]]]:
        """A JSON snapshot: ``{"endpoints": {id: {...}}, "locations": {...}, ...}``."""
        return self.store.snapshot()

    @property
    def calls(self) -> list[dict[str, Any]]:
        """A copy of the call log, oldest first."""
        return self.calls_since(0)

    def calls_since(self, seq: int) -> list[dict[str, Any]]:
        with self._calls_lock:
            return [dict(c) for c in self._calls if c["seq"] > seq]

    def reset(self) -> None:
        """Clear state, call log and rate limit; re-seed the RNG; held writes will not land."""
        self.store.clear()
        with self._calls_lock:
            self._calls.clear()
            self._seq = 0
            self._generation += 1
        self._rng.seed(self.config.seed)
        self._bucket.reset()

    async def wait_idle(self) -> None:
        """Wait until every held ("timeout") request has finished, late writes included."""
        while self._held:
            await asyncio.gather(*list(self._held), return_exceptions=True)

    # -- the carrier API -------------------------------------------------------

    async def handle(self, request: Request, op: Operation) -> Response:
        params = self._params(request)
        if params.get("endpointId", "").lower() in RESERVED_ENDPOINT_IDS:
            # ``PUT .../e911s/locations`` falls through to ``{endpointId}``: not an endpoint.
            return self._answer(
                self._error(405, Code.METHOD_NOT_ALLOWED, f"{request.method} is not allowed here"),
                {"Allow": "GET, POST"},
            )
        entry = self._log(request, op, params)
        try:
            return await self._handle(request, op, params, entry)
        except ClientDisconnect:
            # Not the simulator's failure, and nothing was applied: the body never arrived.
            logger.info("%s: the client hung up before sending the whole request", op.name)
            with self._calls_lock:
                entry["disconnected"] = True
            return Response(status_code=400)  # no one is left to read it
        except Exception:
            logger.exception("simulator failed on %s", op.name)
            outcome = self._error(500, Code.INTERNAL_ERROR, "internal error")
            self._finish(entry, outcome)
            return self._answer(outcome)

    async def _handle(
        self, request: Request, op: Operation, params: dict[str, str], entry: dict[str, Any]
    ) -> Response:
        cfg = self.config
        if cfg.latency_ms > 0:
            await self._sleep(cfg.latency_ms / 1000)
        if not self._authorized(request.headers.get("authorization")):
            outcome = self._error(401, Code.UNAUTHORIZED, "invalid credentials")
            self._finish(entry, outcome)
            return self._answer(outcome, {"WWW-Authenticate": 'Basic realm="simulator"'})
        if params["accountId"] != cfg.account_id:
            outcome = self._error(404, Code.NOT_FOUND, f"account {params['accountId']!r} not found")
            self._finish(entry, outcome)
            return self._answer(outcome)
        if cfg.rate_limit > 0:
            wait = self._bucket.take(cfg.rate_limit)
            if wait is not None:
                outcome = self._error(429, Code.RATE_LIMITED, "rate limit exceeded")
                self._finish(entry, outcome)
                return self._answer(outcome, {"Retry-After": str(retry_after_seconds(wait))})
        body = await _read_body(request, MAX_BODY_BYTES)
        if body is None:
            outcome = self._error(
                413, Code.PAYLOAD_TOO_LARGE, f"body exceeds {MAX_BODY_BYTES} bytes"
            )
            self._finish(entry, outcome)
            return self._answer(outcome)

        fault = self._pick_fault(cfg)
        if fault is None:
            outcome = self.store.run(op.name, params, body)
            self._finish(entry, outcome)
            return self._answer(outcome)
        with self._calls_lock:
            entry["fault"] = fault
        if fault == "429":
            outcome = self._error(429, Code.RATE_LIMITED, "rate limit exceeded")
            self._finish(entry, outcome)
            return self._answer(outcome, {"Retry-After": str(cfg.retry_after)})
        if fault == "timeout":
            return self._answer(await self._hold(op, params, body, entry, cfg))

        # "500", "503", "reset": a write may be applied before the failure (an ambiguous outcome).
        applied: Outcome | None = None
        if op.write and self._rng.random() < cfg.ambiguous_rate:
            applied = self.store.run(op.name, params, body)
        was_applied = applied is not None and applied.applied
        applied_id = applied.id if applied is not None else None
        if fault == "reset":
            self._record(entry, None, was_applied, applied_id)
            if applied is not None and was_applied:
                return DroppedConnection(applied.status, applied.body)
            return DroppedConnection(
                503, self._error(503, Code.SERVICE_UNAVAILABLE, "connection reset by peer").body
            )
        status = int(fault)
        code = Code.INTERNAL_ERROR if status == 500 else Code.SERVICE_UNAVAILABLE
        outcome = self._error(status, code, f"simulated {status}")
        self._record(entry, status, was_applied, applied_id)
        headers = {"Retry-After": str(cfg.retry_after)} if status == 503 else None
        return self._answer(outcome, headers)

    async def _hold(
        self,
        op: Operation,
        params: dict[str, str],
        body: bytes,
        entry: dict[str, Any],
        cfg: SimulatorConfig,
    ) -> Outcome:
        """Hold for ``timeout_hold``, then answer (and apply a write if ``late_apply``).

        The hold runs in its own task, shielded: a client that gives up (in-process, that
        cancels this request) does not stop the late write.
        """
        hold, late_apply, generation = cfg.timeout_hold, cfg.late_apply, self._generation

        async def held() -> Outcome:
            await self._sleep(hold)
            if generation != self._generation:  # reset while held: this write is dropped
                return self._error(503, Code.SERVICE_UNAVAILABLE, "simulator was reset")
            if op.write and not late_apply:
                outcome = self._error(504, Code.REQUEST_TIMEOUT, "request timed out; not applied")
            else:
                outcome = self.store.run(op.name, params, body)
            self._finish(entry, outcome)
            return outcome

        task = asyncio.get_running_loop().create_task(held())
        self._held.add(task)
        task.add_done_callback(_settled)
        task.add_done_callback(self._held.discard)
        return await asyncio.shield(task)

    def _pick_fault(self, cfg: SimulatorConfig) -> str | None:
        if cfg.fault_rate <= 0 or not cfg.fault_kinds:
            return None
        if self._rng.random() >= cfg.fault_rate:
            return None
        return self._rng.choice(cfg.fault_kinds)

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        username, sep, password = decoded.partition(b":")
        user_ok = hmac.compare_digest(username, self.config.username.encode())
        password_ok = hmac.compare_digest(password, self.config.password.encode())
        return bool(sep) and user_ok and password_ok

    # -- the call log ----------------------------------------------------------

    def _log(self, request: Request, op: Operation, params: Mapping[str, str]) -> dict[str, Any]:
        with self._calls_lock:
            self._seq += 1
            entry: dict[str, Any] = {
                "seq": self._seq,
                "time": self._clock(),
                "method": request.method,
                "path": request.url.path,
                "operation": op.name,
                "status": None,
                "fault": None,
                "applied": False,
                "id": params.get("endpointId") or params.get("locationId"),
                # The client hung up before the request was read: no status, nothing applied.
                "disconnected": False,
            }
            self._calls.append(entry)
        return entry

    def _finish(self, entry: dict[str, Any], outcome: Outcome) -> None:
        self._record(entry, outcome.status, outcome.applied, outcome.id)

    def _record(
        self, entry: dict[str, Any], status: int | None, applied: bool, record_id: str | None
    ) -> None:
        with self._calls_lock:
            entry["status"] = status
            entry["applied"] = applied
            if record_id is not None:
                entry["id"] = record_id

    # -- the /_sim views -------------------------------------------------------

    async def _sim_state(self, request: Request) -> Response:
        return JSONResponse(self.state)

    async def _sim_calls(self, request: Request) -> Response:
        since = request.query_params.get("since", "0")
        try:
            seq = int(since)
        except ValueError:
            return JSONResponse({"error": "since must be an integer"}, status_code=400)
        return JSONResponse(self.calls_since(seq))

    async def _sim_config(self, request: Request) -> Response:
        return JSONResponse(self.config.to_json())

    async def _sim_reset(self, request: Request) -> Response:
        failed = await self._apply_config(request)
        if failed is not None:
            return failed
        self.reset()
        return JSONResponse({"config": self.config.to_json()})

    async def _sim_configure(self, request: Request) -> Response:
        """Change the config (faults, latency...) at run time, keeping state and held writes."""
        failed = await self._apply_config(request)
        return failed or JSONResponse({"config": self.config.to_json()})

    async def _apply_config(self, request: Request) -> Response | None:
        """Apply a JSON body of config changes; an error answer, or ``None`` when applied."""
        body = await _read_body(request, MAX_CONTROL_BYTES)
        if body is None:
            return JSONResponse({"error": "body too large"}, status_code=413)
        if not body.strip():
            return None
        try:
            changes = json.loads(body)
        except (ValueError, RecursionError):
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        if not isinstance(changes, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        try:
            self.config.update(changes)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return None

    def routes(self) -> list[Route]:
        out = [
            Route(op.path, self._endpoint(op), methods=[op.method], name=op.name)
            for op in self.operations
        ]
        out += [
            Route("/_sim/state", self._sim_state, methods=["GET"]),
            Route("/_sim/calls", self._sim_calls, methods=["GET"]),
            Route("/_sim/config", self._sim_config, methods=["GET"]),
            Route("/_sim/config", self._sim_configure, methods=["POST"]),
            Route("/_sim/reset", self._sim_reset, methods=["POST"]),
        ]
        return out

    def _endpoint(self, op: Operation) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self.handle(request, op)

        return endpoint


def _settled(task: asyncio.Task[Outcome]) -> None:
    """Collect a held request's failure, so that one nobody awaits any more is still logged."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("held request failed", exc_info=task.exception())


def create_simulator(
    config: SimulatorConfig | None = None,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
) -> Starlette:
    """The simulator app; ``app.state.simulator`` is its ``Simulator``."""
    return Simulator(config, sleep=sleep, clock=clock).app()


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The whole body, or ``None`` when it is larger than ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
