"""The wiremap: networks whose hosts are located by their address."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gateway.settings.reader import SettingsError, setting


def check_networks(env: str, cidrs: tuple[str, ...]) -> None:
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise SettingsError(f"{env}: {cidr!r} is not a network") from None


@dataclass(frozen=True)
class NetworkSettings:
    """Networks trusted for HELD without credentials and for private subnet matches, and how
    often the wiremap is refreshed."""

    network_trusted_cidrs: tuple[str, ...] = setting(
        "GATEWAY_NETWORK_TRUSTED_CIDRS",
        (),
        "comma-separated networks (`10.0.0.0/8,2001:db8::/32`) whose hosts may ask `POST /v1/held`"
        " without credentials for the location of their own source address (the client address: "
        "see `GATEWAY_TRUSTED_PROXIES`) through the wiremap",
        shown="— (none)",
        check=check_networks,
    )
    network_trusted_egress: tuple[str, ...] = setting(
        "GATEWAY_NETWORK_TRUSTED_EGRESS",
        (),
        "comma-separated networks (`198.51.100.0/24`): the enterprise's egress addresses. When "
        "set, a report's subnet match on a private, shared or link-local address (anyone's "
        "network behind NAT) is used only when the report came from inside them (its client "
        "address: see `GATEWAY_TRUSTED_PROXIES`); else the report is located by its address or "
        "fix, warned. Unset, any subnet match is used (a home network on the same private range "
        "matches)",
        shown="— (none)",
        check=check_networks,
    )
    network_refresh_seconds: float = setting(
        "GATEWAY_NETWORK_REFRESH_SECONDS",
        2.0,
        "how often each replica checks the state store for wiremap changes made at another (a "
        "change reaches every replica within this, plus one reload)",
        gt=0,
    )
