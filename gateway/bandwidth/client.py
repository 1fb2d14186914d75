"""The async client for the Bandwidth Emergency Calling API: one method per carrier operation.

How a call is made (deadline, retries, abandoned writes) is ``calls.py`` and ``exchanges.py``;
this module names the operations and checks the IDs that go into their paths.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import xml.etree.ElementTree as ET
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar, cast
from urllib.parse import quote, urlsplit

import httpx

from gateway.bandwidth import codec, models
from gateway.bandwidth.errors import (
    CodecError,
    UpstreamParseError,
    UpstreamRejected,
)
from gateway.bandwidth.models import Endpoint, Location, NotificationRecipient, Record, wire_name
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.metrics import Metrics
from gateway.bandwidth.calls import CarrierCalls, answered_for, check_id
from gateway.bandwidth.exchanges import AbandonedHook, Operation, RetryPolicy

__all__ = ["AbandonedHook", "BandwidthClient", "RetryPolicy"]

R = TypeVar("R", bound=Record)

#: Names that sit beside ``/e911s/{endpointId}`` and so can never be endpoint IDs.
_RESERVED_ENDPOINT_IDS: Final = frozenset({"locations", "notificationrecipients"})


def _check_endpoint_id(value: str) -> str:
    check_id(value, "endpoint ID")
    if value.casefold() in _RESERVED_ENDPOINT_IDS:
        raise ValueError(f"refusing endpoint ID {value!r}: it names a sibling collection")
    return value


def _is_empty(record: Record) -> bool:
    return all(getattr(record, f.name) in (None, ()) for f in dataclasses.fields(record))


class BandwidthClient(CarrierCalls):
    """The carrier's twelve operations over one pooled ``httpx.AsyncClient`` (``CarrierCalls``)."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        metrics: Metrics | None = None,
        on_abandoned: AbandonedHook | None = None,
    ) -> Self:
        """The client the settings describe (``_options``: a subclass's own settings).

        Refuses a plain-http carrier off loopback unless ``GATEWAY_UPSTREAM_ALLOW_INSECURE``
        (or sandbox mode, or an injected transport, which never leaves the process).
        """
        url = settings.bandwidth_base_url
        insecure_ok = settings.upstream_allow_insecure or settings.sandbox or transport is not None
        if url.startswith("http://") and not insecure_ok and not _is_loopback(url):
            raise ValueError(
                "BANDWIDTH_BASE_URL is plain http to a host that is not loopback;"
                " use https or set GATEWAY_UPSTREAM_ALLOW_INSECURE"
            )
        return cls(
            url,
            settings.bandwidth_account_id,
            settings.bandwidth_username,
            str(settings.bandwidth_password),
            transport=transport,
            policy=RetryPolicy.from_settings(settings),
            metrics=metrics,
            max_connections=settings.upstream_max_connections,
            breaker_failures=settings.breaker_failures,
            breaker_cooldown=settings.breaker_cooldown,
            retry_budget_ratio=settings.retry_budget_ratio,
            on_abandoned=on_abandoned,
            **cls._options(settings),
        )

    @classmethod
    def _options(cls, settings: Settings) -> dict[str, Any]:
        """The constructor's options from ``settings`` beyond the ones every client takes."""
        return {}

    def __repr__(self) -> str:
        return f"BandwidthClient(base_url={self.base_url!r}, account_id={self.account_id!r})"

    async def __aenter__(self) -> BandwidthClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- endpoints ------------------------------------------------------------

    async def list_endpoints(self) -> models.EndpointListResponse:
        return await self._get(models.EndpointListResponse, "listEndpoints", "")

    async def create_endpoint(self, endpoint: Endpoint) -> Endpoint:
        if endpoint.endpoint_id is not None:
            _check_endpoint_id(endpoint.endpoint_id)
        op = Operation("createEndpoint", "POST")
        return await self._create(op, "", endpoint, endpoint.endpoint_id, "endpoint ID")

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        return await self._get_at("getEndpoint", Endpoint, endpoint_id=endpoint_id)

    def refusal(self, endpoint_id: str) -> tuple[Endpoint, UpstreamRejected] | None:
        """A write answered before the carrier carried it out, then refused: never here,
        where every write is done or refused when answered (the v2 API overrides this)."""
        return None

    async def settle_orders(self, limit: int) -> None:
        """Writes answered pending: never here (the v2 API overrides this)."""

    def expect(self, endpoint_id: str, held: Endpoint | None) -> None:
        """What the state store says the carrier holds at ``endpoint_id``: nothing to do
        here, where an update carries the whole endpoint (the v2 API overrides this)."""

    async def update_endpoint(self, endpoint_id: str, endpoint: Endpoint) -> Endpoint:
        return await self._replace("updateEndpoint", endpoint, endpoint_id=endpoint_id)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        await self._delete(Operation("deleteEndpoint", "DELETE"), self._endpoint_path(endpoint_id))

    # -- locations ------------------------------------------------------------

    async def list_locations(self) -> models.LocationListResponse:
        return await self._get(models.LocationListResponse, "listLocations", "/locations")

    async def create_location(self, location: Location) -> Location:
        op = Operation("createLocation", "POST")
        return await self._create(op, "/locations", location, location.location_id, "location ID")

    async def get_location(self, location_id: str) -> Location:
        return await self._get_at("getLocation", Location, location_id=location_id)

    async def update_location(self, location_id: str, location: Location) -> Location:
        return await self._replace("updateLocation", location, location_id=location_id)

    async def delete_location(self, location_id: str) -> None:
        await self._delete(Operation("deleteLocation", "DELETE"), self._location_path(location_id))

    # -- notification recipients ----------------------------------------------

    async def list_notification_recipients(self) -> models.NotificationRecipientListResponse:
        kind = models.NotificationRecipientListResponse
        return await self._get(kind, "listNotificationRecipients", "/notificationRecipients")

    async def create_notification_recipient(
        self, recipient: NotificationRecipient
    ) -> NotificationRecipient:
        op = Operation("createNotificationRecipient", "POST")
        path, what = "/notificationRecipients", "notification recipient ID"
        return await self._create(op, path, recipient, recipient.id, what)

    # -- paths and records ----------------------------------------------------

    def _endpoint_path(self, endpoint_id: str) -> str:
        return "/" + quote(_check_endpoint_id(endpoint_id), safe="")

    def _location_path(self, location_id: str) -> str:
        return "/locations/" + quote(check_id(location_id, "location ID"), safe="")

    @staticmethod
    def _read(kind: type[R], root: ET.Element | None, operation: str) -> R:
        if root is None:
            raise UpstreamParseError(f"{operation}: the answer has no body", operation=operation)
        try:
            return codec.from_element(kind, root)
        except CodecError as exc:
            raise UpstreamParseError(f"{operation}: {exc}", operation=operation) from None

    async def _create(
        self, op: Operation, path: str, record: R, record_id: str | None, what: str
    ) -> R:
        """POST ``record``; one with its own ID (``what``, checked) may be retried, and a
        409 answering a retry is the first attempt's success."""
        has_id = record_id is not None
        if record_id is not None:
            check_id(record_id, what)
        root = await self._call(op, path, record, retryable=has_id, conflict_is_success=has_id)
        return self._written(op, root, record)

    async def _get(self, kind: type[R], name: str, path: str) -> R:
        return self._read(kind, await self._call(Operation(name, "GET"), path), name)

    def _id_path(self, field: str, value: str) -> str:
        """The path of the record whose ``field`` (``location_id`` or ``endpoint_id``) is
        ``value``."""
        return self._location_path(value) if field == "location_id" else self._endpoint_path(value)

    async def _get_at(self, name: str, kind: type[R], **path_id: str) -> R:
        """GET the record at the path's ID (``path_id`` as ``_replace``'s); an answer for
        another ID is refused."""
        ((field, value),) = path_id.items()
        found = await self._get(kind, name, self._id_path(field, value))
        answered_for(value, getattr(found, field), name)
        return found

    async def _replace(self, name: str, record: R, **path_id: str) -> R:
        """PUT ``record`` under the path's ID (``path_id``: its field and value, a
        ``location_id`` or an ``endpoint_id``)."""
        ((field, value),) = path_id.items()
        if getattr(record, field) not in (None, value):
            raise ValueError(f"the record's {wire_name(field)} differs from the one in the path")
        sent: R = dataclasses.replace(cast(Any, record), **path_id)
        return await self._update(Operation(name, "PUT"), self._id_path(field, value), sent)

    async def _update(self, op: Operation, path: str, record: R) -> R:
        return self._written(op, await self._call(op, path, record), record)

    async def _delete(self, op: Operation, path: str) -> None:
        await self._call(op, path, not_found_is_success=True)

    def _written(self, op: Operation, root: ET.Element | None, sent: R) -> R:
        """The carrier's copy of a written record; the record sent when it answers none."""
        if root is None:
            return sent
        try:
            answered = self._read(type(sent), root, op.name)
        except UpstreamParseError as exc:
            exc.ambiguous = True  # answered 2xx: the carrier took the write it cannot echo
            raise
        return sent if _is_empty(answered) else answered


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
