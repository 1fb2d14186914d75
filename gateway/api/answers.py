"""The JSON API's answers about a device, declared once: their JSON output and schema."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from starlette.responses import Response

from gateway.api.models import omitted
from gateway.bandwidth.models import Address, wire_name
from gateway.dlr.errors import FieldError
from gateway.dlr.pipeline import Change
from gateway.geocoding.results import Precision

#: One vocabulary wherever coordinates are given (``Precision``).
PRECISION_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "string",
            "enum": [p.value for p in sorted(Precision, key=lambda p: p is not Precision.GPS)],
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
RADIUS_SCHEMA: dict[str, Any] = {
    "type": ["integer", "null"],
    "minimum": 1,
    "description": (
        "The radius that covers the coordinates' uncertainty, as PIDF-LO and HELD give it "
        "(a Circle) and the call-time query (`radius`): a `gps` fix's accuracy (50 without "
        "one), 50 for `street`, null for coarser precisions."
    ),
}
#: What located the device (``Outcome.source``).
LOCATION_SOURCE: dict[str, Any] = {
    "type": "string",
    "enum": ["port", "switch", "access-point", "subnet", "address", "geo"],
    "description": (
        "What located the device: a wiremap entry (`port` > `switch` > `access-point` > "
        "`subnet`), else its `address`, else its `geo` fix."
    ),
}
_ADDRESS = {"oneOf": [{"x-component": "Address"}, {"type": "null"}]}


class DeviceLocation(BaseModel):
    """What the carrier holds for a device, with the device's own coordinates (never
    another device's fix, nor the carrier's geocode) and their precision."""

    alternateEndUserId: str
    endpointId: str
    locationId: str
    status: str | None
    address: Annotated[dict[str, Any] | None, WithJsonSchema(_ADDRESS)]
    latitude: float | None
    longitude: float | None
    precision: Annotated[str | None, WithJsonSchema(PRECISION_SCHEMA)]
    radiusMeters: Annotated[int | None, WithJsonSchema(RADIUS_SCHEMA)]
    callerName: str
    telephoneNumber: str
    observedAt: str | None = Field(
        description="When the device observed this location; null when not known."
    )


class Changes(BaseModel):
    location: Change
    endpoint: Change


class ReportResult(DeviceLocation):
    """What the carrier now holds for the device, and what changed."""

    changes: Changes
    locationSource: Annotated[str, WithJsonSchema(LOCATION_SOURCE)]
    warnings: list[FieldError]


#: The address as read when it is not valid: the canonical spelling of what was sent, which
#: may still break the carrier's limits (``errors`` says where), so no length limits here.
_ADDRESS_AS_READ = {
    "type": "object",
    "description": "The address as the gateway reads it; `errors` names what is wrong.",
    "additionalProperties": False,
    "properties": {wire_name(f.name): {"type": "string"} for f in dataclasses.fields(Address)},
}


class AddressValidation(BaseModel):
    """The verdict on an address: valid or not, canonical, geocoded, and what to fix."""

    model_config = ConfigDict(
        json_schema_extra={
            # A valid verdict's address is one the carrier takes; an invalid one's is only
            # as read.
            "if": {"required": ["valid"], "properties": {"valid": {"const": True}}},
            "then": {"properties": {"address": {"x-component": "Address"}}},
        }
    )

    valid: bool
    address: Annotated[
        dict[str, Any] | None, WithJsonSchema({"oneOf": [_ADDRESS_AS_READ, {"type": "null"}]})
    ]
    latitude: float | None = None
    longitude: float | None = None
    precision: Annotated[str | None, WithJsonSchema(PRECISION_SCHEMA)]
    radiusMeters: Annotated[int | None, WithJsonSchema(RADIUS_SCHEMA)] = None
    errors: list[FieldError]
    warnings: list[FieldError] = Field(default_factory=list)
    suggestions: list[Annotated[dict[str, Any], WithJsonSchema({"x-component": "Address"})]]


class EmergencyLocation(BaseModel):
    """Where the caller is, as the carrier's Emergency Calling API expects it: `lat`, `lon`
    and `radius` only when the gateway has street-level or GPS coordinates."""

    # Written by ``gateway.api.emergency`` without the model (the call-time query's path is
    # the hottest); tests/api/test_emergency_query.py holds its answers to this model.
    model_config = ConfigDict(extra="forbid")

    aeui: str = Field(description="The device's AEUI.")
    location_id: str = Field(description="The location ID at the carrier.")
    lat: float = omitted(ge=-90, le=90)
    lon: float = omitted(ge=-180, le=180)
    radius: int = omitted(description="Meters (default 50).", ge=1)
    callback: str = omitted(description="Callback number, E.164.")
    name: str = omitted(description="Caller name.")


class PendingReport(BaseModel):
    """A report whose write the carrier accepted but had not carried out within the report's
    deadline (Bandwidth's v2 API provisions asynchronously): the device's new binding is
    pending. The gateway keeps following the carrier's order and records the outcome in the
    device's history; until then a 911 call may still be routed to its previous location."""

    alternateEndUserId: str
    endpointId: str
    locationId: str
    callerName: str
    telephoneNumber: str
    observedAt: str
    pending: Literal[True]
    orderId: str = Field(description="The carrier's order that carries the change out.")
    detail: str


def model_json(answer: BaseModel) -> bytes:
    """``answer``'s JSON, written by the model's own serializer."""
    return answer.__pydantic_serializer__.to_json(answer)


class _Json(Response):
    """``Response(body, status_code, media_type="application/json")``, its two headers
    written directly (what ``init_headers`` writes for it; a test holds the two equal)."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-length", str(len(body)).encode("ascii")),
            (b"content-type", b"application/json"),
        ]


def json_response(body: bytes, status_code: int = 200) -> Response:
    """An answer whose JSON is ``body``."""
    if status_code < 200 or status_code in (204, 304):  # no content-length: Starlette's way
        return Response(body, status_code=status_code, media_type="application/json")
    return _Json(body, status_code)


def model_response(answer: BaseModel, status_code: int = 200) -> Response:
    """``answer`` as its JSON, written by the model's own serializer."""
    return json_response(model_json(answer), status_code)
