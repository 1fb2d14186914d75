"""Callback numbers: the North American numbers of the places whose addresses are served.

The gateway provisions addresses in the US (the states, DC, Puerto Rico, the US Virgin
Islands, Guam, American Samoa, the Northern Mariana Islands) and Canada, all in the North
American Numbering Plan (+1). A callback number is accepted when it has the plan's shape and
its area code is not reserved by the plan nor one of the other NANP countries'. The rule is
structural on purpose: an area code opened next month (an overlay) is accepted the day it is
dialled, without waiting for a library's data to learn it. (This is why it is not
``phonenumbers``: its per-area-code data lags new overlays, and its rules cannot be stated as
the API document's ``pattern``.) Every reader of a number applies it: reports, the admin API
and the carrier's call-time query (``gateway.dlr.callers.normalize_number``).

``CALLBACK_NUMBER_PATTERN`` is the rule as one regular expression (the API document carries
it as the field's ``pattern``); ``callback_number`` applies that very expression, so the
document and the gateway cannot disagree.
"""

from __future__ import annotations

import re

from gateway.dlr.patterns import END

__all__ = [
    "CALLBACK_NUMBER_PATTERN",
    "CALLBACK_NUMBER_RULE",
    "FOREIGN_AREA_CODES",
    "callback_number",
    "dialled_number",
    "served_area_code",
]

#: What a refused number is told.
CALLBACK_NUMBER_RULE = (
    "expected a +1 number of the US, its territories or Canada, e.g. +12025550143 "
    "(separators allowed: +1 (202) 555-0143)"
)

#: Area codes of the NANP countries whose addresses the gateway does not serve (the
#: Caribbean and Bermuda); the US territories' (340, 670, 671, 684, 787, 939) are served.
FOREIGN_AREA_CODES = frozenset(
    "242 246 264 268 284 345 441 473 649 658 664 721 758 767 784 809 829 849 868 869 876".split()  # noqa: SIM905
)


def served_area_code(code: str) -> bool:
    """Whether ``code`` (three digits) is an area code of a served place, by the plan's rules:
    ``NXX`` with N 2-9, not ``N11`` (service codes like 911), not ``N9X`` (kept for the plan's
    expansion), not ``37X`` or ``96X`` (reserved), and not another country's."""
    return (
        len(code) == 3
        and code.isascii()
        and code.isdigit()
        and code[0] in "23456789"
        and code[1] != "9"
        and code[1:] != "11"
        and code[:2] not in ("37", "96")
        and code not in FOREIGN_AREA_CODES
    )


def _area_codes() -> str:
    """The served area codes as a compact alternation: ``2(?:0[0-9]|1[02-9]|...)|...``."""
    firsts = []
    for first in "23456789":
        seconds = []
        for second in "012345678":
            thirds = [t for t in "0123456789" if served_area_code(first + second + t)]
            if thirds:
                seconds.append(second + _digits(thirds))
        firsts.append(f"{first}(?:{'|'.join(seconds)})")
    return "|".join(firsts)


def _digits(digits: list[str]) -> str:
    """``[0-9]``, ``[02-9]``, ``5``: the digits as a character class."""
    if len(digits) == 1:
        return digits[0]
    runs: list[str] = []
    start = previous = digits[0]
    for digit in [*digits[1:], None]:
        if digit is not None and int(digit) == int(previous) + 1:
            previous = digit
            continue
        joiner = "-" if int(previous) - int(start) > 1 else ""
        runs.append(start if start == previous else f"{start}{joiner}{previous}")
        if digit is not None:
            start = previous = digit
    return f"[{''.join(runs)}]"


_AREA = _area_codes()
#: Exchange: ``NXX``, not ``N11``.
_EXCHANGE = "[2-9](?:[02-9][0-9]|1[02-9])"
_SEPARATOR = "[ .-]?"

#: E.164 (``+12025550143``), or with the usual separators (``+1 (202) 555-0143``,
#: ``+1-202-555-0143``, ``+1.202.555.0143``); written for ECMA-262 and Python alike.
CALLBACK_NUMBER_PATTERN = (
    rf"^\+1{_SEPARATOR}(?:({_AREA})|\(({_AREA})\))"
    rf"{_SEPARATOR}({_EXCHANGE}){_SEPARATOR}([0-9]{{4}}){END}"
)
_CALLBACK_NUMBER = re.compile(CALLBACK_NUMBER_PATTERN)


#: Visual separators of a dialled number (RFC 3966 allows ``-``, ``.``, ``(``, ``)``).
_SEPARATORS = str.maketrans("", "", " -.()")


def dialled_number(text: str) -> str | None:
    """``text`` as E.164 when it is a served callback number written as people and carriers
    write it: ``2025550143``, ``12025550143``, ``+12025550143``, with separators
    (``(202) 555-0143``, ``1-202-555-0143``); else ``None``."""
    digits = text.strip().translate(_SEPARATORS)
    if digits.startswith("+"):
        digits = digits[1:]
        if len(digits) != 11:  # +1 and ten digits: other countries are not served
            return None
    if not digits.isascii() or not digits.isdigit():
        return None
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return callback_number(f"+1{digits}")


def callback_number(text: str) -> str | None:
    """``text`` as E.164 (``+1NPANXXXXXX``) when it is a served callback number, else ``None``."""
    match = _CALLBACK_NUMBER.search(text)
    if match is None:
        return None
    bare, in_parentheses, exchange, line = match.groups()
    return f"+1{bare or in_parentheses}{exchange}{line}"
