"""What the harness sends: real US addresses, devices, report bodies, wrk scripts.

Addresses are built from the ``zipcodes`` data (a ZIP, its city and state, a house number and
a street), so they pass the gateway's validation and the simulator's ZIP/state/city check.
Address ``i`` is distinct (after normalization) from every other ``j``.

``observedAt`` values come from one ``ObservedClock`` so that every report the harness sends,
from Python or from wrk, is newer than the previous one for the same device.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import zipcodes

_STREETS = (
    ("MAIN", "ST"),
    ("OAK", "AVE"),
    ("MAPLE", "DR"),
    ("PARK", "RD"),
    ("WASHINGTON", "BLVD"),
    ("LAKE", "ST"),
    ("HILL", "RD"),
    ("PINE", "LN"),
    ("CEDAR", "CT"),
    ("ELM", "ST"),
)
_STATE_LIST = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ "
    "NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC"
)
#: The 50 states and DC (territories left out).
_STATES = frozenset(_STATE_LIST.split(" "))
#: Each device's own callback number (a number belongs to the first device to report it,
#: unless an admin shares it), handed out in order: millions of valid US numbers.
_PHONES: dict[str, str] = {}


def phone_for(aeui: str) -> str:
    """The device's callback number: the same for one AEUI, another for every other."""
    found = _PHONES.get(aeui)
    if found is None:
        found = _PHONES[aeui] = f"+1202{nanp_line(len(_PHONES))}"
    return found


#: Exchanges (``NXX``) a callback number may have: 200-999 but the service codes ``N11``.
_EXCHANGES = tuple(e for e in range(200, 1000) if e % 100 != 11)


def nanp_line(n: int) -> str:
    """The ``n``-th valid exchange and line (seven digits), for one area code."""
    n %= len(_EXCHANGES) * 10_000
    return f"{_EXCHANGES[n // 10_000]}{n % 10_000:04d}"


@dataclass(frozen=True, slots=True)
class Place:
    zip_code: str
    city: str
    state: str


def _places() -> list[Place]:
    rows = [
        Place(z["zip_code"], z["city"], z["state"])
        for z in zipcodes.list_all()  # type: ignore[no-untyped-call]
        if z["zip_code_type"] == "STANDARD"
        and z["active"]
        and z["state"] in _STATES
        # The gateway reads "La Canada Flintridge, CA" and "Canada, KY" as Canadian (and
        # refuses them, 422): a bug reported separately; the load stays clear of it.
        and "CANADA" not in z["city"].upper()
    ]
    rows.sort(key=lambda p: p.zip_code)
    random.Random(911).shuffle(rows)
    return rows


class AddressBook:
    """Distinct real addresses, as free-form strings (``form="string"``) or seed objects."""

    def __init__(self, form: str = "string") -> None:
        if form not in ("string", "object"):
            raise ValueError("form must be 'string' or 'object'")
        self.form = form
        self._places = _places()
        self._next = 0

    def address(self, index: int) -> str | dict[str, str]:
        place = self._places[index % len(self._places)]
        number = 100 + index // len(self._places)
        street, suffix = _STREETS[index % len(_STREETS)]
        if self.form == "object":
            return {
                "houseNumber": str(number),
                "streetName": street,
                "streetSuffix": suffix,
                "city": place.city.upper(),
                "stateCode": place.state,
                "zip": place.zip_code,
                "country": "US",
            }
        return f"{number} {street.title()} {suffix.title()}, {place.city}, {place.state} " + (
            place.zip_code
        )

    def fresh(self, count: int) -> list[str | dict[str, str]]:
        """``count`` addresses never handed out before by this book."""
        start = self._next
        self._next += count
        return [self.address(i) for i in range(start, start + count)]


class DeviceNames:
    """Fresh AEUIs (at most 30 characters), one namespace per phase."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def fresh(self, prefix: str, count: int) -> list[str]:
        counter = self._counters.setdefault(prefix, itertools.count())
        return [f"bench-{prefix}-{next(counter):07d}" for _ in range(count)]


class ObservedClock:
    """Strictly increasing ``observedAt`` values, in microseconds, starting in the past.

    The gateway refuses reports more than minutes ahead of its clock, and supersedes older
    ones; starting 50 minutes back leaves room for every phase.
    """

    def __init__(self, start: datetime | None = None) -> None:
        begin = start or datetime.now(UTC) - timedelta(minutes=50)
        self._epoch_us = int(begin.timestamp() * 1_000_000)
        self._offset = 0

    def next(self) -> str:
        self._offset += 1
        return format_us(self._epoch_us + self._offset)

    def reserve(self, span_us: int) -> int:
        """The first of ``span_us`` microseconds kept for a generator outside this clock."""
        first = self._epoch_us + self._offset + 1
        self._offset += span_us
        return first


def format_us(epoch_us: int) -> str:
    seconds, micros = divmod(epoch_us, 1_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}Z"


@dataclass(frozen=True, slots=True)
class Device:
    aeui: str
    caller_name: str
    telephone_number: str

    @classmethod
    def numbered(cls, aeui: str, n: int) -> Device:
        return cls(aeui, f"BENCH USER {n}", phone_for(aeui))

    def body(self, address: str | dict[str, str] | None, observed_at: str) -> bytes:
        report: dict[str, object] = {
            "alternateEndUserId": self.aeui,
            "callerName": self.caller_name,
            "telephoneNumber": self.telephone_number,
            "address": address,
            "observedAt": observed_at,
        }
        return json.dumps(report, separators=(",", ":")).encode()

    def prefix(self) -> str:
        """The body up to and including ``"address":`` (the stream appends the rest)."""
        head = {
            "alternateEndUserId": self.aeui,
            "callerName": self.caller_name,
            "telephoneNumber": self.telephone_number,
        }
        return json.dumps(head, separators=(",", ":"))[:-1] + ',"address":'


@dataclass
class ReportStream:
    """Request ``i`` of a load phase, the same from wrk (Lua) and from Python.

    Device ``i % n`` sends it; with ``moving`` it goes to the next of ``addresses`` after its
    current one on each of its turns, else it re-reports its current address. ``observedAt``
    is ``base_us + i`` microseconds: with ``n`` a multiple of wrk's thread count each device
    is driven by one thread, so its reports are strictly newer one after the other.
    """

    devices: Sequence[Device]
    addresses: Sequence[str | dict[str, str]]
    current: Sequence[int]
    moving: bool
    base_us: int
    tokens: Sequence[str] | None = None

    def address_index(self, i: int) -> int:
        n = len(self.devices)
        d = i % n
        a = self.current[d]
        if self.moving:
            a = (a + i // n + 1) % len(self.addresses)
        return a

    def body(self, i: int) -> bytes:
        d = i % len(self.devices)
        address = self.addresses[self.address_index(i)]
        return self.devices[d].body(address, format_us(self.base_us + i))

    def final_current(self, requests: int) -> list[int]:
        """Each device's address after ``requests`` requests (``moving`` streams)."""
        n = len(self.devices)
        out = list(self.current)
        for d in range(n):
            turns = (requests - d + n - 1) // n if requests > d else 0
            if self.moving and turns:
                out[d] = (self.current[d] + turns) % len(self.addresses)
        return out

    def lua(self, *, threads: int, admin_key: str | None) -> str:
        """A wrk script that sends exactly ``body(i)`` for request ``i``."""
        if len(self.devices) % threads:
            raise ValueError("the device count must be a multiple of wrk's thread count")
        devices = ",\n".join(_lua_string(d.prefix()) for d in self.devices)
        addresses = ",\n".join(
            _lua_string(json.dumps(a, separators=(",", ":"))) for a in self.addresses
        )
        current = ", ".join(str(c) for c in self.current)
        tokens = ",\n".join(_lua_string(t) for t in self.tokens) if self.tokens is not None else ""
        auth = (
            f'wrk.headers["Authorization"] = {_lua_string("Bearer " + admin_key)}'
            if admin_key
            else ""
        )
        return _LUA.format(
            devices=devices,
            addresses=addresses,
            current=current,
            tokens=tokens,
            per_device_tokens="true" if self.tokens is not None else "false",
            moving=1 if self.moving else 0,
            base_us=self.base_us,
            threads=threads,
            auth=auth,
        )


def _lua_string(text: str) -> str:
    if "]==]" in text or "\n" in text:
        raise ValueError("text not representable as a Lua long string here")
    return f"[==[{text}]==]"


_LUA = """-- generated by bench.workload.ReportStream.lua
local devices = {{
{devices}
}}
local addresses = {{
{addresses}
}}
local current = {{ {current} }}
local tokens = {{
{tokens}
}}
local per_device_tokens = {per_device_tokens}
local moving = {moving}
local base_us = {base_us}
local nthreads = {threads}
local n = #devices
local k = #addresses
local counter = 0
tid = 0

local created = 0
function setup(thread)
  thread:set("tid", created)
  created = created + 1
end

wrk.method = "POST"
wrk.path = "/v1/location-reports"
wrk.headers["Content-Type"] = "application/json"
{auth}

function request()
  local i = counter * nthreads + tid
  counter = counter + 1
  local d = i % n
  local a = current[d + 1]
  if moving == 1 then
    a = (a + math.floor(i / n) + 1) % k
  end
  local us = base_us + i
  local s = math.floor(us / 1000000)
  local ts = os.date("!%Y-%m-%dT%H:%M:%S", s) .. string.format(".%06dZ", us - s * 1000000)
  local body = devices[d + 1] .. addresses[a + 1] .. ',"observedAt":"' .. ts .. '"}}'
  if per_device_tokens then
    local headers = {{}}
    headers["Content-Type"] = "application/json"
    headers["Authorization"] = "Bearer " .. tokens[d + 1]
    return wrk.format(nil, nil, headers, body)
  end
  return wrk.format(nil, nil, nil, body)
end
"""
