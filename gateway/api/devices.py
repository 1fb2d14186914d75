"""Device-facing routes: location reports, a device's current location, address validation."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.admin_models import DeviceHistory
from gateway.api.answers import (
    AddressValidation,
    Changes,
    DeviceLocation,
    PendingReport,
    ReportResult,
    json_response,
    model_json,
    model_response,
)
from gateway.api.auth import Principal, authenticate
from gateway.api.context import Services, services
from gateway.api.history import history_page
from gateway.api.memo import cut
from gateway.api.models import (
    CHECK_CLOCK,
    MAX_CLOCK_SKEW,
    REPORT_FIELDS,
    LocationReport,
    address_object,
    in_order,
    observed_at,
    unreadable_keys,
    validated,
)
from gateway.api.network_models import heard_from, read_observations
from gateway.api.pidf import (
    body_format,
    keeps_current,
    location_response,
    only_left_out,
    prefers_pidf,
    read_pidf_report,
    with_caller,
)
from gateway.api.problems import Problem
from gateway.api.schemas import (
    ReportSource,
    check_string,
    decode_json,
    read_body,
    read_json,
    record_to_json,
    require_object,
)
from gateway.bandwidth.errors import UpstreamError, UpstreamPending
from gateway.bandwidth.models import Address, Endpoint
from gateway.bandwidth.upstreams import answer_by
from gateway.dlr.binding import known_iso
from gateway.dlr.coordinates import radius_meters
from gateway.dlr.errors import FieldError
from gateway.dlr.identity import aeui_problem
from gateway.dlr.pipeline import (
    Binding,
    GeoFix,
    Normalizer,
    Outcome,
    Progress,
    Report,
    Superseded,
    Unroutable,
    in_address,
)
from gateway.geocoding.results import GeocodingUnavailable
from gateway.store.base import NumberOwned


def _is_ahead(error: FieldError) -> bool:
    return error.field == "observedAt" and error.message.endswith(CHECK_CLOCK)


_DETAILS = {
    "validation": "The report is not valid.",
    "unroutable-address": "The address cannot be routed.",
    "clock-skew": "The report comes from a clock ahead of the gateway's.",
}


def _problems(errors: Sequence[FieldError], address: Sequence[FieldError] = ()) -> Problem:
    """One answer naming every problem; its type says what to fix first: what the request
    says (``validation``), then where (``unroutable-address``), then the device's clock."""
    if not all(map(_is_ahead, errors)):
        kind = "validation"
    elif address:
        kind = "unroutable-address"
    else:
        kind = "clock-skew"
    return Problem(422, _DETAILS[kind], kind, errors=[*errors, *address])


def _aeui(value: Any) -> str | None:
    return value if aeui_problem(value) is None else None


def _address_input(value: Any, errors: list[FieldError]) -> Any:
    """A free-form line as it is, or the address object read strictly (the API's ``Address``:
    unknown fields, wrong types and over-long strings are refused, named ``address.<field>``)."""
    if isinstance(value, str):
        text, reason = check_string(value, "address", 500)
        if reason:
            errors.append(FieldError("address", reason))
        return text
    if isinstance(value, dict):
        return address_object(value, errors)
    errors.append(FieldError("address", "expected an address object or one free-form string"))
    return None


def _given(body: Mapping[str, Any], key: str) -> bool:
    return body.get(key) is not None


def parse_report(data: Any, *, max_future: timedelta = MAX_CLOCK_SKEW) -> Report:
    """A report from a decoded body (``LocationReport``), or a 422 naming every field that
    is wrong. ``null`` counts as missing; ``observedAt`` may be at most ``max_future`` ahead
    of the gateway's clock."""
    readable, errors = unreadable_keys(require_object(data))
    body = {k: v for k, v in readable.items() if v is not None or k not in REPORT_FIELDS}
    model = validated(LocationReport, body, errors, context={"max_future": max_future})
    address = _address_input(body["address"], errors) if "address" in body else None
    network = read_observations(body["network"], errors) if "network" in body else None
    if not body.keys() & {"address", "geo", "network"}:
        message = "send an address, a geo fix, network observations, or several"
        errors.append(FieldError("address", message))
    if errors or model is None:
        raise _problems(in_order(errors, REPORT_FIELDS) or [FieldError("body", "cannot be read")])
    geo = model.geo
    return Report(
        alternate_end_user_id=model.alternate_end_user_id,
        caller_name=model.caller_name,
        telephone_number=model.telephone_number,
        observed_at=model.observed_at,
        address=address,
        geo=GeoFix(geo.latitude, geo.longitude, geo.accuracy_meters) if geo else None,
        network=network,
    )


def _coordinate(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@functools.lru_cache(maxsize=16_384)
def _cached_address_json(address: Address) -> dict[str, Any]:
    return record_to_json(address)


def _address_json(address: Address) -> dict[str, Any]:
    """``record_to_json(address)``, memoized per (frozen, hashable) address; a fresh copy
    each time, so that a caller may change its answer."""
    return dict(_cached_address_json(address))


def coordinates_json(
    latitude: float | None, longitude: float | None, precision: str | None, accuracy: float | None
) -> dict[str, Any]:
    """``latitude``, ``longitude``, their ``precision`` and the ``radiusMeters`` that covers
    them (``gateway.dlr.coordinates``): coordinates of no known precision are not given."""
    latitude, longitude = _coordinate(latitude), _coordinate(longitude)
    if precision is None or latitude is None or longitude is None:
        latitude = longitude = precision = None
    return {
        "latitude": latitude,
        "longitude": longitude,
        "precision": precision,
        "radiusMeters": radius_meters(precision, accuracy),
    }


def _binding_fields(binding: Binding) -> dict[str, Any]:
    return {
        "alternateEndUserId": binding.aeui,
        "endpointId": binding.endpoint_id,
        "locationId": binding.location_id,
        "status": binding.status,
        "address": _address_json(binding.address) if binding.address is not None else None,
        **coordinates_json(
            binding.latitude,
            binding.longitude,
            binding.coordinates_source,
            binding.accuracy_meters,
        ),
        "callerName": binding.caller_name,
        "telephoneNumber": binding.telephone_number,
        "observedAt": known_iso(binding.observed_at),
    }


def report_result(outcome: Outcome, source: ReportSource | None = None) -> ReportResult:
    warnings: list[FieldError] = list(outcome.warnings)
    if source is not None:
        warnings = [*source.warnings, *source.renamed(warnings)]
    return ReportResult(
        **_binding_fields(outcome.binding),
        changes=Changes(location=outcome.location, endpoint=outcome.endpoint),
        locationSource=outcome.source,
        warnings=warnings,
    )


#: Seconds before a report's deadline at which carrier calls end (at most a quarter of it).
_PENDING_MARGIN = 0.5


def _pending(report: Report, exc: UpstreamPending) -> PendingReport:
    """The 202 answer: the carrier accepted the write, its order is still open."""
    sent = exc.endpoint if isinstance(exc.endpoint, Endpoint) else Endpoint()
    return PendingReport(
        alternateEndUserId=report.alternate_end_user_id,
        endpointId=sent.endpoint_id or "",
        locationId=sent.location_id or "",
        callerName=report.caller_name,
        telephoneNumber=report.telephone_number,
        observedAt=report.observed_at.isoformat(),
        pending=True,
        orderId=exc.order_id,
        detail=(
            "The carrier accepted the change but has not carried it out yet; the gateway "
            "follows it and records the outcome in the device's history. Until then a 911 "
            "call may be routed to the device's previous location."
        ),
    )


def _unroutable(exc: Unroutable, source: ReportSource | None = None) -> Problem:
    suggestions = [record_to_json(s) for s in exc.suggestions]
    errors = list(exc.errors)
    return Problem(
        422,
        f"The address cannot be routed: {exc.message}",
        "unroutable-address",
        errors=source.renamed(errors) if source is not None else errors,
        extra={"suggestions": suggestions},
    )


def _authorized(request: Request, s: Services) -> Principal:
    return authenticate(request, s.admin_keys, s.device_tokens)


def _credential(principal: Principal) -> str:
    """Which credential acted, for the history: never the secret itself."""
    return principal.subject if principal.is_admin else "device-token"


def _may_act(principal: Principal, aeui: str) -> None:
    if not principal.may_act_for(aeui):
        raise Problem(403, "A device token may report and read only its own location.")


def _with_number(principal: Principal, report: Report) -> Report:
    """The report as its token allows it: a token with a ``phone_number`` claim reports that
    number only (403 otherwise), and vouches for it (``Report.number_attested``)."""
    if principal.phone_number is None:
        return report
    if report.telephone_number != principal.phone_number:
        raise Problem(
            403,
            "This device token is issued for another callback number.",
            errors=[FieldError("telephoneNumber", "must be the token's phone_number")],
        )
    if not principal.attested:
        return report
    return dataclasses.replace(report, number_attested=True)


def number_owned(exc: NumberOwned, principal: Principal) -> Problem:
    """409: another device owns the number (named to admins only: a device learns no AEUI)."""
    extra: dict[str, Any] = {"telephoneNumber": exc.telephone_number}
    if principal.is_admin:
        extra["owner"] = exc.owner
    return Problem(
        409,
        "Another device holds this callback number. An admin can release it or mark it "
        "shared (PUT or DELETE /v1/numbers/{telephoneNumber}).",
        "number-owned",
        extra=extra,
    )


def _refused(
    exc: TimeoutError | Unroutable | Superseded | NumberOwned,
    source: ReportSource,
    principal: Principal,
    progress: Progress,
) -> tuple[str, Problem]:
    """A report the pipeline did not apply: its result (``dlr_reports_total``) and answer."""
    carrier = isinstance(exc, UpstreamError) and (not exc.ambiguous or not progress.claimed)
    if carrier or progress.at_carrier:
        # A carrier call timed out. Its change never reached the carrier (nothing sent, or
        # refused): the report is undone; or it was the location's create, before the claim:
        # the device's binding was never touched.
        detail = "The carrier did not answer in time; the report was not applied. Send it again."
        return "upstream_unavailable", Problem(504, detail, "upstream-timeout", retry_after=5)
    if isinstance(exc, TimeoutError) and not progress.claimed:
        # The deadline was spent before the report claimed the device: nothing was written.
        return "deadline", Problem(
            503,
            "The report was not applied within its deadline: the gateway's own work (the "
            "geocoder, the state store, or this device's previous report) took it all, and "
            "nothing was written. Send it again.",
            "report-deadline",
            retry_after=5,
        )
    if isinstance(exc, TimeoutError):  # the report's deadline, or a write that may have landed
        return "upstream_unavailable", Problem(
            503,
            "The carrier did not confirm the change within the report's deadline. "
            "The gateway keeps watching the write and repairs the record if needed; "
            "send the report again.",
            "upstream-unavailable",
            retry_after=5,
        )
    if isinstance(exc, Unroutable):
        return "unroutable", _unroutable(exc, source)
    if isinstance(exc, Superseded):
        return "superseded", Problem(
            409,
            "An admin deleted this device after this report was observed."
            if exc.deleted
            else "A newer report for this device has already been applied.",
            "superseded",
            extra={"newestObservedAt": exc.newest.isoformat()},
        )
    return "number_owned", number_owned(exc, principal)


_NO_SOURCE = ReportSource(None)


async def _read_report(
    request: Request, s: Services, principal: Principal
) -> tuple[Report, ReportSource]:
    """The report, and the body it was read from in the JSON API's shape (JSON as it is, a
    PIDF-LO read into it). A JSON body the memo knows but for its ``observedAt`` is not
    decoded again: only the new time is read and checked (``gateway.api.memo``)."""
    kind = body_format(request.headers.get("content-type", ""))
    if kind == "pidf":
        return await _read_pidf(request, s, principal)
    if kind != "json":
        raise Problem(415, "Send the report as application/json or application/pidf+xml.")
    body = await read_body(request, s.settings.max_body_bytes)
    memo = cut(body)
    if memo is not None:
        known = s.report_memo.get(memo.template)
        if known is not None:
            try:
                when = observed_at(memo.observed_at, _max_future(s))
            except PydanticCustomError as exc:
                raise _problems([FieldError("observedAt", str(exc))]) from None
            return known.seen_at(when), _NO_SOURCE
    source = ReportSource(decode_json(body))
    report = _parse_source(source, s.normalize, _max_future(s))
    if memo is not None:
        s.report_memo.put(memo.template, report)
    return report, source


async def _read_pidf(
    request: Request, s: Services, principal: Principal
) -> tuple[Report, ReportSource]:
    """A PIDF-LO report. A name or number it leaves out is the device's current one: from
    what the gateway holds, and from the carrier only once the rest of the report is valid."""
    max_bytes = s.settings.max_body_bytes
    source = read_pidf_report(await read_body(request, max_bytes), max_bytes, principal)
    aeui = keeps_current(source, principal)
    if aeui is not None:
        held = await s.pipeline.current_caller(aeui, read_carrier=False)
        source = with_caller(source, *held)
    try:
        return _parse_source(source, s.normalize, _max_future(s)), source
    except Problem as exc:
        if aeui is None or not only_left_out(exc, source):
            raise
    source = with_caller(source, *await s.pipeline.current_caller(aeui))
    return _parse_source(source, s.normalize, _max_future(s)), source


def _max_future(s: Services) -> timedelta:
    return _seconds(s.settings.observed_at_max_future)


@functools.lru_cache(maxsize=8)
def _seconds(seconds: float) -> timedelta:
    """``timedelta(seconds=seconds)``, built once per setting's value (per report otherwise)."""
    return timedelta(seconds=seconds)


def _parse_source(source: ReportSource, normalize: Normalizer, max_future: timedelta) -> Report:
    """``parse_report`` for a body of any format, errors named as the sender named the fields;
    a report refused for its fields is checked for its address too (one answer, every problem)."""
    try:
        report = parse_report(source.body, max_future=max_future)
    except Problem as exc:
        found = list(exc.errors)
    else:
        if not source.errors:
            return report
        found = []
    address = _address_errors(source.body, found, normalize)
    refused = _problems([*source.errors, *found], address)
    if not source.names and not source.errors:
        raise refused from None
    taken = {e.field for e in source.errors}
    renamed = [e for e in source.renamed([*found, *address]) if e.field not in taken]
    raise Problem(422, refused.detail, refused.kind, errors=[*source.errors, *renamed]) from None


def _address_errors(body: Any, found: list[FieldError], normalize: Normalizer) -> list[FieldError]:
    """What the normalizer finds wrong with a report's address, when the address itself
    could be read (its own type and size errors are already in ``found``)."""
    if not isinstance(body, dict) or not _given(body, "address"):
        return []
    if any(e.field == "address" or e.field.startswith("address.") for e in found):
        return []
    scratch: list[FieldError] = []
    raw = _address_input(body["address"], scratch)
    if scratch or raw is None:
        return []
    return list(map(in_address, normalize(raw).errors))


async def location_report(request: Request) -> Response:
    """A device's report, as JSON or as a PIDF-LO: one code path for both."""
    s = services(request)
    principal = _authorized(request, s)
    started = time.perf_counter()
    result = "error"
    try:
        report, source = await _read_report(request, s, principal)
        # Named in the request's log line: ``request.state.aeui``, without building the
        # ``State`` around the scope's dict.
        request.scope.setdefault("state", {})["aeui"] = report.alternate_end_user_id
        _may_act(principal, report.alternate_end_user_id)
        report = _with_number(principal, report)
        if report.network is not None:  # after the memo: the same body comes from anywhere
            report = dataclasses.replace(report, network=heard_from(request, report.network))
        wait = s.report_limiter.acquire(report.alternate_end_user_id)
        if wait is not None:
            result = "rate_limited"
            s.metrics.report_rate_limited.inc()
            raise Problem(
                429,
                "This device is sending reports faster than the gateway accepts them.",
                "rate-limited",
                retry_after=s.report_limiter.retry_after(wait),
            )
        progress = Progress()
        try:
            # The carrier client ends its calls just before the deadline (``time_left``): a
            # write still waiting for a connection then fails unsent (the report undone, not
            # cut off unawares), and a v2 order's follow ends with a 202 (pending), not a 503.
            deadline = s.settings.report_deadline
            answer_by(deadline - min(_PENDING_MARGIN, deadline / 4))
            async with asyncio.timeout(deadline):
                outcome = await s.pipeline.report(
                    report, credential=_credential(principal), progress=progress
                )
        except (TimeoutError, Unroutable, Superseded, NumberOwned) as exc:
            result, problem = _refused(exc, source, principal, progress)
            raise problem from None
        except UpstreamPending as exc:
            result = "pending"
            return model_response(_pending(report, exc), status_code=202)
        except UpstreamError:
            result = "upstream_unavailable"
            raise
        result = "applied" if outcome.changed else "unchanged"
        if outcome.changed or source.names or source.warnings:
            return model_response(report_result(outcome, source))
        return json_response(_unchanged_answer(s, outcome, source))
    except Problem as exc:
        if result == "error":
            unroutable = exc.kind == "unroutable-address"
            result = {401: "unauthorized", 403: "forbidden"}.get(
                exc.status, "unroutable" if unroutable else "invalid"
            )
        raise
    finally:
        s.metrics.report_done(result, time.perf_counter() - started)


def _unchanged_answer(s: Services, outcome: Outcome, source: ReportSource) -> bytes:
    """The JSON answer to an unchanged report read as sent (no renamed fields, no warnings
    of its own format): as ``report_result`` writes it, remembered per device and binding
    (``gateway.api.unchanged``)."""
    answer = s.unchanged_answers.get(outcome)
    if answer is None:
        answer = model_json(report_result(outcome, source))
        s.unchanged_answers.put(outcome, answer)
    return answer


def limit_reads(s: Services, aeui: str) -> None:
    """The per-device rate limit, for reads of a device's location (buckets of their own,
    at the reports' rate): 429 past it. What a read costs the carrier is bounded apart
    (``gateway.dlr.reads``); this keeps one device from monopolizing even the cheap ones."""
    wait = s.read_limiter.acquire(aeui)
    if wait is not None:
        raise Problem(
            429,
            "This device's location is being read faster than the gateway answers.",
            "rate-limited",
            retry_after=s.read_limiter.retry_after(wait),
        )


def _device(request: Request) -> tuple[Services, str]:
    """The services and the path's device, which the credential may act for."""
    s = services(request)
    principal = _authorized(request, s)
    aeui = _aeui(request.path_params["alternate_end_user_id"])
    if aeui is None:
        raise Problem(404, "There is no device with that ID.")
    _may_act(principal, aeui)
    return s, aeui


async def device_location(request: Request) -> Response:
    s, aeui = _device(request)
    limit_reads(s, aeui)
    binding = await s.pipeline.current(aeui)
    if binding is None:
        raise Problem(404, "No location is registered for this device.")
    if prefers_pidf(request.headers.get("accept", "")):
        return location_response(request, binding)
    return model_response(DeviceLocation(**_binding_fields(binding)))


async def validate_address(request: Request) -> Response:
    s = services(request)
    _authorized(request, s)
    body = require_object(await read_json(request, s.settings.max_body_bytes))
    errors = [FieldError(k, "unknown field") for k in sorted(body.keys() - {"address"})]
    if not _given(dict(body), "address"):
        errors.append(FieldError("address", "required"))
    raw = _address_input(body["address"], errors) if _given(dict(body), "address") else None
    if errors or raw is None:
        raise Problem(422, "The request is not valid.", errors=errors)
    normalized = s.normalize(raw)
    coordinates: dict[str, Any] = coordinates_json(None, None, None, None)
    warnings = list(normalized.warnings)
    if normalized.valid and normalized.address is not None:
        try:
            found = await s.geocoding.geocode(normalized.address)
        except GeocodingUnavailable:
            warnings.append(FieldError("address", "the geocoder is unavailable: no coordinates"))
        else:
            if found is None:
                warnings.append(FieldError("address", "the geocoder does not know this address"))
            else:
                # Shown with their precision; the pipeline sends only street-level ones upstream.
                precision = found.precision.value
                coordinates = coordinates_json(found.latitude, found.longitude, precision, None)
    answer = AddressValidation(
        valid=normalized.valid,
        address=record_to_json(normalized.address) if normalized.address else None,
        **coordinates,
        errors=list(normalized.errors),
        warnings=warnings,
        suggestions=[record_to_json(a) for a in normalized.suggestions],
    )
    return model_response(answer)


async def device_history(request: Request) -> Response:
    """Every change applied to a device's binding, newest first, a page at a time."""
    s, aeui = _device(request)
    page = functools.partial(DeviceHistory, alternateEndUserId=aeui)
    return await history_page(request, s, aeui, page)


routes = [
    Route("/v1/location-reports", location_report, methods=["POST"]),
    # ``:path``: an AEUI may hold a ``/``, sent as ``%2F`` (which the server decodes).
    Route("/v1/devices/{alternate_end_user_id:path}/location", device_location, methods=["GET"]),
    Route("/v1/devices/{alternate_end_user_id:path}/history", device_history, methods=["GET"]),
    Route("/v1/addresses/validate", validate_address, methods=["POST"]),
]
