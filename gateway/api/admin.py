"""The admin JSON face over every operation of the carrier's API, and callback numbers.

Field names and status codes are the carrier's; bodies are JSON instead of XML. An endpoint
created without an ID gets the one the report pipeline derives from its AEUI, and a
location created without an ID gets the one derived from its canonical address.

An endpoint's AEUI, caller name and callback number follow the rules a device's report
does (``gateway.dlr.identity``), and so does its number's ownership: an admin's endpoint
holds its number as a device does, and is refused (409 ``number-owned``) a number another
device owns, until the number is released or shared (``/v1/numbers/{telephoneNumber}``).
Every change is recorded in the history: a device's under its AEUI, a location's under
``location_key``, a number's under ``number_key``, a recipient's under ``RECIPIENTS_KEY``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.admin_models import (
    CallbackNumber,
    CallbackNumberWrite,
    EndpointWrite,
    LocationHistory,
    LocationWrite,
    NotificationRecipientWrite,
    NumberHistory,
    NumberHolder,
    TokenRevocation,
    as_record,
)
from gateway.api.answers import model_response
from gateway.api.auth import require_admin
from gateway.api.context import Services, services
from gateway.api.devices import number_owned
from gateway.api.history import history_page
from gateway.api.problems import Problem
from gateway.api.routing import resource
from gateway.api.schemas import (
    ID_PATTERN,
    LOCATION_ID_PATTERN,
    read_json,
    record_to_json,
    require_object,
)
from gateway.bandwidth.errors import UpstreamNotFound, UpstreamPending
from gateway.bandwidth.models import Endpoint, Location, NotificationRecipient
from gateway.dlr.callers import normalize_number
from gateway.dlr.errors import FieldError
from gateway.dlr.identity import aeui_problem
from gateway.dlr.ids import endpoint_id_for, location_id_for
from gateway.dlr.pipeline import Binding, address_from_json, in_address
from gateway.jsondump import JSONResponse
from gateway.store.base import (
    RECIPIENTS_KEY,
    HistoryKind,
    NumberOwned,
    NumberState,
    location_key,
    number_key,
)

_RESERVED_ENDPOINT_IDS = {"locations", "notificationrecipients"}


def _admin(request: Request) -> Services:
    found = services(request)
    request.state.principal = require_admin(request, found.admin_keys, found.device_tokens)
    return found


def _who(request: Request) -> str:
    """The admin credential that acted, for the device's history (never the key itself)."""
    return str(request.state.principal.subject)


def _path_id(request: Request, name: str, *, location: bool = False) -> str:
    value = str(request.path_params[name])
    pattern = LOCATION_ID_PATTERN if location else ID_PATTERN
    if not pattern.fullmatch(value) or value.lower() in _RESERVED_ENDPOINT_IDS:
        kind = "location" if location else "endpoint"
        raise Problem(404, f"There is no {kind} with that ID.")
    return value


def _same_id(body_id: str | None, path_id: str, field: str) -> None:
    if body_id is not None and body_id != path_id:
        raise Problem(
            422,
            "The body's ID differs from the one in the path.",
            errors=[FieldError(field, f"must be {path_id!r} or left out")],
        )


def _created(body: dict[str, Any], location: str) -> Response:
    return JSONResponse(body, status_code=201, headers={"Location": location})


# -- endpoints ---------------------------------------------------------------


async def list_endpoints(request: Request) -> Response:
    found = await _admin(request).upstream.list_endpoints()
    return JSONResponse(record_to_json(found))


async def _endpoint_body(request: Request, s: Services) -> Endpoint:
    """The endpoint, its device fields held to a report's rules (a clear 422, never
    altered: an AEUI with a space is refused, not stripped at the carrier)."""
    body = require_object(await read_json(request, s.settings.max_body_bytes))
    return as_record(Endpoint, EndpointWrite.read(body))


async def _check_number(request: Request, s: Services, endpoint: Endpoint) -> None:
    """409 before the carrier is written: another device owns the endpoint's number."""
    assert endpoint.alternate_end_user_id is not None and endpoint.telephone_number is not None
    try:
        await s.pipeline.check_number(endpoint.alternate_end_user_id, endpoint.telephone_number)
    except NumberOwned as exc:
        raise number_owned(exc, request.state.principal) from None


async def _edited(
    request: Request, s: Services, endpoint: Endpoint, before: Binding | None
) -> None:
    """The carrier took an admin's endpoint: the device's binding and history follow
    (``before``: the device's row read before the carrier was written)."""
    try:
        await s.pipeline.admin_edited(endpoint, credential=_who(request), before=before)
    except NumberOwned as exc:
        raise number_owned(exc, request.state.principal) from None


async def create_endpoint(request: Request) -> Response:
    s = _admin(request)
    endpoint = await _endpoint_body(request, s)
    if endpoint.endpoint_id is None:
        assert endpoint.alternate_end_user_id is not None
        endpoint = dataclasses.replace(
            endpoint, endpoint_id=endpoint_id_for(endpoint.alternate_end_user_id)
        )
    elif endpoint.endpoint_id.lower() in _RESERVED_ENDPOINT_IDS:
        raise Problem(
            422,
            "That endpoint ID is reserved.",
            errors=[
                FieldError("endpointId", "must not be 'locations' or 'notificationRecipients'")
            ],
        )
    await _check_number(request, s, endpoint)
    before = await s.pipeline.before_edit(endpoint.alternate_end_user_id or "")
    created = await s.upstream.create_endpoint(endpoint)
    await _edited(request, s, created, before)
    return _created(record_to_json(created), f"/v1/endpoints/{created.endpoint_id}")


async def get_endpoint(request: Request) -> Response:
    s = _admin(request)
    found = await s.upstream.get_endpoint(_path_id(request, "endpoint_id"))
    return JSONResponse(record_to_json(found))


async def update_endpoint(request: Request) -> Response:
    s = _admin(request)
    endpoint_id = _path_id(request, "endpoint_id")
    endpoint = await _endpoint_body(request, s)
    _same_id(endpoint.endpoint_id, endpoint_id, "endpointId")
    endpoint = dataclasses.replace(endpoint, endpoint_id=endpoint_id)
    await _check_number(request, s, endpoint)
    s.pipeline.forget_endpoint(endpoint_id)
    before = await s.pipeline.before_edit(endpoint.alternate_end_user_id or "")
    # Another replica may have changed it since this one last did: the carrier says.
    s.upstream.expect(endpoint_id, None)
    updated = await s.upstream.update_endpoint(endpoint_id, endpoint)
    # The reconciler must keep what an admin wrote, not undo it.
    await _edited(request, s, updated, before)
    return JSONResponse(record_to_json(updated))


async def delete_endpoint(request: Request) -> Response:
    s = _admin(request)
    endpoint_id = _path_id(request, "endpoint_id")
    s.pipeline.forget_endpoint(endpoint_id)
    try:
        # Which device it was, so that its desired binding goes too (and is not repaired).
        held = await s.upstream.get_endpoint(endpoint_id)
    except UpstreamNotFound:
        held = None
    devices = [held] if held is not None and held.alternate_end_user_id else []
    if not devices:
        # Gone already (an earlier delete whose answer was lost to a timeout or a restart),
        # or the carrier does not say whose it is (v2 keeps no AEUI): the devices the
        # gateway binds to it go all the same, or reconciliation would create it again
        # and the call-time query keep answering them.
        devices = [b.endpoint() for b in await s.pipeline.bound_to(endpoint_id)]
    # Each device's row before the carrier's endpoint goes: a write that raced the deletion
    # shows as a row changed since (``admin_deleted``).
    befores = [await s.pipeline.before_edit(d.alternate_end_user_id or "") for d in devices]
    pending: UpstreamPending | None = None
    try:
        await s.upstream.delete_endpoint(endpoint_id)
    except UpstreamNotFound:
        if held is not None or not devices:
            raise
    except UpstreamPending as exc:
        # Taken, its order still open (v2): the devices go now all the same, or
        # reconciliation would add the endpoint again once the carrier has deleted it.
        pending = exc
    for device, before in zip(devices, befores, strict=True):
        assert device.alternate_end_user_id is not None
        aeui = device.alternate_end_user_id
        await s.pipeline.admin_deleted(aeui, device, credential=_who(request), before=before)
    if pending is not None:
        raise pending
    return JSONResponse({"endpointId": endpoint_id, "deleted": True})


# -- locations ---------------------------------------------------------------


async def _location_body(request: Request, s: Services) -> Location:
    body = require_object(await read_json(request, s.settings.max_body_bytes))
    wanted, address = LocationWrite.read(body)
    normalized = s.normalize(address)
    if not normalized.valid or normalized.address is None:
        raise Problem(
            422,
            "The address cannot be routed.",
            "unroutable-address",
            errors=list(map(in_address, normalized.errors)),
            extra={"suggestions": [record_to_json(a) for a in normalized.suggestions]},
        )
    return as_record(Location, wanted, address=normalized.address)


async def list_locations(request: Request) -> Response:
    found = await _admin(request).upstream.list_locations()
    return JSONResponse(record_to_json(found))


async def create_location(request: Request) -> Response:
    s = _admin(request)
    location = await _location_body(request, s)
    if location.location_id is None:
        assert location.address is not None
        location = dataclasses.replace(location, location_id=location_id_for(location.address))
    created = await s.upstream.create_location(location)
    assert created.location_id is not None
    await s.pipeline.admin_record(
        location_key(created.location_id),
        HistoryKind.LOCATION_CREATED,
        None,
        record_to_json(created),
        _who(request),
    )
    return _created(record_to_json(created), f"/v1/locations/{created.location_id}")


async def get_location(request: Request) -> Response:
    s = _admin(request)
    found = await s.upstream.get_location(_path_id(request, "location_id", location=True))
    return JSONResponse(record_to_json(found))


async def update_location(request: Request) -> Response:
    s = _admin(request)
    location_id = _path_id(request, "location_id", location=True)
    location = await _location_body(request, s)
    _same_id(location.location_id, location_id, "locationId")
    location = dataclasses.replace(location, location_id=location_id)
    before = await _held_location(s, location_id)
    await _keeps_derived_address(s, location_id, location, before)
    s.pipeline.forget_location(location_id)
    updated = await s.upstream.update_location(location_id, location)
    await s.pipeline.admin_record(
        location_key(location_id),
        HistoryKind.LOCATION_UPDATED,
        before,
        record_to_json(updated),
        _who(request),
    )
    return JSONResponse(record_to_json(updated))


async def _keeps_derived_address(
    s: Services, location_id: str, location: Location, held: dict[str, Any] | None
) -> None:
    """409 for another address under an ID derived from the held one: every report of that
    address is bound to the ID, and would route to wherever the carrier then held it."""
    assert location.address is not None
    if location_id_for(location.address) == location_id:
        return
    held_address = address_from_json((held or {}).get("address"))
    derived = held_address is not None and location_id_for(held_address) == location_id
    if derived or await s.pipeline.knows_location(location_id):
        raise Problem(
            409,
            "This location's ID is derived from its address, and reports of that address "
            "are bound to it: create a new location at the other address (POST "
            "/v1/locations) and move the endpoints to it.",
            "conflict",
        )


async def delete_location(request: Request) -> Response:
    s = _admin(request)
    location_id = _path_id(request, "location_id", location=True)
    before = await _held_location(s, location_id)
    await s.upstream.delete_location(location_id)
    # Gone from every replica's trust, so the next report at its address creates it again.
    await s.pipeline.location_deleted(location_id, before, credential=_who(request))
    return JSONResponse({"locationId": location_id, "deleted": True})


async def _held_location(s: Services, location_id: str) -> dict[str, Any] | None:
    """What the carrier holds, for the history's ``before`` (``None``: nothing)."""
    try:
        return record_to_json(await s.upstream.get_location(location_id))
    except UpstreamNotFound:
        return None


async def location_history(request: Request) -> Response:
    s = _admin(request)
    location_id = _path_id(request, "location_id", location=True)
    page = functools.partial(LocationHistory, locationId=location_id)
    return await history_page(request, s, location_key(location_id), page)


# -- notification recipients -------------------------------------------------


async def list_recipients(request: Request) -> Response:
    found = await _admin(request).upstream.list_notification_recipients()
    return JSONResponse(record_to_json(found))


async def create_recipient(request: Request) -> Response:
    s = _admin(request)
    body = require_object(await read_json(request, s.settings.max_body_bytes))
    wanted = NotificationRecipientWrite.read(body)
    recipient = as_record(NotificationRecipient, wanted)
    created = await s.upstream.create_notification_recipient(recipient)
    await s.pipeline.admin_record(
        RECIPIENTS_KEY, HistoryKind.RECIPIENT_CREATED, None, record_to_json(created), _who(request)
    )
    return JSONResponse(record_to_json(created), status_code=201)


# -- callback numbers ----------------------------------------------------------


def _number(request: Request) -> str:
    """The path's number, read as the call-time query reads one (``+1…``, 10 digits, …)."""
    found = normalize_number(str(request.path_params["telephone_number"]))
    if found is None:
        raise Problem(404, "There is no such number (expected a US or Canadian number).")
    return found


async def _number_answer(s: Services, number: str, state: NumberState | None) -> Response:
    holders = await s.pipeline.holders(number, limit=100)
    devices = [
        NumberHolder(
            alternateEndUserId=b.aeui,
            mayUse=b.attested or state is None or not state.refuses(b.aeui),
            attested=b.attested,
        )
        for b in holders
    ]
    return model_response(CallbackNumber.of(number, state, devices))


async def get_number(request: Request) -> Response:
    s = _admin(request)
    number = _number(request)
    return await _number_answer(s, number, await s.pipeline.number(number))


async def put_number(request: Request) -> Response:
    """Assign the number to a device, or mark it shared (any device may use it)."""
    s = _admin(request)
    number = _number(request)
    body = require_object(await read_json(request, s.settings.max_body_bytes))
    wanted = CallbackNumberWrite.read(body)
    _, after = await s.pipeline.set_number(
        number, owner=wanted.owner, shared=wanted.shared, credential=_who(request)
    )
    return await _number_answer(s, number, after)


async def delete_number(request: Request) -> Response:
    """Release the number: the next device to report it owns it."""
    s = _admin(request)
    number = _number(request)
    await s.pipeline.set_number(number, owner=None, shared=False, credential=_who(request))
    return await _number_answer(s, number, None)


async def number_history(request: Request) -> Response:
    s = _admin(request)
    number = _number(request)
    page = functools.partial(NumberHistory, telephoneNumber=number)
    return await history_page(request, s, number_key(number), page)


# -- device tokens -------------------------------------------------------------


def _revoked_device(request: Request) -> tuple[Services, str]:
    """An admin key (a device token: 403), and the path's AEUI (404 when it cannot be one).
    A device the gateway has never heard of may be named: its tokens may be revoked before
    its first report."""
    found = services(request)
    request.state.principal = require_admin(request, found.admin_keys, found.device_tokens)
    aeui = str(request.path_params["alternate_end_user_id"])
    if aeui_problem(aeui) is not None:
        raise Problem(404, "There is no device with that ID.")
    return found, aeui


async def revoke_tokens(request: Request) -> Response:
    """Refuse the device's tokens issued before now; a body, if any, is not read."""
    s, aeui = _revoked_device(request)
    before = await s.device_tokens.revocations.revoke(aeui)
    answer = TokenRevocation.of(aeui, before)
    after = {"revokedBefore": answer.revokedBefore}
    await s.pipeline.admin_record(aeui, HistoryKind.TOKENS_REVOKED, None, after, _who(request))
    return model_response(answer)


async def token_revocation(request: Request) -> Response:
    s, aeui = _revoked_device(request)
    before = await s.device_tokens.revocations.get(aeui)
    if before is None:
        raise Problem(404, "This device's tokens have not been revoked.")
    return model_response(TokenRevocation.of(aeui, before))


def _crud(path: str, key: str, *handlers: Callable[[Request], Awaitable[Response]]) -> list[Route]:
    """A collection (list, create) and its items (get, replace, delete)."""
    list_, create, get, replace, delete = handlers
    return [
        resource(path, get=list_, post=create),
        resource(f"{path}/{{{key}}}", get=get, put=replace, delete=delete),
    ]


routes = [
    *_crud(
        "/v1/endpoints",
        "endpoint_id",
        list_endpoints,
        create_endpoint,
        get_endpoint,
        update_endpoint,
        delete_endpoint,
    ),
    *_crud(
        "/v1/locations",
        "location_id",
        list_locations,
        create_location,
        get_location,
        update_location,
        delete_location,
    ),
    resource("/v1/locations/{location_id}/history", get=location_history),
    resource("/v1/notification-recipients", get=list_recipients, post=create_recipient),
    resource(
        "/v1/numbers/{telephone_number}", get=get_number, put=put_number, delete=delete_number
    ),
    resource("/v1/numbers/{telephone_number}/history", get=number_history),
    # ``:path``: an AEUI may hold a ``/``, sent as ``%2F`` (as on the device routes).
    resource(
        "/v1/devices/{alternate_end_user_id:path}/token-revocation",
        get=token_revocation,
        post=revoke_tokens,
    ),
]
