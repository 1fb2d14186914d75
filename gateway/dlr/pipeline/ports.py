"""What the pipeline needs of the world: the carrier, the geocoder, the normalizer, the store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from gateway.bandwidth.models import Address, Endpoint, EndpointListResponse, Location
from gateway.dlr.address import Normalized
from gateway.geocoding.results import GeocodeResult
from gateway.store.base import StoredBinding


class Carrier(Protocol):
    """The carrier operations the pipeline uses (``BandwidthClient`` is one)."""

    async def create_location(self, location: Location) -> Location: ...
    async def get_location(self, location_id: str) -> Location: ...
    async def get_endpoint(self, endpoint_id: str) -> Endpoint: ...
    async def create_endpoint(self, endpoint: Endpoint) -> Endpoint: ...
    async def update_endpoint(self, endpoint_id: str, endpoint: Endpoint) -> Endpoint: ...
    async def list_endpoints(self) -> EndpointListResponse: ...


class Reconcilable(Protocol):
    """What periodic reconciliation needs of the state store."""

    async def lease(
        self,
        owner: str,
        *,
        limit: int,
        lease_seconds: float,
        older_than: datetime | None = None,
        only_unconfirmed: bool = False,
        applied_before: datetime | None = None,
        skip_unconfirmed_since: datetime | None = None,
    ) -> list[StoredBinding]: ...

    async def release(self, aeui: str, owner: str) -> bool: ...

    async def checked(
        self, aeui: str, owner: str, confirmed: bool, *, version: int | None = None
    ) -> bool: ...

    async def purge_history(self, older_than: datetime) -> int: ...


class Geocoder(Protocol):
    """Forward and reverse geocoding (``gateway.geocoding.Geocoding`` is one)."""

    async def geocode(self, address: Address) -> GeocodeResult | None: ...
    async def reverse(self, latitude: float, longitude: float) -> GeocodeResult | None: ...


Normalizer = Callable[[Address | Mapping[str, object] | str], Normalized]
