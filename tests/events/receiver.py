"""A webhook receiver on 127.0.0.1 (uvicorn in a thread): verifies every delivery with the
Standard Webhooks library, deduplicates by ``webhook-id``, can fail or be down for a while."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.procs import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Start with ``up()``, stop with ``down()`` (the port then refuses connections)."""

    secret: str | None = None
    port: int = field(default_factory=free_port)
    #: Answer this status instead of 204 (a failing receiver), while set.
    status: int | None = None
    #: Answer 307 to this URL instead (a receiver that redirects elsewhere), while set.
    redirect_to: str | None = None
    deliveries: list[Received] = field(default_factory=list)
    #: Monotonic times of every request, by ``webhook-id`` (failed attempts too).
    attempts: dict[str, list[float]] = field(default_factory=dict)
    unverified: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            key = request.headers.get("webhook-id", "")
            self.attempts.setdefault(key, []).append(time.monotonic())
        if self.redirect_to is not None:
            return Response(status_code=307, headers={"Location": self.redirect_to})
        if self.status is not None:
            return Response(status_code=self.status)
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(body, dict(request.headers))
            except WebhookVerificationError:
                with self._lock:
                    self.unverified += 1
                return Response(status_code=400)
        with self._lock:
            self.deliveries.append(Received(dict(request.headers), body))
        return Response(status_code=204)

    def up(self) -> Receiver:
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.02)
        return self

    def down(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = self._thread = None

    def ids(self) -> list[str]:
        with self._lock:
            return [d.headers["webhook-id"] for d in self.deliveries]

    def events(self) -> dict[str, Any]:
        """Deduplicated by id, as a receiver should."""
        with self._lock:
            return {d.headers["webhook-id"]: json.loads(d.body) for d in self.deliveries}

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(set(self.ids())) < count:
            assert time.monotonic() < deadline, f"{len(set(self.ids()))} of {count} received"
            time.sleep(0.05)
