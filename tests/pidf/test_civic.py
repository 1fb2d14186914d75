"""RFC 5139 civic elements <-> the carrier's address fields."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.bandwidth.models import Address
from gateway.dlr.address import normalize
from gateway.pidf.civic import CIVIC_ORDER, compose_suite, from_address, split_suite, to_address


def test_each_element_lands_in_its_field() -> None:
    mapping = to_address(
        [
            ("country", "US"),
            ("A1", "DC"),
            ("A3", "WASHINGTON"),
            ("PRD", "N"),
            ("RD", "PENNSYLVANIA"),
            ("STS", "AVE"),
            ("POD", "NW"),
            ("HNO", "1600"),
            ("HNS", "A"),
            ("PC", "20500-0003"),
            ("NAM", "THE OCCUPANT"),
        ]
    )
    assert mapping.address == {
        "country": "US",
        "stateCode": "DC",
        "city": "WASHINGTON",
        "prefixDirectional": "N",
        "streetName": "PENNSYLVANIA",
        "streetSuffix": "AVE",
        "postDirectional": "NW",
        "houseNumber": "1600",
        "houseSuffix": "A",
        "zip": "20500-0003",
    }
    assert mapping.caller_name == "THE OCCUPANT"
    assert mapping.sources["zip"] == "PC"
    assert mapping.errors == mapping.warnings == ()


def test_suite_elements_make_address_line2_in_order() -> None:
    mapping = to_address(
        [("SEAT", "12"), ("ROOM", "301"), ("UNIT", "B"), ("FLR", "3"), ("BLD", "A")]
    )
    assert mapping.address["addressLine2"] == "BLDG A FL 3 UNIT B RM 301 SEAT 12"
    # Errors about the line point at the first element it came from.
    assert mapping.sources["addressLine2"] == "BLD"


def test_values_with_their_own_designator_are_not_doubled() -> None:
    mapping = to_address([("FLR", "Floor 3"), ("UNIT", "Suite 200"), ("LOC", "NW corner")])
    assert mapping.address["addressLine2"] == "Floor 3 Suite 200 NW corner"
    assert normalize({"addressLine2": mapping.address["addressLine2"]}).address == Address(
        address_line2="FL 3 STE 200 NW CORNER", country="US"
    )


def test_street_from_legacy_a6_and_pre_modifier() -> None:
    assert to_address([("A6", "MAIN")]).address["streetName"] == "MAIN"
    both = to_address([("A6", "BLOCK 9"), ("RD", "MAIN"), ("PRM", "OLD")])
    assert both.address["streetName"] == "OLD MAIN"
    assert [w.field for w in both.warnings] == ["civicAddress.A6"]


def test_postal_community_name_is_the_city_only_without_a3() -> None:
    assert to_address([("PCN", "HOLLYWOOD")]).address["city"] == "HOLLYWOOD"
    mapping = to_address([("A3", "LOS ANGELES"), ("PCN", "HOLLYWOOD")])
    assert mapping.address["city"] == "LOS ANGELES"
    assert [w.field for w in mapping.warnings] == ["civicAddress.PCN"]


@pytest.mark.parametrize("element", ["A2", "A4", "A5", "LMK", "PLC", "ADDCODE"])
def test_descriptive_elements_are_dropped_with_a_warning(element: str) -> None:
    mapping = to_address([(element, "X"), ("RD", "MAIN")])
    assert mapping.address == {"streetName": "MAIN"}
    assert [w.field for w in mapping.warnings] == [f"civicAddress.{element}"]
    assert mapping.errors == ()


@pytest.mark.parametrize("element", ["POM", "RDSEC", "RDBR", "RDSUBBR", "POBOX"])
def test_elements_that_would_move_the_caller_are_refused(element: str) -> None:
    mapping = to_address([(element, "1"), ("RD", "MAIN")])
    assert [e.field for e in mapping.errors] == [f"civicAddress.{element}"]


def test_unknown_repeated_and_empty_elements() -> None:
    mapping = to_address([("HOUSE", "1"), ("RD", "MAIN"), ("RD", "ELM"), ("HNO", "")])
    assert [(e.field, e.message) for e in mapping.errors] == [
        ("civicAddress.HOUSE", "unknown civic address element (RFC 5139)"),
        ("civicAddress.RD", "appears more than once"),
    ]
    assert mapping.address == {"streetName": "MAIN"}


def test_pre_modifier_without_a_road_is_an_error() -> None:
    assert [e.field for e in to_address([("PRM", "OLD")]).errors] == ["civicAddress.PRM"]


@pytest.mark.parametrize(
    ("line", "parts"),
    [
        ("FL 86", {"FLR": "86"}),
        ("BLDG A FL 3 RM 301", {"BLD": "A", "FLR": "3", "ROOM": "301"}),
        ("STE 3000", {"UNIT": "STE 3000"}),
        ("UNIT 5", {"UNIT": "5"}),
        ("# 5", {"UNIT": "# 5"}),
        ("BSMT", {"UNIT": "BSMT"}),
        ("FL 3 SEAT 14", {"FLR": "3", "SEAT": "14"}),
        ("NW CORNER", {"LOC": "NW CORNER"}),
        # Parts out of the written order cannot be split without reordering the line.
        ("RM 5 FL 3", {"LOC": "RM 5 FL 3"}),
        ("FL 3 NW CORNER", {"LOC": "FL 3 NW CORNER"}),
    ],
)
def test_split_suite(line: str, parts: dict[str, str]) -> None:
    assert split_suite(line) == parts
    assert compose_suite(parts) == line


def test_from_address_writes_rfc_order_and_zip_plus_four() -> None:
    address = Address(
        house_number="233",
        prefix_directional="S",
        street_name="WACKER",
        street_suffix="DR",
        address_line2="FL 35",
        city="CHICAGO",
        state_code="IL",
        zip="60606",
        plus_four="6307",
        country="US",
    )
    civic = from_address(address, caller_name="DAVE")
    assert list(civic) == [e for e in CIVIC_ORDER if e in civic]
    assert civic["PC"] == "60606-6307"
    assert civic["NAM"] == "DAVE"
    assert civic["FLR"] == "35"


_WORDS = st.sampled_from(
    ["FL", "RM", "STE", "APT", "#", "BLDG", "SEAT", "UNIT", "BSMT", "3", "12B", "A", "REAR", "WING"]
)


@settings(max_examples=200, deadline=None)
@given(
    line2=st.lists(_WORDS, min_size=0, max_size=6).map(" ".join),
    house=st.sampled_from(["350", "1600", "233-5", "12"]),
    suffix=st.sampled_from([None, "A", "1/2"]),
    plus_four=st.sampled_from([None, "0003"]),
)
def test_canonical_address_survives_civic_and_back(
    line2: str, house: str, suffix: str | None, plus_four: str | None
) -> None:
    """Canonical -> civic -> canonical is the identity: the same place, the same location ID."""
    first = normalize(
        Address(
            house_number=house,
            house_suffix=suffix,
            street_name="5TH",
            street_suffix="AVE",
            address_line2=line2 or None,
            city="NEW YORK",
            state_code="NY",
            zip="10118",
            plus_four=plus_four,
        )
    ).address
    assert first is not None
    civic = from_address(first)
    mapping = to_address(civic.items())
    assert mapping.errors == ()
    assert normalize(mapping.address).address == first
