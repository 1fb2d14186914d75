"""Events the gateway emits, and their delivery: signed webhooks, email, a durable outbox.

``model`` holds the event types and payloads and the ``EventSink`` the domain emits into;
``emitter`` writes them to the outbox after the fact; ``delivery`` sends them (at least once,
with backoff, for a bounded time); ``signing`` signs them as Standard Webhooks; ``email``
writes and sends the Kari's Law message; ``stale`` finds devices gone quiet. No Starlette here.
"""

from __future__ import annotations

from gateway.events.model import (
    DEVICE_STALE,
    EMAIL_TYPES,
    EMERGENCY_CALL,
    EVENT_TYPES,
    LOCATION_CONFLICT,
    PROVISIONING_FAILED,
    TEST_CALL,
    Event,
    EventSink,
)

__all__ = [
    "DEVICE_STALE",
    "EMAIL_TYPES",
    "EMERGENCY_CALL",
    "EVENT_TYPES",
    "LOCATION_CONFLICT",
    "PROVISIONING_FAILED",
    "TEST_CALL",
    "Event",
    "EventSink",
]
