"""The simulator's misbehaviour: a rate limit, and a connection dropped mid-answer.

A dropped connection is an answer that promises more body than it sends and then raises
``SimulatedConnectionReset``. A real server (uvicorn) aborts the connection when an app raises
after the response started, so an httpx client sees ``RemoteProtocolError``/``ReadError``;
``SimulatorTransport`` turns the exception into ``httpx.RemoteProtocolError`` in-process.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class SimulatedConnectionReset(Exception):
    """Raised after a truncated answer so that the server drops the connection."""


class DroppedConnection(Response):
    """Sends the status, headers and part of ``body`` with a longer Content-Length, then raises."""

    def __init__(self, status_code: int, body: bytes) -> None:
        super().__init__(body, status_code=status_code, media_type="application/xml")
        self.declared = max(len(body), 64)
        self.sent = body[: len(body) // 2]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": [
                    (b"content-type", b"application/xml"),
                    (b"content-length", str(self.declared).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self.sent, "more_body": True})
        raise SimulatedConnectionReset("simulated connection reset")


class QuietResets(logging.Filter):
    """Drops the server's "Exception in ASGI application" record for a simulated reset."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedConnectionReset)


def quiet_resets(logger_name: str = "uvicorn.error") -> None:
    """Install ``QuietResets`` on the server's error logger, once."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, QuietResets) for f in logger.filters):
        logger.addFilter(QuietResets())


class TokenBucket:
    """``rate`` requests per second with a burst of ``max(1, rate)``, on an injected clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: float | None = None
        self._stamp = 0.0

    def reset(self) -> None:
        self._tokens = None

    def take(self, rate: float) -> float | None:
        """Take a token; ``None`` when one was free, else the seconds until one will be."""
        now = self._clock()
        capacity = max(1.0, rate)
        if self._tokens is None:
            self._tokens = capacity
        else:
            self._tokens = min(capacity, self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / rate


def retry_after_seconds(wait: float) -> int:
    """Whole seconds for a ``Retry-After`` header, at least 1."""
    return max(1, math.ceil(wait))
