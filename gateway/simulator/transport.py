"""``SimulatorTransport``: the simulator in-process, failing the way a network does.

``httpx.ASGITransport`` runs an app in the client's own event loop but knows nothing of
timeouts or dropped connections. This transport turns the simulator's dropped connection into
``httpx.RemoteProtocolError`` (as httpx reports a peer that closes mid-body) and, by default,
enforces the request's read timeout as ``httpx.ReadTimeout``; giving up cancels the in-process
request, as a closed connection would (a held write still lands: the simulator shields it).

When the app is the simulator's own (from ``create_simulator``) and no ``root_path`` is given,
whatever precedes ``/api/`` or ``/_sim/`` in the URL is taken as the mount prefix, so a client
whose base URL is ``http://host/sandbox/bandwidth/api`` reaches it as through the gateway's
``Mount``. Any other app (one that mounts the simulator, say) routes the full path itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.simulator.app import Simulator
from gateway.simulator.faults import SimulatedConnectionReset

_SIMULATOR_PATHS = ("/api/", "/_sim/")


def _mount_prefix(path: str) -> str:
    """What precedes ``/api/`` or ``/_sim/``: where the simulator is mounted in sandbox mode."""
    if path.startswith(_SIMULATOR_PATHS):
        return ""
    found = [i for i in (path.find(p) for p in _SIMULATOR_PATHS) if i > 0]
    return path[: min(found)] if found else ""


class _Dropped(BaseException):
    """Carries a reset past ``ASGITransport``'s ``except Exception``."""


class SimulatorTransport(httpx.ASGITransport):
    def __init__(
        self,
        app: Any,
        raise_app_exceptions: bool = True,
        root_path: str = "",
        client: tuple[str, int] = ("127.0.0.1", 123),
        *,
        enforce_timeouts: bool = True,
    ) -> None:
        # Only the simulator's own app can be told where it is mounted; a parent app routes itself.
        is_simulator = isinstance(
            getattr(getattr(app, "state", None), "simulator", None), Simulator
        )

        async def signalling(scope: Any, receive: Any, send: Any) -> None:
            if is_simulator and not scope.get("root_path"):
                scope["root_path"] = _mount_prefix(scope["path"])
            try:
                await app(scope, receive, send)
            except SimulatedConnectionReset as exc:
                raise _Dropped from exc

        super().__init__(
            app=signalling,
            raise_app_exceptions=raise_app_exceptions,
            root_path=root_path,
            client=client,
        )
        self.enforce_timeouts = enforce_timeouts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {}).get("read")
        try:
            if self.enforce_timeouts and timeout is not None:
                try:
                    async with asyncio.timeout(timeout):
                        return await super().handle_async_request(request)
                except TimeoutError:
                    raise httpx.ReadTimeout("simulated read timeout", request=request) from None
            return await super().handle_async_request(request)
        except _Dropped:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body (simulated reset)",
                request=request,
            ) from None
