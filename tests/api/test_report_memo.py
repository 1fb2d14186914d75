"""The report memo: a device's repeated report, differing only in ``observedAt``, skips
decoding and validation, and is answered exactly as the full path would answer it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.api.auth import DeviceTokens
from gateway.api.memo import ReportMemo, cut
from tests.harness import (
    EMPIRE_STATE,
    JWT_SECRET,
    WHITE_HOUSE,
    Gateway,
    at,
    gateway,
    gateway_settings,
    report,
)

ADMIN = {"content-type": "application/json"}


def test_cut_takes_one_plain_observed_at() -> None:
    body = b'{"a": 1, "observedAt" : "2026-01-01T00:00:00Z", "b": "x"}'
    found = cut(body)
    assert found is not None
    assert found.observed_at == "2026-01-01T00:00:00Z"
    assert found.template == b'{"a": 1, "observedAt" : "", "b": "x"}'
    # Same body but the time: same template.
    other = cut(body.replace(b"2026-01-01T00:00:00Z", b"2027-05-05T10:00:00+02:00"))
    assert other is not None and other.template == found.template


@pytest.mark.parametrize(
    "body",
    [
        b'{"observedAt": "2026-01-01T00:00:00Z", "callerName": "observedAt"}',  # twice
        b'{"observedAt": "2026-01-01T00:00:00Z", "observ\\u0065dAt": "2020-01-01T00:00:00Z"}',
        b'{"callerName": "A \\"B\\"", "observedAt": "2026-01-01T00:00:00Z"}',  # any escape
        b'{"observedAt": 1767225600}',  # not a string
        b'{"observedAt": ""}',
        b'{"alternateEndUserId": "x"}',  # none at all
    ],
)
def test_cut_refuses_what_could_mean_two_things(body: bytes) -> None:
    assert cut(body) is None


def test_memo_is_bounded_and_can_be_off() -> None:
    memo = ReportMemo(2)
    sentinel: Any = object()
    for key in (b"a", b"b", b"c"):
        memo.put(key, sentinel)
    assert memo.get(b"a") is None and memo.get(b"c") is sentinel
    off = ReportMemo(0)
    off.put(b"a", sentinel)
    assert off.get(b"a") is None


def _post(gw: Gateway, body: bytes) -> Any:
    return gw.http.post("/v1/location-reports", content=body, headers=ADMIN)


def _memo(gw: Gateway) -> ReportMemo:
    memo: ReportMemo = gw.app.state.services.report_memo
    return memo


def _answers_alike(memo_on: list[Any], memo_off: list[Any]) -> None:
    for on, off in zip(memo_on, memo_off, strict=True):
        assert on.status_code == off.status_code
        assert on.headers["content-type"] == off.headers["content-type"]
        assert on.json() == off.json()


def test_the_memo_answers_as_the_full_path_does() -> None:
    """The same sequence of bodies through a gateway with the memo and one without."""
    first = json.dumps(report("memo-1", WHITE_HOUSE, 0)).encode()
    bodies = [
        first,
        first.replace(at(0).encode(), at(10).encode()),  # unchanged, newer: from the memo
        first.replace(at(0).encode(), at(5).encode()),  # older: superseded (409)
        first.replace(at(0).encode(), b"2026-13-01T00:00:00Z"),  # invalid time (422)
        first.replace(at(0).encode(), b"2999-01-01T00:00:00Z"),  # in the future (422)
        first.replace(at(0).encode(), b"2026-01-01 00:00:00"),  # no offset (422)
        json.dumps(report("memo-1", EMPIRE_STATE, 20)).encode(),  # a move: full path
        first.replace(at(0).encode(), at(30).encode()),  # back: from the memo, applied
    ]

    async def run(memo_size: int) -> tuple[list[Any], int]:
        async with gateway(gateway_settings(report_memo_size=memo_size)) as gw:
            answers = [await _post(gw, body) for body in bodies]
            return answers, _memo(gw).hits

    with_memo, hits = asyncio.run(run(10_000))
    without, no_hits = asyncio.run(run(0))
    assert [a.status_code for a in with_memo] == [200, 200, 409, 422, 422, 422, 200, 200]
    assert with_memo[-1].json()["changes"]["endpoint"] == "updated"
    assert hits == 6 and no_hits == 0  # all but the first body and the move
    _answers_alike(with_memo, without)


def test_an_escaped_duplicate_key_never_takes_the_memo() -> None:
    """``observ\\u0065dAt`` is ``observedAt`` to a JSON decoder: a member named twice, which
    the full path refuses (422), so the memo must not read the first."""
    plain = report("memo-2", WHITE_HOUSE, 0)

    async def scenario() -> None:
        async with gateway() as gw:
            assert (await gw.report(plain)).status_code == 200
            text = json.dumps(plain)
            tricky = text[:-1] + f', "observ\\u0065dAt": "{at(-100)}"}}'
            answer = await _post(gw, tricky.replace(at(0), at(50)).encode())
            assert answer.status_code == 422
            message = 'the member "observedAt" appears more than once in one object'
            assert answer.json()["errors"] == [{"field": "body", "message": message}]
            assert _memo(gw).hits == 0

    asyncio.run(scenario())


def test_the_memo_never_skips_authorization() -> None:
    body = json.dumps(report("memo-3", WHITE_HOUSE, 0)).encode()

    async def scenario() -> None:
        async with gateway() as gw:
            assert (await _post(gw, body)).status_code == 200
            token = DeviceTokens(secret=JWT_SECRET).mint("someone-else", 60)
            answer = await gw.http.post(
                "/v1/location-reports",
                content=body.replace(at(0).encode(), at(1).encode()),
                headers={**ADMIN, "authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 403

    asyncio.run(scenario())
