"""The wiremap's paths in the API document (``/v1/network/*``): summaries and answers; the
shapes are ``gateway.api.network_models``'."""

from __future__ import annotations

from typing import Any

from gateway.api.network import MAX_OFFSET
from gateway.api.network_models import COLLECTIONS, MAX_PAGE, schema_name
from gateway.api.openapi.blocks import (
    ADMIN_AUTH_FAILURES,
    body_errors,
    json_body,
    operation,
    param,
    problem,
    retry_problem,
)
from gateway.api.openapi.components import ref

_AUTH = ADMIN_AUTH_FAILURES
#: A body whose address cannot be routed, as a report's; or a carrier location that is not.
_UNROUTABLE = problem(
    "Malformed (`/problems/validation`), the address cannot be routed "
    "(`/problems/unroutable-address`), or `locationId` names no location at the carrier "
    "(`/problems/unknown-location`); nothing was written."
)


#: What an entry's change does to the devices located through it.
_NOT_MOVED = (
    "Devices located through the entry are not moved: each keeps the place it was given "
    "until its next report, which is located afresh."
)


def _paging() -> list[dict[str, Any]]:
    def query(name: str, least: int, most: int, description: str) -> dict[str, Any]:
        return param(
            "query", name, description, {"type": "integer", "minimum": least, "maximum": most}
        )

    return [
        query("offset", 0, MAX_OFFSET, "Entries to skip (the `nextOffset` of the previous page)."),
        query("limit", 1, MAX_PAGE, "Entries per page (100 when left out)."),
    ]


def network_paths() -> dict[str, Any]:
    found: dict[str, Any] = {
        "/v1/network/resolve": {
            "post": operation(
                "resolveNetwork",
                "Which wiremap entry locates these observations, its location, and why",
                "Network",
                {
                    "200": json_body(ref("NetworkResolution"), "The winning entry."),
                    **_AUTH,
                    "404": problem("`/problems/wiremap-no-match`: nothing matched (`tried`)."),
                    **body_errors(),
                },
                body=ref("NetworkObservations"),
            )
        }
    }
    for path, kind in COLLECTIONS.items():
        name, noun = schema_name(kind), kind.value
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
        not_found = {"404": problem(f"No such {noun} entry.")}
        written = {
            **body_errors(),
            "422": _UNROUTABLE,
            "503": retry_problem("The wiremap kept changing at other replicas: try again."),
        }
        found[f"/v1/network/{path}"] = {
            "get": operation(
                f"listNetwork{title}s",
                f"List the wiremap's {noun} entries",
                "Network",
                {
                    "200": json_body(ref(f"{name}List"), "A page of entries, by key."),
                    **_AUTH,
                    "422": problem("The query is not valid."),
                },
                params=_paging(),
            ),
            "post": operation(
                f"createNetwork{title}",
                f"Map a {noun} to a location",
                "Network",
                {
                    "201": json_body(ref(name), "The entry (`warnings`: what to know)."),
                    **_AUTH,
                    "409": problem(
                        "`/problems/wiremap-conflict`: the same key is mapped, or a BSSID "
                        "wildcard overlaps another (`conflictsWith`)."
                    ),
                    **written,
                },
                body=ref(f"{name}Write"),
            ),
        }
        found[f"/v1/network/{path}/{{entryId}}"] = {
            "get": operation(
                f"getNetwork{title}",
                f"Get a {noun} entry",
                "Network",
                {"200": json_body(ref(name), "The entry."), **_AUTH, **not_found},
                params=item_param,
            ),
            "put": {
                **operation(
                    f"updateNetwork{title}",
                    f"Change a {noun} entry's location (its key is its identity)",
                    "Network",
                    {
                        "200": json_body(ref(name), "The entry after the change."),
                        **_AUTH,
                        **not_found,
                        **written,
                    },
                    params=item_param,
                    body=ref(f"{name}Write"),
                ),
                "description": _NOT_MOVED,
            },
            "delete": operation(
                f"deleteNetwork{title}",
                f"Delete a {noun} entry",
                "Network",
                {"204": {"description": "Deleted."}, **_AUTH, **not_found},
                params=item_param,
            ),
        }
    return found
