"""The wiremap benchmark phase measures what it says: lookups of every kind that resolve."""

from __future__ import annotations

from bench.network import entries, figures, observations
from gateway.network.wiremap import Kind, WiremapIndex


def test_the_workload_holds_every_kind_and_its_lookups_resolve() -> None:
    held = entries(3000)
    assert len(held) == 3000 and {e.kind for e in held} == set(Kind)
    index = WiremapIndex(held)  # no wildcard overlaps another: the index takes them all
    assert len(index) == 3000
    asks = observations(held, 2000)
    sources = {m.source for m in map(index.resolve, asks) if m is not None}
    assert sources == {k.value for k in Kind}
    found, details = figures(3000, 2000)
    assert found["network_entries"] == 3000
    assert details["wiremap"]["hit_share"] > 0.7
    assert found["network_resolve_p99_us"] >= found["network_resolve_p50_us"] > 0
