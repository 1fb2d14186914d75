"""Where a webhook may be sent: the rule against turning deliveries on the gateway's own side.

A subscription's URL is an admin's, but the host's addresses are DNS's. Refused unless the
host is listed in ``GATEWAY_WEBHOOK_ALLOWED_HOSTS``: loopback (the gateway itself and its
neighbours), link-local (cloud metadata at 169.254.169.254, fe80::/10), the unspecified,
multicast and reserved addresses, the other special-purpose ranges that are not a public or
private network (``_SPECIAL``: shared 100.64.0.0/10 with a metadata service at
100.100.100.200, benchmarking, documentation, 6to4, site-local), NAT64 addresses of any
address but a public one, ``localhost`` names, and IPv4 addresses in the forms other than
four decimal numbers that the socket still reads (``2130706433``). Private networks
(10/8, 172.16/12, 192.168/16, fc00::/7) are allowed: an on-premises security desk's receiver
is a normal target. With the list set, only the hosts listed are allowed. Checked by name
when a subscription is made and before each delivery (``host_problem``), and by every
address the name resolves to in the lookup the delivery's connection is made with
(``CheckedResolver``): no second lookup a DNS server could answer differently (DNS
rebinding).
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

#: Special-purpose ranges (IANA's registries) that are neither the Internet nor a private
#: network, beyond what ``ipaddress`` names loopback, link-local, multicast or reserved.
#: Listed here rather than read from ``is_global``, whose ranges differ by Python release.
_SPECIAL = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network": 0.x reaches this host on some systems
        "100.64.0.0/10",  # shared (carrier-grade NAT); 100.100.100.200 is a metadata service
        "192.0.0.0/24",  # IETF protocol assignments (DS-Lite, NAT64 discovery)
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relays (deprecated)
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "64:ff9b:1::/48",  # NAT64 for local use: any address, as its network defines
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments (Teredo, which embeds an IPv4 address)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4 (deprecated): a relay reaches the IPv4 address it embeds
        "3fff::/20",  # documentation
        "fec0::/10",  # site-local (deprecated)
        "fd00:ec2::254/128",  # AWS's metadata service, in the otherwise allowed fc00::/7
    )
)
#: The private IPv4 networks, allowed as such but never behind NAT64 (RFC 6052 3.1).
_PRIVATE_IPV4 = tuple(
    ipaddress.ip_network(network) for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
#: NAT64's well-known prefix: the translator connects to the IPv4 address in the last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def refused_address(address: str) -> bool:
    """Whether deliveries to this IP address are refused unless its host is listed."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _NAT64:
        inner = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        return refused_address(str(inner)) or any(inner in net for net in _PRIVATE_IPV4)
    return (
        ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or any(ip in network for network in _SPECIAL)
    )


def _numeric(host: str) -> bool:
    """Whether ``host``, not an address in ``ipaddress``'s form, is one to the socket
    (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``: all 127.0.0.1) or to aiohttp
    (digits and dots: taken for an address, so never given to the resolver that judges the
    addresses connected to)."""
    if host.replace(".", "").isdigit():
        return True
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def host_problem(host: str, allowed: tuple[str, ...]) -> str | None:
    """Why ``host`` (a URL's, lower case) may not be a webhook's, judged by its name alone."""
    if allowed:
        if host in allowed:
            return None
        return "the URL's host is not in GATEWAY_WEBHOOK_ALLOWED_HOSTS"
    name = host.removesuffix(".")  # "localhost." is localhost
    if name == "localhost" or name.endswith(".localhost"):
        return "the URL's host is this machine (list it in GATEWAY_WEBHOOK_ALLOWED_HOSTS)"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if _numeric(host):
            return (
                "the URL's host is an IPv4 address not written as four decimal numbers "
                "(write it as a.b.c.d)"
            )
        return None  # a name: judged by its addresses at delivery
    if refused_address(host):
        return (
            "the URL's address is loopback, link-local, multicast, reserved or another "
            "special-purpose address (list it in GATEWAY_WEBHOOK_ALLOWED_HOSTS)"
        )
    return None


class RefusedAddress(OSError):
    """A webhook's host resolved, for its connection, to an address refused by the rule."""

    def __init__(self) -> None:
        super().__init__(
            "the URL's host resolves to a loopback, link-local, multicast, reserved or other "
            "special-purpose address (list it in GATEWAY_WEBHOOK_ALLOWED_HOSTS)"
        )


class CheckedResolver(AbstractResolver):
    """The webhook client's resolver: the addresses a delivery connects to are the ones
    judged, in the same step (a listed host is not judged)."""

    def __init__(self, allowed: tuple[str, ...], inner: AbstractResolver | None = None) -> None:
        self._allowed = allowed
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if host.lower() not in self._allowed and any(refused_address(r["host"]) for r in found):
            raise RefusedAddress
        return found

    async def close(self) -> None:
        await self._inner.close()
