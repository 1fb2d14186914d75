"""The carrier client ``BANDWIDTH_API`` names: the seed API's, or Bandwidth's v2 API's."""

from __future__ import annotations

import asyncio
import time
import weakref
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from gateway.bandwidth.client import BandwidthClient
    from gateway.bandwidth.exchanges import AbandonedHook
    from gateway.metrics import Metrics
    from gateway.settings import Settings


def carrier_client(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    metrics: Metrics | None = None,
    on_abandoned: AbandonedHook | None = None,
) -> BandwidthClient:
    """The client for the configured carrier API; both serve the same carrier seam."""
    if settings.bandwidth_api == "v2":
        from gateway.bandwidth.v2.client import BandwidthV2Client

        return BandwidthV2Client.from_settings(
            settings, transport=transport, metrics=metrics, on_abandoned=on_abandoned
        )
    from gateway.bandwidth.client import BandwidthClient

    return BandwidthClient.from_settings(
        settings, transport=transport, metrics=metrics, on_abandoned=on_abandoned
    )


#: The caller's own deadline (``time.monotonic()``) and the task it binds: the v2 client's
#: follow of an order ends before it, so that a report answers 202, not 503. Only the task
#: that set it is bound: a background task inherits the context, not the deadline.
#:
#: The task is held by a weak reference: the value lives in the task's own context, and a
#: strong one would make every request's task, coroutine and context a reference cycle,
#: garbage only the cyclic collector frees (tests/bandwidth/test_upstreams.py).
_ANSWER_BY: ContextVar[tuple[float, weakref.ref[asyncio.Task[object]] | None] | None] = ContextVar(
    "answer_by", default=None
)

#: Whether the current task's carrier calls are background work (repairs, the reconciler,
#: imports): those take at most half of the connection slots, so that a burst of them on a
#: slow carrier cannot hold every slot a device's report needs. Inherited by the tasks it
#: starts.
_BACKGROUND: ContextVar[bool] = ContextVar("carrier_background", default=False)


def in_background() -> None:
    """The current task's carrier calls, and those of the tasks it starts, are background
    work: each waits for a share of the client's connection slots first."""
    _BACKGROUND.set(True)


def is_background() -> bool:
    return _BACKGROUND.get()


def answer_by(seconds: float) -> None:
    """The current task must have its answer within ``seconds`` from now."""
    task = asyncio.current_task()
    _ANSWER_BY.set((time.monotonic() + seconds, None if task is None else weakref.ref(task)))


def time_left() -> float | None:
    """Seconds left before the current task's deadline (``answer_by``); ``None`` with none."""
    bound = _ANSWER_BY.get()
    if bound is None:
        return None
    deadline, bound_to = bound
    task = asyncio.current_task()
    # A task that is gone binds nothing (no task is ever the ``None`` a dead reference gives).
    same = task is None if bound_to is None else task is not None and bound_to() is task
    return deadline - time.monotonic() if same else None
