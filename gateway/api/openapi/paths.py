"""The paths of the API document: what the code cannot say of itself (summaries, answers)."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi.blocks import (
    ADMIN_AUTH_FAILURES,
    AUTH_FAILURES,
    BODY_LIMITS,
    DEVICE_OR_ADMIN,
    DEVICE_PARAM,
    UPSTREAM_FAILURES,
    V2_PENDING,
    V2_UNSUPPORTED,
    Security,
    body_errors,
    deleted,
    json_body,
    list_of,
    operation,
    page_limit,
    param,
    path_param,
    problem,
    retry_problem,
)
from gateway.api.openapi.components import VALIDATE_INPUT, ref
from gateway.concurrency import REFRESH_SECONDS
from gateway.settings import Settings

#: The call-time query's path, as a gateway with default settings serves it.
EMERGENCY_QUERY_PATH = Settings().emergency_query_path
EMERGENCY_QUERY_SECURITY: Security = [{"emergencyQueryBasic": []}, {"emergencyQueryToken": []}]


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
                | UPSTREAM_FAILURES
                | V2_PENDING
                | V2_UNSUPPORTED,
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
                | UPSTREAM_FAILURES
                | V2_PENDING
                | V2_UNSUPPORTED,
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
                | UPSTREAM_FAILURES
                | V2_PENDING,
                params=item_param,
            ),
        },
    }


def emergency_paths() -> dict[str, Any]:
    def query(name: str, description: str, required: bool) -> dict[str, Any]:
        found = param("query", name, description, {"type": "string", "maxLength": 256})
        return {**found, "required": required}

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
    page_limit("Entries"),
    param(
        "query",
        "before",
        "The `nextBefore` of the previous page.",
        {"type": "integer", "minimum": 1, "maximum": 2**62},
    ),
]
#: The per-device rate limit (``GATEWAY_REPORT_RATE_PER_MINUTE``), for reports and reads alike.
RATE_LIMITED = {
    "429": retry_problem(
        "The device's per-device rate limit is spent (`/problems/rate-limited`); "
        "reports and reads each have their own."
    )
}

#: A report's carrier failures that say what became of its change.
REPORT_TIMEOUTS = {
    "503": retry_problem(
        "The carrier is unavailable or rate-limiting (`/problems/upstream-unavailable`); or it "
        "did not confirm the change within `GATEWAY_REPORT_DEADLINE`, and the change may still "
        "land: the gateway keeps watching the write and repairs the record if needed. "
        "`/problems/report-deadline`: the deadline was spent in the gateway's own work (the "
        "geocoder, the state store, the device's previous report) before anything was "
        "written; the report was not applied."
    ),
    "504": retry_problem(
        "The carrier did not answer in time, and the report was not applied "
        "(`/problems/upstream-timeout`): the carrier did not take its change."
    ),
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
                    "202": json_body(
                        ref("PendingReport"),
                        "With `BANDWIDTH_API=v2`: the carrier accepted the change but had not "
                        "carried it out within `BANDWIDTH_V2_FOLLOW_TIMEOUT`; the binding is "
                        "pending, the gateway keeps following the carrier's order and records "
                        "the outcome in the device's history.",
                    ),
                    **DEVICE_FAILURES,
                    "403": problem(
                        "A device token may act only for its own AEUI, and a token with a "
                        "`phone_number` claim may report only that number."
                    ),
                    "409": {
                        **NUMBER_OWNED,
                        "description": (
                            "`/problems/superseded`: a newer report for the device is applied, "
                            "or an admin deleted the device after this report was observed "
                            "(`newestObservedAt`: that report's time, or the deletion's; a "
                            "write of this report that raced the deletion is deleted again); or "
                            + NUMBER_OWNED["description"]
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
                | UPSTREAM_FAILURES
                | REPORT_TIMEOUTS,
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
                params=[DEVICE_PARAM],
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
                params=[DEVICE_PARAM, *HISTORY_PAGING],
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
                    "device. An admin key may name an `<ip>` or a `<mac>` (a BSSID), located "
                    "through the wiremap (`<method>Wiremap</method>`); a request with no "
                    "credentials and no `<device>` from inside `GATEWAY_NETWORK_TRUSTED_CIDRS` "
                    "is located by its source address. Answered with a "
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
                    **BODY_LIMITS,
                    "415": problem("The body is not application/held+xml."),
                    **RATE_LIMITED,
                }
                | UPSTREAM_FAILURES,
                "security": [*DEVICE_OR_ADMIN, {}],
            }
        }
    }


def number_paths() -> dict[str, Any]:
    number = path_param(
        "telephoneNumber", "The number: +1 and 10 digits (or 10 digits, 1 + 10).", 256
    )
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


def revocation_paths() -> dict[str, Any]:
    answer = json_body(
        ref("TokenRevocation"),
        "The device's tokens issued before `revokedBefore` (their `iat` earlier, or none) are "
        "refused (401) on every route; those issued since are accepted.",
    )
    failures = {
        **ADMIN_AUTH_FAILURES,
        "503": retry_problem("The gateway's database is unavailable."),
    }
    return {
        "/v1/devices/{alternateEndUserId}/token-revocation": {
            "get": operation(
                "getTokenRevocation",
                "When a device's tokens were last revoked",
                "Devices",
                {
                    "200": answer,
                    **failures,
                    "404": problem("Not an AEUI, or the device's tokens were never revoked."),
                },
                params=[DEVICE_PARAM],
            ),
            "post": operation(
                "revokeDeviceTokens",
                "Revoke a device's tokens: those issued before now are refused from now on "
                f"(at other replicas within {REFRESH_SECONDS:g} s); a device never heard of "
                "may be named",
                "Devices",
                {"200": answer, **failures, "404": problem("Not an AEUI.")},
                params=[DEVICE_PARAM],
            ),
        }
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


def operations(
    op_id: str, summary: str, answer: str, more: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An operations route: a GET without credentials, answered 200 with a JSON object."""
    responses = {"200": json_body({"type": "object"}, answer), **(more or {})}
    return {"get": operation(op_id, summary, "Operations", responses, security=[])}


def paths() -> dict[str, Any]:
    object_answer = {"type": "object"}
    text = {"text/plain": {"schema": {"type": "string"}}}
    ops: dict[str, Any] = {
        "/healthz": operations("healthz", "Liveness: the process is alive", "Alive."),
        "/readyz": operations(
            "readyz",
            "Readiness: configuration valid, carrier reachable, not draining",
            "Ready.",
            {"503": json_body(object_answer, "Not ready; the body says why.")},
        ),
        "/metrics": operations(
            "metrics",
            "Prometheus metrics",
            "",
            {"200": {"description": "Metrics in the Prometheus text format.", "content": text}},
        ),
        "/openapi.json": operations("openapi", "This document", "The gateway's OpenAPI document."),
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
    ops["/v1/locations/{locationId}"]["put"]["responses"]["409"] = problem(
        "Another address under an ID the gateway derived from the held one (reports of "
        "that address are bound to it): create a new location and move the endpoints."
    )
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
            | UPSTREAM_FAILURES
            | V2_UNSUPPORTED,
            body=ref("NotificationRecipientWrite"),
        ),
    }
    ops |= number_paths()
    ops |= revocation_paths()
    return ops
