"""Where a request comes from: the one rule every check by source address uses.

The client address is the TCP peer's; when that peer is inside ``GATEWAY_TRUSTED_PROXIES``,
it is the nearest ``X-Forwarded-For`` hop (walking from the right) that is not itself a
trusted proxy; a hop may carry the port its proxy appended (``198.51.100.7:4711``,
``[2001:db8::7]:4711``). Each proxy appends the address it saw, so the hops a client forges lie
further left and are never read. A hop that is not an address where one must be read (a
proxy that wrote garbage, or passed a client's header on without appending) makes the
client the TCP peer: what the gateway knows without the header, so a broken proxy grants
nothing more than it would unset, and a location report or carrier query is still answered.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import HTTPConnection

from gateway.network.wiremap import WiremapError, parse_ip, within

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: ``X-Forwarded-For`` hops read at most, from the right (the nearest proxies).
MAX_HOPS = 16


def address(text: str) -> Address | None:
    """``text`` as an address (an IPv4-mapped one as its IPv4 address); ``None`` if not one."""
    try:
        return parse_ip(text.strip(), "address")
    except WiremapError:
        return None


def hop_address(text: str) -> Address | None:
    """An ``X-Forwarded-For`` hop as an address: bare, or with the port some proxies append
    (Azure Application Gateway's ``198.51.100.7:4711``, ``[2001:db8::7]:4711``); ``None``
    if it is neither."""
    host, port = text.strip(), None
    if host.startswith("["):  # an IPv6 address, alone or with a port
        host, bracket, rest = host[1:].partition("]")
        if not bracket or ":" not in host or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    elif host.count(":") == 1:  # an IPv4 address and a port (IPv6 has two colons or more)
        host, _, port = host.partition(":")
    if port is not None and not (
        port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535
    ):
        return None
    return address(host)


def forwarded_client(
    peer: Address | None, forwarded: Sequence[str], proxies: Sequence[Network]
) -> Address | None:
    """The rule: ``peer``, or from a trusted proxy the nearest hop of the ``X-Forwarded-For``
    header lines ``forwarded`` that is not one (``peer`` when every hop read is one)."""
    if not within(peer, proxies):
        return peer
    hops = [hop for line in forwarded for hop in line.split(",")]
    for hop in reversed(hops[-MAX_HOPS:]):
        found = hop_address(hop)
        if found is None:
            return peer
        if not within(found, proxies):
            return found
    return peer


def client_address(request: HTTPConnection) -> Address | None:
    """Who sent ``request`` (``forwarded_client`` of its TCP peer and the app's trusted
    proxies); ``None`` when the server gave no peer address."""
    peer = address(request.client.host) if request.client is not None else None
    proxies: tuple[Network, ...] = request.app.state.trusted_proxies
    if not proxies:
        return peer
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), proxies)
