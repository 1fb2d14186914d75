"""Wiremap entries (subnet, access point, switch, port), their canonical keys, and the
in-memory index that resolves observations, port > switch > access point > subnet (README.md,
"Network-based location: the wiremap"). The index is mutated in place by synchronous calls
only, so a lookup on the event loop never sees half a change."""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any

from gateway.bandwidth.models import Address
from gateway.dlr.errors import FieldError
from gateway.network import patterns

#: Longest accepted text of a subnet, BSSID, chassis ID or port ID.
MAX_KEY_LENGTH = 64
MAX_DESCRIPTION = 200
MAX_LOCATION_ID = 32


class Kind(enum.StrEnum):
    PORT = "port"
    SWITCH = "switch"
    ACCESS_POINT = "access-point"
    SUBNET = "subnet"


#: From the most to the least specific: the order a resolution tries them in.
PRECEDENCE = (Kind.PORT, Kind.SWITCH, Kind.ACCESS_POINT, Kind.SUBNET)


class WiremapError(ValueError):
    """An input that is not a valid network identity or entry; ``errors`` names the fields."""

    def __init__(self, errors: tuple[FieldError, ...]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class Conflict(Exception):
    """An entry that clashes with one already in the wiremap (the same key, an overlap)."""

    def __init__(self, message: str, existing: Entry) -> None:
        super().__init__(message)
        self.message = message
        self.existing = existing


class Stale(Exception):
    """Another replica changed the wiremap since this one read it (again after retries:
    the wiremap is being changed too often to check a change against it)."""


def _fail(field: str, message: str) -> WiremapError:
    return WiremapError((FieldError(field, message),))


def _bounded(
    value: object, field: str, form: re.Pattern[str], what: str, limit: int = MAX_KEY_LENGTH
) -> str:
    """``value`` when it is a string of at most ``limit`` characters in ``form``
    (``gateway.network.patterns``: the API document's pattern), stripped."""
    if not isinstance(value, str):
        raise _fail(field, "must be a string")
    if len(value) > limit:
        raise _fail(field, f"is too long (at most {limit} characters)")
    if patterns.CONTROL.search(value):
        raise _fail(field, "must not hold control characters")
    if patterns.FORMAT.search(value):
        raise _fail(field, "must not hold invisible format characters (bidi controls, zero-width)")
    if not form.match(value):
        raise _fail(field, f"{value.strip()!r} is not {what}")
    return value.strip()


# -- subnets -------------------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """Networks in CIDR form (a setting's, checked when read), host bits cleared."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def within(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, networks: Iterable[Network]
) -> bool:
    """Whether ``address`` is in one of ``networks`` (no address: never)."""
    return address is not None and any(address in n for n in networks)


#: The shortest prefix of a subnet entry, by IP version: IPv4's largest block one organization
#: was ever given (a /8), and for IPv6 one wider than any registry's allocation (a /16; all
#: global unicast, ``2000::/3``, would otherwise match every device's public address).
WIDEST_PREFIX = {4: 8, 6: 16}


def parse_subnet(value: object, field: str = "subnet") -> Network:
    """A network in CIDR form (a bare address: a host route), its host bits cleared
    (``subnet_note`` says so); an IPv4-mapped IPv6 one as the IPv4 network it is. A /0 is
    refused (every device reporting any address would match it), and so is a network wider
    than ``WIDEST_PREFIX``."""
    text = _bounded(value, field, patterns.SUBNET, "an IPv4 or IPv6 network in CIDR form")
    network = ipaddress.ip_network(text, strict=False)  # the pattern admits only networks
    mapped = network.network_address
    if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped and network.prefixlen >= 96:
        network = ipaddress.IPv4Network((mapped.ipv4_mapped, network.prefixlen - 96))
    if network.prefixlen == 0:  # a typo's host bits cleared (10.0.0.0/0), or on purpose
        raise _fail(field, f"{network} is every address, no building's network")
    widest = WIDEST_PREFIX[network.version]
    if network.prefixlen < widest:  # a typo's too: 10.0.0.0/1 is 0.0.0.0/1, 2001::/3 2000::/3
        raise _fail(
            field, f"{network} is wider than any one organization's network (/{widest} at most)"
        )
    return network


def subnet_note(text: str, network: Network) -> FieldError | None:
    """A warning when ``text`` named ``network`` other than by its own address (host bits
    set, or IPv4-mapped): the entry holds the whole network, which the writer should know."""
    given = text.strip().partition("/")[0]
    if ipaddress.ip_address(given) == network.network_address:
        return None
    return FieldError("subnet", f"{text.strip()!r} is read as the network {network}")


def parse_ip(value: object, field: str = "ip") -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address to look up; an IPv4-mapped IPv6 one as its IPv4 address."""
    text = _bounded(value, field, patterns.IP, "an IPv4 or IPv6 address")
    address = ipaddress.ip_address(text)  # the pattern admits only addresses
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# -- BSSIDs and chassis IDs ----------------------------------------------------------------

_MAC_SPLIT = re.compile(r"[-:.]")
_BSSID_FORM = "a BSSID (six hex pairs, e.g. AA-BB-CC-DD-EE-FF)"


@dataclass(frozen=True, slots=True)
class Bssid:
    """A BSSID, or a wildcard of one: ``value`` holds the fixed bits, shifted right by
    ``wildcard_bits`` (0, 4 or 8)."""

    value: int
    wildcard_bits: int = 0

    def __str__(self) -> str:
        digits = f"{self.value << self.wildcard_bits:012X}"
        hidden = self.wildcard_bits // 4
        if hidden:
            digits = digits[:-hidden] + "*" * hidden
        pairs = [digits[i : i + 2] for i in range(0, 12, 2)]
        if pairs[-1] == "**":
            pairs[-1] = "*"
        return "-".join(pairs)


def _mac_digits(text: str) -> str | None:
    """The 12 hex digits (``*`` kept) of a MAC written with ``-``, ``:``, ``.`` or nothing."""
    upper = text.upper()
    parts = _MAC_SPLIT.split(upper)
    if len(parts) == 6:
        if parts[-1] == "*":
            parts[-1] = "**"
        if any(len(p) != 2 for p in parts):
            return None
        digits = "".join(parts)
    elif len(parts) == 3 and all(len(p) == 4 for p in parts):  # Cisco's aabb.ccdd.eeff
        digits = "".join(parts)
    elif len(parts) == 1 and len(upper) == 12:
        digits = upper
    else:
        return None
    return digits


def parse_bssid(value: object, field: str = "bssid", *, wildcard: bool = True) -> Bssid:
    """A BSSID; with ``wildcard``, ``*`` may replace its last one or two hex digits."""
    if wildcard:
        form = _BSSID_FORM + "; a * may replace only its last one or two hex digits"
        text = _bounded(value, field, patterns.BSSID, form)
    else:
        text = _bounded(value, field, patterns.MAC, _BSSID_FORM + " without a wildcard")
    digits = _mac_digits(text)
    assert digits is not None  # the pattern admits only these forms
    stars = len(digits) - len(digits.rstrip("*"))
    return Bssid(int(digits[: len(digits) - stars], 16), 4 * stars)


def parse_chassis(value: object, field: str = "chassisId") -> str:
    """A chassis ID: a MAC address in canonical form (``AA-BB-CC-DD-EE-FF``), else as given."""
    text = _bounded(value, field, patterns.NAME, "a chassis ID")
    if patterns.MAC.match(text):
        return str(Bssid(int(_mac_digits(text) or "0", 16)))
    return text


def parse_port(value: object, field: str = "portId") -> str:
    return _bounded(value, field, patterns.NAME, "a port ID")


def parse_location_id(value: object, field: str = "locationId") -> str | None:
    """A location ID at the carrier (``None``: none given)."""
    if value is None:
        return None
    form = "a location ID at the carrier (1 to 32 letters and digits)"
    return _bounded(value, field, patterns.LOCATION_ID, form, MAX_LOCATION_ID)


def parse_description(value: object, field: str = "description") -> str | None:
    """An entry's description (``None``: none given, or only whitespace)."""
    if value is None:
        return None
    return _bounded(value, field, patterns.TEXT, "text", MAX_DESCRIPTION) or None


# -- entries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One wiremap entry: a network element and the location it maps to."""

    kind: Kind
    #: The canonical identity: ``10.1.0.0/16``, ``AA-BB-CC-DD-EE-F*``, a chassis ID, or for a
    #: port its chassis ID and port ID (``key`` is the chassis ID, ``port_id`` the port).
    key: str
    address: Address
    port_id: str | None = None
    #: The carrier's location ID, when the entry was given one (``LocationId``).
    location_id: str | None = None
    description: str | None = None

    @property
    def id(self) -> str:
        return entry_id(self.kind, self.key, self.port_id)

    @property
    def chassis_id(self) -> str | None:
        return self.key if self.kind in (Kind.SWITCH, Kind.PORT) else None


def entry_id(kind: Kind, key: str, port_id: str | None = None) -> str:
    """A stable ID derived from the entry's identity: every replica and every import of the
    same row agrees on it, so an import is idempotent and needs no lookup to find its entry."""
    material = "\x1f".join((kind.value, key, port_id or ""))
    return hashlib.sha256(material.encode()).hexdigest()[:20]


def canonical_key(kind: Kind, key: object, port_id: object = None) -> tuple[str, str | None]:
    """An entry's identity in canonical form; ``WiremapError`` when it is not valid."""
    if kind is Kind.SUBNET:
        return str(parse_subnet(key, "subnet")), None
    if kind is Kind.ACCESS_POINT:
        return str(parse_bssid(key, "bssid")), None
    if kind is Kind.SWITCH:
        return parse_chassis(key), None
    return parse_chassis(key), parse_port(port_id)


_KEY_FIELDS = {Kind.SUBNET: "subnet", Kind.ACCESS_POINT: "bssid"}
_ADDRESS_FIELDS = tuple(f.name for f in fields(Address))
_UNSHOWN = re.compile(f"{patterns.CONTROL.pattern}|{patterns.FORMAT.pattern}")


def _address_text(entry: Entry) -> str:
    """The text fields of ``entry``'s address, joined by spaces."""
    texts = (getattr(entry.address, name) for name in _ADDRESS_FIELDS)
    return " ".join(t for t in texts if isinstance(t, str))


def unservable(entry: Entry) -> FieldError | None:
    """Why a stored entry fails today's checks (an older version stored it: a subnet wider
    than ``WIDEST_PREFIX``, text with invisible format characters), or ``None``."""
    try:
        key, port_id = canonical_key(entry.kind, entry.key, entry.port_id)
        if key != entry.key:
            raise _fail(_KEY_FIELDS.get(entry.kind, "chassisId"), f"is not {key} as written")
        if port_id != entry.port_id:
            raise _fail("portId", f"is not {port_id} as written")
        parse_location_id(entry.location_id)
        parse_description(entry.description)
    except WiremapError as exc:
        problem = exc.errors[0]
    else:
        if not _UNSHOWN.search(_address_text(entry)):
            return None
        problem = FieldError("address", "must not hold control or invisible format characters")
    message = f"not served (stored before today's checks): {problem.message}"
    return FieldError(problem.field, message)


def plain_subnet(entry: Entry) -> Network | None:
    """The network of a subnet entry as ``parse_subnet`` writes it, whose text holds nothing
    unshown: ``unservable``'s ``None`` for most entries in a fraction of its time (every entry
    is checked on every reload). ``None`` only means: check in full."""
    if entry.kind is not Kind.SUBNET or entry.port_id is not None:
        return None
    text = " ".join((entry.key, entry.description or "", _address_text(entry)))
    if _UNSHOWN.search(text) or len(entry.description or "") > MAX_DESCRIPTION:
        return None
    if entry.location_id is not None and not patterns.LOCATION_ID.match(entry.location_id):
        return None
    try:
        network = ipaddress.ip_network(entry.key)
    except ValueError:
        return None
    mapped = isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped
    if mapped or network.prefixlen < WIDEST_PREFIX[network.version]:
        return None
    return network if str(network) == entry.key else None


# -- observations and resolution -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    """What a device (or the network) says about where it is attached; any subset."""

    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    bssid: Bssid | None = None
    chassis_id: str | None = None
    port_id: str | None = None
    #: Where the gateway heard a report from (``gateway.api.source``), never what the device says:
    #: ``gateway.network.egress`` decides from it whether a private subnet match stands.
    heard_from: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.ip, self.bssid, self.chassis_id, self.port_id))

    def tried(self) -> str:
        """What was looked up, for an answer that nothing matched."""
        parts = []
        if self.port_id is not None and self.chassis_id is not None:
            parts.append(f"port {self.port_id!r} of chassis {self.chassis_id}")
        if self.chassis_id is not None:
            parts.append(f"chassis {self.chassis_id}")
        if self.bssid is not None:
            parts.append(f"BSSID {self.bssid}")
        if self.ip is not None:
            parts.append(f"IP {self.ip}")
        return ", ".join(parts) or "nothing"

    def as_json(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.ip is not None:
            out["ip"] = str(self.ip)
        if self.bssid is not None:
            out["bssid"] = str(self.bssid)
        if self.chassis_id is not None:
            out["chassisId"] = self.chassis_id
        if self.port_id is not None:
            out["portId"] = self.port_id
        return out


@dataclass(frozen=True, slots=True)
class Match:
    """The entry an observation resolved to, and which kind of element decided it."""

    entry: Entry
    #: Why the match may not locate a report (``gateway.network.egress``); ``None``: it may.
    distrusted: str | None = None

    @property
    def source(self) -> str:
        return self.entry.kind.value

    @property
    def counted_as(self) -> str:
        """``dlr_network_resolutions_total``'s ``source``: ``subnet-distrusted`` for a match
        that did not locate the report."""
        return self.source if self.distrusted is None else f"{self.source}-distrusted"


#: Whether a match stands (``gateway.network.egress``): the match, or it distrusted.
Judge = Callable[["Observation", Match], Match]


class WiremapIndex:
    """Every wiremap entry, indexed for lookups in a few dictionary probes.

    Subnets sit in one dictionary per prefix length (network address -> entry); a lookup
    masks the address with each length present, longest first, so it costs at most one probe
    per distinct prefix length (33 for IPv4, 129 for IPv6 at worst; a handful in practice).
    """

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._by_id: dict[str, Entry] = {}
        self._nets: dict[int, dict[int, dict[int, Entry]]] = {4: {}, 6: {}}
        self._lengths: dict[int, list[int]] = {4: [], 6: []}
        self._bssids: dict[int, dict[int, Entry]] = {0: {}, 4: {}, 8: {}}
        self._switches: dict[str, Entry] = {}
        self._ports: dict[tuple[str, str], Entry] = {}
        #: Held entries that today's checks refuse (``unservable``): listed, never matched.
        self.unserved: dict[str, FieldError] = {}
        #: How many times an entry was put or dropped: what was read of the index before
        #: is still true while this is unchanged.
        self.changes = 0
        for entry in entries:
            self._put(entry)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._by_id.values())

    def get(self, entry_id: str) -> Entry | None:
        return self._by_id.get(entry_id)

    def served(self) -> Iterator[Entry]:
        """The entries lookups match: all but ``unserved``."""
        return (e for i, e in self._by_id.items() if i not in self.unserved)

    def counts(self) -> dict[Kind, int]:
        counts = dict.fromkeys(Kind, 0)
        for entry in self._by_id.values():
            counts[entry.kind] += 1
        return counts

    # -- changes -------------------------------------------------------------------------

    def check(self, entry: Entry) -> None:
        """``Conflict`` when ``entry`` (new) clashes with an entry held; an update of the
        entry with the same ID never does."""
        held = self._by_id.get(entry.id)
        if held is not None:
            return
        if entry.kind is Kind.ACCESS_POINT:
            bssid = parse_bssid(entry.key)
            for other in self._overlapping(bssid):
                raise Conflict(
                    f"BSSID {entry.key} overlaps the wildcard {other.key} already in the wiremap",
                    other,
                )

    def _overlapping(self, bssid: Bssid) -> Iterator[Entry]:
        """Wildcards that hold ``bssid`` (a wildcard) or that it holds: a few probes, not
        a scan (a one-digit wildcard has one possible holder, a two-digit one 16 held)."""
        if bssid.wildcard_bits == 4:
            holder = self._bssids[8].get(bssid.value >> 4)
            if holder is not None:
                yield holder
        elif bssid.wildcard_bits == 8:
            for digit in range(16):
                held = self._bssids[4].get(bssid.value << 4 | digit)
                if held is not None:
                    yield held

    def put(self, entry: Entry) -> Entry | None:
        """Add or replace ``entry``; the entry it replaced, if any."""
        previous = self._by_id.get(entry.id)
        if previous is not None:
            self._drop(previous)
        self._put(entry)
        return previous

    def remove(self, entry_id: str) -> Entry | None:
        entry = self._by_id.get(entry_id)
        if entry is not None:
            self._drop(entry)
        return entry

    def _slot(self, entry: Entry, network: Network | None = None) -> tuple[dict[Any, Entry], Any]:
        if entry.kind is Kind.SUBNET:
            network = network or ipaddress.ip_network(entry.key)
            by_net = self._nets[network.version].setdefault(network.prefixlen, {})
            return by_net, int(network.network_address)
        if entry.kind is Kind.ACCESS_POINT:
            bssid = parse_bssid(entry.key)
            return self._bssids[bssid.wildcard_bits], bssid.value
        if entry.kind is Kind.SWITCH:
            return self._switches, entry.key
        return self._ports, (entry.key, entry.port_id or "")

    def _put(self, entry: Entry) -> None:
        self._by_id[entry.id] = entry
        self.changes += 1
        network = plain_subnet(entry)
        problem = None if network is not None else unservable(entry)
        if problem is not None:
            self.unserved[entry.id] = problem
            return
        table, key = self._slot(entry, network)
        table[key] = entry
        if entry.kind is Kind.SUBNET:
            self._relength((network or ipaddress.ip_network(entry.key)).version)

    def _drop(self, entry: Entry) -> None:
        del self._by_id[entry.id]
        self.changes += 1
        if self.unserved.pop(entry.id, None) is not None:
            return
        table, key = self._slot(entry)
        table.pop(key, None)
        if entry.kind is Kind.SUBNET:
            self._relength(ipaddress.ip_network(entry.key).version)

    def _relength(self, version: int) -> None:
        nets = self._nets[version]
        for length in [n for n, held in nets.items() if not held]:
            del nets[length]
        self._lengths[version] = sorted(nets, reverse=True)

    # -- lookups -------------------------------------------------------------------------

    def subnet(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Entry | None:
        """The entry of the longest prefix holding ``ip``."""
        value = int(ip)
        width = ip.max_prefixlen
        nets = self._nets[ip.version]
        for length in self._lengths[ip.version]:
            network = value >> (width - length) << (width - length)
            found = nets[length].get(network)
            if found is not None:
                return found
        return None

    def access_point(self, bssid: Bssid) -> Entry | None:
        """The entry of ``bssid`` itself, else of the narrowest wildcard holding it."""
        for bits in (0, 4, 8):
            found = self._bssids[bits].get(bssid.value >> bits)
            if found is not None:
                return found
        return None

    def resolve(self, observation: Observation) -> Match | None:
        """The winning entry: port, then switch, then access point, then subnet."""
        chassis = observation.chassis_id
        if chassis is not None:
            if observation.port_id is not None:
                found = self._ports.get((chassis, observation.port_id))
                if found is not None:
                    return Match(found)
            found = self._switches.get(chassis)
            if found is not None:
                return Match(found)
        if observation.bssid is not None:
            found = self.access_point(observation.bssid)
            if found is not None:
                return Match(found)
        if observation.ip is not None:
            found = self.subnet(observation.ip)
            if found is not None:
                return Match(found)
        return None

    def warnings(self, entry: Entry) -> tuple[FieldError, ...]:
        """What is worth saying about an accepted entry (a port of an unknown switch), or a
        held one that is not served."""
        problem = self.unserved.get(entry.id)
        if problem is not None:
            return (problem,)
        if entry.kind is Kind.PORT and entry.key not in self._switches:
            return (
                FieldError(
                    "chassisId",
                    f"no switch entry for chassis {entry.key}: only this port is located",
                ),
            )
        return ()
