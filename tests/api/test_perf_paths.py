"""The hot path's shortcuts answer exactly what the slow ways did."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from gateway.api.devices import _address_json
from gateway.api.models import telephone_problem
from gateway.api.problems import Problem
from gateway.api.schemas import read_body, record_to_json
from gateway.bandwidth.models import Address
from gateway.dlr.ids import location_id_for
from gateway.dlr.numbers import callback_number
from gateway.dlr.pipeline import Binding, Report
from gateway.jsondump import JSONResponse, dumps, dumps_line
from gateway.observability import JsonFormatter, _json_sink, _write_line


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+14155552671", "+14155552671"),
        ("+1 (202) 456-1111", "+12024561111"),
        ("+16132364111", "+16132364111"),  # Ottawa: Canadian
        ("+442071838750", None),  # valid, but not US or Canada
        ("2024561111", None),  # not E.164
        ("+1202", None),
        ("not a number", None),
    ],
)
def test_telephone_errors_stay_per_call(raw: str, expected: str | None) -> None:
    for _ in range(2):
        assert (telephone_problem(raw) is None) == (expected is not None)
        assert callback_number(raw) == expected


def test_address_json_is_record_to_json_and_a_fresh_copy() -> None:
    address = Address(house_number="1600", street_name="PENNSYLVANIA", city="WASHINGTON")
    first = _address_json(address)
    assert first == record_to_json(address)
    first["city"] = "changed by a caller"
    assert _address_json(address) == record_to_json(address)


def _logger(stream: io.StringIO) -> logging.Logger:
    logger = logging.getLogger("gateway.test_perf_paths")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    return logger


def test_the_direct_request_line_is_the_formatters_line() -> None:
    fields: dict[str, Any] = {
        "request_id": "r-1",
        "method": "POST",
        "route": "/v1/location-reports",
        "status": 200,
        "duration_ms": 1.25,
        "aeui": "device-1",
    }
    slow, fast = io.StringIO(), io.StringIO()
    _logger(slow).log(logging.INFO, "request", extra=fields)
    logger = _logger(fast)
    sink = _json_sink(logger, logging.INFO)
    assert sink is not None
    _write_line(sink, logger.name, logging.INFO, fields)
    a, b = json.loads(slow.getvalue()), json.loads(fast.getvalue())
    assert list(a) == list(b)
    assert {k: v for k, v in a.items() if k != "time"} == {
        k: v for k, v in b.items() if k != "time"
    }
    assert fast.getvalue().endswith("\n") and fast.getvalue().count("\n") == 1


def test_the_direct_line_is_skipped_when_logging_does_more() -> None:
    logger = _logger(io.StringIO())
    assert _json_sink(logger, logging.INFO) is not None
    logger.addFilter(lambda record: True)
    assert _json_sink(logger, logging.INFO) is None
    logger.filters.clear()
    logger.addHandler(logging.StreamHandler(io.StringIO()))  # two handlers
    assert _json_sink(logger, logging.INFO) is None
    logger.handlers[1:] = []
    logger.handlers[0].setFormatter(logging.Formatter())  # not JSON
    assert _json_sink(logger, logging.INFO) is None
    logger.handlers[0].setFormatter(JsonFormatter())
    logger.handlers[0].setLevel(logging.WARNING)
    assert _json_sink(logger, logging.INFO) is None
    logger.handlers.clear()  # nothing to write to: logging's last resort decides
    assert _json_sink(logger, logging.INFO) is None


@pytest.mark.parametrize("cls", [Report, Binding])
def test_seen_at_is_replace_for_every_field(cls: type[Any]) -> None:
    """``seen_at`` passes every field on: a field added later and forgotten there fails here."""
    values = {f.name: object() for f in dataclasses.fields(cls)}
    if cls is Binding:
        values["aeui"] = "device-1"  # a binding's derived endpoint ID is the AEUI's hash
    record = cls(**values)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    moved = record.seen_at(when)
    assert type(moved) is cls
    for f in dataclasses.fields(cls):
        if f.name == "observed_at":  # a binding keeps a UTC instant packed: an equal datetime
            assert moved.observed_at == when and moved.observed_at.tzinfo is UTC
        else:
            assert getattr(moved, f.name) is values[f.name], f.name
    assert moved == dataclasses.replace(record, observed_at=when)


def test_location_ids_are_memoized_per_address_value() -> None:
    a = Address(house_number="1600", street_name="PENNSYLVANIA", city="WASHINGTON")
    b = Address(house_number="1600", street_name="PENNSYLVANIA", city="WASHINGTON")
    c = dataclasses.replace(a, house_number="1601")
    assert location_id_for(a) == location_id_for(b) == location_id_for.__wrapped__(b)
    assert location_id_for(c) == location_id_for.__wrapped__(c) != location_id_for(a)
    # Not part of the ID: ZIP+4 (the same place, however the carrier completes the ZIP).
    assert location_id_for(dataclasses.replace(a, plus_four="0001")) == location_id_for(a)


def test_devices_at_one_address_share_its_location_id_after_the_memo_forgot_it() -> None:
    a = Address(house_number="1600", street_name="PENNSYLVANIA", city="WASHINGTON")
    first = location_id_for(a)
    location_id_for.cache_clear()  # the memo is bounded: a busy gateway forgets addresses
    again = location_id_for(dataclasses.replace(a))
    assert again == first
    assert again is first  # one string for every device there, not one each (memory)


@pytest.mark.parametrize(
    "value",
    [
        {"n": 2**70},  # beyond 64 bits: orjson refuses it
        {"s": "lone \ud800 surrogate"},  # not encodable as UTF-8
        {"ok": "caf\u00e9", "list": [1, 2.5, None, True]},
    ],
)
def test_json_answers_never_fail_for_what_a_client_can_send(value: dict[str, Any]) -> None:
    body = dumps(value)
    assert json.loads(body) == value
    line = dumps_line({**value, "when": datetime(2026, 1, 1, tzinfo=UTC), 3: "int key"})
    decoded = json.loads(line)
    assert decoded["when"].startswith("2026-01-01") and decoded["3"] == "int key"
    rendered = JSONResponse(value).body
    assert json.loads(rendered) == value


def test_json_answers_write_no_nan() -> None:
    assert json.loads(dumps({"x": math.nan, "y": math.inf})) == {"x": None, "y": None}


def _request(messages: list[Message]) -> Request:
    pending = list(messages)

    async def receive() -> Message:
        return pending.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    return Request(scope, receive)


def _chunks(*bodies: bytes) -> list[Message]:
    last = len(bodies) - 1
    return [
        {"type": "http.request", "body": b, "more_body": i < last} for i, b in enumerate(bodies)
    ]


@pytest.mark.parametrize(
    "messages",
    [
        _chunks(b'{"a": 1}'),
        _chunks(b""),
        _chunks(b'{"a"', b"", b": 1}"),
        _chunks(b"", b"x" * 100),
        [{"type": "http.request"}],  # no body key at all
    ],
)
def test_read_body_reads_what_starlette_reads(messages: list[Message]) -> None:
    async def both() -> tuple[bytes, bytes]:
        mine = _request(messages)
        body = await read_body(mine, 100)
        with pytest.raises(RuntimeError, match="Stream consumed"):
            await read_body(mine, 100)  # once read, as Starlette's stream says
        return body, await _request(messages).body()

    mine, theirs = asyncio.run(both())
    assert mine == theirs


def test_read_body_refuses_past_the_limit_and_a_disconnect() -> None:
    async def scenario() -> None:
        with pytest.raises(Problem) as refused:
            await read_body(_request(_chunks(b"x" * 60, b"y" * 41)), 100)
        assert refused.value.status == 413
        gone = _request([*_chunks(b"x", b"y")[:1], {"type": "http.disconnect"}])
        with pytest.raises(ClientDisconnect):
            await read_body(gone, 100)
        assert await gone.is_disconnected()

    asyncio.run(scenario())


@pytest.mark.parametrize("status", [200, 201, 202, 204, 304, 409, 422, 503])
def test_json_response_is_starlettes_response(status: int) -> None:
    from starlette.responses import Response

    from gateway.api.answers import json_response

    body = b'{"a":"caf\xc3\xa9"}'
    ours = json_response(body, status)
    theirs = Response(body, status_code=status, media_type="application/json")
    assert (ours.status_code, ours.body, ours.raw_headers, ours.media_type, ours.background) == (
        theirs.status_code,
        theirs.body,
        theirs.raw_headers,
        theirs.media_type,
        theirs.background,
    )
