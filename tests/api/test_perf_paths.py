"""The hot path's shortcuts answer exactly what the slow ways did."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from gateway.api.devices import _address_json, _e164, _telephone
from gateway.api.problems import FieldProblem
from gateway.api.schemas import record_to_json
from gateway.bandwidth.models import Address
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
def test_telephone_is_memoized_and_errors_stay_per_call(raw: str, expected: str | None) -> None:
    for _ in range(2):  # the second answer comes from the cache
        errors: list[FieldProblem] = []
        assert _telephone(raw, errors) == expected
        assert _e164(raw) == expected
        assert [e.field for e in errors] == ([] if expected else ["telephoneNumber"])


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
