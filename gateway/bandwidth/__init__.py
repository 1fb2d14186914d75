"""The upstream: the carrier's records, the XML codec, the error tree, and the async client.

The client (and with it httpx) is imported lazily, so that the domain can use the
records and the errors without pulling in an HTTP library. The circuit breaker and the
retry budget the client shares across calls (``resilience``) need no HTTP library either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.bandwidth import errors, models, resilience
from gateway.bandwidth.errors import *  # noqa: F403 (each module's ``__all__``, re-exported)
from gateway.bandwidth.models import *  # noqa: F403
from gateway.bandwidth.resilience import *  # noqa: F403

if TYPE_CHECKING:
    from gateway.bandwidth.client import AbandonedHook, BandwidthClient, RetryPolicy

__all__ = [
    "AbandonedHook",
    "BandwidthClient",
    "RetryPolicy",
    *errors.__all__,
    *models.__all__,
    *resilience.__all__,
]

_LAZY = frozenset({"AbandonedHook", "BandwidthClient", "RetryPolicy"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from gateway.bandwidth import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
