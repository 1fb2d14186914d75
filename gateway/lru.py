"""The gateway's bounded caches: ``cachetools.LRUCache``, least recently used out first.

A custom ``OrderedDict`` cache was kept here until measured: what it saved was too little for
the benchmark harness to see (docs/benchmarks.md, "The LRU caches").
"""

from __future__ import annotations

from cachetools import LRUCache as Lru

__all__ = ["Lru"]
