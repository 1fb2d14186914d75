"""The gateway's bounded caches: ``cachetools.LRUCache``, least recently used out first.

A custom ``OrderedDict`` cache was kept here until measured: it saved ~40 bytes and ~0.1 us
per entry and lookup, too little for the benchmark harness to see (docs/benchmarks.md).
"""

from __future__ import annotations

from cachetools import LRUCache as Lru

__all__ = ["Lru"]
