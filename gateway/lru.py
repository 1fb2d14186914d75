"""A bounded mapping that evicts the least recently used entry first, on one ``OrderedDict``.

``cachetools.LRUCache`` keeps three maps (the data, each entry's size, the order): 130 bytes
per entry at 100 000 entries against 91 for one ``OrderedDict`` (tracemalloc, keys and values
excluded). The pipeline's binding cache holds an entry per device, so at 100 000 devices that
is ~4 MiB of the peak RSS, and a lookup is ~0.1 µs cheaper (docs/benchmarks.md, "Peak RSS").
The other caches stay on ``cachetools``.

A plain ``dict`` (re-inserting an entry to refresh it) would hold 38 bytes per entry only
until its first refresh (77 after the dict compacts), and evicting its first entry scans every
slot freed before it: ~190 µs per eviction in a full cache of 200 000, with pauses of a
third of a second.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, ItemsView, Iterator
from typing import Generic, TypeVar, overload

__all__ = ["Lru"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

_MISSING = object()


class Lru(Generic[K, V]):
    """At most ``maxsize`` entries; reading (``get``, ``[]``) or writing an entry makes it the
    most recently used, as ``cachetools.LRUCache`` does (``tests/test_lru.py`` holds the two to
    the same contents)."""

    __slots__ = ("_data", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __getitem__(self, key: K) -> V:
        value = self._data[key]
        self._data.move_to_end(key)
        return value

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            return default
        self._data.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        data = self._data
        data[key] = value
        data.move_to_end(key)
        if len(data) > self.maxsize:
            data.popitem(last=False)

    def __delitem__(self, key: K) -> None:
        del self._data[key]

    @overload
    def pop(self, key: K) -> V: ...
    @overload
    def pop(self, key: K, default: D) -> V | D: ...
    def pop(self, key: K, default: object = _MISSING) -> object:
        if default is _MISSING:
            return self._data.pop(key)
        return self._data.pop(key, default)

    def items(self) -> ItemsView[K, V]:
        return self._data.items()
