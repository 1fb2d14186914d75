"""Unchanged reports' answers, remembered per device (``gateway.api.unchanged``): the same
bytes as the full path writes, and never an answer the device's binding no longer gives."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.api.auth import DeviceTokens
from gateway.api.unchanged import UnchangedAnswers
from gateway.dlr.binding import Binding
from gateway.dlr.errors import FieldError
from gateway.dlr.ids import endpoint_id_for
from gateway.dlr.pipeline import Change, Outcome
from tests.harness import (
    EMPIRE_STATE,
    JWT_SECRET,
    WHITE_HOUSE,
    WHITE_HOUSE_ADDRESS,
    Gateway,
    gateway,
    gateway_settings,
    new_simulator,
    report,
)

UNCHANGED = {"location": "unchanged", "endpoint": "unchanged"}


def _answers(gw: Gateway) -> UnchangedAnswers:
    found: UnchangedAnswers = gw.app.state.services.unchanged_answers
    return found


def _body(aeui: str, address: Any, seconds: float, **extra: Any) -> bytes:
    return json.dumps(report(aeui, address, seconds, **extra)).encode()


async def _post(gw: Gateway, body: bytes, **headers: str) -> Any:
    return await gw.http.post(
        "/v1/location-reports",
        content=body,
        headers={"content-type": "application/json", **headers},
    )


def test_the_remembered_answers_are_the_full_paths_bytes() -> None:
    """The same reports through a gateway with the memo and one without: byte for byte."""
    fix = {"geo": {"latitude": 38.8977, "longitude": -77.0365, "accuracyMeters": 12.5}}
    far = {"geo": {"latitude": 40.0, "longitude": -100.0, "accuracyMeters": 5.0}}
    bodies = [
        _body("ua-1", WHITE_HOUSE, 0),
        _body("ua-1", WHITE_HOUSE, 1),  # unchanged: written, remembered
        _body("ua-1", WHITE_HOUSE, 2),  # unchanged: remembered
        _body("ua-1", WHITE_HOUSE, 3, caller="BOB SMITH"),  # the name changed: applied
        _body("ua-1", WHITE_HOUSE, 4, caller="BOB SMITH"),
        _body("ua-1", WHITE_HOUSE, 5, caller="BOB SMITH"),
        _body("ua-1", WHITE_HOUSE, 2),  # older: 409
        _body("ua-1", EMPIRE_STATE, 6),  # a move
        _body("ua-1", EMPIRE_STATE, 7),
        _body("ua-2", WHITE_HOUSE_ADDRESS, 0, **fix),  # its own fix: gps coordinates
        _body("ua-2", WHITE_HOUSE_ADDRESS, 1, **fix),
        _body("ua-2", WHITE_HOUSE_ADDRESS, 2, **fix),
        _body("ua-2", WHITE_HOUSE_ADDRESS, 3, **far),  # a fix far away: a warning
        _body("ua-2", WHITE_HOUSE_ADDRESS, 4, **far),
        _body("ua-2", WHITE_HOUSE_ADDRESS, 5),  # no fix: the same binding, no warning
        _body("ua-1", EMPIRE_STATE, 8),
    ]

    async def run(memo_size: int) -> tuple[list[Any], int]:
        async with gateway(gateway_settings(report_memo_size=memo_size)) as gw:
            answers = [await _post(gw, body) for body in bodies]
            return answers, _answers(gw).hits

    with_memo, hits = asyncio.run(run(10_000))
    without, no_hits = asyncio.run(run(0))
    assert [a.status_code for a in with_memo] == [200] * 6 + [409] + [200] * 9
    assert hits >= 5 and no_hits == 0
    for on, off in zip(with_memo, without, strict=True):
        assert on.status_code == off.status_code
        assert on.headers["content-type"] == off.headers["content-type"]
        assert on.content == off.content
    assert with_memo[12].json()["warnings"] and with_memo[13].json()["warnings"]
    assert with_memo[2].json()["observedAt"] == "2026-11-01T12:00:02+00:00"


def _two_replicas(tmp_path: Path) -> Any:
    settings = gateway_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    sim_app = new_simulator(settings)
    return gateway(settings, sim_app=sim_app), gateway(settings, sim_app=sim_app)


def test_a_binding_changed_at_another_replica_is_never_answered_from_memory(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        first, second = _two_replicas(tmp_path)
        async with first as a, second as b:
            for second_ in range(3):
                answer = await _post(a, _body("ann", WHITE_HOUSE, second_))
                assert answer.status_code == 200
            assert answer.json()["changes"] == UNCHANGED and _answers(a).hits == 1
            white_house = answer.json()["locationId"]
            moved = await _post(b, _body("ann", EMPIRE_STATE, 10))
            assert moved.json()["locationId"] != white_house
            # A still remembers the White House answer; the store says the device moved.
            same = await _post(a, _body("ann", EMPIRE_STATE, 11))
            assert same.json()["changes"] == UNCHANGED
            assert same.json()["locationId"] == moved.json()["locationId"]
            back = await _post(a, _body("ann", WHITE_HOUSE, 12))
            assert back.json()["changes"]["endpoint"] == "updated"
            assert back.json()["locationId"] == white_house
            # The caller's name changed at B: A's next report with the old one changes it back.
            renamed = await _post(b, _body("ann", WHITE_HOUSE, 13, caller="BOB SMITH"))
            assert renamed.json()["callerName"] == "BOB SMITH"
            again = await _post(a, _body("ann", WHITE_HOUSE, 14))
            assert again.json()["callerName"] == "ALICE SMITH"
            assert again.json()["changes"]["endpoint"] == "updated"
            held = a.simulator.state["endpoints"][endpoint_id_for("ann")]
            assert held["callerName"] == "ALICE SMITH"

    asyncio.run(scenario())


def test_a_deleted_device_is_provisioned_again_not_answered_from_memory() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            for second in range(3):
                answer = await _post(gw, _body("del-1", WHITE_HOUSE, second))
            assert answer.json()["changes"] == UNCHANGED and _answers(gw).hits == 1
            endpoint_id = answer.json()["endpointId"]
            deleted = await gw.http.delete(f"/v1/endpoints/{endpoint_id}")
            assert deleted.status_code == 200, deleted.text
            # Observed after the deletion (one observed before it does not bring the device
            # back: tests/api/test_shared_state.py).
            after = datetime.now(UTC).isoformat()
            again = await _post(gw, _body("del-1", WHITE_HOUSE, 3, observedAt=after))
            assert again.status_code == 200, again.text
            assert again.json()["changes"]["endpoint"] == "created"
            assert endpoint_id_for("del-1") in gw.simulator.state["endpoints"]

    asyncio.run(scenario())


def test_another_devices_token_gets_no_remembered_answer() -> None:
    tokens = DeviceTokens(secret=JWT_SECRET)

    async def scenario() -> None:
        async with gateway() as gw:
            for second in range(3):
                assert (await _post(gw, _body("own-1", WHITE_HOUSE, second))).status_code == 200
            assert _answers(gw).hits == 1
            other = tokens.mint("someone-else", 60)
            refused = await _post(
                gw, _body("own-1", WHITE_HOUSE, 3), authorization=f"Bearer {other}"
            )
            assert refused.status_code == 403
            assert refused.headers["content-type"].startswith("application/problem+json")
            own = tokens.mint("own-1", 60)
            answer = await _post(gw, _body("own-1", WHITE_HOUSE, 4), authorization=f"Bearer {own}")
            assert answer.status_code == 200
            assert answer.json()["alternateEndUserId"] == "own-1"
            assert answer.json()["observedAt"] == "2026-11-01T12:00:04+00:00"
            assert _answers(gw).hits == 2

    asyncio.run(scenario())


def _outcome(**changes: Any) -> Outcome:
    binding = Binding(
        aeui="dev-1",
        carrier_endpoint_id="ep-1",
        location_id="loc1",
        caller_name="ALICE",
        telephone_number="+12025550100",
        address=None,
        observed_at=datetime(2026, 1, 1, tzinfo=UTC),
        latitude=38.9,
        longitude=-77.0,
        coordinates_source="street",
    )
    binding = dataclasses.replace(binding, **changes)
    return Outcome(binding, Change.UNCHANGED, Change.UNCHANGED)


ANSWER = b'{"a":1,"observedAt":"2026-01-01T00:00:00+00:00","b":2}'


def test_each_value_the_answer_shows_is_checked() -> None:
    answers = UnchangedAnswers(10)
    answers.put(_outcome(), ANSWER)
    later = _outcome(observed_at=datetime(2026, 1, 2, tzinfo=UTC))
    assert answers.get(later) == ANSWER.replace(b"01T", b"02T")
    for change in (
        {"carrier_endpoint_id": "ep-2"},
        {"carrier_endpoint_id": None},  # the one derived from the AEUI
        {"location_id": "loc2"},
        {"caller_name": "BOB"},
        {"telephone_number": "+12025550101"},
        {"status": "INVALID"},
        {"latitude": 38.91},
        {"coordinates_source": "gps"},
        {"accuracy_meters": 3.0},
    ):
        assert answers.get(_outcome(**change)) is None, change
    warned = dataclasses.replace(_outcome(), warnings=(FieldError("geo", "far"),))
    assert answers.get(warned) is None
    assert answers.get(dataclasses.replace(_outcome(), source="port")) is None
    moved = dataclasses.replace(_outcome(), endpoint=Change.UPDATED)
    assert answers.get(moved) is None


@pytest.mark.parametrize("zero", [{"latitude": 0.0}, {"longitude": -0.0}])
def test_zero_coordinates_are_never_remembered(zero: dict[str, float]) -> None:
    """``0.0 == -0.0``, but the two are written apart."""
    answers = UnchangedAnswers(10)
    answers.put(_outcome(**zero), ANSWER)
    assert answers.get(_outcome(**zero)) is None


def test_the_memory_is_bounded_and_can_be_off() -> None:
    answers = UnchangedAnswers(2)
    for aeui in ("a", "b", "c"):
        answers.put(_outcome(aeui=aeui), ANSWER)
    assert answers.get(_outcome(aeui="a")) is None
    assert answers.get(_outcome(aeui="c")) == ANSWER
    off = UnchangedAnswers(0)
    off.put(_outcome(), ANSWER)
    assert off.get(_outcome()) is None
    # An answer with no one plain observedAt to cut around is not remembered.
    answers.put(_outcome(aeui="d"), ANSWER.replace(b'"b":2', b'"observedAt":"x"'))
    assert answers.get(_outcome(aeui="d")) is None
