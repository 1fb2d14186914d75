"""The unchanged report's shortcuts (docs/benchmarks.md) give what the long ways give."""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

import pytest

from gateway.api import pidf
from gateway.api.auth import AdminKeys, Principal
from gateway.api.models import _plain, parse_rfc3339
from gateway.api.pidf import body_format, is_pidf
from gateway.api.schemas import is_json
from gateway.dlr.address import MAX_FIELD, NormalizeCache
from gateway.observability import _random_id


def _times() -> list[str]:
    years, months, days = ("0001", "1970", "2026", "9999"), ("01", "02", "12"), ("01", "29", "31")
    clocks = ("00:00:00", "23:59:59", "12:30:60", "24:00:00")
    fractions = ("", ".0", ".1", ".123", ".123456", ".1234567", ".000000000")
    offsets = ("Z", "z", "+00:00", "-00:00", "+23:59", "-23:59", "+05:30", "+24:00")
    return [
        f"{y}-{m}-{d}{t}{c}{f}{o}"
        for y, m, d, c, f, o, t in itertools.product(
            years, months, days, clocks, fractions, offsets, ("T", "t")
        )
    ]


def test_the_plain_timestamp_reads_as_parse_rfc3339_reads_it() -> None:
    taken = 0
    for text in _times():
        short, full = _plain(text), parse_rfc3339(text)
        if short is None:
            continue
        taken += 1
        assert full is not None, text
        assert (short, short.utcoffset(), short.isoformat()) == (
            full,
            full.utcoffset(),
            full.isoformat(),
        ), text
    assert taken > 1000  # the common shapes do take the shortcut
    assert _plain("2026-12-07T18:40:00.123456+00:00") is not None
    assert _plain("0001-01-01T00:00:00+05:30") is None  # no UTC instant: the long way refuses
    assert _plain(20261207) is None


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        " Application/JSON ",
        "application/merge-patch+json",
        "application/pidf+xml",
        "APPLICATION/PIDF+XML;charset=utf-8",
        "text/plain",
        "",
        "application/jsonx",
    ],
)
def test_a_body_format_is_what_the_media_type_checks_say(content_type: str) -> None:
    expected = "pidf" if is_pidf(content_type) else "json" if is_json(content_type) else "other"
    assert body_format(content_type) == expected
    assert body_format(content_type) == expected  # remembered


def test_body_formats_are_remembered_for_a_bounded_number_of_values() -> None:
    for i in range(3 * pidf._FORMATS_KEPT):
        assert body_format(f"application/x-{i}+json") == "json"
        assert body_format(f"text/x-{i}") == "other"
    assert len(pidf._FORMATS) <= pidf._FORMATS_KEPT


def test_an_admin_key_gives_its_principal() -> None:
    keys = AdminKeys(["first-admin-key-000000000000", "", "second-admin-key-00000000000"])
    assert keys.match("first-admin-key-000000000000") == Principal("admin", "admin-key-0")
    assert keys.match("second-admin-key-00000000000") == Principal("admin", "admin-key-1")
    assert keys.match("") is None
    assert keys.match("another-key") is None


def _old_key(raw: dict[str, Any]) -> Any:
    """``NormalizeCache._key`` of a mapping as it was written before (the reference)."""
    items = tuple(raw.items())
    if len(items) > 32 or not all(
        isinstance(k, str) and (v is None or (isinstance(v, str) and len(v) <= MAX_FIELD))
        for k, v in items
    ):
        return None
    return ("mapping", *sorted(items, key=lambda kv: kv[0]))


@pytest.mark.parametrize(
    "raw",
    [
        {"street": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"},
        {"zip": "62701", "street": "1 Main St", "unit": None},
        {"street": 1, "city": "Springfield"},
        {"street": "x" * (MAX_FIELD + 1)},
        {f"k{i}": "v" for i in range(33)},
        {f"k{i}": "v" for i in range(32)},
        {},
    ],
)
def test_an_address_objects_cache_key_is_unchanged(raw: dict[str, Any]) -> None:
    assert NormalizeCache._key(raw) == _old_key(raw)


def test_request_ids_are_random_hex_and_never_repeat() -> None:
    ids = [_random_id() for _ in range(2000)]  # several reads of the OS's randomness
    assert all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_hands_out_ids_of_its_own() -> None:
    _random_id()  # the parent holds IDs it has not handed out yet
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(write, _random_id().encode("ascii"))
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 64).decode("ascii")
    os.close(read)
    assert re.fullmatch("[0-9a-f]{32}", theirs)
    assert theirs != _random_id()
