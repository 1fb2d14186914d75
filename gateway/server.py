"""``dlr-gateway serve``'s server: uvicorn, with a drain before its graceful shutdown.

On SIGTERM (or SIGINT), measured from the signal:

- at once, ``/readyz`` answers 503 (``Readiness.draining``) while everything else is still
  served, so load balancers and the kubelet see the pod go unready and stop sending;
- after ``drain_delay`` (at most the grace), uvicorn stops listening, closes idle
  connections and waits for the requests in flight;
- at ``GATEWAY_SHUTDOWN_GRACE``, whatever still runs is cancelled; the lifespan closes the
  clients and the process exits 0.

A second signal skips what is left of the drain delay; a third exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from starlette.applications import Starlette

from gateway.lean import without
from gateway.settings import Settings

# uvicorn's reloader would watch files with watchfiles: ``serve`` never reloads (gateway.lean).
with without("watchfiles"):
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

__all__ = ["DRAIN_DELAY", "GatewayServer", "build_config", "serve", "start_draining"]

log = logging.getLogger("gateway.server")

#: Seconds between the readiness flip and closing the listener: a few readiness-probe
#: periods of a load balancer, so it has stopped routing here before connections are refused.
DRAIN_DELAY = 5.0


def start_draining(app: Starlette) -> bool:
    """Turn the app's readiness to draining; ``False`` when its lifespan has not started yet."""
    services = getattr(app.state, "services", None)
    if services is None:
        return False
    services.readiness.draining = True
    return True


class GatewayServer(uvicorn.Server):
    """A ``uvicorn.Server`` whose exit signals drain first (see the module docstring).

    uvicorn's own ``handle_exit`` records the signal and raises it again once the server
    has stopped, so the process would die of SIGTERM (exit status 143) after a clean
    shutdown; this one does not, and ``serve`` returns normally.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        on_drain: Callable[[], bool],
        grace: float,
        drain_delay: float = DRAIN_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config)
        self.on_drain = on_drain
        self.grace = max(grace, 0.0)
        self.drain_delay = min(max(drain_delay, 0.0), self.grace)
        self.clock = clock
        self.drain_started: float | None = None
        self._signals = 0
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a signal handler: only flags here; on_tick does the rest in the loop.
        self._signals += 1
        if self._signals == 1:
            self.drain_started = self.clock()
            if not self.on_drain():
                self.should_exit = True  # nothing served yet, so nothing to drain
        elif self._signals == 2:
            self.should_exit = True
        else:
            self.force_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.drain_started is not None and not self.should_exit:
            if not self._announced:
                self._announced = True
                log.info(
                    "draining: /readyz answers 503; shutting down in %.1f s "
                    "(signal again to skip the wait)",
                    self.drain_delay,
                )
            if self.clock() - self.drain_started >= self.drain_delay:
                self.should_exit = True
        return await super().on_tick(counter)

    def remaining_grace(self) -> int:
        """Seconds left for in-flight requests: the grace counts from the signal, so what the
        drain used is gone. Whole seconds (uvicorn's type), rounded down so the bound holds."""
        spent = self.clock() - self.drain_started if self.drain_started is not None else 0.0
        return max(int(self.grace - spent), 0)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.config.timeout_graceful_shutdown = self.remaining_grace()
        await super().shutdown(sockets)


def _idle_deadline(base: type[Any]) -> type[Any]:
    """uvicorn's HTTP protocol ``base``, but a connection with no request in progress is
    closed ``timeout_keep_alive`` seconds after it opened or its last answer ended, whatever
    it sends meanwhile. uvicorn's own timer starts only after an answer, and any byte stops
    it: a client that sent nothing, or a byte of a request head now and then, held its
    connection (a descriptor, a protocol) for ever."""

    class IdleDeadline(base):  # type: ignore[misc]
        _idle_check: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm_idle_check()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_idle_check()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._idle_check is not None:
                self._idle_check.cancel()
                self._idle_check = None
            super().connection_lost(exc)

        def _arm_idle_check(self) -> None:
            if self._idle_check is not None:
                self._idle_check.cancel()
            self._idle_check = self.loop.call_later(self.timeout_keep_alive, self._idle_expired)

        def _idle_expired(self) -> None:
            self._idle_check = None
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                return  # a request is being served: its answer's end arms the check again
            if not self.transport.is_closing():
                self.transport.close()

    IdleDeadline.__name__ = IdleDeadline.__qualname__ = f"IdleDeadline{base.__name__}"
    return IdleDeadline


def build_config(app: Starlette, *, host: str, port: int, settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration for the gateway.

    ``loop`` "auto" picks uvloop, and the HTTP protocol is uvicorn's "auto" one (httptools;
    both in ``uvicorn[standard]``) with an idle deadline (``_idle_deadline``).
    Logging is left to ``gateway.observability.configure_logging``: no uvicorn log config
    and no access log (the request lines come from ``RequestObservability``).
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",
        http=_idle_deadline(AutoHTTPProtocol),
        ws="none",
        lifespan="on",
        log_config=None,
        access_log=False,
        # The client stays the TCP peer: ``gateway.api.source`` reads ``X-Forwarded-For``
        # from ``GATEWAY_TRUSTED_PROXIES`` only (uvicorn's would trust 127.0.0.1 by default).
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=max(int(settings.shutdown_grace), 0),
        timeout_keep_alive=max(1, round(settings.keep_alive_timeout)),
    )


def serve(
    app: Starlette,
    *,
    host: str,
    port: int,
    settings: Settings,
    drain_delay: float = DRAIN_DELAY,
) -> None:
    """Serve ``app`` until a signal, then drain and shut down within ``GATEWAY_SHUTDOWN_GRACE``."""
    server = GatewayServer(
        build_config(app, host=host, port=port, settings=settings),
        on_drain=lambda: start_draining(app),
        grace=settings.shutdown_grace,
        drain_delay=drain_delay,
    )
    server.run()
