"""The wiremap's JSON shapes (``/v1/network/*``, a report's ``network``), declared once: their
validation, their answers and their schema in the API document.

Each identity is checked by the wiremap's own parser (``gateway.network.wiremap``), whose
gate is the pattern the document states (``gateway.network.patterns``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model
from starlette.requests import Request

from gateway.api.models import AddressInput, checked, validated
from gateway.api.source import client_address
from gateway.dlr.errors import FieldError
from gateway.network import patterns
from gateway.network.wiremap import (
    MAX_DESCRIPTION,
    MAX_KEY_LENGTH,
    MAX_LOCATION_ID,
    Kind,
    Observation,
    WiremapError,
    parse_bssid,
    parse_chassis,
    parse_description,
    parse_ip,
    parse_location_id,
    parse_port,
    parse_subnet,
)

#: The collections, by path segment.
COLLECTIONS: dict[str, Kind] = {
    "subnets": Kind.SUBNET,
    "access-points": Kind.ACCESS_POINT,
    "switches": Kind.SWITCH,
    "ports": Kind.PORT,
}
#: The field that holds each kind's network identity.
KEY_FIELD = {
    Kind.SUBNET: "subnet",
    Kind.ACCESS_POINT: "bssid",
    Kind.SWITCH: "chassisId",
    Kind.PORT: "chassisId",
}
#: The most entries one page of a list holds.
MAX_PAGE = 1000

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


def _gate(parse: Callable[[object, str], object]) -> BeforeValidator:
    """The wiremap's parser as the field's check; the value is kept as sent (the route
    builds the entry, canonical, from it)."""

    def problem(value: Any) -> str | None:
        try:
            parse(value, "")
        except WiremapError as exc:
            return exc.errors[0].message
        return None

    return checked(problem)


def _key(pattern: str, description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "maxLength": MAX_KEY_LENGTH,
        "pattern": pattern,
        "description": description,
    }


_SUBNET = _key(
    patterns.SUBNET_PATTERN,
    "An IPv4 or IPv6 network in CIDR form (a bare address is a host route); host bits set "
    "are cleared, with a warning. A network wider than /8 (IPv4) or /16 (IPv6), a /0 (every "
    "address) included, is refused. The longest prefix wins.",
)
_BSSID = _key(
    patterns.BSSID_PATTERN,
    "A BSSID (`AA-BB-CC-DD-EE-FF`, `:` or `-`, or `aabb.ccdd.eeff`); `*` may replace the last "
    "one or two hex digits. Overlapping wildcards are refused.",
)
_CHASSIS = _key(patterns.NAME_PATTERN, "An LLDP chassis ID (a MAC address is read as one).")
_PORT = _key(patterns.NAME_PATTERN, "An LLDP port ID.")
_IP = _key(patterns.IP_PATTERN, "The device's IPv4 or IPv6 address.")
_OBSERVED_BSSID = _key(patterns.MAC_PATTERN, "The BSSID of the access point it is on.")


def _observed_bssid(value: object, field: str) -> object:
    return parse_bssid(value, field, wildcard=False)


# Required in an entry; in observations, optional but never ``null`` (each is checked as
# given, ``None`` included: the parser refuses it).
Subnet = Annotated[str, _gate(parse_subnet), WithJsonSchema(_SUBNET)]
WildBssid = Annotated[str, _gate(parse_bssid), WithJsonSchema(_BSSID)]
ChassisId = Annotated[str, _gate(parse_chassis), WithJsonSchema(_CHASSIS)]
PortId = Annotated[str, _gate(parse_port), WithJsonSchema(_PORT)]
Ip = Annotated[str | None, _gate(parse_ip), WithJsonSchema(_IP)]
ObservedBssid = Annotated[str | None, _gate(_observed_bssid), WithJsonSchema(_OBSERVED_BSSID)]
ObservedChassis = Annotated[str | None, _gate(parse_chassis), WithJsonSchema(_CHASSIS)]
ObservedPort = Annotated[str | None, _gate(parse_port), WithJsonSchema(_PORT)]


class NetworkObservations(BaseModel):
    """Where a device is attached; any of them (`portId` with `chassisId`)."""

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={"minProperties": 1, "dependentRequired": {"portId": ["chassisId"]}},
    )

    ip: Ip = None
    bssid: ObservedBssid = None
    chassis_id: ObservedChassis = Field(None, alias="chassisId")
    port_id: ObservedPort = Field(None, alias="portId")

    def observation(self) -> Observation:
        """The observations, parsed (each was checked by its parser already)."""
        return Observation(
            ip=parse_ip(self.ip) if self.ip is not None else None,
            bssid=parse_bssid(self.bssid, wildcard=False) if self.bssid is not None else None,
            chassis_id=parse_chassis(self.chassis_id) if self.chassis_id is not None else None,
            port_id=parse_port(self.port_id) if self.port_id is not None else None,
        )


def read_observations(
    data: Any, errors: list[FieldError], prefix: str = "network"
) -> Observation | None:
    """``{ip, bssid, chassisId, portId}``, or ``None`` with ``errors`` naming each problem
    (``<prefix>.<field>``; with no prefix, the field alone)."""
    where = f"{prefix}." if prefix else ""
    model = validated(NetworkObservations, data, errors, prefix)
    if model is None:
        return None
    if model.port_id is not None and model.chassis_id is None:
        message = "a port is named by its chassisId and portId together"
        errors.append(FieldError(f"{where}portId", message))
        return None
    if not model.model_fields_set:
        message = "give at least one of ip, bssid, chassisId"
        errors.append(FieldError(prefix or "body", message))
        return None
    return model.observation()


def heard_from(request: Request, observation: Observation) -> Observation:
    """A report's ``observation`` with where the gateway heard it from (``client_address``)."""
    return dataclasses.replace(observation, heard_from=client_address(request))


_LOCATION_ID = {
    "type": ["string", "null"],
    "maxLength": MAX_LOCATION_ID,
    "pattern": patterns.LOCATION_ID_PATTERN,
    "description": "A location at the carrier: without `address`, the entry takes its address.",
}
_DESCRIPTION = {
    "type": ["string", "null"],
    "maxLength": MAX_DESCRIPTION,
    "pattern": patterns.TEXT_PATTERN,
    "description": "Free text (blank: none): no control or invisible format characters.",
}
#: An entry's location: its address, or a carrier location's.
_LOCATED: dict[str, Any] = {
    "anyOf": [
        {"required": ["address"], "properties": {"address": {"type": "object"}}},
        {"required": ["locationId"], "properties": {"locationId": {"type": "string"}}},
    ]
}
_ADDRESS_DOC = (
    "Validated like a report's; `addressLine2` is the place inside (`FL 3 RM 301`). "
    "Optional when `locationId` names a carrier location."
)
_KEYS: dict[Kind, dict[str, Any]] = {
    Kind.SUBNET: {"subnet": (Subnet, Field(alias="subnet"))},
    Kind.ACCESS_POINT: {"bssid": (WildBssid, Field(alias="bssid"))},
    Kind.SWITCH: {"chassis_id": (ChassisId, Field(alias="chassisId"))},
    Kind.PORT: {
        "chassis_id": (ChassisId, Field(alias="chassisId")),
        "port_id": (PortId, Field(alias="portId")),
    },
}


def schema_name(kind: Kind) -> str:
    return "Network" + "".join(part.capitalize() for part in kind.value.split("-"))


def _write_model(kind: Kind) -> type[BaseModel]:
    fields: dict[str, Any] = {
        **_KEYS[kind],
        "address": (AddressInput | None, Field(None, description=_ADDRESS_DOC)),
        "location_id": (
            Annotated[str | None, _gate(parse_location_id), WithJsonSchema(_LOCATION_ID)],
            Field(None, alias="locationId"),
        ),
        "description": (
            Annotated[str | None, _gate(parse_description), WithJsonSchema(_DESCRIPTION)],
            None,
        ),
    }
    return create_model(
        f"{schema_name(kind)}Write",
        __config__=ConfigDict(**_STRICT, json_schema_extra=_LOCATED),
        __doc__=f"A {kind.value} entry to write: its identity and its location.",
        **fields,
    )


_ANSWER = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)
_ADDRESS_OUT = WithJsonSchema({"x-component": "Address"})


def _entry_model(kind: Kind) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "id": (str, ...),
        "kind": (Literal[kind.value], ...),
        **{name: (str, info) for name, (_, info) in _KEYS[kind].items()},
        "address": (Annotated[dict[str, Any], _ADDRESS_OUT], ...),
        "location_id": (str | None, Field(alias="locationId")),
        "description": (str | None, ...),
        "warnings": (list[FieldError], []),
    }
    return create_model(
        schema_name(kind),
        __config__=_ANSWER,
        __doc__=f"A {kind.value} entry of the wiremap; `warnings` say what to know about it.",
        **fields,
    )


WRITES: dict[Kind, type[BaseModel]] = {kind: _write_model(kind) for kind in Kind}
ENTRIES: dict[Kind, type[BaseModel]] = {kind: _entry_model(kind) for kind in Kind}


def _list_model(kind: Kind) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "entries": (list[ENTRIES[kind]], ...),  # type: ignore[valid-type]
        "total": (int, ...),
        "next_offset": (int | None, Field(alias="nextOffset")),
    }
    return create_model(
        f"{schema_name(kind)}List",
        __config__=_ANSWER,
        __doc__=f"A page of the wiremap's {kind.value} entries, by key.",
        **fields,
    )


LISTS: dict[Kind, type[BaseModel]] = {kind: _list_model(kind) for kind in Kind}
_ANY_ENTRY = {"oneOf": [{"x-component": schema_name(kind)} for kind in Kind]}


class NetworkResolution(BaseModel):
    """The wiremap entry that locates the observations, its location, and which kind won."""

    model_config = _ANSWER

    source: Kind
    entry: Annotated[dict[str, Any], WithJsonSchema(_ANY_ENTRY)]
    location: Annotated[dict[str, Any], _ADDRESS_OUT]


def schemas() -> dict[str, type[BaseModel]]:
    """The models of the API document's components, by name."""
    found: dict[str, type[BaseModel]] = {"NetworkObservations": NetworkObservations}
    for kind in Kind:
        name = schema_name(kind)
        found |= {name: ENTRIES[kind], f"{name}Write": WRITES[kind]}
        found[f"{name}List"] = LISTS[kind]
    found["NetworkResolution"] = NetworkResolution
    return found
