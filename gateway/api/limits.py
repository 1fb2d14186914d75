"""Per-device report rate limit: no device can flood the carrier through the gateway.

A token bucket per AEUI, refilled at ``rate`` reports per second up to ``burst``; the
buckets live in a bounded LRU map, so a flood of distinct AEUIs cannot grow memory.
A bucket that is full again is as good as a fresh one, so evicting it loses nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from cachetools import LRUCache


class DeviceRateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        maxsize: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: LRUCache[str, tuple[float, float]] = LRUCache(maxsize)

    def acquire(self, key: str) -> float | None:
        """Take one token: ``None`` when allowed, else the seconds until the next token."""
        if self.rate <= 0:
            return None
        now = self.clock()
        tokens, stamp = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return max(0.001, (1.0 - tokens) / self.rate)

    @staticmethod
    def retry_after(wait: float) -> int:
        return max(1, math.ceil(wait))
