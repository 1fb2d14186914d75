"""The components of the API document: each shape of the JSON API, as a JSON schema."""

from __future__ import annotations

from typing import Any

from gateway.api.admin_models import (
    CallbackNumber,
    CallbackNumberWrite,
    DeviceHistory,
    Endpoint,
    EndpointReplace,
    EndpointWrite,
    HistoryEntry,
    Location,
    LocationHistory,
    LocationReplace,
    LocationWrite,
    NotificationRecipient,
    NotificationRecipientWrite,
    NumberHistory,
)
from gateway.api.answers import PRECISION_SCHEMA, RADIUS_SCHEMA, DeviceLocation, ReportResult
from gateway.api.models import (
    AddressInput,
    LocationReport,
    address_input_schema,
    components,
)
from gateway.api.problems import ProblemDetails


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


FIELD_ERRORS = {"type": "array", "items": ref("FieldError")}

#: ``/v1/addresses/validate`` gives a verdict on any line: an empty one is ``valid: false``.
VALIDATE_INPUT = address_input_schema(0)

NULLABLE_NUMBER = {"type": ["number", "null"]}

#: The coordinates of every JSON answer that carries some (``coordinates_json``).
COORDINATES_PROPS = {
    "latitude": NULLABLE_NUMBER,
    "longitude": NULLABLE_NUMBER,
    "precision": PRECISION_SCHEMA,
    "radiusMeters": RADIUS_SCHEMA,
}

#: The address as read when it is not valid: the canonical spelling of what was sent, which
#: may still break the carrier's limits (``errors`` says where), so no length limits here.
ADDRESS_AS_READ = {
    "type": "object",
    "description": "The address as the gateway reads it; `errors` names what is wrong.",
    "additionalProperties": False,
    "properties": {
        info.alias or name: {"type": "string"} for name, info in AddressInput.model_fields.items()
    },
}

VALIDATION_RESULT = {
    "type": "object",
    "required": ["valid", "address", "precision", "errors", "suggestions"],
    # A valid verdict's address is one the carrier takes; an invalid one's is only as read.
    "if": {"required": ["valid"], "properties": {"valid": {"const": True}}},
    "then": {"properties": {"address": ref("Address")}},
    "properties": {
        "valid": {"type": "boolean"},
        "address": {"oneOf": [ADDRESS_AS_READ, {"type": "null"}]},
        **COORDINATES_PROPS,
        "errors": FIELD_ERRORS,
        "warnings": FIELD_ERRORS,
        "suggestions": {"type": "array", "items": ref("Address")},
    },
}

EMERGENCY_LOCATION = {
    "type": "object",
    "description": (
        "Where the caller is, as the carrier's Emergency Calling API expects it: `lat`, `lon` "
        "and `radius` only when the gateway has street-level or GPS coordinates."
    ),
    "additionalProperties": False,
    "required": ["aeui", "location_id"],
    "properties": {
        "aeui": {"type": "string", "description": "The device's AEUI."},
        "location_id": {"type": "string", "description": "The location ID at the carrier."},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
        "radius": {"type": "integer", "minimum": 1, "description": "Meters (default 50)."},
        "callback": {"type": "string", "description": "Callback number, E.164."},
        "name": {"type": "string", "description": "Caller name."},
    },
}


SCHEMAS: dict[str, Any] = {
    **components(AddressInput),
    **components(Endpoint, EndpointWrite, EndpointReplace),
    **components(Location, LocationWrite, LocationReplace),
    **components(NotificationRecipient, NotificationRecipientWrite),
    **components(Problem=ProblemDetails),
    **components(LocationReport),
    **components(ReportResult, DeviceLocation),
    "AddressValidation": VALIDATION_RESULT,
    **components(DeviceHistory, HistoryEntry, NumberHistory, LocationHistory),
    **components(CallbackNumber, CallbackNumberWrite),
    "EmergencyLocation": EMERGENCY_LOCATION,
}
