"""Event types, the event envelope, and the payloads each type carries.

Every event is ``{"id", "type", "timestamp", "data"}`` (Standard Webhooks' payload shape);
``id`` is stable (the ``webhook-id`` of every delivery of it, for receivers to deduplicate).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from gateway.bandwidth.models import wire_name
from gateway.dlr.ids import DISPATCHABLE_FIELDS

if TYPE_CHECKING:
    from gateway.bandwidth.errors import UpstreamError
    from gateway.store.base import HistoryRecord

EMERGENCY_CALL = "emergency_call"
TEST_CALL = "test_call"
PROVISIONING_FAILED = "provisioning_failed"
DEVICE_STALE = "device_stale"
LOCATION_CONFLICT = "location_conflict"
EVENT_TYPES = (EMERGENCY_CALL, TEST_CALL, PROVISIONING_FAILED, DEVICE_STALE, LOCATION_CONFLICT)
#: The types also sent by email (Kari's Law notifications).
EMAIL_TYPES = frozenset({EMERGENCY_CALL, TEST_CALL})


def new_event_id(at: datetime | None = None) -> str:
    """Time-ordered and unique: ``evt_`` + 12 hex digits of milliseconds (of ``at``, else
    of now) + 16 random."""
    ms = time.time_ns() // 1_000_000 if at is None else int(at.timestamp() * 1000)
    return f"evt_{ms:012x}{secrets.token_hex(8)}"


def derived_event_id(*parts: str) -> str:
    """The same id for the same facts, whichever replica emits them (one event per fact)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:28]
    return f"evt_{digest}"


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    occurred_at: datetime
    data: dict[str, Any]

    @classmethod
    def new(
        cls, type: str, data: dict[str, Any], *, at: datetime | None = None, id: str | None = None
    ) -> Event:
        return cls(id or new_event_id(), type, at or datetime.now(UTC), data)

    def body(self) -> str:
        """The JSON every delivery sends (and signs), byte for byte."""
        envelope = {
            "id": self.id,
            "type": self.type,
            "timestamp": iso(self.occurred_at),
            "data": self.data,
        }
        return orjson.dumps(envelope).decode()


class DeferredEvent(Protocol):
    """An event built when its batch is written rather than when it is emitted (the
    call-time query's: the query pays only for queueing it). Its type is known at once."""

    @property
    def type(self) -> str: ...

    def event(self) -> Event:
        """The event (built once: its id is fixed by then)."""
        ...

    def record(self) -> HistoryRecord | None:
        """A history record written in the event's transaction (the query's), or None."""
        ...


class EventSink(Protocol):
    """Where the domain emits events: never blocks, never raises."""

    def emit(self, event: Event | DeferredEvent) -> None: ...


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: The street line's fields (the carrier's names), in the order they are written.
_STREET = tuple(
    wire_name(n) for n in DISPATCHABLE_FIELDS[: DISPATCHABLE_FIELDS.index("address_line2")]
)
_LINE2, _CITY, _STATE, _ZIP, _COUNTRY = map(
    wire_name, ("address_line2", "city", "state_code", "zip", "country")
)


def address_text(address: dict[str, Any] | None) -> str | None:
    """A stored address (the carrier's camelCase fields) as one line for people to read."""
    if not address:
        return None

    def part(name: str) -> str:
        value = address.get(name)
        return str(value).strip() if value else ""

    street = " ".join(p for p in map(part, _STREET) if p)
    state_zip = " ".join(p for p in (part(_STATE), part(_ZIP)) if p)
    parts = (street, part(_LINE2), part(_CITY), state_zip, part(_COUNTRY))
    return ", ".join(p for p in parts if p) or None


def provisioning_failed(
    aeui: str,
    callback_number: str,
    location_id: str,
    error: UpstreamError,
    *,
    outcome_unknown: bool,
    observed_at: datetime,
) -> Event:
    """A report's write the carrier refused with ``error`` (or whose outcome is unknown: it
    is watched)."""
    return Event.new(
        PROVISIONING_FAILED,
        {
            "aeui": aeui,
            "callbackNumber": callback_number,
            "locationId": location_id,
            "operation": error.operation,
            "carrierStatus": error.status,
            "reason": error.message[:300],
            "outcomeUnknown": outcome_unknown,
            "observedAt": iso(observed_at),
        },
    )


def location_conflict(
    aeui: str, location_id: str, conflict: dict[str, Any], observed_at: datetime
) -> Event:
    """A report whose GPS fix contradicts its address (applied without the fix)."""
    return Event.new(
        LOCATION_CONFLICT,
        {"aeui": aeui, "locationId": location_id, "observedAt": iso(observed_at), **conflict},
    )
