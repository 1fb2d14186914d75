"""The pipeline's records: a report, a binding, an outcome, and how they map to the store."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.bandwidth.models import Address, Endpoint, wire_name
from gateway.dlr.errors import FieldError
from gateway.network.wiremap import Observation
from gateway.records import record_to_json
from gateway.store.base import HistoryKind, HistoryRecord, StoredBinding


class Change(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class GeoFix:
    latitude: float
    longitude: float
    accuracy_meters: float | None = None


@dataclass(frozen=True, slots=True)
class Report:
    alternate_end_user_id: str
    caller_name: str
    telephone_number: str
    observed_at: datetime
    address: Address | Mapping[str, object] | str | None = None
    geo: GeoFix | None = None
    #: The device's token attested ``telephone_number`` (its ``phone_number`` claim): the
    #: device may use it whoever owns it.
    number_attested: bool = False
    #: Where the device is attached (``gateway.network``): a wiremap match beats
    #: ``address`` and ``geo``.
    network: Observation | None = None

    def seen_at(self, observed_at: datetime) -> Report:
        """This report at another time: ``dataclasses.replace`` without its introspection
        (half the cost, on every unchanged report). Every field is passed on (a test holds
        this to ``replace`` for each field)."""
        return Report(
            alternate_end_user_id=self.alternate_end_user_id,
            caller_name=self.caller_name,
            telephone_number=self.telephone_number,
            observed_at=observed_at,
            address=self.address,
            geo=self.geo,
            number_attested=self.number_attested,
            network=self.network,
        )


@dataclass(frozen=True, slots=True)
class Binding:
    """What the carrier holds for one device, as far as this gateway knows."""

    alternate_end_user_id: str
    endpoint_id: str
    location_id: str
    caller_name: str
    telephone_number: str
    address: Address | None
    status: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    observed_at: datetime | None = None
    #: The ledger's version of this binding (``None``: not from the ledger).
    version: int | None = None
    #: The precision of ``latitude``/``longitude`` (``gateway.dlr.coordinates``): ``gps``
    #: (this device's own fix), ``street``, ``postal`` or ``locality`` (a geocode of its
    #: address). Always the gateway's own, never another device's fix or the carrier's
    #: geocode; ``None`` with no coordinates.
    coordinates_source: str | None = None
    #: The device's GPS accuracy in meters, when the coordinates are its own fix.
    accuracy_meters: float | None = None
    #: When the gateway last heard from the device (its own clock; ``None``: unknown).
    heard_at: datetime | None = None
    #: The device's token attested ``telephone_number``.
    attested: bool = False

    def seen_at(self, observed_at: datetime, heard_at: datetime | None = None) -> Binding:
        """This binding at a newer time (as ``Report.seen_at``), heard at ``heard_at``."""
        return Binding(
            alternate_end_user_id=self.alternate_end_user_id,
            endpoint_id=self.endpoint_id,
            location_id=self.location_id,
            caller_name=self.caller_name,
            telephone_number=self.telephone_number,
            address=self.address,
            status=self.status,
            latitude=self.latitude,
            longitude=self.longitude,
            observed_at=observed_at,
            version=self.version,
            coordinates_source=self.coordinates_source,
            accuracy_meters=self.accuracy_meters,
            heard_at=heard_at or self.heard_at,
            attested=self.attested,
        )

    @property
    def aeui(self) -> str:
        return self.alternate_end_user_id

    def stored(self) -> StoredBinding:
        """As the caller index answers it: confirmed (the carrier holds it), no street address."""
        return dataclasses.replace(
            to_stored(self, with_address=False), confirmed=True, version=self.version or 0
        )

    def same_as(self, location_id: str, caller_name: str, telephone_number: str) -> bool:
        return (
            self.location_id == location_id
            and self.caller_name == caller_name
            and self.telephone_number == telephone_number
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    binding: Binding
    location: Change
    endpoint: Change
    warnings: tuple[FieldError, ...] = ()
    #: What located the device: ``port``, ``switch``, ``access-point``, ``subnet`` (the
    #: wiremap), ``address`` or ``geo``.
    source: str = "address"

    @property
    def changed(self) -> bool:
        return self.location is not Change.UNCHANGED or self.endpoint is not Change.UNCHANGED


class Unroutable(Exception):
    """The address cannot be routed; nothing was written upstream."""

    def __init__(
        self, message: str, errors: tuple[FieldError, ...], suggestions: tuple[Address, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.suggestions = suggestions


class Superseded(Exception):
    """A newer report for this device has already been applied; nothing was changed."""

    def __init__(self, newest: datetime) -> None:
        super().__init__(f"a report observed at {newest.isoformat()} is already applied")
        self.newest = newest


def in_address(error: FieldError) -> FieldError:
    """``error`` named as a field of the report: ``zip`` -> ``address.zip``."""
    if error.field == "address" or error.field.startswith("address."):
        return error
    return FieldError(f"address.{error.field}", error.message)


def address_json(address: Address) -> dict[str, Any]:
    """The address in the carrier's camelCase fields, absent ones left out."""
    return record_to_json(address)


def address_from_json(data: Mapping[str, Any] | None) -> Address | None:
    if not data:
        return None
    names = {wire_name(f.name): f.name for f in dataclasses.fields(Address)}
    return Address(**{names[k]: v for k, v in data.items() if k in names})


def to_stored(
    binding: Binding, source: str = "report", *, with_address: bool = True
) -> StoredBinding:
    assert binding.observed_at is not None
    address = binding.address if with_address else None
    return StoredBinding(
        aeui=binding.alternate_end_user_id,
        endpoint_id=binding.endpoint_id,
        location_id=binding.location_id,
        address=address_json(address) if address is not None else None,
        caller_name=binding.caller_name,
        telephone_number=binding.telephone_number,
        observed_at=binding.observed_at,
        source=source,
        latitude=binding.latitude,
        longitude=binding.longitude,
        coordinates_source=binding.coordinates_source,
        accuracy_meters=binding.accuracy_meters,
        heard_at=binding.heard_at,
        attested=binding.attested,
    )


def from_stored(stored: StoredBinding) -> Binding:
    return Binding(
        alternate_end_user_id=stored.aeui,
        endpoint_id=stored.endpoint_id,
        location_id=stored.location_id,
        caller_name=stored.caller_name,
        telephone_number=stored.telephone_number,
        address=address_from_json(stored.address),
        latitude=stored.latitude,
        longitude=stored.longitude,
        observed_at=stored.observed_at,
        version=stored.version,
        coordinates_source=stored.coordinates_source,
        accuracy_meters=stored.accuracy_meters,
        heard_at=stored.heard_at,
        attested=stored.attested,
    )


def taken(
    kind: str, previous: StoredBinding | None, current: StoredBinding, credential: str
) -> HistoryRecord | None:
    """The history record of a binding the carrier took, unless it already held it."""
    held = previous is not None and previous.confirmed and current.same_binding(previous)
    if kind == HistoryKind.APPLIED and held:
        return None
    return HistoryRecord(
        current.aeui,
        kind,
        credential,
        current.source,
        None if previous is None else previous.as_json(),
        current.as_json(),
        current.observed_at,
    )


def endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    """What the carrier held for a device, as a history entry shows a binding."""
    return {
        "endpointId": endpoint.endpoint_id,
        "locationId": endpoint.location_id,
        "callerName": endpoint.caller_name,
        "telephoneNumber": endpoint.telephone_number,
    }
