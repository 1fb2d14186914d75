"""Whether a report's subnet match stands: a private address is anyone's network behind NAT.

A device's private, shared or link-local address (one that is not globally routable) does not
say which network it is on: a laptop at home on its router's ``192.168.1.x`` matches an office
subnet in the same range. As Microsoft Teams' "trusted IP addresses" do, with
``GATEWAY_NETWORK_TRUSTED_EGRESS`` set such a match stands only for a report the gateway heard
from inside those networks (its client address: ``gateway.api.source``). A public
subnet, a BSSID and an LLDP chassis or port ID name one network anywhere: never checked.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable

from gateway.network.wiremap import (
    Entry,
    Judge,
    Kind,
    Match,
    Network,
    Observation,
    parse_networks,
    within,
)

log = logging.getLogger("gateway.network")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def private(network: Address | Network) -> bool:
    """Whether ``network`` may be another network's as well: not globally routable."""
    return not network.is_global


class TrustedEgress:
    """A wiremap lookup for reports: a private subnet match heard from outside the trusted
    egress networks is ``Match.distrusted`` (none set: every match stands, as before)."""

    def __init__(
        self, resolve: Callable[[Observation, Judge], Match | None], cidrs: Iterable[str]
    ) -> None:
        self._resolve = resolve
        self.networks = parse_networks(cidrs)

    def trusts(self, heard_from: Address | None) -> bool:
        return within(heard_from, self.networks)

    def __call__(self, observation: Observation) -> Match | None:
        return self._resolve(observation, self.judge)

    def judge(self, observation: Observation, match: Match) -> Match:
        """``match``, or it distrusted when it may not locate the report."""
        if not self.networks or match.entry.kind is not Kind.SUBNET:
            return match
        ip = observation.ip
        if ip is None or not private(ip) or self.trusts(observation.heard_from):
            return match
        return Match(
            match.entry,
            distrusted=f"{ip} is a private address (anyone's network behind NAT) and this "
            "report did not come from the enterprise's network (GATEWAY_NETWORK_TRUSTED_EGRESS):"
            " its subnet's place is not used",
        )


def warn_if_unchecked(entries: Iterable[Entry], cidrs: tuple[str, ...]) -> bool:
    """Log, once at start, that private subnets are used unchecked (no trusted egress set):
    a home network on the same range is located at the office. Whether it warned."""
    if cidrs:
        return False
    subnets = (e.key for e in entries if e.kind is Kind.SUBNET)
    held = [key for key in subnets if private(ipaddress.ip_network(key))]
    if not held:
        return False
    log.warning(
        "the wiremap holds %d private subnet(s) (e.g. %s) and GATEWAY_NETWORK_TRUSTED_EGRESS "
        "is not set: a device at home on the same private range is located at the subnet's "
        "place unless its GPS fix contradicts it",
        len(held),
        held[0],
    )
    return True
