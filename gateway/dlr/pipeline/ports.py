"""What the pipeline needs of the world: the carrier, the geocoder, the normalizer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from gateway.bandwidth.errors import UpstreamRejected
from gateway.bandwidth.models import Address, Endpoint, EndpointListResponse, Location
from gateway.dlr.address import Normalized
from gateway.geocoding.results import GeocodeResult


class Carrier(Protocol):
    """The carrier operations the pipeline uses (``BandwidthClient`` is one)."""

    async def create_location(self, location: Location) -> Location: ...
    async def get_location(self, location_id: str) -> Location: ...
    async def get_endpoint(self, endpoint_id: str) -> Endpoint: ...
    async def create_endpoint(self, endpoint: Endpoint) -> Endpoint: ...
    async def update_endpoint(self, endpoint_id: str, endpoint: Endpoint) -> Endpoint: ...
    async def delete_endpoint(self, endpoint_id: str) -> None:
        """Delete the endpoint (a repair's, of a device an admin deleted)."""
        ...

    def expect(self, endpoint_id: str, held: Endpoint | None) -> None:
        """What the state store says the carrier holds at ``endpoint_id`` (``None``: not
        known for certain), before a write to it."""
        ...

    async def list_endpoints(self) -> EndpointListResponse: ...
    async def settle_orders(self, limit: int) -> None:
        """Check up to ``limit`` writes answered pending long ago that no read has settled."""
        ...

    def refusal(self, endpoint_id: str) -> tuple[Endpoint, UpstreamRejected] | None:
        """A write that was answered pending, then refused: the endpoint written and the
        carrier's words, once."""
        ...


class Geocoder(Protocol):
    """Forward and reverse geocoding (``gateway.geocoding.Geocoding`` is one)."""

    async def geocode(self, address: Address) -> GeocodeResult | None: ...
    async def reverse(self, latitude: float, longitude: float) -> GeocodeResult | None: ...


Normalizer = Callable[[Address | Mapping[str, object] | str], Normalized]
