"""The client address rule (``gateway.api.source``): the TCP peer, or from a trusted proxy
the nearest ``X-Forwarded-For`` hop that is not one."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from gateway.api.source import MAX_HOPS, client_address
from gateway.network.wiremap import parse_networks
from gateway.settings import Settings, SettingsError

PROXIES = ("10.0.0.0/8", "fd00:1::/64")


def asked(peer: str | None, *forwarded: str, proxies: tuple[str, ...] = PROXIES) -> str | None:
    """``client_address`` of a request from ``peer`` with these ``X-Forwarded-For`` lines."""
    app = SimpleNamespace(state=SimpleNamespace(trusted_proxies=parse_networks(proxies)))
    headers = [(b"x-forwarded-for", line.encode()) for line in forwarded]
    scope = {
        "type": "http",
        "app": app,
        "headers": headers,
        "client": None if peer is None else (peer, 40000),
    }
    found = client_address(Request(scope))
    return None if found is None else str(found)


def test_without_trusted_proxies_the_tcp_peer_and_no_header() -> None:
    assert asked("10.0.0.1", "198.51.100.7", proxies=()) == "10.0.0.1"
    assert asked("::ffff:203.0.113.9", "198.51.100.7", proxies=()) == "203.0.113.9"
    assert asked(None, "198.51.100.7", proxies=()) is None


def test_an_untrusted_peers_header_is_ignored() -> None:
    assert asked("192.0.2.1", "198.51.100.7") == "192.0.2.1"
    assert asked("192.0.2.1", "10.0.0.2") == "192.0.2.1"


def test_the_nearest_hop_a_trusted_proxy_saw_and_never_a_forged_one() -> None:
    assert asked("10.0.0.1", "198.51.100.7") == "198.51.100.7"
    # The client forges hops (an address, a trusted proxy's); its proxy appends what it saw.
    assert asked("10.0.0.1", "203.0.113.5, 10.9.9.9, 198.51.100.7") == "198.51.100.7"
    assert asked("10.0.0.1", "203.0.113.5", "198.51.100.7") == "198.51.100.7"  # two lines


def test_a_chain_of_two_trusted_proxies() -> None:
    # A load balancer (10.0.0.2) in front of the ingress (10.0.0.1): it appended the client,
    # the ingress appended the load balancer.
    assert asked("10.0.0.1", "203.0.113.5, 198.51.100.7, 10.0.0.2") == "198.51.100.7"
    # Every hop read is a trusted proxy: nothing names anyone else.
    assert asked("10.0.0.1", "10.0.0.3, 10.0.0.2") == "10.0.0.1"
    assert asked("10.0.0.1") == "10.0.0.1"  # no header at all


def test_ipv6_and_ipv4_mapped() -> None:
    assert asked("fd00:1::5", "2001:db8::7") == "2001:db8::7"
    assert asked("fd00:1::5", "2001:db8::7, fd00:1::6") == "2001:db8::7"
    assert asked("fd00:2::5", "2001:db8::7") == "fd00:2::5"  # not a trusted network
    # A dual-stack socket shows an IPv4 peer as ``::ffff:a.b.c.d``: trusted as 10.0.0.1,
    # and a mapped hop is the IPv4 address it is.
    assert asked("::ffff:10.0.0.1", "::ffff:198.51.100.7") == "198.51.100.7"
    assert asked("10.0.0.1", "198.51.100.7, ::ffff:10.0.0.2") == "198.51.100.7"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "198.51.100.7, garbage",
        "198.51.100.7:",
        "198.51.100.7:65536",
        "198.51.100.7:" + "9" * 5000,  # int() of it would raise (Python's digit limit)
        "[2001:db8::7]:000001",
        "198.51.100.7:47a1",
        "198.51.100.7:\u0664\u0667",  # Arabic-Indic digits
        "198.51.100.7:4711:1",
        "[198.51.100.7]:4711",  # brackets hold an IPv6 address only
        "[2001:db8::7]:",
        "[2001:db8::7]4711",
        "[2001:db8::7",
        "[garbage]:80",
        "[]:80",
        "garbage:80",
        "198.51.100.7,",
        "",
        "198.51.100.7, 10.0.0.2, unknown",
        "1" * 5000,
        "198.51.100.7\x00",
        "\u0661\u0669\u0668.\u0665\u0661.\u0661\u0660\u0660.\u0667",  # Arabic-Indic digits
    ],
)
def test_a_malformed_hop_from_a_trusted_proxy_is_the_proxy_itself(header: str) -> None:
    """The proxy did not say who its client was: the gateway knows only its TCP peer, what
    it used without the setting (a location report is still located, never a 500)."""
    assert asked("10.0.0.1", header) == "10.0.0.1"


def test_a_hop_with_the_port_a_proxy_appended() -> None:
    """Azure Application Gateway and others write ``ip:port`` (``[v6]:port``): the address."""
    assert asked("10.0.0.1", "198.51.100.7:4711") == "198.51.100.7"
    assert asked("10.0.0.1", "203.0.113.5, 198.51.100.7:4711") == "198.51.100.7"
    assert asked("10.0.0.1", "[2001:db8::7]:4711") == "2001:db8::7"
    assert asked("10.0.0.1", "[2001:db8::7]") == "2001:db8::7"
    assert asked("10.0.0.1", " [2001:db8::7]:0 ") == "2001:db8::7"
    # A trusted proxy with a port is still a trusted proxy: the walk goes on past it.
    assert asked("10.0.0.1", "198.51.100.7:1, 10.0.0.2:65535") == "198.51.100.7"
    assert asked("10.0.0.1", "198.51.100.7, [::ffff:10.0.0.2]:443") == "198.51.100.7"
    assert asked("10.0.0.1", "198.51.100.7, [fd00:1::2]:443") == "198.51.100.7"


def test_garbage_left_of_the_real_hop_is_never_read() -> None:
    assert asked("10.0.0.1", "garbage, ::ffff:not, 198.51.100.7") == "198.51.100.7"


def test_at_most_max_hops_are_read() -> None:
    proxies = ", ".join(f"10.0.1.{i}" for i in range(MAX_HOPS))
    assert asked("10.0.0.1", f"198.51.100.7, {proxies}") == "10.0.0.1"
    fewer = ", ".join(f"10.0.1.{i}" for i in range(MAX_HOPS - 1))
    assert asked("10.0.0.1", f"198.51.100.7, {fewer}") == "198.51.100.7"


def test_the_setting_takes_networks_only() -> None:
    read = Settings.from_environ(
        {"GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::/32"}, env_file=None
    )
    assert parse_networks(read.trusted_proxies) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert Settings.from_environ({}, env_file=None).trusted_proxies == ()
    with pytest.raises(SettingsError, match="GATEWAY_TRUSTED_PROXIES"):
        Settings.from_environ({"GATEWAY_TRUSTED_PROXIES": "ingress-nginx"}, env_file=None)
