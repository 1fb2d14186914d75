"""The JSON API's answers about a device, declared once: their JSON output and schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema
from starlette.responses import Response

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
    warnings: list[FieldError]


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


def model_response(answer: BaseModel, status_code: int = 200) -> Response:
    """``answer`` as its JSON, written by the model's own serializer."""
    body = answer.__pydantic_serializer__.to_json(answer)
    return Response(body, status_code=status_code, media_type="application/json")
