"""gateway.lru.Lru (cachetools): bounded, least recently used out first, reads refresh."""

from __future__ import annotations

import pytest

from gateway.lru import Lru


def test_evicts_the_least_recently_used_and_reads_refresh() -> None:
    lru: Lru[str, int] = Lru(3)
    for i, key in enumerate("abc"):
        lru[key] = i
    assert lru.get("a") == 0  # a is now the most recent: b goes first
    lru["d"] = 3
    assert "b" not in lru and len(lru) == 3
    lru["c"] = 20  # a write refreshes too
    lru["e"] = 4
    assert "a" not in lru and lru.get("c") == 20
    assert lru.get("missing") is None and lru.get("missing", -1) == -1
    assert lru.pop("c") == 20 and lru.pop("c", None) is None and lru.pop("c", 7) == 7
    del lru["d"]
    assert dict(lru.items()) == {"e": 4}
    with pytest.raises(KeyError):
        del lru["d"]
