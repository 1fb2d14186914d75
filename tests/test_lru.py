"""gateway.lru.Lru: bounded, least recently used out first, reads refresh; the same contents
as cachetools.LRUCache after any sequence of operations."""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest
from cachetools import LRUCache

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
    with pytest.raises(KeyError):
        lru.pop("c")
    del lru["d"]
    assert dict(lru.items()) == {"e": 4} and list(lru) == ["e"]
    with pytest.raises(KeyError):
        del lru["d"]
    with pytest.raises(KeyError):
        lru["d"]
    with pytest.raises(ValueError, match="maxsize"):
        Lru(0)


def test_subscript_refreshes_as_get_does() -> None:
    lru: Lru[str, int] = Lru(2)
    lru["a"], lru["b"] = 1, 2
    assert lru["a"] == 1
    lru["c"] = 3
    assert list(lru) == ["a", "c"]


def test_keeps_what_cachetools_lru_keeps() -> None:
    """The same operations on both: the same contents in every state (so the same evictions)."""
    rng = random.Random(5)
    ours: Lru[int, int] = Lru(50)
    theirs: LRUCache[int, int] = LRUCache(50)
    for step in range(20_000):
        key, op = rng.randrange(120), rng.random()
        if op < 0.5:
            ours[key] = theirs[key] = step
        elif op < 0.8:
            assert ours.get(key) == theirs.get(key)
        elif op < 0.9:
            assert (key in ours) == (key in theirs)
            if key in ours:
                assert ours[key] == theirs[key]
        else:
            assert ours.pop(key, None) == theirs.pop(key, None)
        assert len(ours) == len(theirs)
        assert set(ours) == set(theirs)  # iterating refreshes neither
    # (Reading LRUCache's items refreshes them: only once, at the end.)
    assert dict(ours.items()) == dict(theirs.items())


def test_a_plain_dict_until_the_first_eviction_then_the_same_order() -> None:
    """Recency kept by re-inserting (no ``OrderedDict`` node per entry) until the cache
    fills; evicting converts it, in the same order, so the front is found at once."""
    lru: Lru[str, int] = Lru(3)
    lru["a"], lru["b"], lru["c"] = 1, 2, 3
    assert lru["a"] == 1 and lru.get("b") == 2 and list(lru) == ["c", "a", "b"]
    assert type(lru._data) is dict
    lru["d"] = 4  # "c" was the least recently used
    assert type(lru._data) is OrderedDict and list(lru) == ["a", "b", "d"]
    assert lru.get("a") == 1
    lru["e"] = 5
    assert list(lru) == ["d", "a", "e"]


def test_peek_does_not_refresh_and_on_evict_sees_only_evictions() -> None:
    evicted: list[tuple[str, int]] = []
    lru: Lru[str, int] = Lru(2, lambda key, value: evicted.append((key, value)))
    lru["a"], lru["b"] = 1, 2
    assert lru.peek("a") == 1 and list(lru) == ["a", "b"]
    with pytest.raises(KeyError):
        lru.peek("missing")
    lru["c"] = 3  # "a" was not refreshed by peek: it goes
    assert evicted == [("a", 1)] and list(lru) == ["b", "c"]
    lru.pop("b")
    del lru["c"]
    lru["b"] = 2  # overwriting and removing evict nothing
    assert evicted == [("a", 1)]
