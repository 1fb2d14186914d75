"""Callback numbers: every served place's numbers taken, the rest refused, as the pattern says."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.dlr.callers import normalize_number
from gateway.dlr.numbers import (
    CALLBACK_NUMBER_PATTERN,
    FOREIGN_AREA_CODES,
    callback_number,
    served_area_code,
)


@pytest.mark.parametrize(
    ("number", "place"),
    [
        ("+12025550143", "Washington, DC"),
        ("+14165550143", "Toronto, Canada"),
        ("+17875550143", "Puerto Rico"),
        ("+19395550143", "Puerto Rico (overlay)"),
        ("+13405550143", "US Virgin Islands"),
        ("+16715550143", "Guam"),
        ("+16845550143", "American Samoa"),
        ("+16705550143", "Northern Mariana Islands"),
        ("+19075550143", "Alaska"),
        ("+18085550143", "Hawaii"),
        ("+18005550143", "toll-free"),
    ],
)
def test_the_numbers_of_every_served_place_are_taken(number: str, place: str) -> None:
    assert callback_number(number) == number, place


@pytest.mark.parametrize(
    "number",
    [
        "+18765550143",  # Jamaica
        "+18095550143",  # Dominican Republic
        "+12425550143",  # Bahamas
        "+14415550143",  # Bermuda
        "+19115550143",  # N11: a service code, not an area code
        "+12925550143",  # N9X: kept for the plan's expansion
        "+13705550143",  # 37X: reserved
        "+19615550143",  # 96X: reserved
        "+11025550143",  # an area code cannot start with 1
        "+12021110143",  # an exchange cannot start with 1
        "+12029110143",  # nor be N11
        "+442071838750",  # not +1
        "2025550143",  # not E.164
        "+1202555014",  # a digit short
        "+120255501433",  # a digit long
        "+1 (202 555-0143",  # unbalanced
        "+1--202-555-0143",  # doubled separator
        "+1\u00a0202\u00a0555\u00a00143",  # no-break spaces are not separators
        "+12025550143 ext 5",
        "",
    ],
)
def test_other_numbers_are_refused(number: str) -> None:
    assert callback_number(number) is None


@pytest.mark.parametrize(
    "written",
    [
        "+1 (202) 555-0143",
        "+1-202-555-0143",
        "+1.202.555.0143",
        "+1 202 555 0143",
        "+1(202)5550143",
    ],
)
def test_separators_are_read_and_dropped(written: str) -> None:
    assert callback_number(written) == "+12025550143"


def test_the_served_area_codes_follow_the_plan() -> None:
    served = {f"{n}" for n in range(200, 1000) if served_area_code(f"{n}")}
    assert not served & FOREIGN_AREA_CODES
    assert {"340", "670", "671", "684", "787", "939"} <= served
    assert not {c for c in served if c[1:] == "11" or c[1] == "9" or c[:2] in ("37", "96")}
    # Everything else the plan allows is taken: 8 first digits x 9 second x 10 third, less
    # the reserved and the foreign codes.
    reserved = {f"{n}11" for n in range(2, 10)} | {f"37{n}" for n in range(10)}
    reserved |= {f"96{n}" for n in range(10)}
    assert len(served) == 720 - len(reserved) - len(FOREIGN_AREA_CODES)


@given(
    area=st.from_regex(r"[0-9]{3}", fullmatch=True), rest=st.from_regex(r"[0-9]{7}", fullmatch=True)
)
def test_the_pattern_is_the_rule(area: str, rest: str) -> None:
    """The regular expression (the API document's ``pattern``) says exactly what the rule does."""
    exchange_ok = rest[0] in "23456789" and rest[1:3] != "11"
    expected = f"+1{area}{rest}" if served_area_code(area) and exchange_ok else None
    assert callback_number(f"+1{area}{rest}") == expected
    assert (re.search(CALLBACK_NUMBER_PATTERN, f"+1{area}{rest}") is not None) == (
        expected is not None
    )


@given(st.from_regex(CALLBACK_NUMBER_PATTERN))
def test_whatever_the_pattern_admits_is_taken(text: str) -> None:
    """A client that keeps to the document's pattern never has its number refused."""
    assert callback_number(text) is not None


@given(st.from_regex(r"[0-9]{3}", fullmatch=True), st.sampled_from(["5550143", "9110143"]))
def test_the_call_time_reader_applies_the_same_rule(area: str, rest: str) -> None:
    """A number the carrier asks about is read by the rule reports are checked by: one that
    no report could register (Jamaica's 876, an N11 exchange) is no number at all."""
    for written in (f"+1{area}{rest}", f"{area}{rest}", f"tel:+1-{area}-{rest}"):
        assert normalize_number(written) == callback_number(f"+1{area}{rest}")
