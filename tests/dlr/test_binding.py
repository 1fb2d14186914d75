"""A binding keeps its endpoint ID only when the carrier chose it (memory per device)."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime

from gateway.dlr.binding import Binding
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
