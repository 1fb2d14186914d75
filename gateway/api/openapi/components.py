"""The components of the API document: each shape of the JSON API, as a JSON schema."""

from __future__ import annotations

from typing import Any

from gateway.api.admin import EMAIL_PATTERN
from gateway.api.answers import (
    PRECISION_SCHEMA,
    RADIUS_SCHEMA,
    DeviceLocation,
    PendingReport,
    ReportResult,
)
from gateway.api.models import (
    AEUI_SCHEMA as AEUI,
)
from gateway.api.models import (
    CALLBACK_NUMBER_SCHEMA as CALLBACK_NUMBER,
)
from gateway.api.models import (
    CALLER_NAME_SCHEMA as CALLER_NAME,
)
from gateway.api.models import (
    AddressInput,
    LocationReport,
    address_input_schema,
    components,
)
from gateway.api.problems import ProblemDetails
from gateway.api.schemas import ID_PATTERN as ID_RE
from gateway.api.schemas import LOCATION_ID_PATTERN as LOCATION_ID_RE
from gateway.dlr.patterns import END, TEXT_PATTERN


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def string(max_length: int, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, **extra}


def text(max_length: int, **extra: Any) -> dict[str, Any]:
    """A string the gateway reads: no control characters (``gateway.api.schemas``)."""
    return string(max_length, pattern=TEXT_PATTERN, **extra)


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or ``null``: the gateway reads a ``null`` field as one left out."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if "oneOf" in schema:
        return {**schema, "oneOf": [*schema["oneOf"], {"type": "null"}]}
    return {"oneOf": [schema, {"type": "null"}]}


def writable(schema: dict[str, Any]) -> dict[str, Any]:
    """A request body's schema: each optional field may also be ``null`` (= left out)."""
    required = set(schema.get("required", ()))
    props = schema["properties"]
    return {
        **schema,
        "properties": {k: v if k in required else nullable(v) for k, v in props.items()},
    }


ENDPOINT: dict[str, Any] = {
    "type": "object",
    "description": "A device's 911 record at the carrier.",
    "additionalProperties": False,
    "properties": {
        "endpointId": string(64, description="Derived from the AEUI when left out on create."),
        "alternateEndUserId": string(30),
        "callerName": string(50),
        "locationId": string(32),
        "telephoneNumber": string(32),
        "activated": {"type": "boolean"},
    },
}

#: IDs the gateway accepts in a body (``gateway.api.schemas.ID_PATTERN``, ``LOCATION_ID_PATTERN``).
ID_PATTERN = f"^{ID_RE.pattern}{END}"
LOCATION_ID_PATTERN = f"^{LOCATION_ID_RE.pattern}{END}"

#: What the admin API requires of an endpoint: each field there and not empty.
ENDPOINT_REQUIRED = ["alternateEndUserId", "callerName", "telephoneNumber", "locationId"]

ENDPOINT_WRITE = writable(
    {
        **ENDPOINT,
        "description": (
            "A device's 911 record to write. Its AEUI, caller name and callback number follow "
            "a location report's rules, and its number's ownership too (409 "
            "`/problems/number-owned` when another device owns it)."
        ),
        "required": ENDPOINT_REQUIRED,
        "properties": {
            **ENDPOINT["properties"],
            "alternateEndUserId": AEUI,
            # A body the admin API reads refuses control characters in every field, at the
            # name's edges too (a report strips them).
            "callerName": {**CALLER_NAME, "allOf": [{"pattern": TEXT_PATTERN}]},
            "telephoneNumber": CALLBACK_NUMBER,
            "locationId": text(32, minLength=1),
            "endpointId": string(
                64,
                pattern=ID_PATTERN,
                description="Derived from the AEUI when left out on create.",
            ),
        },
    }
)

#: ``PUT``: the ID is the path's. (The body may repeat it, equal, as a ``GET`` answered it.)
ENDPOINT_REPLACE = {
    **ENDPOINT_WRITE,
    "description": "The endpoint's fields; its ID is the path's.",
    "properties": {k: v for k, v in ENDPOINT_WRITE["properties"].items() if k != "endpointId"},
}

LOCATION: dict[str, Any] = {
    "type": "object",
    "description": "A validated civic location at the carrier.",
    "additionalProperties": False,
    "properties": {
        "locationId": string(32, description="Derived from the address when left out on create."),
        "description": string(255),
        "address": ref("Address"),
        "status": {
            "type": "string",
            "description": "Set by the carrier: VALID, INVALID, GEOCODED.",
        },
        "latitude": {"type": "number", "format": "double"},
        "longitude": {"type": "number", "format": "double"},
    },
}

#: Latitude and longitude go together, or not at all (``null`` counts as left out).
COORDINATE_PAIR = [
    {
        "required": ["latitude", "longitude"],
        "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
    },
    {"properties": {"latitude": {"type": "null"}, "longitude": {"type": "null"}}},
]

LOCATION_WRITE = writable(
    {
        "type": "object",
        "description": "A location to create: an address, and coordinates (both or neither).",
        "additionalProperties": False,
        "required": ["address"],
        "anyOf": COORDINATE_PAIR,
        "properties": {
            **{k: v for k, v in LOCATION["properties"].items() if k != "status"},
            "locationId": string(
                32,
                pattern=LOCATION_ID_PATTERN,
                description="Derived from the address when left out on create.",
            ),
            "description": text(255),
            "latitude": {"type": "number", "minimum": -90, "maximum": 90},
            "longitude": {"type": "number", "minimum": -180, "maximum": 180},
        },
    }
)

LOCATION_REPLACE = {
    **LOCATION_WRITE,
    "description": "The location's fields; its ID is the path's.",
    "properties": {k: v for k, v in LOCATION_WRITE["properties"].items() if k != "locationId"},
}

RECIPIENT = {
    "type": "object",
    "description": "Someone told when a 911 call is placed (Kari's Law).",
    "additionalProperties": False,
    "properties": {
        "id": string(64),
        "emailAddress": string(255),
        "phoneNumber": string(32),
        "description": string(255),
    },
}

RECIPIENT_WRITE = writable(
    {
        **RECIPIENT,
        "description": "A recipient to create: an email address, a phone number, or both.",
        "anyOf": [
            {"required": ["emailAddress"], "properties": {"emailAddress": {"type": "string"}}},
            {
                "required": ["phoneNumber"],
                "properties": {"phoneNumber": {"type": "string", "minLength": 1}},
            },
        ],
        "properties": {
            "id": string(64, pattern=ID_PATTERN),
            "emailAddress": string(255, pattern=EMAIL_PATTERN, description="user@example.com"),
            "phoneNumber": text(32),
            "description": text(255),
        },
    }
)


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

HISTORY_ENTRY = {
    "type": "object",
    "required": ["id", "at", "kind", "source", "credential"],
    "properties": {
        "id": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "kind": {
            "type": "string",
            "description": (
                "A device: applied (the carrier took a report), repaired, admin_edit, deleted "
                "(an admin deleted its endpoint), coordinates_conflict (a fix contradicted the "
                "address), emergency_query. A number: number_owned, number_assigned, "
                "number_shared, number_released. A location: location_created, "
                "location_updated, location_deleted, location_lost (the carrier no longer "
                "held it)."
            ),
        },
        "source": {"type": "string"},
        "credential": {"type": "string", "description": "Which credential acted (never a secret)."},
        "observedAt": {"type": ["string", "null"]},
        "fromLocationId": {"type": ["string", "null"]},
        "toLocationId": {"type": ["string", "null"]},
        "before": {"type": ["object", "null"]},
        "after": {"type": ["object", "null"]},
    },
}


def history_of(key: str, description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": [key, "entries", "nextBefore"],
        "properties": {
            key: {"type": "string"},
            "entries": {"type": "array", "items": ref("HistoryEntry")},
            "nextBefore": {"type": ["integer", "null"]},
        },
    }


HISTORY = history_of("alternateEndUserId", "A page of a device's history.")

NUMBER = {
    "type": "object",
    "description": (
        "Who may use a callback number: its owner (the first device to hold it, or the one an "
        "admin assigned), or every device when it is shared; and the devices holding it."
    ),
    "required": ["telephoneNumber", "owner", "shared", "updatedAt", "devices"],
    "properties": {
        "telephoneNumber": {"type": "string"},
        "owner": {"type": ["string", "null"], "description": "The owner's AEUI; null: none."},
        "shared": {"type": "boolean"},
        "updatedAt": {"type": ["string", "null"], "format": "date-time"},
        "devices": {
            "type": "array",
            "description": "The devices whose binding holds the number (at most 100).",
            "items": {
                "type": "object",
                "required": ["alternateEndUserId", "mayUse", "attested"],
                "properties": {
                    "alternateEndUserId": {"type": "string"},
                    "mayUse": {
                        "type": "boolean",
                        "description": "The call-time query may answer this device.",
                    },
                    "attested": {
                        "type": "boolean",
                        "description": "Its device token's phone_number claim vouches for it.",
                    },
                },
            },
        },
    },
}

NUMBER_WRITE = {
    "type": "object",
    "description": (
        "Assign the number to a device (`owner`), or mark it `shared` (any device may use it; "
        "the call-time query answers the one heard from last). DELETE releases it."
    ),
    "additionalProperties": False,
    "properties": {
        "owner": {"type": ["string", "null"], "maxLength": 30, "description": "An AEUI."},
        "shared": {"type": "boolean", "default": False},
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
    "Endpoint": ENDPOINT,
    "EndpointWrite": ENDPOINT_WRITE,
    "EndpointReplace": ENDPOINT_REPLACE,
    "Location": LOCATION,
    "LocationWrite": LOCATION_WRITE,
    "LocationReplace": LOCATION_REPLACE,
    "NotificationRecipient": RECIPIENT,
    "NotificationRecipientWrite": RECIPIENT_WRITE,
    **components(Problem=ProblemDetails),
    **components(LocationReport),
    **components(ReportResult, DeviceLocation, PendingReport),
    "AddressValidation": VALIDATION_RESULT,
    "DeviceHistory": HISTORY,
    "HistoryEntry": HISTORY_ENTRY,
    "NumberHistory": history_of("telephoneNumber", "A page of a number's history."),
    "LocationHistory": history_of("locationId", "A page of a location's history."),
    "CallbackNumber": NUMBER,
    "CallbackNumberWrite": NUMBER_WRITE,
    "EmergencyLocation": EMERGENCY_LOCATION,
}
