"""PIDF-LO over HTTP: location reports in (``application/pidf+xml``), read into the JSON
report's shape without asking the pipeline, and a device's location out (docs/architecture.md,
"A PIDF-LO report")."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.auth import MAX_SUBJECT_LENGTH, Principal
from gateway.api.problems import Problem
from gateway.api.schemas import ReportSource, is_json
from gateway.dlr.errors import FieldError
from gateway.dlr.pipeline import Binding
from gateway.pidf.binding import location_object
from gateway.pidf.civic import DEFAULT_SOURCES, to_address
from gateway.pidf.document import Presence, read_presence, write_presence
from gateway.pidf.errors import DocumentError, XmlError
from gateway.pidf.held import DeviceId, HeldError, device_from_uri
from gateway.pidf.namespaces import PIDF_MEDIA_TYPE

#: How the report's fields are named in a PIDF-LO.
_NAMES: dict[str, str] = {
    "body": "presence",
    "alternateEndUserId": "entity",
    "callerName": "civicAddress.NAM",
    "telephoneNumber": "contact",
    "observedAt": "timestamp",
    "address": "civicAddress",
    **{f"address.{wire}": f"civicAddress.{element}" for wire, element in DEFAULT_SOURCES.items()},
}


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_pidf(content_type: str) -> bool:
    return _media(content_type) == PIDF_MEDIA_TYPE


#: ``body_format`` of the ``Content-Type`` values seen, up to ``_FORMATS_KEPT`` of them (the
#: header is the client's to fill: others are classified afresh each time).
_FORMATS: dict[str, str] = {}
_FORMATS_KEPT = 64


def body_format(content_type: str) -> str:
    """A report body's format by its ``Content-Type``: ``pidf`` (``is_pidf``), ``json``
    (``is_json``) or ``other``."""
    kind = _FORMATS.get(content_type)
    if kind is None:
        kind = "pidf" if is_pidf(content_type) else "json" if is_json(content_type) else "other"
        if len(_FORMATS) < _FORMATS_KEPT:
            _FORMATS[content_type] = kind
    return kind


def prefers_pidf(accept: str) -> bool:
    """Whether ``Accept`` prefers a PIDF-LO to JSON (JSON wins ties and wildcards)."""
    best = {"pidf": 0.0, "json": 0.0}
    for part in accept.split(","):
        media, *params = part.split(";")
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
                if not math.isfinite(weight):
                    weight = 0.0
        media = media.strip().lower()
        if media == PIDF_MEDIA_TYPE:
            best["pidf"] = max(best["pidf"], weight)
        elif media in ("application/json", "application/*", "*/*") or media.endswith("+json"):
            best["json"] = max(best["json"], weight)
    return best["pidf"] > 0 and best["pidf"] > best["json"]


def _read(data: bytes, max_bytes: int) -> Presence:
    try:
        return read_presence(data, max_bytes=max_bytes)
    except XmlError as exc:
        raise Problem(
            422,
            "The body is not a PIDF-LO document the gateway can read.",
            errors=[FieldError("body", str(exc))],
        ) from None
    except DocumentError as exc:
        raise Problem(422, "The report is not valid.", errors=list(exc.errors)) from None


def _identity(uri: str | None) -> tuple[DeviceId | None, str | None]:
    """The device an entity or contact names, or why it names none."""
    if uri is None:
        return None, None
    try:
        return device_from_uri(uri), None
    except HeldError as exc:
        return None, exc.message


def read_pidf_report(data: bytes, max_bytes: int, principal: Principal) -> ReportSource:
    """The PIDF-LO body as a report in the JSON API's shape (see the module docstring)."""
    presence = _read(data, max_bytes)
    names = dict(_NAMES)
    errors: list[FieldError] = []
    warnings = list(presence.warnings)
    body: dict[str, Any] = {"observedAt": presence.timestamp}
    if presence.timestamp is None:
        # RFC 3863 makes <timestamp> optional: the document is as new as its arrival.
        body["observedAt"] = datetime.now(UTC).isoformat()
        warnings.append(
            FieldError(
                "timestamp",
                "absent: the time the gateway received the document is used as observedAt",
            )
        )
    _device(presence, principal, body, names, errors)
    if presence.civic is not None:
        mapping = to_address(presence.civic)
        body["address"] = mapping.address
        body["callerName"] = mapping.caller_name
        for wire, element in mapping.sources.items():
            names[f"address.{wire}"] = f"civicAddress.{element}"
        errors.extend(list(mapping.errors))
        warnings.extend(list(mapping.warnings))
    if presence.shape is not None:
        shape = presence.shape
        where = f"location-info.{shape.kind}"
        body["geo"] = {"latitude": shape.latitude, "longitude": shape.longitude}
        names.update(geo=where)
        names.update({"geo.latitude": f"{where}.pos", "geo.longitude": f"{where}.pos"})
        if shape.radius is not None:
            body["geo"]["accuracyMeters"] = shape.radius
            names["geo.accuracyMeters"] = f"{where}.radius"
    return ReportSource(body, names, tuple(errors), tuple(warnings))


def _device(
    presence: Presence,
    principal: Principal,
    body: dict[str, Any],
    names: dict[str, str],
    errors: list[FieldError],
) -> None:
    """The AEUI and callback number, from the entity, the contact and the credential."""
    entity, why = _identity(presence.entity)
    if why is not None:
        errors.append(FieldError("entity", why))
    if entity is not None and entity.kind == "aeui":
        body["alternateEndUserId"] = entity.value
    elif why is None and not principal.is_admin:
        # No entity, or a tel: one: the device token says which device this is.
        body["alternateEndUserId"] = principal.subject
    contact, _ = _identity(presence.contact)
    if contact is not None and contact.kind == "tel":
        body["telephoneNumber"] = contact.value
    elif entity is not None and entity.kind == "tel":
        body["telephoneNumber"] = entity.value
        names["telephoneNumber"] = "entity"


_CALLER_FIELDS = ("callerName", "telephoneNumber")


def keeps_current(source: ReportSource, principal: Principal) -> str | None:
    """The AEUI whose current name or number the report keeps: it left one out, and the
    credential may act for that device (see the module docstring)."""
    body = source.body
    aeui = body.get("alternateEndUserId")
    if not isinstance(aeui, str) or not aeui or len(aeui) > MAX_SUBJECT_LENGTH:
        return None  # not an AEUI at all: the parser names it
    if all(body.get(f) is not None for f in _CALLER_FIELDS) or not principal.may_act_for(aeui):
        return None
    return aeui


def with_caller(source: ReportSource, name: str | None, number: str | None) -> ReportSource:
    """``source`` with the name and number it left out filled in, where given."""
    body = dict(source.body)
    for field, value in zip(_CALLER_FIELDS, (name, number), strict=True):
        if body.get(field) is None and value is not None:
            body[field] = value
    return dataclasses.replace(source, body=body)


def only_left_out(refused: Problem, source: ReportSource) -> bool:
    """Whether the report's only problems are the name or number it left out."""
    left_out = {source.name(f) for f in _CALLER_FIELDS if source.body.get(f) is None}
    return all(e.message == "required" and e.field in left_out for e in refused.errors)


def location_response(request: Request, binding: Binding) -> Response:
    """The binding as a PIDF-LO document."""
    lo = location_object(binding, host=request.url.hostname, now=datetime.now(UTC))
    if not lo.civic and lo.shape is None:
        raise Problem(404, "No location is registered for this device.")
    return Response(write_presence(lo), media_type=PIDF_MEDIA_TYPE, headers={"Vary": "Accept"})
