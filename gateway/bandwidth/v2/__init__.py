"""Bandwidth's Unified Emergency Services Provisioning API (v2): its shapes, their mapping
to the gateway's carrier records, and the client (imported lazily, as it needs httpx)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.bandwidth.v2.client import BandwidthV2Client

__all__ = ["BandwidthV2Client"]


def __getattr__(name: str) -> Any:
    if name == "BandwidthV2Client":
        from gateway.bandwidth.v2.client import BandwidthV2Client

        return BandwidthV2Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
