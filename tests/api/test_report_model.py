"""``LocationReport``: the declaration that reads a report is the one the document states."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.api.devices import parse_report
from gateway.api.models import LocationReport, components
from gateway.api.problems import Problem

DOCUMENT = Path(__file__).resolve().parents[2] / "gateway" / "openapi.json"

VALID = {
    "alternateEndUserId": "dev-1",
    "callerName": " Ann ",
    "telephoneNumber": "+1 (202) 555-0143",
    "observedAt": "2026-01-01T00:00:00Z",
    "geo": {"latitude": 47.6, "longitude": -122.3},
}


def refused(body: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(Problem) as caught:
        parse_report(body)
    assert caught.value.status == 422
    return [(e.field, e.message) for e in caught.value.errors]


def test_the_documents_report_schema_is_the_models() -> None:
    schemas = json.loads(DOCUMENT.read_text())["components"]["schemas"]
    for name, schema in components(LocationReport).items():
        assert schemas[name] == schema


def test_a_report_is_read_as_sent() -> None:
    report = parse_report(VALID)
    assert report.caller_name == "Ann"
    assert report.telephone_number == "+12025550143"
    assert report.geo is not None and report.geo.latitude == 47.6


def test_an_unknown_field_is_refused_even_when_null() -> None:
    assert refused({**VALID, "extra": None}) == [("extra", "unknown field")]


def test_every_problem_in_one_answer_unknown_fields_first() -> None:
    body = {**VALID, "zz": 1, "aa": 2, "callerName": 5, "geo": {"latitude": True}}
    del body["observedAt"]
    assert refused(body) == [
        ("aa", "unknown field"),
        ("zz", "unknown field"),
        ("observedAt", "required"),
        ("callerName", "must be a string"),
        ("geo.latitude", "expected a number"),
        ("geo.longitude", "required"),
    ]


@pytest.mark.parametrize(
    ("latitude", "message"),
    [
        (10**400, "expected a number from -90 to 90"),
        (91, "expected a number from -90 to 90"),
        ("47", "expected a number"),
        (None, "expected a number"),
    ],
)
def test_a_coordinate_out_of_range_says_the_range(latitude: Any, message: str) -> None:
    body = {**VALID, "geo": {"latitude": latitude, "longitude": 0}}
    assert refused(body) == [("geo.latitude", message)]


def test_a_key_pydantic_cannot_read_is_an_unknown_field_and_the_rest_is_still_checked() -> None:
    body = {**VALID, "\ud800": 1, "geo": {"latitude": 1, "longitude": 2, "\udfff": 3}}
    del body["callerName"]
    assert refused(body) == [
        ("\ud800", "unknown field"),
        ("callerName", "required"),
        ("geo.\udfff", "unknown field"),
    ]
