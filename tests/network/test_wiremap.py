"""The wiremap's domain: canonical keys, longest-prefix and wildcard matching, precedence,
overlaps, and the service's writes over a store."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.bandwidth.models import Address
from gateway.dlr.address import normalize
from gateway.network import patterns
from gateway.network.service import MemoryWiremapStore, NotFound, Wiremap
from gateway.network.wiremap import (
    WIDEST_PREFIX,
    Conflict,
    Entry,
    Kind,
    Observation,
    WiremapError,
    WiremapIndex,
    parse_bssid,
    parse_chassis,
    parse_subnet,
    subnet_note,
)
from tests.network.observe import observe

HQ = Address(
    house_number="1600",
    street_name="PENNSYLVANIA",
    street_suffix="AVE",
    post_directional="NW",
    address_line2="FL 3 RM 301",
    city="WASHINGTON",
    state_code="DC",
    zip="20500",
    country="US",
)


def at(place: str) -> Address:
    return Address(**{**_fields(HQ), "address_line2": place})


def _fields(address: Address) -> dict[str, str | None]:
    return {name: getattr(address, name) for name in Address.__slots__}


def subnet(network: str, place: str = "FL 1") -> Entry:
    return Entry(Kind.SUBNET, str(parse_subnet(network)), at(place))


def ap(bssid: str, place: str = "FL 2") -> Entry:
    return Entry(Kind.ACCESS_POINT, str(parse_bssid(bssid)), at(place))


def ip(text: str) -> Observation:
    return Observation(ip=ipaddress.ip_address(text))


def test_subnets_longest_prefix_wins_ipv4() -> None:
    index = WiremapIndex(
        [subnet("10.0.0.0/8", "A"), subnet("10.1.0.0/16", "B"), subnet("10.1.2.0/24", "C")]
    )
    place = {t: index.resolve(ip(t)) for t in ("10.1.2.3", "10.1.9.9", "10.200.0.1", "11.0.0.1")}
    assert {t: m and m.entry.address.address_line2 for t, m in place.items()} == {
        "10.1.2.3": "C",
        "10.1.9.9": "B",
        "10.200.0.1": "A",
        "11.0.0.1": None,
    }
    index.remove(subnet("10.1.2.0/24").id)
    match = index.resolve(ip("10.1.2.3"))
    assert match is not None and match.entry.address.address_line2 == "B"


def test_subnets_longest_prefix_wins_ipv6_and_mapped_ipv4() -> None:
    index = WiremapIndex(
        [
            subnet("2001:db8::/32", "A"),
            subnet("2001:db8:1::/48", "B"),
            subnet("2001:db8:1:2::1/128", "C"),
            subnet("192.0.2.0/24", "V4"),
        ]
    )
    names = ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:ffff::1", "2001:db9::1")
    got = [
        (m.entry.address.address_line2 if m else None) for m in map(index.resolve, map(ip, names))
    ]
    assert got == ["C", "B", "A", None]
    mapped = observe({"ip": "::ffff:192.0.2.7"})
    match = index.resolve(mapped)
    assert match is not None and match.entry.address.address_line2 == "V4"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.0/33", "not an IPv4 or IPv6 network"),
        ("10.0.0.0/99999999999", "not an IPv4 or IPv6 network"),
        ("010.0.0.0/8", "not an IPv4 or IPv6 network"),
        ("10.0.0.0/08", "not an IPv4 or IPv6 network"),
        ("fe80::1%eth0/64", "not an IPv4 or IPv6 network"),
        (" 10.0.0.0/8", "not an IPv4 or IPv6 network"),
        ("10.0.0.0/8\n", "not an IPv4 or IPv6 network"),
        ("not-a-net", "not an IPv4 or IPv6 network"),
        ("1" * 500, "too long"),
        ("10.0.0.0/8\x00", "control characters"),
        # Wider than any one organization's network: a typo's /1 (host bits cleared, only a
        # warning before) was half of IPv4, and 2000::/3 every device's public IPv6 address.
        ("10.0.0.0/1", "wider than any one organization's"),
        ("16.0.0.0/7", "wider than any one organization's"),
        ("2001:db8::/3", "wider than any one organization's"),
        ("2001::/15", "wider than any one organization's"),
        ("::ffff:10.0.0.0/97", "wider than any one organization's"),
    ],
)
def test_hostile_subnets_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(WiremapError) as caught:
        parse_subnet(text)
    assert message in str(caught.value)
    assert caught.value.errors[0].field == "subnet"
    # ... and the API document's pattern does not allow them either.
    assert not re.match(patterns.SUBNET_PATTERN, text)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(patterns.SUBNET_PATTERN, fullmatch=True))
def test_every_subnet_the_document_allows_is_taken(text: str) -> None:
    """The document's pattern said any prefix length: the API fuzzer's ``10.0.0.0/3`` (or a
    ``/0``) was refused as malformed though the document allowed it."""
    network = parse_subnet(text)
    assert network.prefixlen >= WIDEST_PREFIX[network.version]


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("10.1.2.3/24", "10.1.2.0/24"),
        ("10.1.0.0/8", "10.0.0.0/8"),  # the widest taken
        ("2001:db8::/16", "2001::/16"),
        ("2001:db8::1/64", "2001:db8::/64"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:10.1.2.3", "10.1.2.3/32"),
    ],
)
def test_a_subnet_is_read_as_its_network_and_said_so(text: str, network: str) -> None:
    found = parse_subnet(text)
    assert str(found) == network
    note = subnet_note(text, found)
    assert note is not None and note.field == "subnet" and network in note.message
    assert subnet_note(network, parse_subnet(network)) is None


def test_bssids_canonical_and_wildcards() -> None:
    assert str(parse_bssid("aa:bb:cc:dd:ee:ff")) == "AA-BB-CC-DD-EE-FF"
    assert str(parse_bssid("aabb.ccdd.eeff")) == "AA-BB-CC-DD-EE-FF"
    assert str(parse_bssid("aa-bb-cc-dd-ee-f*")) == "AA-BB-CC-DD-EE-F*"
    assert str(parse_bssid("AA:BB:CC:DD:EE:**")) == "AA-BB-CC-DD-EE-*"
    assert str(parse_bssid("AA:BB:CC:DD:EE:*")) == "AA-BB-CC-DD-EE-*"
    for bad in ("AA-BB-CC-DD-E*-**", "AA-BB-CC-DD-EE", "GG-BB-CC-DD-EE-FF", "AA-BB-CC-DD-EE-*F"):
        with pytest.raises(WiremapError, match="not a BSSID"):
            parse_bssid(bad)
    with pytest.raises(WiremapError, match="without a wildcard"):
        observe({"bssid": "AA-BB-CC-DD-EE-F*"})


def test_access_points_most_specific_wins() -> None:
    index = WiremapIndex(
        [
            ap("AA-BB-CC-DD-EE-*", "TWO"),
            ap("AA-BB-CC-DD-EE-1*", "ONE"),
            ap("AA-BB-CC-DD-EE-12", "X"),
        ]
    )

    def place(bssid: str) -> str | None:
        match = index.resolve(Observation(bssid=parse_bssid(bssid, wildcard=False)))
        return match.entry.address.address_line2 if match else None

    assert place("aa:bb:cc:dd:ee:12") == "X"
    assert place("aa:bb:cc:dd:ee:13") == "ONE"
    assert place("aa:bb:cc:dd:ee:23") == "TWO"
    assert place("aa:bb:cc:dd:ef:23") is None


def test_wildcard_overlaps_are_refused_exact_inside_is_not() -> None:
    index = WiremapIndex([ap("AA-BB-CC-DD-EE-1*")])
    with pytest.raises(Conflict, match="overlaps the wildcard AA-BB-CC-DD-EE-1\\*"):
        index.check(ap("AA-BB-CC-DD-EE-*"))
    index = WiremapIndex([ap("AA-BB-CC-DD-EE-*")])
    with pytest.raises(Conflict, match="overlaps"):
        index.check(ap("AA-BB-CC-DD-EE-1*"))
    index.check(ap("AA-BB-CC-DD-EE-11"))  # an exact BSSID is more specific: no conflict
    index.check(ap("AA-BB-CC-DD-EF-*"))  # another octet: disjoint


def test_precedence_port_switch_access_point_subnet() -> None:
    chassis = parse_chassis("00:11:22:33:44:55")
    index = WiremapIndex(
        [
            Entry(Kind.PORT, chassis, at("PORT"), "Gi1/0/7"),
            Entry(Kind.SWITCH, chassis, at("SWITCH")),
            ap("AA-BB-CC-DD-EE-FF", "AP"),
            subnet("10.0.0.0/8", "NET"),
        ]
    )
    full = observe(
        {
            "ip": "10.9.9.9",
            "bssid": "aa:bb:cc:dd:ee:ff",
            "chassisId": "00-11-22-33-44-55",
            "portId": "Gi1/0/7",
        }
    )
    steps = [
        full,
        Observation(full.ip, full.bssid, full.chassis_id, "Gi1/0/8"),
        Observation(full.ip, full.bssid),
        Observation(full.ip),
    ]
    got = [(m.source, m.entry.address.address_line2) for m in map(index.resolve, steps) if m]
    assert got == [
        ("port", "PORT"),
        ("switch", "SWITCH"),
        ("access-point", "AP"),
        ("subnet", "NET"),
    ]


def test_observations_are_validated() -> None:
    with pytest.raises(WiremapError) as caught:
        observe({"ip": "999.1.1.1", "bssid": "zz", "extra": 1})
    assert {e.field for e in caught.value.errors} == {
        "network.ip",
        "network.bssid",
        "network.extra",
    }
    with pytest.raises(WiremapError, match="chassisId and portId together"):
        observe({"portId": "1"})
    with pytest.raises(WiremapError, match="at least one"):
        observe({})


def service() -> Wiremap:
    return Wiremap(MemoryWiremapStore(), normalize)


def test_service_builds_validated_entries_and_refuses_duplicates() -> None:
    async def main() -> None:
        wiremap = service()
        entry, _ = wiremap.build(
            Kind.SUBNET,
            "10.1.0.0/16",
            address={
                "houseNumber": "1600",
                "streetName": "Pennsylvania Ave NW",
                "addressLine2": "Floor 3 Room 301",
                "city": "Washington",
                "stateCode": "DC",
                "zip": "20500",
            },
        )
        assert entry.address.address_line2 == "FL 3 RM 301"
        await wiremap.create(entry)
        with pytest.raises(Conflict, match="already mapped"):
            await wiremap.create(entry)
        with pytest.raises(WiremapError) as caught:
            wiremap.build(Kind.SUBNET, "10.1.0.1/99", address={"streetName": "x"}, description=7)
        fields = {e.field for e in caught.value.errors}
        assert "subnet" in fields and "description" in fields
        assert any(f.startswith("address") for f in fields)
        port, _ = wiremap.build(Kind.PORT, "00-11-22-33-44-55", port_id="7", address=HQ)
        warnings = await wiremap.create(port)
        assert warnings and "no switch entry" in warnings[0].message
        await wiremap.delete(entry.id)
        with pytest.raises(NotFound):
            await wiremap.delete(entry.id)
        assert wiremap.resolve(ip("10.1.0.1")) is None

    asyncio.run(main())


def test_apply_is_idempotent_and_checks_the_whole_batch_first() -> None:
    async def main() -> None:
        wiremap = service()
        batch = [subnet("10.0.0.0/8"), ap("AA-BB-CC-DD-EE-*")]
        first = await wiremap.apply(batch)
        assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
        version = wiremap.version
        again = await wiremap.apply(batch)
        assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
        assert wiremap.version == version  # nothing written
        with pytest.raises(Conflict):
            await wiremap.apply([subnet("10.2.0.0/16"), ap("AA-BB-CC-DD-EE-1*")])
        assert wiremap.get(subnet("10.2.0.0/16").id) is None  # nothing of the batch written
        dry = await wiremap.apply(
            [subnet("10.3.0.0/16"), subnet("10.0.0.0/8", "MOVED")], dry_run=True
        )
        assert (dry.created, dry.updated) == (1, 1)
        assert wiremap.get(subnet("10.3.0.0/16").id) is None

    asyncio.run(main())


def test_a_change_at_one_replica_reaches_another_on_refresh() -> None:
    async def main() -> None:
        store = MemoryWiremapStore()
        one, two = Wiremap(store, normalize), Wiremap(store, normalize)
        await one.refresh()
        await two.refresh()
        await one.create(subnet("10.0.0.0/8"))
        assert two.resolve(ip("10.1.1.1")) is None
        assert await two.refresh()
        assert two.resolve(ip("10.1.1.1")) is not None
        assert not await two.refresh()  # unchanged: no reload

    asyncio.run(main())


class Interleaved(MemoryWiremapStore):
    """A store on which another replica writes ``other`` just before this one's first write
    (after this one has read the map and checked its change against it)."""

    def __init__(self, other: Entry) -> None:
        super().__init__()
        self.other: Entry | None = other

    async def put(self, entries: Sequence[Entry], *, expect: int | None = None) -> int:
        if self.other is not None:
            other, self.other = self.other, None
            await super().put([other])  # the other replica, in between
        return await super().put(entries, expect=expect)


def test_a_write_from_another_replica_in_between_is_not_lost() -> None:
    """Another replica commits between this one's refresh and its own write: this one's
    write is checked again on the map with that change, and its index holds both."""

    async def main() -> None:
        wiremap = Wiremap(Interleaved(subnet("192.168.0.0/16", "OTHER")), normalize)
        await wiremap.refresh()
        await wiremap.create(subnet("10.0.0.0/8"))
        assert wiremap.resolve(ip("10.1.1.1")) is not None
        match = wiremap.resolve(ip("192.168.1.1"))
        assert match is not None and match.entry.address.address_line2 == "OTHER"
        assert not await wiremap.refresh()  # its index is the store's map already

    asyncio.run(main())


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [("AA-BB-CC-DD-EE-*", "AA-BB-CC-DD-EE-1*"), ("AA-BB-CC-DD-EE-1*", "AA-BB-CC-DD-EE-*")],
)
def test_overlapping_wildcards_created_at_two_replicas_at_once(theirs: str, ours: str) -> None:
    """Another replica maps an overlapping wildcard after this one checked its own against
    the map, before it wrote: the write is refused, not both kept."""

    async def main() -> None:
        store = Interleaved(ap(theirs, "THEIRS"))
        wiremap = Wiremap(store, normalize)
        await wiremap.refresh()
        with pytest.raises(Conflict, match="overlaps"):
            await wiremap.create(ap(ours, "OURS"))
        assert [e.key for e in (await store.load())[1]] == [theirs]
        # And the same subnet at once: the second create is a conflict, not an overwrite.
        store = Interleaved(subnet("10.0.0.0/8", "THEIRS"))
        wiremap = Wiremap(store, normalize)
        with pytest.raises(Conflict, match="already mapped"):
            await wiremap.create(subnet("10.0.0.0/8", "OURS"))
        [held] = (await store.load())[1]
        assert held.address.address_line2 == "THEIRS"

    asyncio.run(main())


def test_entries_are_sorted_once_and_follow_every_change() -> None:
    """``entries`` keeps its last sorted answer for the next page of a list: every change of
    the map (a write here, a reload of another replica's) and another kind give a fresh one,
    and what a caller gets cannot be changed under the next one (a tuple)."""

    async def main_() -> None:
        store = MemoryWiremapStore()
        held = Wiremap(store, normalize)
        await held.create(subnet("10.2.0.0/16"))
        await held.create(subnet("10.1.0.0/16"))
        await held.create(ap("AA-BB-CC-DD-EE-FF"))
        keys = [e.key for e in held.entries(Kind.SUBNET)]
        assert keys == ["10.1.0.0/16", "10.2.0.0/16"]
        assert [e.kind for e in held.entries()] == [Kind.ACCESS_POINT, Kind.SUBNET, Kind.SUBNET]
        assert isinstance(held.entries(Kind.SUBNET), tuple)
        await held.create(subnet("10.0.0.0/16"))
        assert held.entries(Kind.SUBNET)[0].key == "10.0.0.0/16"
        await held.delete(subnet("10.0.0.0/16").id)
        assert [e.key for e in held.entries(Kind.SUBNET)] == keys
        await held.update(subnet("10.1.0.0/16").id, subnet("10.1.0.0/16", "FL 9"))
        assert held.entries(Kind.SUBNET)[0].address.address_line2 == "FL 9"
        other = Wiremap(store, normalize)  # another replica's write, then a reload here
        await other.refresh()
        await other.create(subnet("10.3.0.0/16"))
        assert await held.refresh()
        assert [e.key for e in held.entries(Kind.SUBNET)][-1] == "10.3.0.0/16"

    asyncio.run(main_())


def test_an_entry_not_in_todays_canonical_form_is_held_not_served() -> None:
    """A subnet stored with its host bits set (a lookup could not even index it) or a
    chassis ID in another spelling (no observation would match it) is listed with why."""
    host_bits = Entry(Kind.SUBNET, "10.1.2.3/16", at("FL 1"))
    lower = Entry(Kind.SWITCH, "aa:bb:cc:dd:ee:ff", at("FL 2"))
    index = WiremapIndex([host_bits, lower, subnet("10.2.0.0/16")])
    assert len(index) == 3 and set(index.unserved) == {host_bits.id, lower.id}
    assert index.resolve(ip("10.1.2.3")) is None
    (warning,) = index.warnings(host_bits)
    assert warning.field == "subnet" and "10.1.0.0/16" in warning.message
    assert index.remove(host_bits.id) == host_bits and not index.resolve(ip("10.1.2.3"))
    assert set(index.unserved) == {lower.id}
