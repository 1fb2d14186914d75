"""The pipeline's records: a report, its outcome, and the history of what the carrier took."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.bandwidth.models import Address, Endpoint
from gateway.dlr.binding import Binding
from gateway.dlr.errors import FieldError
from gateway.network.wiremap import Observation
from gateway.store.base import HistoryKind, HistoryRecord

#: What ``gateway.dlr.pipeline`` re-exports: the records its callers use.
__all__ = [
    "Change",
    "GeoFix",
    "Outcome",
    "Progress",
    "Report",
    "Superseded",
    "Unroutable",
    "in_address",
]


class Change(enum.StrEnum):
    """What a report did to the device's binding at the carrier."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class GeoFix:
    """A device's own position: WGS 84 degrees and, when it says, its radius in meters."""

    latitude: float
    longitude: float
    accuracy_meters: float | None = None


@dataclass(slots=True)
class Progress:
    """How far a report got: ``claimed`` once it asked the ledger to make its binding the
    device's newest (from then on a carrier write may follow, and is watched); before
    that, ``at_carrier`` once it was cut short waiting on the carrier's location create."""

    claimed: bool = False
    at_carrier: bool = False


@dataclass(frozen=True, slots=True)
class Report:
    """A device's location report, parsed (JSON, PIDF-LO or HELD): who, where, and when it
    was observed."""

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
        (half the cost, on every unchanged report), its fields passed in order. Every field
        is passed on (a test holds this to ``replace`` for each field)."""
        return Report(
            self.alternate_end_user_id,
            self.caller_name,
            self.telephone_number,
            observed_at,
            self.address,
            self.geo,
            self.number_attested,
            self.network,
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
    """A newer report for this device has already been applied, or (``deleted``) an admin
    deleted the device after this report was observed; nothing was changed."""

    def __init__(self, newest: datetime, *, deleted: bool = False) -> None:
        if deleted:
            super().__init__(f"the device was deleted at {newest.isoformat()}")
        else:
            super().__init__(f"a report observed at {newest.isoformat()} is already applied")
        self.newest = newest
        self.deleted = deleted


def in_address(error: FieldError) -> FieldError:
    """``error`` named as a field of the report: ``zip`` -> ``address.zip``."""
    if error.field == "address" or error.field.startswith("address."):
        return error
    return FieldError(f"address.{error.field}", error.message)


def taken(
    kind: str, previous: Binding | None, current: Binding, credential: str
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
