"""The carrier simulator as ``dlr-gateway simulator`` serves it, plus handling times.

The simulator's call log says when each call arrived, not how long it took. To subtract the
upstream's time from each report's end-to-end time, this wraps the simulator's ASGI app in a
middleware that records ``(method, path, start, end)`` per request with ``time.monotonic()``
(``CLOCK_MONOTONIC``: the same clock in every process on the machine, so the harness can pair
them with its own timestamps). ``GET /_bench/timings?since=N`` answers the entries after the
N-th. The uvicorn settings are those of ``gateway.simulator.serve.run``.

    python -m bench.simserver --port 8090 --latency-ms 20
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.simulator import SimulatorConfig, create_simulator

#: Timing entries kept (the oldest are dropped; ``index`` keeps counting).
MAX_TIMINGS = 2_000_000
TIMINGS_PATH = "/_bench/timings"


class Timings:
    """Records each request's handling time; answers them at ``/_bench/timings``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._entries: deque[tuple[int, str, str, float, float]] = deque(maxlen=MAX_TIMINGS)
        self._count = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == TIMINGS_PATH:
            await self._answer(scope, send)
            return
        start = time.monotonic()

        async def timed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                end = time.monotonic()
                with self._lock:
                    self._count += 1
                    self._entries.append((self._count, scope["method"], scope["path"], start, end))

        await self.app(scope, receive, timed_send)

    async def _answer(self, scope: Scope, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        since = int(query.get("since", ["0"])[0] or 0)
        with self._lock:
            rows: list[dict[str, Any]] = [
                {"index": i, "method": m, "path": p, "start": s, "end": e}
                for i, m, p, s, e in self._entries
                if i > since
            ]
        body = json.dumps(rows).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.simserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--api", choices=("seed", "v2"), default="seed")
    parser.add_argument("--order-seconds", type=float, default=0.05)
    args = parser.parse_args(argv)
    config = replace(SimulatorConfig.from_environ(), latency_ms=args.latency_ms)
    if args.api == "v2":
        from gateway.simulator.v2 import create_v2_simulator

        app = create_v2_simulator(config, order_seconds=args.order_seconds)
    else:
        app = create_simulator(config)
    uvicorn.run(Timings(app), host=args.host, port=args.port, ws="none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
