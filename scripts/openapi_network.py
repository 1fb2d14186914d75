"""The wiremap's part of the API document (``/v1/network/*``, a report's ``network``),
built with ``build_openapi``'s helpers."""

from __future__ import annotations

from typing import Any

from gateway.api.network import COLLECTIONS, KEY_FIELD, MAX_PAGE
from gateway.network.wiremap import MAX_DESCRIPTION, MAX_KEY_LENGTH, MAX_LOCATION_ID, Kind

LOCATION_SOURCE = {
    "type": "string",
    "enum": ["port", "switch", "access-point", "subnet", "address", "geo"],
    "description": (
        "What located the device: a wiremap entry (`port` > `switch` > `access-point` > "
        "`subnet`), else its `address`, else its `geo` fix."
    ),
}

_KEYS: dict[str, dict[str, Any]] = {
    "subnet": {
        "type": "string",
        "maxLength": MAX_KEY_LENGTH,
        "description": "An IPv4 or IPv6 network in CIDR form, host bits clear (a bare "
        "address is a host route); the longest prefix wins.",
    },
    "bssid": {
        "type": "string",
        "maxLength": MAX_KEY_LENGTH,
        "description": "A BSSID (`AA-BB-CC-DD-EE-FF`, `:` or `-`); `*` may replace the last "
        "one or two hex digits. Overlapping wildcards are refused.",
    },
    "chassisId": {
        "type": "string",
        "maxLength": MAX_KEY_LENGTH,
        "description": "An LLDP chassis ID (a MAC address is written `AA-BB-CC-DD-EE-FF`).",
    },
    "portId": {"type": "string", "maxLength": MAX_KEY_LENGTH, "description": "An LLDP port ID."},
}


def _entry_props(kind: Kind) -> dict[str, Any]:
    props = {KEY_FIELD[kind]: _KEYS[KEY_FIELD[kind]]}
    if kind is Kind.PORT:
        props["portId"] = _KEYS["portId"]
    return props


def schemas(ref: Any, field_errors: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    common = {
        "address": {
            **ref("Address"),
            "description": "Validated like a report's; `addressLine2` is the place inside "
            "(`FL 3 RM 301`). Optional when `locationId` names a carrier location.",
        },
        "locationId": {"type": ["string", "null"], "maxLength": MAX_LOCATION_ID},
        "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION},
    }
    for kind in Kind:
        name = _schema_name(kind)
        keys = list(_entry_props(kind))
        found[f"{name}Write"] = {
            "type": "object",
            "additionalProperties": False,
            "required": keys,
            "properties": {**_entry_props(kind), **common},
        }
        found[name] = {
            "type": "object",
            "required": ["id", "kind", *keys, "address"],
            "properties": {
                "id": {"type": "string"},
                "kind": {"const": kind.value},
                **_entry_props(kind),
                **common,
                "warnings": field_errors,
            },
        }
    found["NetworkObservations"] = {
        "type": "object",
        "additionalProperties": False,
        "description": "Where a device is attached; any subset (`portId` with `chassisId`).",
        "properties": {
            "ip": {"type": "string", "maxLength": MAX_KEY_LENGTH},
            "bssid": {"type": "string", "maxLength": MAX_KEY_LENGTH},
            "chassisId": _KEYS["chassisId"],
            "portId": _KEYS["portId"],
        },
    }
    found["NetworkResolution"] = {
        "type": "object",
        "required": ["source", "entry", "location"],
        "properties": {
            "source": {"type": "string", "enum": [k.value for k in Kind]},
            "entry": {"type": "object"},
            "location": ref("Address"),
        },
    }
    return found


def _schema_name(kind: Kind) -> str:
    return "Network" + "".join(part.capitalize() for part in kind.value.split("-"))


def paths(
    operation: Any, json_body: Any, problem: Any, ref: Any, body_errors: Any, auth: Any
) -> dict[str, Any]:
    forbidden = {"403": problem("A device token: the wiremap is for admin keys only.")}
    found: dict[str, Any] = {
        "/v1/network/resolve": {
            "post": operation(
                "resolveNetwork",
                "Which wiremap entry locates these observations, its location, and why",
                "Network",
                {
                    "200": json_body(ref("NetworkResolution"), "The winning entry."),
                    **auth,
                    **forbidden,
                    "404": problem("`/problems/wiremap-no-match`: nothing matched (`tried`)."),
                    **body_errors(),
                },
                body=ref("NetworkObservations"),
            )
        }
    }
    for path, kind in COLLECTIONS.items():
        name, noun = _schema_name(kind), kind.value
        title = name.removeprefix("Network")
        item_param = [
            {
                "name": "entryId",
                "in": "path",
                "required": True,
                "description": f"The {noun} entry's ID.",
                "schema": {"type": "string", "maxLength": 64},
            }
        ]
        paging = [
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            },
        ]
        listed = {
            "type": "object",
            "required": ["entries", "total", "nextOffset"],
            "properties": {
                "entries": {"type": "array", "items": ref(name)},
                "total": {"type": "integer"},
                "nextOffset": {"type": ["integer", "null"]},
            },
        }
        not_found = {"404": problem(f"No such {noun} entry.")}
        conflict = {
            "409": problem(
                "`/problems/wiremap-conflict`: the same key is mapped, or a BSSID wildcard "
                "overlaps another (`conflictsWith`)."
            )
        }
        found[f"/v1/network/{path}"] = {
            "get": operation(
                f"listNetwork{title}s",
                f"List the wiremap's {noun} entries",
                "Network",
                {
                    "200": json_body(listed, "A page of entries, by key."),
                    **auth,
                    **forbidden,
                    "422": problem("The query is not valid."),
                },
                params=paging,
            ),
            "post": operation(
                f"createNetwork{title}",
                f"Map a {noun} to a location",
                "Network",
                {
                    "201": json_body(ref(name), "The entry (with `warnings`, if any)."),
                    **auth,
                    **forbidden,
                    **conflict,
                    **body_errors(),
                },
                body=ref(f"{name}Write"),
            ),
        }
        found[f"/v1/network/{path}/{{entryId}}"] = {
            "get": operation(
                f"getNetwork{title}",
                f"Get a {noun} entry",
                "Network",
                {"200": json_body(ref(name), "The entry."), **auth, **forbidden, **not_found},
                params=item_param,
            ),
            "put": operation(
                f"updateNetwork{title}",
                f"Change a {noun} entry's location (its key is its identity)",
                "Network",
                {
                    "200": json_body(ref(name), "The entry after the change."),
                    **auth,
                    **forbidden,
                    **not_found,
                    **body_errors(),
                },
                params=item_param,
                body=ref(f"{name}Write"),
            ),
            "delete": operation(
                f"deleteNetwork{title}",
                f"Delete a {noun} entry",
                "Network",
                {"204": {"description": "Deleted."}, **auth, **forbidden, **not_found},
                params=item_param,
            ),
        }
    return found
