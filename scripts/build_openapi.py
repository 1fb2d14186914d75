"""Writes gateway/openapi.json, the gateway's own API contract (OpenAPI 3.1).

Run ``python scripts/build_openapi.py`` after changing the API; tests check that the
committed document equals this script's output and that routes and document agree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the patterns are the gateway's

from gateway.api.admin import EMAIL_PATTERN  # noqa: E402
from gateway.api.devices import OBSERVED_AT_PATTERN  # noqa: E402
from gateway.api.schemas import ID_PATTERN as ID_RE  # noqa: E402
from gateway.api.schemas import LOCATION_ID_PATTERN as LOCATION_ID_RE  # noqa: E402
from gateway.dlr.address import CALLER_NAME_PATTERN  # noqa: E402
from gateway.dlr.identity import AEUI_PATTERN  # noqa: E402
from gateway.dlr.numbers import CALLBACK_NUMBER_PATTERN  # noqa: E402
from gateway.dlr.patterns import END, TEXT_PATTERN  # noqa: E402

OUT = ROOT / "gateway" / "openapi.json"

#: ``gateway.api.problems.MAX_ERRORS``: a problem lists at most this many field errors.
MAX_ERRORS = 100


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def string(max_length: int, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, **extra}


def text(max_length: int, **extra: Any) -> dict[str, Any]:
    """A string the gateway reads: no control characters (``gateway.api.schemas``)."""
    return string(max_length, pattern=TEXT_PATTERN, **extra)


def problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }


def retry_problem(description: str) -> dict[str, Any]:
    answer = problem(description)
    answer["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    return answer


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ADMIN = [{"adminKey": []}]
DEVICE_OR_ADMIN = [{"deviceToken": []}, {"adminKey": []}]

UPSTREAM_FAILURES = {
    "502": problem("The carrier refused the gateway's credentials or sent an unreadable answer."),
    "503": retry_problem("The carrier is unavailable or rate-limiting."),
    "504": retry_problem("The carrier did not answer in time."),
}

AUTH_FAILURES = {"401": problem("Missing or invalid credentials.")}

#: The admin API takes admin keys only: a device token, valid or not, is answered 401 there.
ADMIN_AUTH_FAILURES = {
    "401": problem("Missing or invalid credentials, or a device token (admin keys only).")
}


def body_errors() -> dict[str, Any]:
    return {
        "400": problem("The Content-Length header is not a number."),
        "413": problem("The body is too large."),
        "415": problem("The body is not JSON."),
        "422": problem("The body is malformed, has wrong types or unknown fields."),
    }


ID_PARAM = {"type": "string", "maxLength": 64}


def path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": ID_PARAM,
    }


def operation(
    op_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Any],
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag]}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    op["responses"] = responses
    op["security"] = security if security is not None else ADMIN
    return op


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


ADDRESS = writable(
    {
        "type": "object",
        "description": (
            "A civic address in the carrier's fields (USPS Publication 28 abbreviations)."
        ),
        "additionalProperties": False,
        "properties": {
            "houseNumber": text(255),
            "houseSuffix": text(255),
            "prefixDirectional": text(255),
            "streetName": text(255),
            "streetSuffix": text(255),
            "postDirectional": text(255),
            "addressLine2": text(60, description="Suite, floor, room: shown to the PSAP."),
            "city": text(255),
            "stateCode": text(255),
            "zip": text(255),
            "plusFour": text(255),
            "country": text(255, description="US or CA."),
        },
    }
)

ENDPOINT = {
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

#: A device's identity, held to one set of rules in a report and an admin's endpoint.
AEUI = string(
    30,
    minLength=1,
    pattern=AEUI_PATTERN,
    description="The device's AEUI: no control characters, no surrounding spaces.",
)
CALLER_NAME = string(
    50,
    minLength=1,
    pattern=CALLER_NAME_PATTERN,
    description="Shown to the PSAP: no control or invisible format characters.",
)
CALLBACK_NUMBER = string(
    32,
    pattern=CALLBACK_NUMBER_PATTERN,
    description="Callback number: +1 and an area code of the US, its territories "
    "or Canada (N11, N9X, 37X, 96X and other NANP countries' are refused); "
    "separators allowed, stored as E.164.",
)

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

LOCATION = {
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

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": f"What is wrong, field by field: at most {MAX_ERRORS} of them.",
            "maxItems": MAX_ERRORS,
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "errorsOmitted": {
            "type": "integer",
            "minimum": 1,
            "description": "How many more field errors there were.",
        },
    },
}


def list_of(key: str, item: str, *, counted: bool = True) -> dict[str, Any]:
    props: dict[str, Any] = {key: {"type": "array", "items": ref(item)}}
    if counted:
        props = {"totalCount": {"type": "integer"}, **props}
    return {"type": "object", "required": [key], "properties": props}


def deleted(key: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key, "deleted"],
        "properties": {key: {"type": "string"}, "deleted": {"const": True}},
    }


def crud(
    collection: str,
    item_path: str,
    noun: str,
    tag: str,
    schema: str,
    write: str,
    replace: str,
    list_schema: dict[str, Any],
    id_name: str,
) -> dict[str, Any]:
    title = noun.capitalize()
    not_found = {"404": problem(f"No such {noun}.")}
    item_param = [path_param(id_name, f"The {noun}'s ID.")]
    return {
        collection: {
            "get": operation(
                f"list{title}s",
                f"List {noun}s",
                tag,
                {"200": json_body(list_schema, f"The account's {noun}s."), **ADMIN_AUTH_FAILURES}
                | UPSTREAM_FAILURES,
            ),
            "post": operation(
                f"create{title}",
                f"Create a {noun}",
                tag,
                {
                    "201": json_body(ref(schema), f"The {noun} as the carrier holds it."),
                    **ADMIN_AUTH_FAILURES,
                    "409": problem(f"The {noun} already exists."),
                    **body_errors(),
                }
                | UPSTREAM_FAILURES,
                body=ref(write),
            ),
        },
        item_path: {
            "get": operation(
                f"get{title}",
                f"Get a {noun}",
                tag,
                {"200": json_body(ref(schema), f"The {noun}."), **ADMIN_AUTH_FAILURES, **not_found}
                | UPSTREAM_FAILURES,
                params=item_param,
            ),
            "put": operation(
                f"update{title}",
                f"Replace a {noun} (the whole resource)",
                tag,
                {
                    "200": json_body(ref(schema), f"The {noun} after the update."),
                    **ADMIN_AUTH_FAILURES,
                    **not_found,
                    **body_errors(),
                }
                | UPSTREAM_FAILURES,
                params=item_param,
                body=ref(replace),
            ),
            "delete": operation(
                f"delete{title}",
                f"Delete a {noun}",
                tag,
                {
                    "200": json_body(deleted(id_name), f"The {noun} is gone."),
                    **ADMIN_AUTH_FAILURES,
                    **not_found,
                    "409": problem(f"The {noun} is in use."),
                }
                | UPSTREAM_FAILURES,
                params=item_param,
            ),
        },
    }


FIELD_ERRORS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["field", "message"],
        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
    },
}

GEO = writable(
    {
        "type": "object",
        "description": "The device's own GPS fix.",
        "additionalProperties": False,
        "required": ["latitude", "longitude"],
        "properties": {
            "latitude": {"type": "number", "minimum": -90, "maximum": 90},
            "longitude": {"type": "number", "minimum": -180, "maximum": 180},
            "accuracyMeters": {"type": "number", "minimum": 0, "maximum": 1000000},
        },
    }
)

FREE_FORM = (
    "one free-form line: US or Canadian, the city set off by commas for Canada "
    "(`290 Bremner Blvd, Toronto, ON M5V 3L9`)"
)

ADDRESS_INPUT = {
    "description": f"The seed's address object, or {FREE_FORM}.",
    "oneOf": [ref("Address"), text(500, minLength=1)],
}

#: ``/v1/addresses/validate`` gives a verdict on any line: an empty one is ``valid: false``.
VALIDATE_INPUT = {
    "description": f"The seed's address object, or {FREE_FORM}.",
    "oneOf": [ref("Address"), text(500)],
}

REPORT = writable(
    {
        "type": "object",
        "description": "Where a device is now. Send `address`, `geo`, or both.",
        "additionalProperties": False,
        "required": ["alternateEndUserId", "callerName", "telephoneNumber", "observedAt"],
        "anyOf": [
            {"required": ["address"], "properties": {"address": {"type": ["object", "string"]}}},
            {"required": ["geo"], "properties": {"geo": {"type": "object"}}},
        ],
        "properties": {
            "alternateEndUserId": AEUI,
            "callerName": CALLER_NAME,
            "telephoneNumber": CALLBACK_NUMBER,
            "observedAt": string(
                64,
                format="date-time",
                pattern=OBSERVED_AT_PATTERN,
                description="RFC 3339, with offset, from the year 1000, at most "
                "`GATEWAY_OBSERVED_AT_MAX_FUTURE` (120 s) ahead of the gateway's clock (else "
                "`/problems/clock-skew`).",
            ),
            "address": ADDRESS_INPUT,
            "geo": GEO,
        },
    }
)

NULLABLE_NUMBER = {"type": ["number", "null"]}

#: ``gateway.geocoding.results.Precision``: one vocabulary wherever coordinates are given.
PRECISION = {
    "oneOf": [
        {
            "type": "string",
            "enum": ["gps", "street", "postal", "locality"],
            "description": (
                "How precise `latitude`/`longitude` are: `gps` the device's own fix, `street` "
                "a street-level geocode of its address, `postal` a ZIP centroid, `locality` a "
                "city or coarser. Only `gps` and `street` locate a caller (the call-time query, "
                "PIDF-LO and HELD give no position for the others)."
            ),
        },
        {"type": "null", "description": "No coordinates."},
    ]
}

#: The coordinates of every JSON answer that carries some (``coordinates_json``).
COORDINATES_PROPS = {
    "latitude": NULLABLE_NUMBER,
    "longitude": NULLABLE_NUMBER,
    "precision": PRECISION,
    "radiusMeters": {
        "type": ["integer", "null"],
        "minimum": 1,
        "description": (
            "The radius that covers the coordinates' uncertainty, as PIDF-LO and HELD give it "
            "(a Circle) and the call-time query (`radius`): a `gps` fix's accuracy (50 without "
            "one), 50 for `street`, null for coarser precisions."
        ),
    },
}

BINDING_PROPS = {
    "alternateEndUserId": {"type": "string"},
    "endpointId": {"type": "string"},
    "locationId": {"type": "string"},
    "status": {"type": ["string", "null"]},
    "address": {"oneOf": [ref("Address"), {"type": "null"}]},
    **COORDINATES_PROPS,
    "callerName": {"type": "string"},
    "telephoneNumber": {"type": "string"},
    "observedAt": {
        "type": ["string", "null"],
        "description": "When the device observed this location; null when not known.",
    },
}

CHANGE = {"type": "string", "enum": ["created", "updated", "unchanged"]}

DEVICE_LOCATION = {
    "type": "object",
    "description": (
        "What the carrier holds for a device, with the device's own coordinates (never "
        "another device's fix, nor the carrier's geocode) and their precision."
    ),
    "required": ["alternateEndUserId", "endpointId", "locationId", "precision"],
    "properties": BINDING_PROPS,
}

REPORT_RESULT = {
    "type": "object",
    "description": "What the carrier now holds for the device, and what changed.",
    "required": [
        "alternateEndUserId",
        "endpointId",
        "locationId",
        "changes",
        "observedAt",
        "precision",
    ],
    "properties": {
        **BINDING_PROPS,
        "changes": {
            "type": "object",
            "required": ["location", "endpoint"],
            "properties": {"location": CHANGE, "endpoint": CHANGE},
        },
        "warnings": FIELD_ERRORS,
    },
}

#: The address as read when it is not valid: the canonical spelling of what was sent, which
#: may still break the carrier's limits (``errors`` says where), so no length limits here.
ADDRESS_AS_READ = {
    "type": "object",
    "description": "The address as the gateway reads it; `errors` names what is wrong.",
    "additionalProperties": False,
    "properties": {name: {"type": "string"} for name in ADDRESS["properties"]},
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

#: ``GATEWAY_EMERGENCY_QUERY_PATH``'s default; the carrier's contract names the fields.
EMERGENCY_QUERY_PATH = "/v1/emergency-calls/location"
EMERGENCY_QUERY_SECURITY = [{"emergencyQueryBasic": []}, {"emergencyQueryToken": []}]

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


def emergency_paths() -> dict[str, Any]:
    def query(name: str, description: str, required: bool) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": required,
            "description": description,
            "schema": {"type": "string", "maxLength": 256},
        }

    return {
        EMERGENCY_QUERY_PATH: {
            "get": operation(
                "getEmergencyCallLocation",
                "Where the caller of an emergency call is (the carrier asks at call time)",
                "Emergency calls",
                {
                    "200": json_body(
                        ref("EmergencyLocation"),
                        "The freshest binding of a device with this callback number, or the "
                        "account default location for an unknown caller (when configured).",
                    ),
                    "401": problem("Missing or invalid Basic credentials or token."),
                    "403": problem("The source address is outside the allow-list."),
                    "404": problem("No device has this callback number."),
                },
                params=[
                    query(
                        "from", "The calling number: 10 digits, 1 + 10, +1…, sip:/tel: URI.", True
                    ),
                    query("to", "The called number (recorded, not used).", False),
                    query("token", "The secret token, when configured in the URL.", False),
                ],
                security=EMERGENCY_QUERY_SECURITY,
            )
        }
    }


DEVICE_FAILURES = {
    "401": problem("Missing or invalid credentials."),
    "403": problem("A device token may act only for its own AEUI."),
}

NUMBER_OWNED = problem(
    "`/problems/number-owned`: another device owns the callback number (an admin can release "
    "or share it); nothing was written. `telephoneNumber`, and `owner` for admin keys."
)


HISTORY_PAGING = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Entries per page (1 to 200; 50 when left out).",
        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
    },
    {
        "name": "before",
        "in": "query",
        "required": False,
        "description": "The `nextBefore` of the previous page.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**62},
    },
]
#: The per-device rate limit (``GATEWAY_REPORT_RATE_PER_MINUTE``), for reports and reads alike.
RATE_LIMITED = {
    "429": retry_problem(
        "The device's per-device rate limit is spent (`/problems/rate-limited`); "
        "reports and reads each have their own."
    )
}


def device_paths() -> dict[str, Any]:
    return {
        "/v1/location-reports": {
            "post": operation(
                "reportLocation",
                "Report where a device is; upserts the carrier's records",
                "Devices",
                {
                    "200": json_body(ref("ReportResult"), "The carrier holds the new binding."),
                    **DEVICE_FAILURES,
                    "403": problem(
                        "A device token may act only for its own AEUI, and a token with a "
                        "`phone_number` claim may report only that number."
                    ),
                    "409": {
                        **NUMBER_OWNED,
                        "description": (
                            "`/problems/superseded`: a newer report for the device is applied "
                            "(`newestObservedAt`); or " + NUMBER_OWNED["description"]
                        ),
                    },
                    **body_errors(),
                    "422": problem(
                        "Malformed (`/problems/validation`), the address cannot be routed "
                        "(`/problems/unroutable-address`), or `observedAt` is too far ahead of "
                        "the gateway's clock (`/problems/clock-skew`); every problem "
                        "of the report is listed; nothing was written."
                    ),
                    **RATE_LIMITED,
                }
                | UPSTREAM_FAILURES,
                body=ref("LocationReport"),
                security=DEVICE_OR_ADMIN,
            )
        },
        "/v1/devices/{alternateEndUserId}/location": {
            "get": operation(
                "getDeviceLocation",
                "A device's binding, as the gateway knows it (the carrier only for a device "
                "it holds none of, at most once a minute)",
                "Devices",
                {
                    "200": json_body(ref("DeviceLocation"), "The device's binding."),
                    **DEVICE_FAILURES,
                    "404": problem("No location is registered for the device."),
                    **RATE_LIMITED,
                }
                | UPSTREAM_FAILURES,
                params=[
                    {
                        "name": "alternateEndUserId",
                        "in": "path",
                        "required": True,
                        "description": "The device's AEUI.",
                        "schema": {"type": "string", "maxLength": 30},
                    }
                ],
                security=DEVICE_OR_ADMIN,
            )
        },
        "/v1/devices/{alternateEndUserId}/history": {
            "get": operation(
                "getDeviceHistory",
                "Every change applied to a device's binding, newest first",
                "Devices",
                {
                    "200": json_body(ref("DeviceHistory"), "A page of the device's history."),
                    **DEVICE_FAILURES,
                    "404": problem("No such device."),
                    "422": problem("The query is not valid."),
                    "503": retry_problem("The gateway's database is unavailable."),
                },
                params=[
                    {
                        "name": "alternateEndUserId",
                        "in": "path",
                        "required": True,
                        "description": "The device's AEUI.",
                        "schema": {"type": "string", "maxLength": 30},
                    },
                    *HISTORY_PAGING,
                ],
                security=DEVICE_OR_ADMIN,
            )
        },
        "/v1/addresses/validate": {
            "post": operation(
                "validateAddress",
                "Normalize, validate and geocode an address without provisioning it",
                "Devices",
                {
                    "200": json_body(ref("AddressValidation"), "The verdict."),
                    **AUTH_FAILURES,
                    **body_errors(),
                },
                body={
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["address"],
                    "properties": {"address": VALIDATE_INPUT},
                },
                security=DEVICE_OR_ADMIN,
            )
        },
    }


PIDF_LO = {
    "type": "string",
    "description": (
        "A PIDF-LO document (RFC 4119): a `presence` with a `geopriv` location, a civic "
        "address (RFC 5139) and/or a Point or Circle (RFC 5491). See the README."
    ),
}


def with_pidf(ops: dict[str, Any]) -> None:
    """PIDF-LO as a second format of a location report, and of a device's location."""
    report = ops["/v1/location-reports"]["post"]
    report["requestBody"]["content"]["application/pidf+xml"] = {"schema": PIDF_LO}
    report["responses"]["415"] = problem("The body is neither JSON nor a PIDF-LO.")
    location = ops["/v1/devices/{alternateEndUserId}/location"]["get"]
    location["responses"]["200"]["content"]["application/pidf+xml"] = {"schema": PIDF_LO}
    location["responses"]["200"]["description"] = (
        "The device's binding; a PIDF-LO when `Accept` prefers `application/pidf+xml`."
    )


def held_paths() -> dict[str, Any]:
    held_xml = {"type": "string", "description": "A HELD message (RFC 5985)."}
    return {
        "/v1/held": {
            "post": {
                "operationId": "heldLocationRequest",
                "summary": "HELD (RFC 5985): a device's location as a PIDF-LO",
                "description": (
                    "A `locationRequest`, the device named by an RFC 6155 `<device>` (a "
                    "`sip:`/`pres:` URI whose user part is the AEUI, or a `tel:` number; at "
                    "most 8 distinct identifiers) or, without one, the device token's own "
                    "device. Answered with a "
                    "`locationResponse` or a HELD `<error>` (both 200, as RFC 5985 does)."
                ),
                "tags": ["Devices"],
                "requestBody": {
                    "required": True,
                    "content": {"application/held+xml": {"schema": held_xml}},
                },
                "responses": {
                    "200": {
                        "description": "A `locationResponse`, or a HELD `<error code=...>`.",
                        "content": {"application/held+xml": {"schema": held_xml}},
                    },
                    **AUTH_FAILURES,
                    "400": problem("The Content-Length header is not a number."),
                    "413": problem("The body is too large."),
                    "415": problem("The body is not application/held+xml."),
                    **RATE_LIMITED,
                }
                | UPSTREAM_FAILURES,
                "security": DEVICE_OR_ADMIN,
            }
        }
    }


def number_paths() -> dict[str, Any]:
    number = {
        "name": "telephoneNumber",
        "in": "path",
        "required": True,
        "description": "The number: +1 and 10 digits (or 10 digits, 1 + 10).",
        "schema": {"type": "string", "maxLength": 256},
    }
    answer = {
        "200": json_body(ref("CallbackNumber"), "The number's ownership, after the change."),
        **ADMIN_AUTH_FAILURES,
        "404": problem("Not a US or Canadian number."),
    }
    return {
        "/v1/numbers/{telephoneNumber}": {
            "get": operation(
                "getCallbackNumber",
                "Who may use a callback number",
                "Numbers",
                answer,
                params=[number],
            ),
            "put": operation(
                "setCallbackNumber",
                "Assign a callback number to a device, or mark it shared (recorded in history)",
                "Numbers",
                {**answer, **body_errors()},
                params=[number],
                body=ref("CallbackNumberWrite"),
            ),
            "delete": operation(
                "releaseCallbackNumber",
                "Release a callback number: the next device to report it owns it (recorded)",
                "Numbers",
                answer,
                params=[number],
            ),
        },
        "/v1/numbers/{telephoneNumber}/history": {
            "get": operation(
                "getCallbackNumberHistory",
                "Every change of a number's ownership, newest first",
                "Numbers",
                {
                    "200": json_body(ref("NumberHistory"), "A page of the number's history."),
                    **ADMIN_AUTH_FAILURES,
                    "404": problem("Not a US or Canadian number."),
                    "422": problem("The query is not valid."),
                },
                params=[number, *HISTORY_PAGING],
            )
        },
        "/v1/locations/{locationId}/history": {
            "get": operation(
                "getLocationHistory",
                "Every admin change to a location, and its loss at the carrier, newest first",
                "Locations",
                {
                    "200": json_body(ref("LocationHistory"), "A page of the location's history."),
                    **ADMIN_AUTH_FAILURES,
                    "404": problem("Not a location ID."),
                    "422": problem("The query is not valid."),
                },
                params=[path_param("locationId", "The location's ID."), *HISTORY_PAGING],
            )
        },
    }


_ROW_PROBLEM = {
    "type": "object",
    "required": ["line", "field", "reason"],
    "properties": {
        "line": {"type": "integer", "description": "The file's line (the header is line 1)."},
        "field": {"type": "string", "description": "The column."},
        "reason": {"type": "string"},
    },
}
_PLAN = {
    "type": "object",
    "description": "What applying the valid rows would change, and the carrier calls it costs.",
    "properties": {
        name: {"type": "integer", "minimum": 0}
        for name in ("created", "moved", "updated", "unchanged", "newLocations", "carrierCalls")
    },
}
_IMPORT_CHECKED = {
    "type": "object",
    "properties": {
        "importId": {"type": "string", "description": "Absent on a dry run."},
        "state": {"type": "string", "enum": ["running"]},
        "total": {"type": "integer", "description": "Data rows in the file."},
        "valid": {"type": "integer"},
        "rows": {"type": "array", "items": _ROW_PROBLEM, "description": "Every bad row."},
        "rowsOmitted": {"type": "integer"},
        "plan": _PLAN,
    },
}
_IMPORT_STATUS = {
    "type": "object",
    "required": ["importId", "kind", "state", "total", "done", "failed", "outcomes", "left"],
    "properties": {
        "importId": {"type": "string"},
        "kind": {"type": "string", "enum": ["devices", "locations"]},
        "state": {"type": "string", "enum": ["running", "done", "incomplete"]},
        "total": {"type": "integer", "description": "Valid rows to apply."},
        "done": {"type": "integer"},
        "failed": {"type": "integer"},
        "outcomes": {"type": "object", "additionalProperties": {"type": "integer"}},
        "left": {"type": "integer", "description": "Lines left for a resume."},
        "failures": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"line": {"type": "integer"}, "reason": {"type": "string"}},
            },
        },
    },
}


def import_paths() -> dict[str, Any]:
    """Bulk import and export (``gateway.api.imports``): CSV in, CSV out."""
    flag = {"type": "string", "enum": ["true", "false"], "default": "false"}
    create = operation(
        "createImport",
        "Import devices or locations from a CSV file (checked whole, then applied)",
        "Imports",
        {
            "200": json_body(_IMPORT_CHECKED, "dryRun=true: the rows' check and the plan."),
            "202": json_body(_IMPORT_CHECKED, "Applying in the background: poll its status."),
            "400": problem("The Content-Length header is not a number."),
            **ADMIN_AUTH_FAILURES,
            "409": problem(
                "resume names no import, another kind or file, or one running; or no state store."
            ),
            "413": problem("The file is larger than GATEWAY_IMPORT_MAX_BYTES."),
            "415": problem("The body is not text/csv."),
            "422": problem(
                "invalid-rows: some rows are bad (each listed in rows); bad-import-file: the "
                "file cannot be read (not UTF-8, unknown columns, too many rows); or a bad query."
            ),
        },
        params=[
            {
                "name": "kind",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "enum": ["devices", "locations"]},
            },
            {"name": "dryRun", "in": "query", "required": False, "schema": flag},
            {"name": "skipInvalid", "in": "query", "required": False, "schema": flag},
            {"name": "resume", "in": "query", "required": False, "schema": string(16)},
        ],
    )
    create["requestBody"] = {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
    return {
        "/v1/imports": {"post": create},
        "/v1/imports/{importId}": {
            "get": operation(
                "getImport",
                "An import's progress and report",
                "Imports",
                {
                    "200": json_body(_IMPORT_STATUS, "Its progress."),
                    **ADMIN_AUTH_FAILURES,
                    "404": problem("No import has that ID."),
                },
                params=[path_param("importId", "The import's ID.")],
            )
        },
        "/v1/exports/{kind}": {
            "get": operation(
                "exportCsv",
                "Every device or location the gateway holds, as CSV in the import format",
                "Imports",
                {
                    "200": {
                        "description": "The CSV file.",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **ADMIN_AUTH_FAILURES,
                    "404": problem("Not devices or locations."),
                },
                params=[path_param("kind", "devices or locations")],
            )
        },
    }


def with_number_ownership(ops: dict[str, Any]) -> None:
    """An admin's endpoint holds its number as a device's report does."""
    for path, method in (("/v1/endpoints", "post"), ("/v1/endpoints/{endpointId}", "put")):
        responses = ops[path][method]["responses"]
        already = responses.get("409", {}).get("description")
        described = NUMBER_OWNED["description"]
        responses["409"] = {
            **NUMBER_OWNED,
            "description": f"{already} Or {described}" if already else described,
        }


def paths() -> dict[str, Any]:
    ops: dict[str, Any] = {
        "/healthz": {
            "get": operation(
                "healthz",
                "Liveness: the process is alive",
                "Operations",
                {"200": json_body({"type": "object"}, "Alive.")},
                security=[],
            )
        },
        "/readyz": {
            "get": operation(
                "readyz",
                "Readiness: configuration valid, carrier reachable, not draining",
                "Operations",
                {
                    "200": json_body({"type": "object"}, "Ready."),
                    "503": json_body({"type": "object"}, "Not ready; the body says why."),
                },
                security=[],
            )
        },
        "/metrics": {
            "get": operation(
                "metrics",
                "Prometheus metrics",
                "Operations",
                {
                    "200": {
                        "description": "Metrics in the Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                security=[],
            )
        },
        "/openapi.json": {
            "get": operation(
                "openapi",
                "This document",
                "Operations",
                {"200": json_body({"type": "object"}, "The gateway's OpenAPI document.")},
                security=[],
            )
        },
    }
    ops |= crud(
        "/v1/endpoints",
        "/v1/endpoints/{endpointId}",
        "endpoint",
        "Endpoints",
        "Endpoint",
        "EndpointWrite",
        "EndpointReplace",
        list_of("endpoints", "Endpoint"),
        "endpointId",
    )
    ops |= crud(
        "/v1/locations",
        "/v1/locations/{locationId}",
        "location",
        "Locations",
        "Location",
        "LocationWrite",
        "LocationReplace",
        list_of("locations", "Location"),
        "locationId",
    )
    with_number_ownership(ops)
    ops |= device_paths()
    with_pidf(ops)
    ops |= held_paths()
    ops |= emergency_paths()
    ops["/v1/notification-recipients"] = {
        "get": operation(
            "listNotificationRecipients",
            "List notification recipients",
            "Notification recipients",
            {
                "200": json_body(
                    list_of("notificationRecipients", "NotificationRecipient", counted=False),
                    "The account's notification recipients.",
                ),
                **ADMIN_AUTH_FAILURES,
            }
            | UPSTREAM_FAILURES,
        ),
        "post": operation(
            "createNotificationRecipient",
            "Create a notification recipient",
            "Notification recipients",
            {
                "201": json_body(ref("NotificationRecipient"), "The recipient."),
                **ADMIN_AUTH_FAILURES,
                "409": problem("The recipient already exists."),
                **body_errors(),
            }
            | UPSTREAM_FAILURES,
            body=ref("NotificationRecipientWrite"),
        ),
    }
    ops |= number_paths()
    ops |= import_paths()
    return ops


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dlr-gateway",
            "version": "0.1.0",
            "description": (
                "A Dynamic Location Routing gateway for 911: a JSON face over the Bandwidth "
                "Emergency Calling API. Errors are RFC 9457 problem details; problem types "
                "are explained in the README."
            ),
        },
        "paths": paths(),
        "components": {
            "securitySchemes": {
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin API key from GATEWAY_ADMIN_KEYS.",
                },
                "emergencyQueryBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "GATEWAY_EMERGENCY_QUERY_USERNAME and _PASSWORD.",
                },
                "emergencyQueryToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "GATEWAY_EMERGENCY_QUERY_TOKEN, in the URL the carrier calls.",
                },
                "deviceToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "A device JWT: `sub` is the AEUI, `exp` is required; an optional "
                        "`phone_number` claim (E.164) is the one callback number it may report."
                    ),
                },
            },
            "schemas": {
                "Address": ADDRESS,
                "Endpoint": ENDPOINT,
                "EndpointWrite": ENDPOINT_WRITE,
                "EndpointReplace": ENDPOINT_REPLACE,
                "Location": LOCATION,
                "LocationWrite": LOCATION_WRITE,
                "LocationReplace": LOCATION_REPLACE,
                "NotificationRecipient": RECIPIENT,
                "NotificationRecipientWrite": RECIPIENT_WRITE,
                "Problem": PROBLEM,
                "LocationReport": REPORT,
                "ReportResult": REPORT_RESULT,
                "DeviceLocation": DEVICE_LOCATION,
                "AddressValidation": VALIDATION_RESULT,
                "DeviceHistory": HISTORY,
                "HistoryEntry": HISTORY_ENTRY,
                "NumberHistory": history_of("telephoneNumber", "A page of a number's history."),
                "LocationHistory": history_of("locationId", "A page of a location's history."),
                "CallbackNumber": NUMBER,
                "CallbackNumberWrite": NUMBER_WRITE,
                "EmergencyLocation": EMERGENCY_LOCATION,
            },
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
