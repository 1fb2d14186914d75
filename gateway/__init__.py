"""dlr-gateway: a Dynamic Location Routing gateway for 911."""

from __future__ import annotations

from gateway.lean import without

__version__ = "0.1.0"

# httpx's command-line client (rich, click) is no part of the gateway (gateway.lean).
with without("httpx._main"):
    import httpx  # noqa: F401
