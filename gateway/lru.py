"""A bounded mapping that evicts the least recently used entry first, on one ``dict``.

``cachetools.LRUCache`` keeps three maps (the data, each entry's size, the order), and an
``OrderedDict`` a linked-list node per entry and a second array beside its table; a plain
``dict`` kept in recency order (an entry refreshed is popped and re-inserted) holds the least
(docs/benchmarks.md, "Peak RSS", the sixth pass). Evicting a plain dict's first entry scans
every slot freed before it, so at its first eviction (the mapping has filled) the data
becomes an ``OrderedDict``, whose first entry is found at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, ItemsView, Iterator
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

    __slots__ = ("_data", "maxsize", "on_evict")

    def __init__(self, maxsize: int, on_evict: Callable[[K, V], object] | None = None) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        #: Called with each entry evicted (not with one popped or deleted).
        self.on_evict = on_evict
        #: Oldest first: a plain ``dict`` until the first eviction, then an ``OrderedDict``.
        self._data: dict[K, V] = {}

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __getitem__(self, key: K) -> V:
        data = self._data
        value = data.pop(key)
        data[key] = value
        return value

    def peek(self, key: K) -> V:
        """``self[key]`` without making it the most recently used."""
        return self._data[key]

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        data = self._data
        value = data.pop(key, _MISSING)
        if value is _MISSING:
            return default
        data[key] = value  # type: ignore[assignment]
        return value

    def __setitem__(self, key: K, value: V) -> None:
        data = self._data
        data.pop(key, None)
        data[key] = value
        if len(data) > self.maxsize:
            if not isinstance(data, OrderedDict):  # the first eviction: see the module
                self._data = data = OrderedDict(data)
            evicted = data.popitem(last=False)
            if self.on_evict is not None:
                self.on_evict(*evicted)

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
