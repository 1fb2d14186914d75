"""Calling numbers as the carrier may send them, and the in-process index of callers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from gateway.bandwidth.models import Address
from gateway.dlr.binding import Binding
from gateway.dlr.callers import (
    CallerIndex,
    answer_radius,
    freshest,
    has_dispatchable_coordinates,
    normalize_number,
)
from gateway.dlr.coordinates import DEFAULT_RADIUS_METERS
from gateway.store.base import NumberState

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PHONE = "+12025550143"


@pytest.mark.parametrize(
    "raw",
    [
        "2025550143",
        "12025550143",
        "+12025550143",
        " 12025550143",  # an unencoded "+" in a query string
        "+1 (202) 555-0143",
        "202.555.0143",
        "sip:+12025550143@carrier.example;user=phone",
        "SIP:12025550143@carrier.example",
        "sips:2025550143@10.0.0.1:5061",
        "sip:+1-202-555-0143;isub=12@carrier.example",
        "tel:+1-202-555-0143",
        "tel:2025550143;phone-context=+1",
        '"Alice" <sip:+12025550143@carrier.example>',
    ],
)
def test_forms_of_one_number(raw: str) -> None:
    assert normalize_number(raw) == "+12025550143"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "911",
        "202555014",  # nine digits
        "22025550143",  # eleven digits, not 1 first
        "+442071838750",  # not North American
        "+1 2025550143 0",
        "1025550143",  # area code starts with 1
        "2020550143",  # exchange starts with 0
        "sip:alice@carrier.example",
        "tel:",
        "".join(chr(0xFF10 + int(d)) for d in "2025550143"),  # full-width digits
        "2" * 300,
    ],
)
def test_not_a_number(raw: str | None) -> None:
    assert normalize_number(raw) is None


def binding(
    aeui: str,
    seconds: float,
    *,
    phone: str = "+12025550143",
    version: int = 1,
    heard: float | None = None,
) -> Binding:
    """A device's binding observed at ``seconds``, heard by the gateway at ``heard`` (the
    same moment unless given)."""
    return Binding(
        aeui=aeui,
        carrier_endpoint_id=f"ep-{aeui}",
        location_id=f"L{int(seconds)}",
        address=None,
        caller_name="ADA",
        telephone_number=phone,
        observed_at=T0 + timedelta(seconds=seconds),
        version=version,
        heard_at=T0 + timedelta(seconds=seconds if heard is None else heard),
    )


def test_index_keeps_each_devices_newest_binding_by_number() -> None:
    index = CallerIndex(10)
    index.learn(binding("a", 10))
    index.learn(binding("b", 20))
    index.learn(binding("a", 5))  # older: ignored
    assert [b.aeui for b in index.lookup("+12025550143")] == ["b", "a"]
    assert index.get("a") == binding("a", 10)
    # A revert keeps the time and bumps the version: it wins.
    reverted = dataclasses.replace(binding("a", 10, version=2), location_id="BACK")
    index.learn(reverted)
    assert index.get("a") == reverted
    # A device changes its number: found under the new one only.
    index.learn(binding("a", 30, phone="+13125550100", version=3))
    assert [b.aeui for b in index.lookup("+12025550143")] == ["b"]
    assert [b.aeui for b in index.lookup("+13125550100")] == ["a"]
    index.forget("b")
    assert index.lookup("+12025550143") == []
    assert len(index) == 1


def test_index_is_bounded_and_evicts_the_least_recently_learned() -> None:
    index = CallerIndex(3)
    for i in range(5):
        index.learn(binding(f"d{i}", i, phone=f"+1202555{i:04d}"))
    assert len(index) == 3
    assert index.lookup("+12025550000") == [] and index.lookup("+12025550001") == []
    assert index._numbers.keys() == {"+12025550002", "+12025550003", "+12025550004"}
    index.learn(binding("d2", 10, phone="+12025550002"))  # refreshed: kept
    index.learn(binding("d9", 9, phone="+12025550009"))
    assert index.get("d2") is not None and index.get("d3") is None


def test_answering_does_not_keep_a_device_and_its_eviction_leaves_a_shared_line() -> None:
    index = CallerIndex(3)
    index.learn(binding("d0", 0))
    index.learn(binding("d1", 1))  # the same number: a shared line
    index.learn(binding("d2", 2, phone="+12025550002"))
    assert len(index.lookup(PHONE)) == 2 and index.get("d0") is not None
    index.learn(binding("d3", 3, phone="+12025550003"))  # d0, learned first, goes
    assert index.get("d0") is None
    assert [b.aeui for b in index.lookup(PHONE)] == ["d1"]
    assert index._numbers[PHONE] == "d1"


def _held(aeui: str, seconds: float, *, version: int = 1, phone: str = PHONE) -> Binding:
    """The pipeline's own record of a binding the carrier holds."""
    return Binding(
        aeui=aeui,
        carrier_endpoint_id=f"ep-{aeui}",
        location_id="LOC-HELD",
        caller_name="Held",
        telephone_number=phone,
        address=Address(house_number="1", street_name="MAIN", city="X", state_code="DC"),
        latitude=38.9,
        longitude=-77.0,
        observed_at=T0 + timedelta(seconds=seconds),
        version=version,
        coordinates_source="gps",
        accuracy_meters=12.0,
        heard_at=T0 + timedelta(seconds=seconds),
        confirmed=True,  # ``Knowledge.trust`` marks what the carrier holds
    )


def test_a_held_binding_is_kept_as_the_pipelines_object_and_answered_confirmed() -> None:
    index = CallerIndex(2)
    index.learn(binding("a", 10))  # the claim, not yet confirmed
    current = _held("a", 20)
    index.hold(current)
    assert index._devices.peek("a") is current  # no copy per device
    answered = index.get("a")
    assert answered is not None and answered.confirmed and answered.version == 1
    assert (answered.aeui, answered.location_id, answered.observed_at) == (
        "a",
        "LOC-HELD",
        T0 + timedelta(seconds=20),
    )
    assert answered.address is None  # no street address in an answer from memory
    assert (answered.coordinates_source, answered.accuracy_meters) == ("gps", 12.0)
    assert index.lookup(PHONE) == [answered]
    index.hold(_held("a", 5))  # older: the newer one stays
    assert index._devices.peek("a") is current
    index.learn(binding("a", 15))  # an older claim: the same
    assert index._devices.peek("a") is current
    # Holding counts as use: "a" outlives "b" when "c" comes.
    index.learn(binding("b", 1, phone="+12025550100"))
    index.hold(_held("a", 30))
    index.learn(binding("c", 1, phone="+12025550101"))
    assert index.get("a") is not None and index.get("b") is None
    # A new callback number: found under it, no longer under the old one.
    index.hold(_held("a", 40, phone="+13125550100"))
    assert index.lookup(PHONE) == []
    assert [b.aeui for b in index.lookup("+13125550100")] == ["a"]


def test_freshest_of_a_shared_line() -> None:
    rows = [binding("a", 10), binding("b", 30), binding("c", 20)]
    assert freshest(rows).aeui == "b"


def test_the_device_heard_last_wins_whatever_time_it_claims() -> None:
    # "b" says it observed its location an hour ahead; the gateway heard "a" after it.
    rows = [binding("a", 10, heard=100), binding("b", 3600, heard=50)]
    assert freshest(rows).aeui == "a"
    index = CallerIndex(10)
    for row in rows:
        index.learn(row)
    assert [b.aeui for b in index.lookup(PHONE)] == ["a", "b"]


def test_restrict_forgets_the_devices_that_may_no_longer_use_a_number() -> None:
    index = CallerIndex(10)
    index.learn(binding("owner", 1))
    index.learn(binding("other", 2))
    index.learn(dataclasses.replace(binding("vouched", 3), attested=True))
    index.learn(binding("elsewhere", 4, phone="+13125550100"))
    index.restrict(NumberState(PHONE, "owner", False, T0))
    assert [b.aeui for b in index.lookup(PHONE)] == ["vouched", "owner"]
    index.restrict(NumberState("+13125550100", None, True, T0))  # shared: everyone may
    assert [b.aeui for b in index.lookup("+13125550100")] == ["elsewhere"]


def test_coordinates_and_radius() -> None:
    carriers = dataclasses.replace(binding("a", 0), latitude=38.9, longitude=-77.0)
    assert not has_dispatchable_coordinates(carriers)  # the carrier's own (a centroid)
    street = dataclasses.replace(carriers, coordinates_source="street")
    assert has_dispatchable_coordinates(street)
    assert answer_radius(street) == DEFAULT_RADIUS_METERS
    gps = dataclasses.replace(carriers, coordinates_source="gps", accuracy_meters=12.1)
    assert answer_radius(gps) == 13
    assert answer_radius(dataclasses.replace(gps, accuracy_meters=None)) == DEFAULT_RADIUS_METERS
    assert answer_radius(dataclasses.replace(gps, accuracy_meters=0.0)) == 1
    postal = dataclasses.replace(carriers, coordinates_source="postal")
    assert not has_dispatchable_coordinates(postal)  # a ZIP centroid locates no caller
    nan = dataclasses.replace(street, latitude=float("nan"))
    assert not has_dispatchable_coordinates(nan)


def test_a_shared_line_grows_and_shrinks_and_addresses_are_not_kept() -> None:
    index = CallerIndex(10)
    for name in ("a", "b", "c"):
        index.learn(dataclasses.replace(binding(name, 1), address=Address(city="X")))
    assert sorted(b.aeui for b in index.lookup("+12025550143")) == ["a", "b", "c"]
    assert all(b.address is None for b in index.lookup("+12025550143"))
    index.forget("a")
    index.forget("b")
    assert [b.aeui for b in index.lookup("+12025550143")] == ["c"]
    assert index._numbers == {"+12025550143": "c"}  # back to one device: no set kept
    index.learn(binding("d", 2))
    assert [b.aeui for b in index.lookup("+12025550143")] == ["d", "c"]
    index.forget("c")
    index.forget("d")
    assert index.lookup("+12025550143") == [] and index._numbers == {}
