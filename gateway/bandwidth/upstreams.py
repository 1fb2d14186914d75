"""The carrier client ``BANDWIDTH_API`` names: the seed API's, or Bandwidth's v2 API's."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from gateway.bandwidth.client import BandwidthClient
    from gateway.metrics import Metrics
    from gateway.settings import Settings


def carrier_client(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    metrics: Metrics | None = None,
) -> BandwidthClient:
    """The client for the configured carrier API; both serve the same carrier seam."""
    if settings.bandwidth_api == "v2":
        from gateway.bandwidth.v2.client import BandwidthV2Client

        return BandwidthV2Client.from_settings(settings, transport=transport, metrics=metrics)
    from gateway.bandwidth.client import BandwidthClient

    return BandwidthClient.from_settings(settings, transport=transport, metrics=metrics)
