"""A binding keeps its endpoint ID only when the carrier chose it, and its two instants packed
(memory per device)."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from gateway.dlr.binding import _EPOCH, Binding, _pack
from gateway.dlr.ids import _digest, endpoint_id_for


def _binding(**changes: object) -> Binding:
    b = Binding(
        aeui="dev-1",
        location_id="loc1",
        caller_name="ALICE",
        telephone_number="+12025550100",
        address=None,
        observed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return dataclasses.replace(b, **changes)


def test_the_derived_endpoint_id_is_the_scheme_s_digest() -> None:
    for aeui in ("dev-1", "", "é" * 40, "x" * 300):
        assert endpoint_id_for(aeui) == _digest("endpoint", aeui)


def test_the_derived_endpoint_id_is_read_not_stored() -> None:
    derived = _binding()
    assert derived.endpoint_id == endpoint_id_for("dev-1")
    assert derived.carrier_endpoint_id is None
    # Given as the carrier's, the derived ID is still not kept, and the two are one binding.
    given = _binding(carrier_endpoint_id=endpoint_id_for("dev-1"))
    assert given.carrier_endpoint_id is None
    assert given == derived and hash(given) == hash(derived)
    assert given.endpoint().endpoint_id == endpoint_id_for("dev-1")
    assert given.as_json()["endpointId"] == endpoint_id_for("dev-1")
    # Another device's derived ID is foreign to this one.
    moved = _binding(aeui="dev-2", carrier_endpoint_id=endpoint_id_for("dev-1"))
    assert moved.endpoint_id == endpoint_id_for("dev-1") != endpoint_id_for("dev-2")


def test_a_foreign_endpoint_id_is_kept_through_every_copy() -> None:
    foreign = _binding(carrier_endpoint_id="carrier-chosen-7")
    assert foreign.endpoint_id == "carrier-chosen-7"
    assert foreign != _binding()
    assert not foreign.same_binding(_binding())
    seen = foreign.seen_at(datetime(2026, 1, 2, tzinfo=UTC))
    assert seen.endpoint_id == "carrier-chosen-7"
    assert dataclasses.replace(foreign, version=3).endpoint_id == "carrier-chosen-7"
    assert pickle.loads(pickle.dumps(foreign)) == foreign  # noqa: S301 - its own bytes
    assert foreign.endpoint().endpoint_id == "carrier-chosen-7"
    assert foreign.as_json()["endpointId"] == "carrier-chosen-7"
    # Back to the derived one: the stored ID goes.
    back = dataclasses.replace(foreign, carrier_endpoint_id=None)
    assert back.endpoint_id == endpoint_id_for("dev-1")
    assert back == _binding()


def test_the_two_instants_read_back_as_given() -> None:
    moments = [
        datetime(2026, 12, 7, 18, 40, 1, 999_999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),  # before the epoch
        _EPOCH + timedelta(microseconds=2**52 - 1),  # the last packed, and the first not
        _EPOCH + timedelta(microseconds=2**52),
        _EPOCH - timedelta(microseconds=2**52 - 1),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=5))),  # its own offset
        datetime(2026, 1, 1, 5),  # naive
        datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=UTC),
    ]
    for moment in moments:
        b = _binding(observed_at=moment, heard_at=moment)
        for read in (b.observed_at, b.heard_at):
            assert read == moment and read is not None
            assert (read.tzinfo, read.fold) == (moment.tzinfo, moment.fold)
            assert repr(read) == repr(moment)
    assert _binding(heard_at=None).heard_at is None


def test_packed_instants_are_one_binding_with_the_datetimes() -> None:
    at = datetime(2026, 12, 7, 18, 40, 1, 123_456, tzinfo=UTC)
    assert isinstance(_pack(at), float)  # 24 bytes, not a datetime's 48
    b = _binding(observed_at=at, heard_at=at + timedelta(seconds=1))
    assert b.seen_at(at).observed_at == at
    assert dataclasses.replace(b, version=2).heard_at == at + timedelta(seconds=1)
    copy = pickle.loads(pickle.dumps(b))  # noqa: S301 - its own bytes
    assert copy == b and hash(copy) == hash(b) and repr(copy) == repr(b)
    assert orjson.loads(orjson.dumps(b))["observed_at"] == "2026-12-07T18:40:01.123456+00:00"
    assert b != dataclasses.replace(b, observed_at=at + timedelta(microseconds=1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.observed_at = at  # type: ignore[misc]
