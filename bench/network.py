"""Network-based location: the wiremap lookup, in process, with 100 000 entries.

``network_resolve_p99_us`` (target: at most 1 000 µs) and ``network_resolve_cpu_us`` (CPU
per resolution) are measured on a wiremap of ``entries`` entries (subnets IPv4 and IPv6 of
many prefix lengths, access points exact and wildcard, switches, ports), each lookup a mix of
hits of every kind and misses, through ``Wiremap.resolve`` with its metrics callback as the
gateway runs it. The baseline, in the same invocation, is the same lookups on a wiremap of
1 000 entries: ``network_resolve_p99_vs_1k_ratio`` says how the lookup scales.

Run alone: ``python -m bench.network [--entries N] [--lookups M]``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gateway.bandwidth.models import Address
from gateway.dlr.address import normalize
from gateway.metrics import Metrics
from gateway.network.service import MemoryWiremapStore, Wiremap
from gateway.network.wiremap import (
    Bssid,
    Entry,
    Kind,
    Observation,
    WiremapIndex,
    parse_bssid,
)

if TYPE_CHECKING:
    from bench.runner import Bench

PLACE = Address(
    house_number="1600",
    street_name="PENNSYLVANIA",
    street_suffix="AVE",
    post_directional="NW",
    address_line2="FL 3",
    city="WASHINGTON",
    state_code="DC",
    zip="20500",
    country="US",
)
#: IPv4 prefix lengths used, as an enterprise plan has them (a handful of distinct ones).
V4_LENGTHS = (16, 20, 22, 23, 24, 25, 26, 27, 28, 30, 32)
V6_LENGTHS = (32, 40, 48, 56, 64)


def entries(count: int, seed: int = 7) -> list[Entry]:
    """``count`` distinct entries: 60 % IPv4 subnets, 10 % IPv6, 20 % access points (a
    tenth of them wildcards), 5 % switches, 5 % ports."""
    rng = random.Random(seed)
    found: dict[str, Entry] = {}

    def add(entry: Entry) -> None:
        found.setdefault(entry.id, entry)

    while len(found) < count:
        roll = rng.random()
        if roll < 0.6:
            length = rng.choice(V4_LENGTHS)
            value = rng.getrandbits(length) << (32 - length)
            add(Entry(Kind.SUBNET, str(ipaddress.IPv4Network((value, length))), PLACE))
        elif roll < 0.7:
            length = rng.choice(V6_LENGTHS)
            value = (0x2001_0DB8 << 96) | (rng.getrandbits(length - 32) << (128 - length))
            add(Entry(Kind.SUBNET, str(ipaddress.IPv6Network((value, length))), PLACE))
        elif roll < 0.9:
            bits = rng.choice((4, 8)) if rng.random() < 0.1 else 0
            # Wildcards in a range of their own, so none overlaps another.
            prefix = 0x02 if bits else 0x00
            value = (prefix << 40 | rng.getrandbits(40)) >> bits
            add(Entry(Kind.ACCESS_POINT, str(Bssid(value, bits)), PLACE))
        elif roll < 0.95:
            add(Entry(Kind.SWITCH, f"sw-{rng.getrandbits(32):08x}", PLACE))
        else:
            port = f"Gi1/0/{rng.randrange(48)}"
            add(Entry(Kind.PORT, f"sw-{rng.getrandbits(32):08x}", PLACE, port))
    return list(found.values())


def observations(held: Sequence[Entry], count: int, seed: int = 11) -> list[Observation]:
    """Lookups: for each a held entry's element (a host inside a subnet, a BSSID a wildcard
    holds), with a random IP besides, or a miss."""
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        entry = rng.choice(held)
        ip = ipaddress.IPv4Address(rng.getrandbits(32))
        if rng.random() < 0.2:
            found.append(Observation(ip=ip))  # most likely a miss
        elif entry.kind is Kind.SUBNET:
            network = ipaddress.ip_network(entry.key)
            host = int(network.network_address) + rng.randrange(network.num_addresses)
            found.append(Observation(ip=ipaddress.ip_address(host)))
        elif entry.kind is Kind.ACCESS_POINT:
            held_bssid = parse_bssid(entry.key)
            bits = held_bssid.wildcard_bits
            inside = Bssid(held_bssid.value << bits | rng.getrandbits(bits))
            found.append(Observation(ip=ip, bssid=inside))
        else:
            found.append(Observation(ip=ip, chassis_id=entry.key, port_id=entry.port_id))
    return found


def measure(size: int, lookups: int) -> dict[str, Any]:
    """Resolution latency (each timed) and CPU per resolution on a wiremap of ``size``."""
    held = entries(size)
    started = time.perf_counter()
    metrics = Metrics()
    wiremap = Wiremap(MemoryWiremapStore(), normalize, on_resolve=metrics.network_resolved)
    wiremap.index = WiremapIndex(held)
    built = time.perf_counter() - started
    asks = observations(held, lookups)
    for ask in asks[:1000]:  # warm up
        wiremap.resolve(ask)
    timings = []
    resolve = wiremap.resolve
    clock = time.perf_counter_ns
    cpu_started = time.process_time()
    for ask in asks:
        begun = clock()
        resolve(ask)
        timings.append(clock() - begun)
    cpu = time.process_time() - cpu_started
    timings.sort()
    hits = sum(1 for ask in asks if wiremap.index.resolve(ask) is not None)

    def pct(q: float) -> float:
        return round(timings[min(len(timings) - 1, int(q * len(timings)))] / 1000, 2)

    return {
        "entries": len(held),
        "lookups": len(asks),
        "hit_share": round(hits / len(asks), 3),
        "p50_us": pct(0.5),
        "p99_us": pct(0.99),
        "max_us": round(timings[-1] / 1000, 1),
        # Untimed CPU: the loop above also reads the clock twice per lookup.
        "cpu_us_per_resolution": round(cpu / len(asks) * 1e6, 2),
        "index_build_s": round(built, 2),
    }


def figures(size: int, lookups: int) -> tuple[dict[str, Any], dict[str, Any]]:
    baseline = measure(1000, lookups)
    full = measure(size, lookups)
    ratio = full["p99_us"] / baseline["p99_us"] if baseline["p99_us"] else None
    return (
        {
            "network_entries": full["entries"],
            "network_resolve_p50_us": full["p50_us"],
            "network_resolve_p99_us": full["p99_us"],
            "network_resolve_cpu_us": full["cpu_us_per_resolution"],
            "network_resolve_p99_vs_1k_ratio": round(ratio, 2) if ratio else None,
        },
        {"wiremap": full, "baseline_1k": baseline},
    )


async def phase_network(bench: Bench) -> None:
    size, lookups = {"smoke": (2000, 2000), "quick": (100_000, 50_000)}.get(
        bench.plan.mode, (100_000, 200_000)
    )
    bench.log(f"wiremap: {lookups} resolutions on {size} entries, and on 1 000 (baseline)")
    found, details = figures(size, lookups)
    bench.figures.update(found)
    bench.details["network"] = details


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.network", description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000, help="(default: 100000)")
    parser.add_argument("--lookups", type=int, default=200_000, help="(default: 200000)")
    args = parser.parse_args(argv)
    found, details = figures(args.entries, args.lookups)
    print(json.dumps({**found, "details": details}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
