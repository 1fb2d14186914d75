"""Address normalization and validation (gateway.dlr.address)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import zipcodes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.bandwidth.models import Address, wire_name
from gateway.dlr.address import (
    MAX_ADDRESS_LINE2,
    MAX_CALLER_NAME,
    FieldError,
    NormalizeCache,
    Normalized,
    canonical,
    normalize,
    validate_caller_name,
)
from gateway.dlr.ids import location_id_for

FAST = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def us(
    house_number: str,
    street_name: str,
    street_suffix: str | None,
    city: str,
    state_code: str,
    zip_code: str,
    *,
    house_suffix: str | None = None,
    prefix_directional: str | None = None,
    post_directional: str | None = None,
    address_line2: str | None = None,
    plus_four: str | None = None,
) -> Address:
    """Every field of a US address, spelled out."""
    return Address(
        house_number=house_number,
        house_suffix=house_suffix,
        prefix_directional=prefix_directional,
        street_name=street_name,
        street_suffix=street_suffix,
        post_directional=post_directional,
        address_line2=address_line2,
        city=city,
        state_code=state_code,
        zip=zip_code,
        plus_four=plus_four,
        country="US",
    )


def as_json(address: Address) -> dict[str, object]:
    """The gateway's JSON address object (camelCase, absent values omitted)."""
    return {
        wire_name(f.name): getattr(address, f.name)
        for f in dataclasses.fields(address)
        if getattr(address, f.name) is not None
    }


def fields_of(result: Normalized) -> set[str]:
    return {e.field for e in result.errors}


# --------------------------------------------------------------------------- the corpus

# Real, public places, spelled the messy ways people type them.
CORPUS: list[tuple[str, Address]] = [
    (
        "1600 Pennsylvania Avenue NW, Washington, DC 20500",
        us("1600", "PENNSYLVANIA", "AVE", "WASHINGTON", "DC", "20500", post_directional="NW"),
    ),
    (
        "350 Fifth Avenue, New York, NY 10118",
        us("350", "5TH", "AVE", "NEW YORK", "NY", "10118"),
    ),
    (
        "1 Infinite Loop, Cupertino, CA 95014",
        us("1", "INFINITE", "LOOP", "CUPERTINO", "CA", "95014"),
    ),
    (
        "1600 Amphitheatre Parkway, Mountain View, CA 94043",
        us("1600", "AMPHITHEATRE", "PKWY", "MOUNTAIN VIEW", "CA", "94043"),
    ),
    # "Canada" in a US city's name is not the country.
    (
        "1327 Foothill Blvd, La Canada Flintridge, CA 91011",
        us("1327", "FOOTHILL", "BLVD", "LA CANADA FLINTRIDGE", "CA", "91011"),
    ),
    (
        "100 Main St, Canada, KY 41519",
        us("100", "MAIN", "ST", "CANADA", "KY", "41519"),
    ),
    (
        "1 Microsoft Way, Redmond, WA 98052-6399",
        us("1", "MICROSOFT", "WAY", "REDMOND", "WA", "98052", plus_four="6399"),
    ),
    (
        "1 Microsoft Way Redmond WA 980526399",
        us("1", "MICROSOFT", "WAY", "REDMOND", "WA", "98052", plus_four="6399"),
    ),
    (
        "233 S. Wacker Dr., Suite 9900, Chicago, IL 60606-6306",
        us(
            "233",
            "WACKER",
            "DR",
            "CHICAGO",
            "IL",
            "60606",
            prefix_directional="S",
            address_line2="STE 9900",
            plus_four="6306",
        ),
    ),
    (
        "30 Rockefeller Plaza, 65th Floor, New York, NY 10112",
        us("30", "ROCKEFELLER", "PLZ", "NEW YORK", "NY", "10112", address_line2="FL 65"),
    ),
    (
        "11 Wall Street, New York, NY 10005",
        us("11", "WALL", "ST", "NEW YORK", "NY", "10005"),
    ),
    (
        "4059 Mt Lee Dr., Hollywood, CA 90068",
        us("4059", "MT LEE", "DR", "HOLLYWOOD", "CA", "90068"),
    ),
    (
        "2 15th St NW, Washington, DC 20024",
        us("2", "15TH", "ST", "WASHINGTON", "DC", "20024", post_directional="NW"),
    ),
    (
        "1060 W Addison St, Chicago, IL 60613",
        us("1060", "ADDISON", "ST", "CHICAGO", "IL", "60613", prefix_directional="W"),
    ),
    (
        "  1060   west addison street ,  chicago , illinois 60613 ",
        us("1060", "ADDISON", "ST", "CHICAGO", "IL", "60613", prefix_directional="W"),
    ),
    (
        "4 Jersey St, Boston, MA 02215",
        us("4", "JERSEY", "ST", "BOSTON", "MA", "02215"),
    ),
    (
        "1000 Vin Scully Ave, Los Angeles, CA 90012",
        us("1000", "VIN SCULLY", "AVE", "LOS ANGELES", "CA", "90012"),
    ),
    (
        "24 Willie Mays Plaza, San Francisco, CA 94107",
        us("24", "WILLIE MAYS", "PLZ", "SAN FRANCISCO", "CA", "94107"),
    ),
    (
        "700 Clark Ave, St. Louis, MO 63102",
        us("700", "CLARK", "AVE", "SAINT LOUIS", "MO", "63102"),
    ),
    (
        "1 E 161st St, Bronx, NY 10451",
        us("1", "161ST", "ST", "BRONX", "NY", "10451", prefix_directional="E"),
    ),
    (
        "120-55 Queens Blvd, Kew Gardens, NY 11415",
        us("120-55", "QUEENS", "BLVD", "KEW GARDENS", "NY", "11415"),
    ),
    (
        "89-17 Sutphin Blvd, Jamaica, NY 11435",
        us("89-17", "SUTPHIN", "BLVD", "JAMAICA", "NY", "11435"),
    ),
    (
        "285 Fulton St, Suite 8500, New York, NY 10007",
        us("285", "FULTON", "ST", "NEW YORK", "NY", "10007", address_line2="STE 8500"),
    ),
    (
        "405 Lexington Avenue, Room 123, New York, NY 10174",
        us("405", "LEXINGTON", "AVE", "NEW YORK", "NY", "10174", address_line2="RM 123"),
    ),
    (
        "14200 US Highway 1, Juno Beach, FL 33408",
        us("14200", "US HIGHWAY 1", None, "JUNO BEACH", "FL", "33408"),
    ),
    (
        "2000 State Route 9, Lake George, NY 12845",
        us("2000", "STATE ROUTE 9", None, "LAKE GEORGE", "NY", "12845"),
    ),
    (
        "3100 County Road 42 W, Burnsville, MN 55306",
        us("3100", "COUNTY ROAD 42", None, "BURNSVILLE", "MN", "55306", post_directional="W"),
    ),
    (
        "2500 Highway 50, Placerville, CA 95667",
        us("2500", "HIGHWAY 50", None, "PLACERVILLE", "CA", "95667"),
    ),
    (
        "108 1/2 W Main St, Mesa, AZ 85201",
        us("108", "MAIN", "ST", "MESA", "AZ", "85201", house_suffix="1/2", prefix_directional="W"),
    ),
    (
        "12A Elm St, Concord, NH 03301",
        us("12", "ELM", "ST", "CONCORD", "NH", "03301", house_suffix="A"),
    ),
    (
        "451 South State Street, Salt Lake City, UT 84111",
        us("451", "STATE", "ST", "SALT LAKE CITY", "UT", "84111", prefix_directional="S"),
    ),
    (
        "100 Northeast First Avenue, Miami, FL 33132",
        us("100", "1ST", "AVE", "MIAMI", "FL", "33132", prefix_directional="NE"),
    ),
    (
        "700 Louisiana St Ste 4700 Houston TX 77002",
        us("700", "LOUISIANA", "ST", "HOUSTON", "TX", "77002", address_line2="STE 4700"),
    ),
    (
        "1234 N 10th St #5, Milwaukee, WI 53205",
        us(
            "1234",
            "10TH",
            "ST",
            "MILWAUKEE",
            "WI",
            "53205",
            prefix_directional="N",
            address_line2="# 5",
        ),
    ),
    (
        "55 W 46th St Apt 12C, New York NY 10036",
        us(
            "55",
            "46TH",
            "ST",
            "NEW YORK",
            "NY",
            "10036",
            prefix_directional="W",
            address_line2="APT 12C",
        ),
    ),
    (
        "1 Market St Fl 3, San Francisco CA 94105",
        us("1", "MARKET", "ST", "SAN FRANCISCO", "CA", "94105", address_line2="FL 3"),
    ),
    (
        "1 Hacker Way, Building 10, Menlo Park, CA 94025",
        us("1", "HACKER", "WAY", "MENLO PARK", "CA", "94025", address_line2="BLDG 10"),
    ),
    (
        "1100 Congress Ave Unit 2, Austin TX 78701",
        us("1100", "CONGRESS", "AVE", "AUSTIN", "TX", "78701", address_line2="UNIT 2"),
    ),
    (
        "600 Montgomery St, San Francisco, CA 94111, USA",
        us("600", "MONTGOMERY", "ST", "SAN FRANCISCO", "CA", "94111"),
    ),
    (
        "1211 Avenue of the Americas, New York, NY 10036",
        us("1211", "AVENUE OF THE AMERICAS", None, "NEW YORK", "NY", "10036"),
    ),
    (
        "101 Independence Ave SE, Washington, DC 20540",
        us("101", "INDEPENDENCE", "AVE", "WASHINGTON", "DC", "20540", post_directional="SE"),
    ),
    (
        "1000 5th Ave, New York, NY 10028",
        us("1000", "5TH", "AVE", "NEW YORK", "NY", "10028"),
    ),
    (
        "151 Third Street, San Francisco, CA 94103",
        us("151", "3RD", "ST", "SAN FRANCISCO", "CA", "94103"),
    ),
    (
        "100 Calle del Cristo, San Juan, PR 00901",
        us("100", "CALLE DEL CRISTO", None, "SAN JUAN", "PR", "00901"),
    ),
    (
        "1 Twenty-First Street, Brooklyn NY 11232",
        us("1", "21ST", "ST", "BROOKLYN", "NY", "11232"),
    ),
    (
        "600 N. Michigan Ave., Apartment #2, Chicago, Ill. 60611",
        us(
            "600",
            "MICHIGAN",
            "AVE",
            "CHICAGO",
            "IL",
            "60611",
            prefix_directional="N",
            address_line2="APT 2",
        ),
    ),
    (
        "2000 Edwards Ave, Ft. Myers, FL 33901",
        us("2000", "EDWARDS", "AVE", "FORT MYERS", "FL", "33901"),
    ),
    # Puerto Rico: the street type before the name stays in the street name (Pub 28 29).
    (
        "1055 Ave Ashford, San Juan, PR 00907",
        us("1055", "AVE ASHFORD", None, "SAN JUAN", "PR", "00907"),
    ),
    (
        "1055 Avenida Ashford, San Juan, Puerto Rico 00907",
        us("1055", "AVE ASHFORD", None, "SAN JUAN", "PR", "00907"),
    ),
    # CALLE VISTA: a Spanish street is not split at a word that is an English suffix.
    (
        "12 Calle Vista, San Juan, PR 00901",
        us("12", "CALLE VISTA", None, "SAN JUAN", "PR", "00901"),
    ),
    # The urbanization is part of a Puerto Rico address: kept, not dropped.
    (
        "Urb Las Gladiolas, 150 Calle A, San Juan, PR 00923",
        us("150", "CALLE A", None, "SAN JUAN", "PR", "00923", address_line2="URB LAS GLADIOLAS"),
    ),
    (
        "Urbanización Las Gladiolas, 150 Calle A Apt 2, San Juan, PR 00923",
        us(
            "150",
            "CALLE A",
            None,
            "SAN JUAN",
            "PR",
            "00923",
            address_line2="URB LAS GLADIOLAS APT 2",
        ),
    ),
    # A kilometre marker keeps its decimal point: KM 54 is another place.
    (
        "Carr 2 Km 5.4, Bayamon, PR 00959",
        us("KM 5.4", "CARR 2", None, "BAYAMON", "PR", "00959"),
    ),
    (
        "Carretera 2 Kilometro 5.4, Bayamón, PR 00959",
        us("KM 5.4", "CARR 2", None, "BAYAMON", "PR", "00959"),
    ),
    # Wisconsin/Illinois grid house numbers are one house number.
    (
        "W204 N11509 Goldendale Rd, Germantown, WI 53022",
        us("W204N11509", "GOLDENDALE", "RD", "GERMANTOWN", "WI", "53022"),
    ),
    (
        "W204N11509 Goldendale Road, Germantown, Wisconsin 53022",
        us("W204N11509", "GOLDENDALE", "RD", "GERMANTOWN", "WI", "53022"),
    ),
    # Several units, in the order written.
    (
        "123 Main St Rm 101 Bldg C, Springfield, IL 62701",
        us("123", "MAIN", "ST", "SPRINGFIELD", "IL", "62701", address_line2="RM 101 BLDG C"),
    ),
    (
        "123 Main St, Building C, Floor 2, Room 101, Springfield, IL 62701",
        us("123", "MAIN", "ST", "SPRINGFIELD", "IL", "62701", address_line2="BLDG C FL 2 RM 101"),
    ),
    # The state on its own, after the ZIP's comma, or the ZIP after the state's.
    (
        "123 Main St, Springfield, IL, 62701",
        us("123", "MAIN", "ST", "SPRINGFIELD", "IL", "62701"),
    ),
    (
        "1600 Pennsylvania Ave NW, Washington DC 20500",
        us("1600", "PENNSYLVANIA", "AVE", "WASHINGTON", "DC", "20500", post_directional="NW"),
    ),
    (
        "1900 Kanawha Blvd E, Charleston, West Virginia 25305",
        us("1900", "KANAWHA", "BLVD", "CHARLESTON", "WV", "25305", post_directional="E"),
    ),
    # The other territories.
    (
        "5500 Veterans Dr, Charlotte Amalie, VI 00802",
        us("5500", "VETERANS", "DR", "CHARLOTTE AMALIE", "VI", "00802"),
    ),
]

# Not dispatchable: refused with a reason on "address"; what could be read is still returned.
REFUSED: list[tuple[str, Address, str]] = [
    ("PO Box 1234, Austin, TX 78767", Address(city="AUSTIN", state_code="TX", zip="78767"), "PO"),
    (
        "P.O. Box 9999, Washington DC 20013",
        Address(city="WASHINGTON", state_code="DC", zip="20013"),
        "PO box",
    ),
    (
        "Post Office Box 44, Chicago IL 60690",
        Address(city="CHICAGO", state_code="IL", zip="60690"),
        "PO box",
    ),
    ("Box 15, Marfa TX 79843", Address(city="MARFA", state_code="TX", zip="79843"), "PO box"),
    (
        "RR 2 Box 15, Lyndonville, VT 05851",
        Address(city="LYNDONVILLE", state_code="VT", zip="05851"),
        "rural-route",
    ),
    (
        "Rural Route 1 Box 100, Hartford, SD 57033",
        Address(city="HARTFORD", state_code="SD", zip="57033"),
        "rural-route",
    ),
    (
        "HC 65 Box 4A, Alpine TX 79830",
        Address(city="ALPINE", state_code="TX", zip="79830"),
        "highway-contract",
    ),
    (
        "General Delivery, Juneau, AK 99801",
        Address(city="JUNEAU", state_code="AK", zip="99801"),
        "General Delivery",
    ),
]
REFUSED = [(raw, dataclasses.replace(a, country="US"), why) for raw, a, why in REFUSED]


def corpus_id(case: tuple[Any, ...]) -> str:
    return str(case[0]).strip()[:40]


@pytest.mark.parametrize(("raw", "expected"), CORPUS, ids=[corpus_id(c) for c in CORPUS])
def test_corpus_free_form(raw: str, expected: Address) -> None:
    result = normalize(raw)
    assert result.address == expected
    assert result.errors == ()
    assert result.warnings == ()
    assert result.valid


@pytest.mark.parametrize(("raw", "expected"), CORPUS, ids=[corpus_id(c) for c in CORPUS])
def test_corpus_canonical_is_a_fixed_point(raw: str, expected: Address) -> None:
    assert canonical(expected) == expected
    again = normalize(expected)
    assert again.address == expected
    assert again.valid
    assert again.warnings == ()
    assert normalize(as_json(expected)).address == expected


def test_corpus_is_large_and_its_zips_are_real() -> None:
    assert len(CORPUS) + len(REFUSED) >= 40
    for _, address in CORPUS + [(r, a) for r, a, _ in REFUSED]:
        assert address.zip is not None
        records = zipcodes.matching(address.zip)  # type: ignore[no-untyped-call]
        assert [r["state"] for r in records] == [address.state_code], address


@pytest.mark.parametrize(("raw", "expected", "why"), REFUSED, ids=[c[0] for c in REFUSED])
def test_not_dispatchable_is_refused(raw: str, expected: Address, why: str) -> None:
    result = normalize(raw)
    assert not result.valid
    assert result.address == expected
    [error] = [e for e in result.errors if e.field == "address"]
    assert error.message.startswith("not a dispatchable location")
    assert why.lower() in error.message.lower()
    assert normalize(expected).address == expected


# --------------------------------------------------------------------------- equivalences

SAME_PLACE: list[tuple[object, object]] = [
    ("350 5th Ave, New York, NY 10118", "350 FIFTH AVENUE NEW YORK NEW YORK 10118"),
    (
        "1600 Pennsylvania Ave. N.W., Washington, D.C. 20500",
        "1600 pennsylvania avenue northwest, washington dc 20500",
    ),
    ("12A Elm Street, Concord, NH 03301", "12-A Elm St, Concord, New Hampshire 03301"),
    ("14200 US Hwy 1, Juno Beach, FL 33408", "14200 U.S. Highway 1, Juno Beach, Florida 33408"),
    ("1234 N 10th St #5, Milwaukee WI 53205", "1234 North Tenth Street # 5, Milwaukee WI 53205"),
    (
        "233 S Wacker Dr Ste 9900, Chicago IL 60606",
        {
            "houseNumber": "233",
            "prefixDirectional": "South",
            "streetName": "Wacker Drive",
            "addressLine2": "Suite #9900",
            "city": "Chicago",
            "stateCode": "Illinois",
            "zip": "60606",
            "country": "United States",
        },
    ),
    (
        "108 1/2 W Main St, Mesa, AZ 85201",
        {
            "houseNumber": "108 ½",
            "streetName": "main",
            "streetSuffix": "street",
            "prefixDirectional": "w.",
            "city": "mesa",
            "stateCode": "az",
            "zip": "85201",
        },
    ),
    (
        "700 Clark Ave, Saint Louis, MO 63102",
        Address(
            house_number="700",
            street_name="Clark",
            street_suffix="Avenue",
            city="St. Louis",
            state_code="MO",
            zip="63102",
        ),
    ),
    ("2000 Edwards Ave, Fort Myers, FL 33901", "2000 Edwards Avenue, Ft Myers, FL 33901-1234"),
]


@pytest.mark.parametrize(("one", "other"), SAME_PLACE, ids=[str(i) for i in range(len(SAME_PLACE))])
def test_two_spellings_of_one_place_are_equal(one: Any, other: Any) -> None:
    a, b = normalize(one), normalize(other)
    assert a.valid, a.errors
    assert b.valid, b.errors
    assert a.address is not None and b.address is not None
    assert dataclasses.replace(a.address, plus_four=None) == dataclasses.replace(
        b.address, plus_four=None
    )


# --------------------------------------------------------------------------- structured input


STRUCTURED: list[tuple[dict[str, object], Address]] = [
    (
        {
            "houseNumber": "1600",
            "streetName": "Pennsylvania",
            "streetSuffix": "Avenue",
            "postDirectional": "Northwest",
            "city": "Washington",
            "stateCode": "DC",
            "zip": "20500",
        },
        us("1600", "PENNSYLVANIA", "AVE", "WASHINGTON", "DC", "20500", post_directional="NW"),
    ),
    (
        {
            "houseNumber": "120 - 55",
            "streetName": "queens boulevard",
            "city": "kew gardens",
            "stateCode": "new york",
            "zip": "11415",
            "country": "USA",
        },
        us("120-55", "QUEENS", "BLVD", "KEW GARDENS", "NY", "11415"),
    ),
    (
        {
            "houseNumber": "30",
            "streetName": "Rockefeller",
            "streetSuffix": "Plaza",
            "addressLine2": "Floor 65",
            "city": "New York",
            "stateCode": "NY",
            "zip": "10112",
            "plusFour": "0015",
        },
        us(
            "30",
            "ROCKEFELLER",
            "PLZ",
            "NEW YORK",
            "NY",
            "10112",
            address_line2="FL 65",
            plus_four="0015",
        ),
    ),
    (
        {
            "houseNumber": "14200",
            "streetName": "US Hwy 1",
            "city": "Juno Beach",
            "stateCode": "FL",
            "zip": "33408",
        },
        us("14200", "US HIGHWAY 1", None, "JUNO BEACH", "FL", "33408"),
    ),
    (
        {
            "houseNumber": "55",
            "prefixDirectional": "W",
            "streetName": "46",
            "streetSuffix": "St",
            "addressLine2": "apt. 12-c",
            "city": "New York",
            "stateCode": "NY",
            "zip": "10036",
        },
        us(
            "55",
            "46TH",
            "ST",
            "NEW YORK",
            "NY",
            "10036",
            prefix_directional="W",
            address_line2="APT 12-C",
        ),
    ),
    (
        {
            "houseNumber": "1",
            "streetName": "Market",
            "streetSuffix": "ST",
            "addressLine2": "4B",
            "city": "San Francisco",
            "stateCode": "CA",
            "zip": "94105",
            "country": None,
        },
        us("1", "MARKET", "ST", "SAN FRANCISCO", "CA", "94105", address_line2="# 4B"),
    ),
    (
        {
            "houseNumber": "100",
            "streetName": "Calle del Cristo",
            "city": "Old San Juan",
            "stateCode": "Puerto Rico",
            "zip": "00901",
        },
        us("100", "CALLE DEL CRISTO", None, "OLD SAN JUAN", "PR", "00901"),
    ),
]


@pytest.mark.parametrize(
    ("street", "expected"),
    [
        ("Pennsylvania Ave NW", ("PENNSYLVANIA", "AVE", "NW")),
        ("Park Avenue South", ("PARK", "AVE", "S")),
        ("Main St N Apt 4B", ("MAIN", "ST", "N")),
        ("Avenue N", ("AVENUE N", None, None)),  # Brooklyn's: the letter is the name
        ("West End Ave", ("WEST END", "AVE", None)),
    ],
)
def test_a_directional_after_the_suffix_in_street_name_is_the_post_directional(
    street: str, expected: tuple[str, str | None, str | None]
) -> None:
    """The README's wiremap example writes ``"streetName": "Pennsylvania Ave NW"``: it was
    kept whole, so the subnet's place derived another location ID than a device's report of
    ``1600 Pennsylvania Ave NW, ...`` (two carrier locations for one place)."""
    structured = normalize(
        {"houseNumber": "1600", "streetName": street, "city": "Washington", "stateCode": "DC"}
        | {"zip": "20500"}
    ).address
    assert structured is not None
    got = (structured.street_name, structured.street_suffix, structured.post_directional)
    assert got == expected
    if expected[2] is not None:
        line = normalize(f"1600 {street}, Washington, DC 20500").address
        assert line is not None
        assert location_id_for(dataclasses.replace(structured, address_line2=None)) == (
            location_id_for(dataclasses.replace(line, address_line2=None))
        )


@pytest.mark.parametrize(
    ("raw", "expected"), STRUCTURED, ids=[str(i) for i in range(len(STRUCTURED))]
)
def test_structured_input(raw: dict[str, object], expected: Address) -> None:
    result = normalize(raw)
    assert result.address == expected
    assert result.errors == ()
    assert result.warnings == ()
    assert normalize(result.address).address == expected


@pytest.mark.parametrize(
    ("street", "line2", "expected"),
    [
        ("5th Ave #12", None, "# 12"),
        ("5th Ave Apt #12", None, "APT 12"),
        ("5th Ave. Suite# 12B", None, "STE 12B"),
        ("5th Ave #12", "Floor 3", "# 12 FL 3"),
        # Pub 28 designators without "#", each with its number where it needs one.
        ("5th Ave Ste 3000", None, "STE 3000"),
        ("5th Avenue Suite 3000", None, "STE 3000"),
        ("5th Ave, Apartment 4B", None, "APT 4B"),
        ("5th Ave Apt C", None, "APT C"),
        ("5th Ave Basement", None, "BSMT"),
        ("5th Ave Bldg C Rm 101", None, "BLDG C RM 101"),
        ("5th Ave Building 2", None, "BLDG 2"),
        ("5th Ave Department 12", None, "DEPT 12"),
        ("5th Ave Fl 30", None, "FL 30"),
        ("5th Ave 30th Floor", None, "FL 30"),
        ("5th Ave Front", None, "FRNT"),
        ("5th Ave Hangar 2", None, "HNGR 2"),
        ("5th Ave Key 7", None, "KEY 7"),
        ("5th Ave Lobby", None, "LBBY"),
        ("5th Ave Lot 12", None, "LOT 12"),
        ("5th Ave Lower", None, "LOWR"),
        ("5th Ave Office", None, "OFC"),
        ("5th Ave Penthouse", None, "PH"),
        ("5th Ave PH 2", None, "PH 2"),
        ("5th Ave Pier 7", None, "PIER 7"),
        ("5th Ave Rear", None, "REAR"),
        ("5th Ave Room 101", None, "RM 101"),
        ("5th Ave Side", None, "SIDE"),
        ("5th Ave Slip 4", None, "SLIP 4"),
        ("5th Ave Space 9", None, "SPC 9"),
        ("5th Ave Stop 3", None, "STOP 3"),
        ("5th Ave Trailer 5", None, "TRLR 5"),
        ("5th Ave Unit 12-B", None, "UNIT 12-B"),
        ("5th Ave Upper", None, "UPPR"),
        ("5th Ave Bldg C #12", None, "BLDG C # 12"),
        # A unit given twice: another kind is kept too, the same one is not repeated.
        ("5th Ave Ste 3000", "Floor 30", "STE 3000 FL 30"),
        ("5th Ave Ste 3000", "Suite 3000", "STE 3000"),
        ("5th Ave Ste 3000", "Bldg A, Ste 3000", "BLDG A STE 3000"),
        ("5th Ave #12", "# 12", "# 12"),
    ],
)
def test_a_unit_in_the_street_name_goes_to_the_suite_line(
    street: str, line2: str | None, expected: str
) -> None:
    """A structured street name can hold a unit: after ``#`` the "#" was dropped as punctuation
    and the carrier sent ``350 5TH AVE 12``; after a designator (``5TH AVE STE 3000``) the
    suite was in the street line, not where the PSAP looks for it."""
    raw = {"houseNumber": "350", "streetName": street, "city": "New York", "stateCode": "NY"}
    result = normalize(raw | {"zip": "10118", "addressLine2": line2})
    assert result.errors == ()
    assert result.address is not None
    assert (result.address.street_name, result.address.street_suffix) == ("5TH", "AVE")
    assert result.address.address_line2 == expected
    assert canonical(result.address) == result.address


@pytest.mark.parametrize(
    ("street", "state", "alone", "expected"),
    [
        ("Park Ave S Fl 3", "NY", "Park Ave S", "FL 3"),
        ("Main St N Apt 4B", "IL", "Main St N", "APT 4B"),
        ("Main St. N. Rear", "IL", "Main St N", "REAR"),
        ("US Hwy 1 Ste 3", "FL", "US Hwy 1", "STE 3"),
        ("State Route 9 Lot 14", "NY", "State Route 9", "LOT 14"),
        ("Calle Luna Apt 3", "PR", "Calle Luna", "APT 3"),
        ("Willow Creek Lot 5", "CA", "Willow Creek", "LOT 5"),
        ("Pier 39 Ave Unit 2", "CA", "Pier 39 Ave", "UNIT 2"),
    ],
)
def test_a_unit_after_a_directional_or_a_highway_goes_to_the_suite_line(
    street: str, state: str, alone: str, expected: str
) -> None:
    """The street is what it is without the unit written after it."""
    with_unit = canonical(Address(house_number="10", street_name=street, state_code=state))
    without = canonical(Address(house_number="10", street_name=alone, state_code=state))
    assert with_unit == dataclasses.replace(without, address_line2=expected)
    assert canonical(with_unit) == with_unit


@pytest.mark.parametrize(
    ("street", "suffix", "expected"),
    [
        ("Suite Rd", None, ("SUITE", "RD")),
        ("Apartment Way", None, ("APARTMENT", "WAY")),
        ("Lot St", None, ("LOT", "ST")),
        ("Unit Dr", None, ("UNIT", "DR")),
        ("Pier 39 Ave", None, ("PIER 39", "AVE")),
        ("Floor Ave", None, ("FLOOR", "AVE")),
        ("Office Park Dr", None, ("OFFICE PARK", "DR")),
        ("Front St", None, ("FRONT", "ST")),
        ("Rear Admiral Way", None, ("REAR ADMIRAL", "WAY")),
        ("Key West Dr", None, ("KEY WEST", "DR")),
        ("Stop 12 Rd", None, ("STOP 12", "RD")),
        ("Lake Front Dr", None, ("LAKE FRONT", "DR")),
        ("Lake Front", None, ("LAKE FRONT", None)),
        ("Lake Front", "Dr", ("LAKE FRONT", "DR")),
        ("Willow Creek Side", None, ("WILLOW CREEK SIDE", None)),
        ("Willow Creek Side", "Dr", ("WILLOW CREEK SIDE", "DR")),
        ("Oak Park Upper", None, ("OAK PARK UPPER", None)),
        ("Park Ave Suite", None, ("PARK AVE SUITE", None)),
        ("Upper West Side", None, ("UPPER WEST SIDE", None)),
        ("Spruce Park Office", None, ("SPRUCE PARK OFFICE", None)),
    ],
)
def test_a_street_named_with_unit_words_keeps_them(
    street: str, suffix: str | None, expected: tuple[str, str | None]
) -> None:
    """Only a designator after a complete street (a name, then its suffix or a directional)
    is a unit; a designator that needs no number only after a roadway type (``ST``, not
    ``CREEK``); one that needs a number only with it."""
    result = normalize({**GOOD, "streetName": street, "streetSuffix": suffix})
    assert result.address is not None
    assert (result.address.street_name, result.address.street_suffix) == expected
    assert result.address.address_line2 is None


@pytest.mark.parametrize(
    ("street", "line2", "fragment"),
    [
        ("Jersey St Ste 3000", "Suite 3001", "names STE twice"),
        ("Jersey St Apt 4", "Bldg C Apt 5", "names APT twice"),
        ("Jersey St Rm 101", "Bldg " + "C" * 50, "too long"),
    ],
)
def test_a_unit_in_the_street_and_another_in_line2_is_refused_not_dropped(
    street: str, line2: str, fragment: str
) -> None:
    """Two units of one kind, or more than the suite line holds: the caller is told, neither
    is dropped."""
    result = normalize({**GOOD, "streetName": street, "streetSuffix": None, "addressLine2": line2})
    assert [(e.field, fragment in e.message) for e in result.errors] == [("addressLine2", True)]


def ca(
    house_number: str,
    street_name: str,
    street_suffix: str | None,
    city: str,
    province: str,
    postal: str,
) -> Address:
    return Address(
        house_number=house_number,
        street_name=street_name,
        street_suffix=street_suffix,
        city=city,
        state_code=province,
        zip=postal,
        country="CA",
    )


CANADA: list[tuple[dict[str, object], Address]] = [
    (
        {
            "houseNumber": "24",
            "streetName": "Sussex",
            "streetSuffix": "Drive",
            "city": "Ottawa",
            "stateCode": "Ontario",
            "zip": "k1m1m4",
            "country": "Canada",
        },
        ca("24", "SUSSEX", "DR", "OTTAWA", "ON", "K1M 1M4"),
    ),
    (
        {
            "houseNumber": "290",
            "streetName": "Bremner Blvd",
            "city": "Toronto",
            "stateCode": "ON",
            "zip": "M5V 3L9",
            "country": "CA",
        },
        ca("290", "BREMNER", "BLVD", "TORONTO", "ON", "M5V 3L9"),
    ),
    (
        {
            "houseNumber": "1045",
            "streetName": "Rue des Parlementaires",
            "city": "Québec",
            "stateCode": "Québec",
            "zip": "G1A-1A3",
            "country": "can",
        },
        ca("1045", "RUE DES PARLEMENTAIRES", None, "QUEBEC", "QC", "G1A 1A3"),
    ),
    (
        {
            "houseNumber": "750",
            "streetName": "Hornby",
            "streetSuffix": "St",
            "city": "Vancouver",
            "stateCode": "British Columbia",
            "zip": "v6z 2h7",
            "country": "Canada",
        },
        ca("750", "HORNBY", "ST", "VANCOUVER", "BC", "V6Z 2H7"),
    ),
    (
        {
            "houseNumber": "100",
            "streetName": "Prince Philip",
            "streetSuffix": "Dr",
            "city": "St. John's",
            "stateCode": "NL",
            "zip": "A1B 4J6",
            "country": "CA",
        },
        ca("100", "PRINCE PHILIP", "DR", "ST JOHNS", "NL", "A1B 4J6"),
    ),
]


@pytest.mark.parametrize(("raw", "expected"), CANADA, ids=[str(c[1].city) for c in CANADA])
def test_structured_canadian_addresses(raw: dict[str, object], expected: Address) -> None:
    result = normalize(raw)
    assert result.address == expected
    assert result.errors == ()
    assert normalize(expected).address == expected
    assert canonical(expected) == expected


#: Canadian free-form lines, English and French, as the corpus above (the postal code's
#: first letter is checked against the province, as a ZIP against its state).
CANADA_FREE_FORM: list[tuple[str, Address]] = [
    (
        "290 Bremner Blvd, Toronto, ON M5V 3L9",
        ca("290", "BREMNER", "BLVD", "TORONTO", "ON", "M5V 3L9"),
    ),
    (
        "290 Bremner Boulevard, Toronto, Ontario M5V3L9, Canada",
        ca("290", "BREMNER", "BLVD", "TORONTO", "ON", "M5V 3L9"),
    ),
    (
        "1 Rue Notre-Dame O, Montréal, QC H2Y 1B6",
        dataclasses.replace(
            ca("1", "RUE NOTRE-DAME", None, "MONTREAL", "QC", "H2Y 1B6"), post_directional="O"
        ),
    ),
    (
        "1 rue Notre-Dame Ouest, Montreal, Québec H2Y 1B6",
        dataclasses.replace(
            ca("1", "RUE NOTRE-DAME", None, "MONTREAL", "QC", "H2Y 1B6"), post_directional="O"
        ),
    ),
    (
        "1000 Boulevard René-Lévesque Est, Montréal, QC H2L 2L5",
        dataclasses.replace(
            ca("1000", "BOUL RENE-LEVESQUE", None, "MONTREAL", "QC", "H2L 2L5"),
            post_directional="E",
        ),
    ),
    # An article before it makes EST part of the name, not a directional.
    (
        "45 Rue de l'Est, Québec, QC G1K 3A1",
        ca("45", "RUE DE LEST", None, "QUEBEC", "QC", "G1K 3A1"),
    ),
    (
        "1045 Rue des Parlementaires, Bureau 3, Québec, QC G1A 1A3",
        dataclasses.replace(
            ca("1045", "RUE DES PARLEMENTAIRES", None, "QUEBEC", "QC", "G1A 1A3"),
            address_line2="BUREAU 3",
        ),
    ),
    (
        "1045 Rue des Parlementaires, Suite 3, Québec, QC G1A 1A3",
        dataclasses.replace(
            ca("1045", "RUE DES PARLEMENTAIRES", None, "QUEBEC", "QC", "G1A 1A3"),
            address_line2="STE 3",
        ),
    ),
    # AVENUE first, an English suffix last: an English street named Avenue.
    ("1 Avenue Rd, Toronto, ON M5R 2G8", ca("1", "AVENUE", "RD", "TORONTO", "ON", "M5R 2G8")),
    (
        "750 Hornby St, Vancouver, BC V6Z 2H7",
        ca("750", "HORNBY", "ST", "VANCOUVER", "BC", "V6Z 2H7"),
    ),
]


@pytest.mark.parametrize(
    ("raw", "expected"), CANADA_FREE_FORM, ids=[corpus_id(c) for c in CANADA_FREE_FORM]
)
def test_canadian_free_form(raw: str, expected: Address) -> None:
    result = normalize(raw)
    assert result.address == expected
    assert result.errors == ()
    assert result.warnings == ()
    assert normalize(expected).address == expected
    assert canonical(expected) == expected


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ("290 Bremner Blvd, Toronto, BC M5V 3L9", "zip", "not in BC"),
        ("290 Bremner Blvd, Toronto, ON, Canada", "zip", "required"),
        ("1 Main St, Springfield, IL 62701, Canada", "stateCode", "province"),
        # Without commas the city cannot be told from a French street name: say so.
        ("290 Bremner Blvd Toronto Ontario CA", "address", "commas around the city"),
        ("290 Bremner Blvd Toronto ON M5V 3L9", "address", "commas around the city"),
    ],
)
def test_canadian_free_form_refusals_say_why(raw: str, field: str, fragment: str) -> None:
    result = normalize(raw)
    assert not result.valid
    messages = [e.message for e in result.errors if e.field == field]
    assert messages, result.errors
    assert any(fragment in m for m in messages), messages


# --------------------------------------------------------------------------- validation rules

GOOD: dict[str, object] = {
    "houseNumber": "4",
    "streetName": "Jersey",
    "streetSuffix": "St",
    "city": "Boston",
    "stateCode": "MA",
    "zip": "02215",
}
GOOD_CA: dict[str, object] = {
    "houseNumber": "24",
    "streetName": "Sussex",
    "streetSuffix": "Dr",
    "city": "Ottawa",
    "stateCode": "ON",
    "zip": "K1M 1M4",
    "country": "CA",
}


def test_the_good_addresses_are_valid() -> None:
    assert normalize(GOOD).valid
    assert normalize(GOOD_CA).valid


RULES: list[tuple[str, dict[str, object], str, str]] = [
    ("house number required", {"houseNumber": None}, "houseNumber", "required"),
    ("street name required", {"streetName": "  "}, "streetName", "required"),
    ("city required", {"city": None}, "city", "required"),
    ("state required", {"stateCode": ""}, "stateCode", "required"),
    ("zip required", {"zip": None}, "zip", "required"),
    ("house number shape", {"houseNumber": "MAIN"}, "houseNumber", "house number"),
    ("house number length", {"houseNumber": "1" * 25}, "houseNumber", "too long"),
    ("house suffix shape", {"houseSuffix": "ABCDE"}, "houseSuffix", "suffix"),
    ("directional", {"prefixDirectional": "Up"}, "prefixDirectional", "directional"),
    ("post directional", {"postDirectional": "XX"}, "postDirectional", "directional"),
    ("unknown state", {"stateCode": "ZZ"}, "stateCode", "not a US state"),
    ("military state", {"stateCode": "AE"}, "stateCode", "military"),
    ("zip format", {"zip": "0221"}, "zip", "5-digit"),
    ("zip letters", {"zip": "ABCDE"}, "zip", "5-digit"),
    ("plus four", {"plusFour": "12"}, "plusFour", "4 digits"),
    ("unknown zip", {"zip": "00000"}, "zip", "unknown ZIP"),
    ("zip in another state", {"zip": "10118"}, "zip", "is in NY, not in MA"),
    ("line 2 length", {"addressLine2": "STE " + "9" * 60}, "addressLine2", "at most 60"),
    ("field length", {"city": "B" * 101}, "city", "at most 100"),
    ("wrong type", {"zip": 2215}, "zip", "must be a string"),
    ("wrong type list", {"streetName": ["Jersey"]}, "streetName", "must be a string"),
    ("country", {"country": "Mexico"}, "country", "unsupported country"),
    ("po box in street", {"streetName": "PO Box", "houseNumber": "12"}, "streetName", "PO box"),
    ("po box in line 2", {"addressLine2": "P.O. Box 12"}, "addressLine2", "PO box"),
    ("rural route", {"houseNumber": "15", "streetName": "RR 2 Box"}, "streetName", "rural-route"),
    ("general delivery", {"streetName": "General Delivery"}, "streetName", "General Delivery"),
]


@pytest.mark.parametrize(
    ("raw_patch", "field", "fragment"), [r[1:] for r in RULES], ids=[r[0] for r in RULES]
)
def test_field_level_errors(raw_patch: dict[str, object], field: str, fragment: str) -> None:
    result = normalize({**GOOD, **raw_patch})
    assert not result.valid
    messages = [e.message for e in result.errors if e.field == field]
    assert messages, result.errors
    assert any(fragment.lower() in m.lower() for m in messages), messages


CA_RULES: list[tuple[str, dict[str, object], str, str]] = [
    ("postal format", {"zip": "12345"}, "zip", "postal code"),
    ("postal letters D F I O Q U", {"zip": "D1A 1A1"}, "zip", "postal code"),
    ("postal in another province", {"zip": "V6Z 2H7"}, "zip", "not in ON"),
    ("province", {"stateCode": "NY"}, "stateCode", "province"),
    ("plus four", {"plusFour": "1234"}, "plusFour", "not used"),
]


@pytest.mark.parametrize(
    ("raw_patch", "field", "fragment"), [r[1:] for r in CA_RULES], ids=[r[0] for r in CA_RULES]
)
def test_canadian_field_level_errors(
    raw_patch: dict[str, object], field: str, fragment: str
) -> None:
    result = normalize({**GOOD_CA, **raw_patch})
    assert not result.valid
    messages = [e.message for e in result.errors if e.field == field]
    assert any(fragment.lower() in m.lower() for m in messages), result.errors


def test_bad_fields_are_dropped_from_the_output_but_the_rest_is_kept() -> None:
    result = normalize({**GOOD, "zip": 2215, "city": "x" * 1000})
    assert result.address is not None
    assert result.address.zip is None and result.address.city is None
    assert result.address.street_name == "JERSEY"
    assert {"zip", "city"} <= fields_of(result)


def test_a_field_too_long_once_canonical_is_dropped_and_stays_dropped() -> None:
    result = normalize({**GOOD, "city": " ".join(["ST"] * 33)})  # 98 chars -> 197 as SAINT
    assert result.address is not None and result.address.city is None
    assert "at most 100" in next(e.message for e in result.errors if e.field == "city")
    assert normalize(result.address).address == result.address


def test_unknown_keys_are_ignored_with_a_warning() -> None:
    result = normalize({**GOOD, "zipCode": "02215"})
    assert result.valid
    assert FieldError("zipCode", "unknown address field ignored") in result.warnings


def test_intersection_is_not_dispatchable() -> None:
    result = normalize("Broadway & W 42nd St, New York, NY 10036")
    assert not result.valid
    assert "intersection" in result.errors[0].message


def test_two_units_of_one_kind_are_an_error_not_a_guess() -> None:
    result = normalize("1 Main St Apt 4 Apt 5, Boston MA 02108")
    assert not result.valid
    assert [e.field for e in result.errors] == ["addressLine2"]
    assert "APT twice" in result.errors[0].message


@pytest.mark.parametrize(
    "raw",
    [
        "500 E 1st St Apt, Springfield, IL 62701",
        {**GOOD, "addressLine2": "Suite"},
        {**GOOD, "addressLine2": "Bldg C Apt"},
    ],
)
def test_a_unit_without_its_number_is_a_warning(raw: object) -> None:
    result = normalize(raw)
    assert result.valid
    [warning] = result.warnings
    assert warning.field == "addressLine2"
    assert "has no number" in warning.message


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ({**GOOD, "houseNumber": "1.5"}, "houseNumber", "kilometre marker"),
        ("1.5 Main St, Springfield, IL 62701", "houseNumber", "decimal point"),
        ({**GOOD, "houseNumber": "KM 1234"}, "houseNumber", "house number"),
    ],
)
def test_a_decimal_point_is_never_dropped(raw: object, field: str, fragment: str) -> None:
    """Dropped, ``1.5`` would be house 15: refused instead, saying why."""
    result = normalize(raw)
    assert not result.valid
    assert any(fragment in e.message for e in result.errors if e.field == field), result.errors


CYRILLIC_A = "\u0410"


@pytest.mark.parametrize(
    ("raw", "field", "letter"),
    [
        (f"350 Fifth Ave, Suite 1{CYRILLIC_A}, New York, NY 10118", "address", CYRILLIC_A),
        ({**GOOD, "addressLine2": f"STE 1{CYRILLIC_A}"}, "addressLine2", CYRILLIC_A),
        ({**GOOD, "addressLine2": "BLDG \u6771"}, "addressLine2", "\u6771"),
        ({**GOOD, "streetName": "\u0391LPHA"}, "streetName", "\u0391"),  # a Greek Alpha
    ],
)
def test_a_letter_with_no_latin_form_is_refused_not_dropped(
    raw: object, field: str, letter: str
) -> None:
    """Regression: folding turned each such letter into a space: suite 1 and a Cyrillic A was
    provisioned as suite 1, another room; a building in CJK lost its name with a warning."""
    result = normalize(raw)
    assert not result.valid
    messages = [e.message for e in result.errors if e.field == field]
    assert messages and f'"{letter}"' in messages[0], result.errors


@pytest.mark.parametrize(
    ("line2", "expected"),
    [
        ("RM \u0661\u0662", "RM 12"),  # Arabic-Indic digits, as an Arabic-locale phone writes
        ("STE \u096a", "STE 4"),  # a Devanagari digit
        ("UNIT 5\u200bB", "UNIT 5B"),  # a zero-width space is nothing, not a space
        ("APT 4\u00adC", "APT 4C"),  # so is a soft hyphen
        ("STE \u00d81", "STE O1"),  # Latin letters Unicode does not decompose
        ("STE 2\u00c6", "STE 2AE"),
    ],
)
def test_digits_of_any_script_and_invisible_characters_keep_the_unit(
    line2: str, expected: str
) -> None:
    """Regression: ``RM`` and two Arabic-Indic digits was provisioned as ``RM`` (a warning:
    no number), the unit lost; ``UNIT 5``, a zero-width space, ``B`` became ``UNIT 5 B``."""
    result = normalize({**GOOD, "addressLine2": line2})
    assert result.valid, result.errors
    assert result.address is not None
    assert result.address.address_line2 == expected
    free = normalize(f"1600 Pennsylvania Ave NW, {line2}, Washington, DC 20500").address
    assert free is not None
    assert free.address_line2 == expected


@pytest.mark.parametrize("raw", ["", "   ", ",,,", "\x00\x01"])
def test_empty_free_form(raw: str) -> None:
    result = normalize(raw)
    assert result.address is None
    assert result.errors == (FieldError("address", "is required"),)


def test_huge_inputs_are_errors() -> None:
    result = normalize("1 Main St, Boston, MA 02108 " * 1000)
    assert result.address is None
    assert "at most 500" in result.errors[0].message
    big = normalize({**GOOD, "streetName": "A" * 1_000_000})
    assert "streetName" in fields_of(big)


@pytest.mark.parametrize("raw", [None, 42, 3.5, ["1 Main St"], b"1 Main St", object()])
def test_other_types_are_errors(raw: Any) -> None:
    result = normalize(raw)
    assert result.address is None
    assert fields_of(result) == {"address"}


def test_ignored_words_are_reported() -> None:
    result = normalize("John Smith, 11 Wall Street, New York, NY 10005")
    assert result.valid
    assert result.address == us("11", "WALL", "ST", "NEW YORK", "NY", "10005")
    assert [w.field for w in result.warnings] == ["address"]


# --------------------------------------------------------------------------- country


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "US"),
        ("", "US"),
        ("US", "US"),
        ("usa", "US"),
        ("U.S.A.", "US"),
        ("United States", "US"),
        ("United States of America", "US"),
    ],
)
def test_us_country_spellings(given: str | None, expected: str) -> None:
    result = normalize({**GOOD, "country": given})
    assert result.valid
    assert result.address is not None and result.address.country == expected


@pytest.mark.parametrize("given", ["CA", "Canada", "CAN", "canada"])
def test_canada_country_spellings(given: str) -> None:
    result = normalize({**GOOD_CA, "country": given})
    assert result.valid
    assert result.address is not None and result.address.country == "CA"


@pytest.mark.parametrize("given", ["MX", "Mexico", "UK", "DE"])
def test_other_countries_are_errors(given: str) -> None:
    assert "country" in fields_of(normalize({**GOOD, "country": given}))


# --------------------------------------------------------------------------- ZIP and city


def test_city_not_listed_for_zip_is_a_warning_with_a_suggestion() -> None:
    result = normalize("41 Seaver Way, Queens, NY 11368")
    assert result.valid
    assert result.address == us("41", "SEAVER", "WAY", "QUEENS", "NY", "11368")
    assert [w.field for w in result.warnings] == ["city"]
    assert "neighbourhood" in result.warnings[0].message
    assert result.suggestions == (dataclasses.replace(result.address, city="CORONA"),)


def test_acceptable_city_names_do_not_warn() -> None:
    # 95014 lists Cupertino, with Monte Vista and Permanente as acceptable names.
    result = normalize({**GOOD, "city": "Monte Vista", "stateCode": "CA", "zip": "95014"})
    assert result.valid
    assert result.warnings == ()
    # Abbreviated spellings compare equal to the listed ones.
    assert (
        normalize({**GOOD, "city": "N Las Vegas", "stateCode": "NV", "zip": "89030"}).warnings == ()
    )


def test_po_box_only_zip_is_a_warning() -> None:
    result = normalize({**GOOD, "city": "Austin", "stateCode": "TX", "zip": "78767"})
    assert result.valid
    assert [w.field for w in result.warnings] == ["zip"]


def test_zip_plus_four_in_zip_field_is_split() -> None:
    result = normalize({**GOOD, "zip": "02215-3496"})
    assert result.address is not None
    assert (result.address.zip, result.address.plus_four) == ("02215", "3496")


# --------------------------------------------------------------------------- canonical form


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Suite 100", "STE 100"),
        ("apartment 4", "APT 4"),
        ("Apt #4", "APT 4"),
        ("#4", "# 4"),
        ("# 4", "# 4"),
        ("4", "# 4"),
        ("Floor 3", "FL 3"),
        ("3rd floor", "FL 3"),
        ("Room 12", "RM 12"),
        ("Building 2, Floor 3", "BLDG 2 FL 3"),
        ("Unit 5B", "UNIT 5B"),
        ("Basement", "BSMT"),
        ("Rear", "REAR"),
    ],
)
def test_unit_designators(given: str, expected: str) -> None:
    result = canonical(Address(address_line2=given))
    assert result.address_line2 == expected
    assert canonical(result) == result


@pytest.mark.parametrize(
    ("number", "suffix", "expected"),
    [
        ("123", None, ("123", None)),
        ("123A", None, ("123", "A")),
        ("123-a", None, ("123", "A")),
        ("123 1/2", None, ("123", "1/2")),
        ("123½", None, ("123", "1/2")),
        ("123-45", None, ("123-45", None)),
        ("123A", "1/2", ("123A", "1/2")),
        ("N6W23001", None, ("N6W23001", None)),
        ("W204 N11509", None, ("W204N11509", None)),
        ("w204-n11509", None, ("W204N11509", None)),
        ("Km 5.4", None, ("KM 5.4", None)),
        ("KM5.4", None, ("KM 5.4", None)),
        ("kilómetro 12", None, ("KM 12", None)),
        ("#12", None, ("12", None)),
    ],
)
def test_house_numbers(number: str, suffix: str | None, expected: tuple[str, str | None]) -> None:
    result = canonical(Address(house_number=number, house_suffix=suffix))
    assert (result.house_number, result.house_suffix) == expected


@pytest.mark.parametrize(
    ("name", "suffix", "expected"),
    [
        ("Fifth", "Avenue", ("5TH", "AVE")),
        ("5th", "Ave", ("5TH", "AVE")),
        ("5", "Ave", ("5TH", "AVE")),
        ("112", "St", ("112TH", "ST")),
        ("Ninety-Ninth", "St", ("99TH", "ST")),
        ("Main Street", None, ("MAIN", "ST")),
        ("State Rte 9", None, ("STATE ROUTE 9", None)),
        ("County Rd J", None, ("COUNTY ROAD J", None)),
        ("Route 66", None, ("ROUTE 66", None)),
        ("Avenue of the Americas", None, ("AVENUE OF THE AMERICAS", None)),
        ("O'Connell", "Boulevard", ("OCONNELL", "BLVD")),
        ("Broadway", None, ("BROADWAY", None)),
    ],
)
def test_street_names(name: str, suffix: str | None, expected: tuple[str, str | None]) -> None:
    result = canonical(Address(street_name=name, street_suffix=suffix))
    assert (result.street_name, result.street_suffix) == expected
    assert canonical(result) == result


@pytest.mark.parametrize(
    ("given", "expected"),
    [("north", "N"), ("N.", "N"), ("Northwest", "NW"), ("north-east", "NE"), ("S W", "SW")],
)
def test_directionals(given: str, expected: str) -> None:
    assert canonical(Address(prefix_directional=given)).prefix_directional == expected
    assert canonical(Address(post_directional=given)).post_directional == expected


def test_canonical_defaults_country_and_leaves_validation_alone() -> None:
    result = canonical(Address(zip="not a zip", state_code="Nowhere"))
    assert result == Address(zip="NOTAZIP", state_code="NOWHERE", country="US")


# --------------------------------------------------------------------------- caller name


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("Jane Doe", True),
        ("  Jane  ", True),
        ("X" * MAX_CALLER_NAME, True),
        ("X" * (MAX_CALLER_NAME + 1), False),
        ("", False),
        ("   ", False),
        (None, False),
        (42, False),
        ("Jane\nDoe", False),
        ("Jane\x00", False),
    ],
)
def test_validate_caller_name(name: object, ok: bool) -> None:
    error = validate_caller_name(name)
    assert (error is None) is ok
    if error is not None:
        assert error.field == "callerName"


def test_limits() -> None:
    assert MAX_ADDRESS_LINE2 == 60
    assert MAX_CALLER_NAME == 50


# --------------------------------------------------------------------------- cache


def test_normalize_cache_memoizes_repeated_inputs() -> None:
    cache = NormalizeCache(maxsize=2)
    raw = "11 Wall Street, New York, NY 10005"
    first = cache.normalize(raw)
    assert cache.normalize(raw) is first
    assert first == normalize(raw)
    assert len(cache) == 1
    # A JSON object is cached whatever its key order; an equal one hits.
    assert cache.normalize(GOOD) == normalize(GOOD)
    assert len(cache) == 2
    shuffled = dict(reversed(list(GOOD.items())))
    assert cache.normalize(shuffled) is cache.normalize(GOOD)
    cache.normalize("1 Infinite Loop, Cupertino, CA 95014")
    cache.normalize("4 Jersey St, Boston, MA 02215")
    assert len(cache) == 2


def test_normalize_cache_skips_what_it_cannot_key() -> None:
    cache = NormalizeCache(maxsize=8)
    odd = {**GOOD, "zip": ["20500"]}
    assert cache.normalize(odd) == normalize(odd)
    assert len(cache) == 0
    assert cache.normalize("x" * 501).errors
    assert len(cache) == 0


# --------------------------------------------------------------------------- properties

STREET_WORDS = ["Main", "Fifth", "5th", "Oak", "North Shore", "Queens", "Martin Luther King Jr"]
SUFFIX_WORDS = ["St", "Street", "Ave", "Avenue", "Blvd", "Dr.", "Way", "Plaza", "Loop", ""]
UNIT_WORDS = ["", "Apt 4", "Suite 200", "#5", "Fl 3", "Unit B", "Rm 12", "Building 2"]
PLACES = [
    "New York, NY 10118",
    "Boston MA 02215",
    "Chicago, Illinois 60613",
    "Cupertino, CA 95014-2083",
    "Queens, NY 11368",
]
DIRS = ["", "N", "South", "NW", "east"]

address_strings = st.builds(
    lambda n, frac, pre, name, suf, post, unit, place: " ".join(
        p for p in (f"{n}{frac}", pre, name, suf, post, unit, place) if p
    ),
    st.integers(min_value=1, max_value=99999).map(str),
    st.sampled_from(["", "A", " 1/2", "-12"]),
    st.sampled_from(DIRS),
    st.sampled_from(STREET_WORDS),
    st.sampled_from(SUFFIX_WORDS),
    st.sampled_from(DIRS),
    st.sampled_from(UNIT_WORDS),
    st.sampled_from(PLACES),
)

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)
field_keys = st.sampled_from([wire_name(f.name) for f in dataclasses.fields(Address)])
junk_mappings = st.dictionaries(field_keys | st.text(max_size=12), junk, max_size=14)
text_mappings = st.dictionaries(field_keys, st.text(max_size=30) | st.none(), max_size=12)
addresses = st.builds(
    Address, **{f.name: st.none() | st.text(max_size=30) for f in dataclasses.fields(Address)}
)


def assert_idempotent(result: Normalized) -> None:
    if result.address is not None:
        assert canonical(result.address) == result.address
        assert normalize(result.address).address == result.address


@FAST
@given(st.text())
def test_normalize_never_raises_on_text(raw: str) -> None:
    result = normalize(raw)
    assert isinstance(result, Normalized)
    assert_idempotent(result)


@FAST
@given(address_strings)
def test_normalize_is_idempotent_on_address_like_text(raw: str) -> None:
    result = normalize(raw)
    assert_idempotent(result)


@FAST
@given(junk_mappings)
def test_normalize_never_raises_on_junk_mappings(raw: dict[str, Any]) -> None:
    result = normalize(raw)
    assert isinstance(result, Normalized)
    assert_idempotent(result)


@FAST
@given(text_mappings)
def test_normalize_is_idempotent_on_text_mappings(raw: dict[str, Any]) -> None:
    assert_idempotent(normalize(raw))


@FAST
@given(addresses)
def test_canonical_is_idempotent(address: Address) -> None:
    once = canonical(address)
    assert canonical(once) == once
    assert normalize(address).address == once
